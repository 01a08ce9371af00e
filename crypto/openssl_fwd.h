// Internal to crypto/: forward declarations of the OpenSSL objects that
// public crypto/ headers hold, with their owning handle types, so that those
// headers do not pull <openssl/...> into other modules.
#ifndef FIELDSYNC_CRYPTO_OPENSSL_FWD_H_
#define FIELDSYNC_CRYPTO_OPENSSL_FWD_H_

#include <memory>

// OpenSSL's typedef names (EVP_CIPHER_CTX, ...) are aliases of these.
struct evp_cipher_ctx_st;
struct evp_pkey_st;
struct evp_pkey_ctx_st;
struct evp_md_ctx_st;
struct evp_mac_ctx_st;

namespace fieldsync::crypto::internal {

struct CipherCtxDeleter {
  void operator()(evp_cipher_ctx_st* p) const;
};
struct PkeyDeleter {
  void operator()(evp_pkey_st* p) const;
};
struct PkeyCtxDeleter {
  void operator()(evp_pkey_ctx_st* p) const;
};
struct MdCtxDeleter {
  void operator()(evp_md_ctx_st* p) const;
};
struct MacCtxDeleter {
  void operator()(evp_mac_ctx_st* p) const;
};

using CipherCtxPtr = std::unique_ptr<evp_cipher_ctx_st, CipherCtxDeleter>;
using PkeyPtr = std::unique_ptr<evp_pkey_st, PkeyDeleter>;
using PkeyCtxPtr = std::unique_ptr<evp_pkey_ctx_st, PkeyCtxDeleter>;
using MdCtxPtr = std::unique_ptr<evp_md_ctx_st, MdCtxDeleter>;
using MacCtxPtr = std::unique_ptr<evp_mac_ctx_st, MacCtxDeleter>;

}  // namespace fieldsync::crypto::internal

#endif  // FIELDSYNC_CRYPTO_OPENSSL_FWD_H_
