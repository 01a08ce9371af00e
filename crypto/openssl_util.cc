#include "crypto/openssl_util.h"

#include <openssl/err.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_format.h"

namespace fieldsync::crypto::internal {
namespace {

std::string DrainErrors() {
  unsigned long first = ERR_get_error();
  ERR_clear_error();
  if (first == 0) return "no OpenSSL error queued";
  char buf[256];
  ERR_error_string_n(first, buf, sizeof(buf));
  return buf;
}

}  // namespace

void CipherCtxDeleter::operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); }
void PkeyDeleter::operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
void PkeyCtxDeleter::operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
void MdCtxDeleter::operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
void MacCtxDeleter::operator()(EVP_MAC_CTX* p) const { EVP_MAC_CTX_free(p); }

const EVP_CIPHER* Aes256GcmCipher() {
  static const EVP_CIPHER* const cipher = [] {
    EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    if (c == nullptr) OpensslFatal("fetching AES-256-GCM");
    return c;
  }();
  return cipher;
}

const EVP_MD* Sha256Md() {
  static const EVP_MD* const md = [] {
    EVP_MD* m = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (m == nullptr) OpensslFatal("fetching SHA256");
    return m;
  }();
  return md;
}

EVP_MAC* HmacMac() {
  static EVP_MAC* const mac = [] {
    EVP_MAC* m = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (m == nullptr) OpensslFatal("fetching HMAC");
    return m;
  }();
  return mac;
}

absl::Status OpensslError(std::string_view what) {
  return absl::InternalError(absl::StrFormat("%s failed in OpenSSL: %s", what, DrainErrors()));
}

void OpensslFatal(std::string_view what) {
  std::fprintf(stderr, "fieldsync crypto: fatal: %.*s failed in OpenSSL: %s\n",
               static_cast<int>(what.size()), what.data(), DrainErrors().c_str());
  std::abort();
}

}  // namespace fieldsync::crypto::internal
