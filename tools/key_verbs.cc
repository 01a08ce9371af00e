#include "tools/key_verbs.h"

#include <chrono>
#include <iostream>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "fieldsync/v1/admin.grpc.pb.h"
#include "tools/client.h"
#include "tools/status_verbs.h"

namespace fieldsync::tools {
namespace {

const std::vector<std::string> kConnection = {"--data-dir", "--server", "--cert", "--key", "--ca"};

constexpr char kEraseHelp[] =
    "usage: fieldsync --data-dir DIR [--server HOST:PORT] case erase CASE_ID --confirm CASE_ID\n"
    "\n"
    "Crypto-shreds a case (administrators only): its data key is destroyed, so\n"
    "its identifying and sensitive fields can never be read again, in the case\n"
    "log, the state or any later backup. Dimension fields (region, sex, age\n"
    "band, ...) stay for statistics. The audit log records the erasure.\n"
    "This cannot be undone: --confirm must repeat the case id.\n";

constexpr char kRotateHelp[] =
    "usage: fieldsync --data-dir DIR [--server HOST:PORT] keys rotate-master\n"
    "\n"
    "Rotates the master key (administrators only): fieldsyncd adds a version to\n"
    "its master key file (keeping the old ones), re-wraps its own keys and every\n"
    "case data key under it while serving, and records the rotation in the\n"
    "audit log. If an earlier rotation was interrupted, this finishes it\n"
    "instead of adding another version. Refused when the master key comes from\n"
    "master_key_command: rotate it there and restart fieldsyncd.\n";

constexpr char kRotateSealingHelp[] =
    "usage: fieldsync --data-dir DIR [--server HOST:PORT] keys rotate-sealing\n"
    "                 [--previous-until DATE|DURATION|now]\n"
    "\n"
    "Rotates the server's batch-sealing key (administrators only): fieldsyncd\n"
    "makes a new HPKE key (the next key id) and accepts batches sealed to it at\n"
    "once, without a restart. Tablets learn it at their next sync\n"
    "(SyncService.GetSealingKeys) and seal to it from then on.\n"
    "Batches sealed to the replaced key are still accepted until the cutoff, then\n"
    "refused with SEALING_KEY_RETIRED (the tablet fetches the keys and reseals).\n"
    "Earlier keys already past their cutoff have their private keys deleted.\n"
    "The rotation is recorded in the audit log (KeyRotated, hpke-sealing).\n"
    "\n"
    "  --previous-until WHEN  when the replaced key stops being accepted:\n"
    "                         a date (2026-07-01, midnight UTC, or\n"
    "                         2026-07-01T12:00:00Z), a duration from now (72h,\n"
    "                         14d), or `now` to refuse it at once (a key\n"
    "                         believed compromised). At most 365 days ahead.\n"
    "                         Default: sealing_key_overlap_days in the server's\n"
    "                         config (30).\n";

constexpr char kRotateAuditHelp[] =
    "usage: fieldsync --data-dir DIR [--server HOST:PORT] keys rotate-audit\n"
    "\n"
    "Rotates the audit log's signing key (administrators only): fieldsyncd makes\n"
    "a new Ed25519 key version, records it in the audit log as a key transition\n"
    "(KeyRotated \"audit-signing\" with the new public key), signs the head that\n"
    "covers it with the old key and the new one, and signs every later head with\n"
    "the new key only, without a restart. The old key's private half is deleted.\n"
    "The new verifier key is written to DATA_DIR/audit-log.vN.pub on the server\n"
    "(audit-log.pub keeps the first key) and printed. Auditors keep verifying\n"
    "with the key they hold: `fieldsync audit verify` follows the transition.\n"
    "Tablets learn the new key from their next push receipt.\n";

constexpr char kListHelp[] =
    "usage: fieldsync --data-dir DIR [--server HOST:PORT] keys list\n"
    "\n"
    "Lists the server's batch-sealing keys (administrators only): each key id,\n"
    "the first bytes of its public key, and until when batches sealed to it are\n"
    "accepted (the current key: no end; a retired key's private key is deleted\n"
    "at the next rotation).\n";

// The short form of a public key people compare: its first 8 bytes, hex.
std::string KeyPrefix(const std::string& public_key) {
  return absl::BytesToHexString(absl::string_view(public_key).substr(0, 8));
}

std::string Rfc3339(int64_t unix_micros) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixMicros(unix_micros),
                          absl::UTCTimeZone());
}

void PrintSealingKeys(const google::protobuf::RepeatedPtrField<v1::ServerSealingKey>& keys) {
  std::cout << absl::StrFormat("%-6s  %-16s  %s\n", "KEY", "PUBLIC KEY", "ACCEPTED");
  for (const v1::ServerSealingKey& k : keys) {
    std::string accepted = "current, no end";
    if (!k.is_current()) {
      accepted = absl::StrFormat("%s until %s", k.is_retired() ? "retired, was accepted" : "yes",
                                 Rfc3339(k.not_after_unix_micros()));
    }
    std::cout << absl::StrFormat("%-6d  %-16s  %s\n", k.key_id(), KeyPrefix(k.public_key()),
                                 accepted);
  }
}

// Sets `request`'s cutoff from --previous-until. kInvalidArgument with the
// forms accepted.
absl::Status SetPreviousUntil(const std::string& text, v1::RotateSealingKeyRequest* request) {
  if (text == "now") {
    request->set_previous_overlap_seconds(0);
    return absl::OkStatus();
  }
  absl::Time t;
  std::string err;
  if (absl::ParseTime("%Y-%m-%d", text, absl::UTCTimeZone(), &t, &err) ||
      absl::ParseTime(absl::RFC3339_full, text, &t, &err)) {
    request->set_previous_until_unix_micros(absl::ToUnixMicros(t));
    return absl::OkStatus();
  }
  absl::StatusOr<absl::Duration> d = ParseDurationFlag(text);
  if (d.ok()) {
    request->set_previous_overlap_seconds(static_cast<uint64_t>(absl::ToInt64Seconds(*d)));
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "--previous-until \"%s\" is not a date (2026-07-01 or 2026-07-01T12:00:00Z), a duration "
      "(72h, 14d) or now",
      text));
}

int Usage(std::string* error, std::string message) {
  *error = std::move(message);
  return 2;
}

}  // namespace

int CaseErase(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kEraseHelp;
    return 0;
  }
  std::vector<std::string> allowed = kConnection;
  allowed.push_back("--confirm");
  if (absl::Status s = CheckOptions(args, allowed); !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  // words: "case" "erase" CASE_ID
  if (args.words.size() != 3) return Usage(error, "case erase needs one CASE_ID; see --help");
  if (!args.Has("--confirm")) {
    return Usage(error,
                 "case erase needs --confirm CASE_ID (the same id again): erasure "
                 "cannot be undone");
  }
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) {
    *error = std::string(conn.status().message());
    return 1;
  }
  v1::EraseCaseRequest request;
  request.set_case_id(args.words[2]);
  request.set_confirm_case_id(args.Get("--confirm"));
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  v1::EraseCaseResponse response;
  grpc::Status status =
      v1::AdminService::NewStub(conn->channel)->EraseCase(&context, request, &response);
  if (!status.ok()) {
    *error = DescribeRpcError(status, conn->server);
    return 1;
  }
  std::cout << "erased case " << response.case_id() << "\n"
            << "  its identifying and sensitive fields can no longer be read; dimension "
               "fields remain\n"
            << "  audit log entry: " << response.audit_leaf_index() << " (tree size "
            << response.audit_tree_size() << ")\n";
  return 0;
}

int KeysRotateMaster(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kRotateHelp;
    return 0;
  }
  if (absl::Status s = CheckOptions(args, kConnection); !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  if (args.words.size() != 2) return Usage(error, "keys rotate-master takes no operand");
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) {
    *error = std::string(conn.status().message());
    return 1;
  }
  grpc::ClientContext context;
  // Re-wrapping every case key takes about 3 s per million cases.
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::hours(1));
  v1::RotateMasterKeyResponse response;
  grpc::Status status = v1::AdminService::NewStub(conn->channel)
                            ->RotateMasterKey(&context, v1::RotateMasterKeyRequest(), &response);
  if (!status.ok()) {
    *error = DescribeRpcError(status, conn->server);
    return 1;
  }
  std::cout << absl::StrFormat(
      "master key rotated: version %d -> %d%s\n"
      "  case keys re-wrapped:   %d\n"
      "  case keys already new:  %d\n"
      "  erased cases skipped:   %d\n"
      "  server keys re-wrapped: %d\n"
      "  audit log entry:        %d\n"
      "the master key file now holds every version: back it up again\n",
      response.old_version(), response.new_version(),
      response.resumed() ? " (finished an interrupted rotation)" : "", response.rewrapped(),
      response.already_current(), response.erased(), response.server_keys_rewrapped(),
      response.audit_leaf_index());
  return 0;
}

int KeysRotateSealing(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kRotateSealingHelp;
    return 0;
  }
  std::vector<std::string> allowed = kConnection;
  allowed.push_back("--previous-until");
  if (absl::Status s = CheckOptions(args, allowed); !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  if (args.words.size() != 2) return Usage(error, "keys rotate-sealing takes no operand");
  v1::RotateSealingKeyRequest request;
  if (args.Has("--previous-until")) {
    if (absl::Status s = SetPreviousUntil(args.Get("--previous-until"), &request); !s.ok()) {
      return Usage(error, std::string(s.message()));
    }
  }
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) {
    *error = std::string(conn.status().message());
    return 1;
  }
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  v1::RotateSealingKeyResponse response;
  grpc::Status status =
      v1::AdminService::NewStub(conn->channel)->RotateSealingKey(&context, request, &response);
  if (!status.ok()) {
    *error = DescribeRpcError(status, conn->server);
    return 1;
  }
  std::cout << absl::StrFormat(
      "batch-sealing key rotated: key %d -> %d\n"
      "  key %d is accepted until %s\n"
      "  new public key:  %s\n"
      "  audit log entry: %d\n",
      response.old_key_id(), response.new_key_id(), response.old_key_id(),
      Rfc3339(response.previous_until_unix_micros()),
      absl::BytesToHexString(response.new_public_key()), response.audit_leaf_index());
  for (uint32_t id : response.deleted_key_ids()) {
    std::cout << absl::StrFormat("  key %d was past its cutoff: its private key is deleted\n", id);
  }
  PrintSealingKeys(response.keys());
  return 0;
}

int KeysList(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kListHelp;
    return 0;
  }
  if (absl::Status s = CheckOptions(args, kConnection); !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  if (args.words.size() != 2) return Usage(error, "keys list takes no operand");
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) {
    *error = std::string(conn.status().message());
    return 1;
  }
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  v1::ListSealingKeysResponse response;
  grpc::Status status = v1::AdminService::NewStub(conn->channel)
                            ->ListSealingKeys(&context, v1::ListSealingKeysRequest(), &response);
  if (!status.ok()) {
    *error = DescribeRpcError(status, conn->server);
    return 1;
  }
  PrintSealingKeys(response.keys());
  return 0;
}

int KeysRotateAudit(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kRotateAuditHelp;
    return 0;
  }
  if (absl::Status s = CheckOptions(args, kConnection); !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  if (args.words.size() != 2) return Usage(error, "keys rotate-audit takes no operand");
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) {
    *error = std::string(conn.status().message());
    return 1;
  }
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  v1::RotateAuditKeyResponse response;
  grpc::Status status = v1::AdminService::NewStub(conn->channel)
                            ->RotateAuditKey(&context, v1::RotateAuditKeyRequest(), &response);
  if (!status.ok()) {
    *error = DescribeRpcError(status, conn->server);
    return 1;
  }
  std::cout << absl::StrFormat(
      "audit signing key rotated: version %d -> %d\n"
      "  key transition:    audit log entry %d, covered by the head of size %d signed by both "
      "keys\n"
      "  new verifier key:  %s\n"
      "  written to:        %s (on the server)\n"
      "auditors keep their audit-log.pub: `fieldsync audit verify` follows the transition\n",
      response.old_version(), response.new_version(), response.audit_leaf_index(),
      response.transition_head().tree_size(), response.verifier_key(),
      response.verifier_key_file());
  return 0;
}

}  // namespace fieldsync::tools
