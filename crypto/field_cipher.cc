#include "crypto/field_cipher.h"

#include <array>
#include <cstring>
#include <limits>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "crypto/bytes.h"
#include "crypto/canonical.h"

namespace fieldsync::crypto {
namespace {

// Fixed part of the AAD: domain, 0x00, two UUIDs, the name's length and the
// key version.
constexpr size_t kAadFixedSize = kFieldAadDomain.size() + 1 + 16 + 16 + 4 + 4;
// AADs up to this size are built on the stack (no allocation per field).
constexpr size_t kAadStackSize = 160;

void PutU32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

// Writes the AAD (the layout in the header; FieldAad builds the same bytes
// with CanonicalWriter, and the tests check that both agree) into `out`,
// which holds at least kAadFixedSize + name size bytes.
size_t WriteAad(const FieldAddress& a, uint8_t* out) {
  uint8_t* p = out;
  std::memcpy(p, kFieldAadDomain.data(), kFieldAadDomain.size());
  p += kFieldAadDomain.size();
  *p++ = 0;
  std::memcpy(p, a.case_id.data(), 16);
  p += 16;
  std::memcpy(p, a.record_id.data(), 16);
  p += 16;
  PutU32(p, static_cast<uint32_t>(a.field_name.size()));
  p += 4;
  if (!a.field_name.empty()) std::memcpy(p, a.field_name.data(), a.field_name.size());
  p += a.field_name.size();
  PutU32(p, a.key_version);
  p += 4;
  return static_cast<size_t>(p - out);
}

// Calls fn(aad) with the address's AAD, on the stack when it fits.
template <typename Fn>
auto WithAad(const FieldAddress& address, Fn fn) {
  const size_t size = kAadFixedSize + address.field_name.size();
  if (size <= kAadStackSize) {
    std::array<uint8_t, kAadStackSize> buffer;
    WriteAad(address, buffer.data());
    return fn(std::span<const uint8_t>(buffer.data(), size));
  }
  std::string heap(size, '\0');
  WriteAad(address, reinterpret_cast<uint8_t*>(heap.data()));
  return fn(AsBytes(heap));
}

absl::Status CheckFieldName(const FieldAddress& address) {
  if (address.field_name.size() > std::numeric_limits<uint32_t>::max()) {
    return absl::InvalidArgumentError("field name is 4 GiB or longer");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<FieldCipher> FieldCipher::Create(std::span<const uint8_t> dek) {
  if (dek.size() != kAesGcmKeySize) {
    return absl::InvalidArgumentError(
        absl::StrFormat("a case data key must be 32 bytes, got %d", dek.size()));
  }
  ASSIGN_OR_RETURN(AesGcm aead, AesGcm::Create(dek));
  return FieldCipher(std::move(aead));
}

absl::StatusOr<std::string> FieldCipher::Encrypt(const FieldAddress& address,
                                                 std::span<const uint8_t> plaintext,
                                                 Random& random) const {
  RETURN_IF_ERROR(CheckFieldName(address));
  if (plaintext.size() > kAesGcmMaxPlaintext) {
    return absl::InvalidArgumentError(
        absl::StrFormat("field value of %d bytes is over the 1 GiB limit", plaintext.size()));
  }
  std::string out;
  out.reserve(kFieldCiphertextOverhead + plaintext.size());
  out.resize(1 + kAesGcmNonceSize);
  out[0] = static_cast<char>(kFieldFormatVersion);
  std::span<uint8_t> nonce(reinterpret_cast<uint8_t*>(out.data()) + 1, kAesGcmNonceSize);
  random.Fill(nonce);
  // SealAppend may not see `nonce` as a view into `out` (it grows `out`).
  std::array<uint8_t, kAesGcmNonceSize> nonce_copy;
  std::memcpy(nonce_copy.data(), nonce.data(), nonce_copy.size());
  RETURN_IF_ERROR(WithAad(address, [&](std::span<const uint8_t> aad) {
    return aead_.SealAppend(nonce_copy, aad, plaintext, &out);
  }));
  return out;
}

absl::StatusOr<std::string> FieldCipher::Encrypt(const FieldAddress& address,
                                                 std::string_view plaintext, Random& random) const {
  return Encrypt(address, AsBytes(plaintext), random);
}

absl::StatusOr<std::string> FieldCipher::Decrypt(const FieldAddress& address,
                                                 std::span<const uint8_t> ciphertext) const {
  RETURN_IF_ERROR(CheckFieldName(address));
  if (ciphertext.size() < kFieldCiphertextOverhead) {
    return absl::InvalidArgumentError(
        absl::StrFormat("field ciphertext too short: %d bytes, at least %d expected",
                        ciphertext.size(), kFieldCiphertextOverhead));
  }
  if (ciphertext[0] != kFieldFormatVersion) {
    return absl::InvalidArgumentError(
        absl::StrFormat("unknown field ciphertext format %d; this build reads format %d",
                        ciphertext[0], kFieldFormatVersion));
  }
  std::span<const uint8_t> nonce = ciphertext.subspan(1, kAesGcmNonceSize);
  std::span<const uint8_t> sealed = ciphertext.subspan(1 + kAesGcmNonceSize);
  return WithAad(address,
                 [&](std::span<const uint8_t> aad) { return aead_.Open(nonce, aad, sealed); });
}

absl::StatusOr<std::string> FieldCipher::Decrypt(const FieldAddress& address,
                                                 std::string_view ciphertext) const {
  return Decrypt(address, AsBytes(ciphertext));
}

std::string FieldAad(const FieldAddress& address) {
  return CanonicalWriter(kFieldAadDomain)
      .Uuid(address.case_id)
      .Uuid(address.record_id)
      .Bytes(address.field_name)
      .U32(address.key_version)
      .Finish();
}

absl::StatusOr<std::string> EncryptField(const SecretBytes& dek, const FieldAddress& address,
                                         std::span<const uint8_t> plaintext, Random& random) {
  ASSIGN_OR_RETURN(FieldCipher cipher, FieldCipher::Create(dek.span()));
  return cipher.Encrypt(address, plaintext, random);
}

absl::StatusOr<std::string> DecryptField(const SecretBytes& dek, const FieldAddress& address,
                                         std::span<const uint8_t> ciphertext) {
  ASSIGN_OR_RETURN(FieldCipher cipher, FieldCipher::Create(dek.span()));
  return cipher.Decrypt(address, ciphertext);
}

}  // namespace fieldsync::crypto
