// SecretBytes: key material that wipes itself and never prints.
#ifndef FIELDSYNC_CRYPTO_SECRET_H_
#define FIELDSYNC_CRYPTO_SECRET_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace fieldsync::crypto {

// Owns a heap buffer of secret bytes (keys, shared secrets, seeds). The
// buffer is overwritten with OPENSSL_cleanse when the object is destroyed,
// assigned over or moved from (a moved-from SecretBytes is empty). Move-only:
// a copy of a key is made on purpose, with Clone(). There is no operator<<
// and no conversion to a string; DebugString() says only the length.
//
// Thread-compatible: const methods may run concurrently.
class SecretBytes {
 public:
  // Empty.
  SecretBytes() = default;
  // `n` zero bytes, to be filled through data()/mutable_span().
  explicit SecretBytes(size_t n);
  // A copy of `bytes`.
  explicit SecretBytes(std::span<const uint8_t> bytes);

  ~SecretBytes();
  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  // A second owner of the same bytes.
  SecretBytes Clone() const { return SecretBytes(span()); }

  const uint8_t* data() const { return data_.get(); }
  uint8_t* data() { return data_.get(); }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::span<const uint8_t> span() const { return {data_.get(), size_}; }
  std::span<uint8_t> mutable_span() { return {data_.get(), size_}; }

  // "<secret N bytes>": safe for logs and test failure messages.
  std::string DebugString() const;

  // Constant-time in the contents (CRYPTO_memcmp); the lengths are not
  // secret, and unequal lengths compare unequal at once.
  bool operator==(const SecretBytes& other) const;

 private:
  void Wipe();

  std::unique_ptr<uint8_t[]> data_;
  size_t size_ = 0;
};

// True iff `a` and `b` have the same length and contents. Constant-time in
// the contents (CRYPTO_memcmp), not in the lengths. For MACs, tags and
// tokens.
bool ConstantTimeEquals(std::span<const uint8_t> a, std::span<const uint8_t> b);

// Overwrites `bytes` with OPENSSL_cleanse (which the compiler cannot elide).
void Cleanse(std::span<uint8_t> bytes);
// Overwrites the characters of `s` (e.g. a std::string that held key text).
void Cleanse(std::string& s);

}  // namespace fieldsync::crypto

#endif  // FIELDSYNC_CRYPTO_SECRET_H_
