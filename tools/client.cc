#include "tools/client.h"

#include <signal.h>

#include <cerrno>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "admin/address_file.h"
#include "admin/deployment.h"
#include "common/file_io.h"
#include "common/status_macros.h"
#include "crypto/x509.h"
#include "fieldsync/v1/rpc_status.pb.h"

namespace fieldsync::tools {
namespace {

absl::StatusOr<std::string> ReadNamed(const std::string& path, const std::string& what) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (absl::IsNotFound(text.status())) {
    return absl::NotFoundError(absl::StrFormat("%s %s does not exist", what, path));
  }
  return text;
}

// The deployment's server certificate file, when the tool was given the
// data directory (DescribeRpcError reads it to explain a refused name).
std::string& ServerCertificateFileForErrors() {
  static std::string* file = new std::string();
  return *file;
}

}  // namespace

absl::StatusOr<std::string> RunningServerAddress(const std::string& data_dir) {
  const std::string path = admin::AddressFilePath(data_dir);
  absl::StatusOr<std::string> text = ReadFile(path);
  if (absl::IsNotFound(text.status())) {
    return absl::UnavailableError(absl::StrFormat(
        "fieldsyncd is not running for %s (no %s): start it with fieldsyncd --data-dir %s, or "
        "give --server HOST:PORT",
        data_dir, path, data_dir));
  }
  RETURN_IF_ERROR(text.status());
  absl::StatusOr<admin::ServerAddress> parsed = admin::ParseAddressFile(*text);
  if (!parsed.ok()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s: %s; remove it and restart fieldsyncd, or give --server HOST:PORT",
                        path, parsed.status().message()));
  }
  // A server killed without a clean stop leaves its file behind.
  if (parsed->pid > 0 && ::kill(parsed->pid, 0) != 0 && errno == ESRCH) {
    return absl::UnavailableError(absl::StrFormat(
        "fieldsyncd is not running for %s (%s names process %d, which has exited without a "
        "clean stop): start it with fieldsyncd --data-dir %s, or give --server HOST:PORT",
        data_dir, path, parsed->pid, data_dir));
  }
  return parsed->address;
}

absl::StatusOr<Connection> Connect(const Args& args) {
  std::string data_dir = args.Get("--data-dir");
  if (data_dir.empty() &&
      (!args.Has("--cert") || !args.Has("--key") || !args.Has("--ca") || !args.Has("--server"))) {
    return absl::InvalidArgumentError(
        "--data-dir is required (or all of --server, --cert, --key and --ca)");
  }
  admin::DeploymentPaths paths(data_dir);
  grpc::SslCredentialsOptions ssl;
  ASSIGN_OR_RETURN(ssl.pem_cert_chain,
                   ReadNamed(args.Get("--cert", paths.admin_cert), "client certificate"));
  ASSIGN_OR_RETURN(ssl.pem_private_key,
                   ReadNamed(args.Get("--key", paths.admin_key), "client key"));
  ASSIGN_OR_RETURN(ssl.pem_root_certs,
                   ReadNamed(args.Get("--ca", paths.admin_ca_cert), "CA certificate"));
  Connection c;
  if (args.Has("--server")) {
    c.server = args.Get("--server");
  } else {
    ASSIGN_OR_RETURN(c.server, RunningServerAddress(data_dir));
  }
  grpc::ChannelArguments channel_args;
  channel_args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  c.channel = grpc::CreateCustomChannel(c.server, grpc::SslCredentials(ssl), channel_args);
  // With the deployment's directory at hand, a refused connection can say
  // whether the server certificate lacks the name dialled.
  if (!data_dir.empty()) ServerCertificateFileForErrors() = paths.server_cert;
  return c;
}

namespace {

// The host part of HOST:PORT ([v6]:PORT gives the address without brackets).
std::string HostOf(const std::string& server) {
  std::string host = server;
  size_t colon = host.rfind(':');
  if (colon != std::string::npos && host.find(']') == std::string::npos &&
      host.find(':') != colon) {
    return host;  // a bare IPv6 address without a port
  }
  if (colon != std::string::npos) host = host.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host;
}

// True when the server certificate does not name the host the client
// dialled: gRPC says so in its message, or the deployment's own server
// certificate (read from the data directory) lacks the name.
bool IsNameMissingFromCertificate(const grpc::Status& status, const std::string& host,
                                  const std::string& server_certificate_file) {
  if (absl::StrContains(status.error_message(), "not in peer certificate")) return true;
  if (server_certificate_file.empty() || host.empty()) return false;
  absl::StatusOr<std::string> pem = ReadFile(server_certificate_file);
  if (!pem.ok()) return false;
  absl::StatusOr<crypto::CertificateSummary> cert = crypto::ParseCertificate(*pem);
  if (!cert.ok()) return false;
  for (const auto* names : {&cert->dns_names, &cert->ip_addresses}) {
    for (const std::string& n : *names) {
      if (absl::EqualsIgnoreCase(n, host)) return false;
    }
  }
  return true;
}

}  // namespace

std::string DescribeRpcError(const grpc::Status& status, const std::string& server) {
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE &&
      IsNameMissingFromCertificate(status, HostOf(server), ServerCertificateFileForErrors())) {
    const std::string host = HostOf(server);
    return absl::StrFormat(
        "cannot connect to fieldsyncd at %s: the name %s is not in the server certificate; add "
        "it with `fieldsync certs renew-server --host %s` (run where a name it carries works, "
        "e.g. --server localhost:PORT) and restart fieldsyncd",
        server, host, host);
  }
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    return absl::StrFormat(
        "cannot reach fieldsyncd at %s (%s): is it running, and is --server right?", server,
        status.error_message());
  }
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::StrFormat("fieldsyncd at %s did not answer in time", server);
  }
  static const char* kNames[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  int code = status.error_code();
  const char* name = code >= 0 && code <= 16 ? kNames[code] : "ERROR";
  std::string out = absl::StrFormat("%s: %s", name, status.error_message());
  std::string reason = SyncErrorReasonName(SyncErrorDetailOf(status).reason());
  if (!reason.empty() && reason != name) absl::StrAppendFormat(&out, " [%s]", reason);
  return out;
}

v1::SyncErrorDetail SyncErrorDetailOf(const grpc::Status& status) {
  v1::RpcStatus rich;
  v1::SyncErrorDetail detail;
  if (status.error_details().empty() || !rich.ParseFromString(status.error_details())) {
    return detail;
  }
  for (const google::protobuf::Any& any : rich.details()) {
    if (any.UnpackTo(&detail)) return detail;
  }
  return v1::SyncErrorDetail();
}

std::string SyncErrorReasonName(v1::SyncErrorReason reason) {
  if (reason == v1::SYNC_ERROR_REASON_UNSPECIFIED) return "";
  std::string name = v1::SyncErrorReason_Name(reason);
  constexpr std::string_view kPrefix = "SYNC_ERROR_REASON_";
  if (name.starts_with(kPrefix)) name = name.substr(kPrefix.size());
  return name.empty() ? absl::StrFormat("reason %d", static_cast<int>(reason)) : name;
}

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(15);
}

}  // namespace fieldsync::tools
