// Internal to crypto/: algorithms fetched once per process, the handle
// deleters, and the conversion of OpenSSL failures to statuses.
// Not part of the module's public surface; include only from crypto/*.cc.
#ifndef FIELDSYNC_CRYPTO_OPENSSL_UTIL_H_
#define FIELDSYNC_CRYPTO_OPENSSL_UTIL_H_

#include <openssl/evp.h>

#include <string_view>

#include "absl/status/status.h"
#include "crypto/openssl_fwd.h"

namespace fieldsync::crypto::internal {

// Algorithms fetched from the default provider on first use and kept for
// the life of the process (an explicit fetch per call costs a lock and a
// lookup). Abort if the provider lacks them: nothing works without them.
const EVP_CIPHER* Aes256GcmCipher();
const EVP_MD* Sha256Md();
EVP_MAC* HmacMac();

// kInternal "<what> failed in OpenSSL: <first queued error>"; drains the
// thread's OpenSSL error queue. OpenSSL's messages name the failing
// function and reason, never key bytes.
absl::Status OpensslError(std::string_view what);

// For failures that only an allocation failure or a broken OpenSSL can
// cause: prints `what` and the OpenSSL error, then aborts.
[[noreturn]] void OpensslFatal(std::string_view what);

}  // namespace fieldsync::crypto::internal

#endif  // FIELDSYNC_CRYPTO_OPENSSL_UTIL_H_
