// Process-wide TLS policy: fieldsync speaks TLS 1.3 only. gRPC 1.51's public
// C++ API cannot set a minimum TLS version, so the policy is imposed on
// OpenSSL itself, before gRPC creates any SSL_CTX.
#ifndef FIELDSYNC_CRYPTO_TLS_H_
#define FIELDSYNC_CRYPTO_TLS_H_

#include "absl/status/status.h"

namespace fieldsync::crypto {

// Makes every SSL_CTX that this process creates from now on (gRPC's server
// and channel contexts included, and any other OpenSSL user in the process)
// refuse SSLv3, TLS 1.0, 1.1 and 1.2, leaving TLS 1.3 only.
//
// How: an in-memory OpenSSL configuration whose ssl_conf "system_default"
// section sets `Protocol = -SSLv3,-TLSv1,-TLSv1.1,-TLSv1.2` (SSL_OP_NO_*
// option bits) and `MinProtocol = TLSv1.3`. OpenSSL applies system_default
// inside SSL_CTX_new. gRPC 1.51 then calls SSL_CTX_set_min_proto_version
// (TLS 1.2), which lowers the minimum again, but the option bits survive:
// gRPC only ever adds options (it does not link SSL_CTX_clear_options).
// The process's default OpenSSL configuration is loaded first so that it
// cannot replace this one later; its own ssl_conf section, if any, is replaced.
//
// Call once early in main(), before any thread starts and before any gRPC
// credentials are created; later calls return the first call's result.
// Contexts created before the first call keep their old settings.
// Returns OK once a test context (made the way gRPC makes its contexts)
// carries the policy. Errors: kInternal if OpenSSL rejects the configuration
// or the policy does not take effect.
absl::Status RequireTls13ForProcess();

// True if an SSL_CTX created now, the way gRPC 1.51 creates one (TLS_method,
// then minimum version TLS 1.2), would refuse every version below TLS 1.3
// and still allow TLS 1.3. For startup self-checks and tests. Thread-safe.
bool IsTls13RequiredForProcess();

}  // namespace fieldsync::crypto

#endif  // FIELDSYNC_CRYPTO_TLS_H_
