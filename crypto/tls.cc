#include "crypto/tls.h"

#include <openssl/bio.h>
#include <openssl/conf.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>

#include "absl/strings/str_format.h"

namespace fieldsync::crypto {
namespace {

// The OpenSSL configuration applied by RequireTls13ForProcess. "Protocol"
// sets SSL_OP_NO_* bits, which gRPC's later SSL_CTX_set_min_proto_version
// does not undo; "MinProtocol" alone would be undone by it.
constexpr std::string_view kTls13OnlyConfig =
    "openssl_conf = fieldsync_openssl_init\n"
    "[fieldsync_openssl_init]\n"
    "ssl_conf = fieldsync_ssl_conf\n"
    "[fieldsync_ssl_conf]\n"
    "system_default = fieldsync_tls13_only\n"
    "[fieldsync_tls13_only]\n"
    "MinProtocol = TLSv1.3\n"
    "Protocol = -SSLv3, -TLSv1, -TLSv1.1, -TLSv1.2\n";

constexpr uint64_t kBelowTls13 =
    SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 | SSL_OP_NO_TLSv1_2;

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct ConfFree {
  void operator()(CONF* conf) const { NCONF_free(conf); }
};
struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};

absl::Status ConfigError(std::string_view what) {
  unsigned long err = ERR_peek_error();
  const char* reason = err != 0 ? ERR_reason_error_string(err) : nullptr;
  ERR_clear_error();
  return absl::InternalError(
      absl::StrFormat("TLS 1.3 policy: %s (%s)", what, reason != nullptr ? reason : "no detail"));
}

absl::Status ApplyTls13Config() {
  ERR_clear_error();
  // Loads the default configuration (OPENSSL_CONF or openssl.cnf) now, once,
  // so that a lazy load later cannot replace the ssl_conf set below.
  if (OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, nullptr) != 1) {
    return ConfigError("OPENSSL_init_ssl failed");
  }
  std::unique_ptr<BIO, BioFree> bio(
      BIO_new_mem_buf(kTls13OnlyConfig.data(), static_cast<int>(kTls13OnlyConfig.size())));
  std::unique_ptr<CONF, ConfFree> conf(NCONF_new(nullptr));
  if (bio == nullptr || conf == nullptr) return ConfigError("allocation failed");
  long error_line = 0;
  if (NCONF_load_bio(conf.get(), bio.get(), &error_line) <= 0) {
    return ConfigError(absl::StrFormat("config line %d does not parse", error_line));
  }
  // appname nullptr: run the modules named in the "openssl_conf" section.
  if (CONF_modules_load(conf.get(), nullptr, 0) <= 0) {
    return ConfigError("CONF_modules_load failed");
  }
  ERR_clear_error();
  if (!IsTls13RequiredForProcess()) {
    return absl::InternalError("TLS 1.3 policy: configuration loaded but not in effect");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RequireTls13ForProcess() {
  static std::once_flag once;
  static absl::Status* result = nullptr;  // Never destroyed.
  std::call_once(once, [] { result = new absl::Status(ApplyTls13Config()); });
  return *result;
}

bool IsTls13RequiredForProcess() {
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(TLS_method()));
  if (ctx == nullptr) {
    ERR_clear_error();
    return false;
  }
  // What gRPC 1.51 does right after SSL_CTX_new (tsi_set_min_and_max_tls_versions).
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION);
  uint64_t options = SSL_CTX_get_options(ctx.get());
  return (options & kBelowTls13) == kBelowTls13 && (options & SSL_OP_NO_TLSv1_3) == 0;
}

}  // namespace fieldsync::crypto
