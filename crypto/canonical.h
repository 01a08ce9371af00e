// The canonical byte encoding rules of everything fieldsync signs or uses as
// AEAD associated data: one documented layout per structure, each opening
// with a domain-separation prefix, never "serialize the protobuf and sign
// that". The layouts themselves live with their owners: the field cipher's
// associated data here in crypto/, the signed and sealed protocol messages
// in protocol/.
#ifndef FIELDSYNC_CRYPTO_CANONICAL_H_
#define FIELDSYNC_CRYPTO_CANONICAL_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "common/uuid.h"

namespace fieldsync::crypto {

// Writes one canonical encoding. The rules (persisted: an encoding, once
// signed, must be reproducible byte for byte forever):
//
//   encoding = domain || 0x00 || field || field || ...
//   domain   the ASCII domain-separation string, e.g. "fieldsync/field/v1",
//            then one 0x00 byte (a domain never holds 0x00, so no domain's
//            encoding is a prefix of another's)
//   U8/U16/U32/U64  fixed width, big-endian
//   Uuid     16 raw bytes
//   Fixed    raw bytes whose length the layout fixes (a 32-byte hash)
//   Bytes    u32 big-endian length || the bytes (strings: their UTF-8 bytes)
//
// A layout is a fixed sequence of these per domain and version, so the
// encoding is injective: distinct values give distinct bytes. Changing a
// layout means a new domain string (".../v2").
//
// Not thread-safe (one writer per encoding).
class CanonicalWriter {
 public:
  // REQUIRES: `domain` is non-empty and holds no 0x00 byte.
  explicit CanonicalWriter(std::string_view domain);

  CanonicalWriter& U8(uint8_t v);
  CanonicalWriter& U16(uint16_t v);
  CanonicalWriter& U32(uint32_t v);
  CanonicalWriter& U64(uint64_t v);
  CanonicalWriter& Uuid(const fieldsync::Uuid& id);
  CanonicalWriter& Fixed(std::span<const uint8_t> bytes);
  // REQUIRES: bytes.size() < 2^32 (a broken invariant aborts).
  CanonicalWriter& Bytes(std::span<const uint8_t> bytes);
  CanonicalWriter& Bytes(std::string_view bytes);

  // The encoding so far.
  const std::string& view() const { return out_; }
  std::span<const uint8_t> span() const {
    return {reinterpret_cast<const uint8_t*>(out_.data()), out_.size()};
  }
  // The encoding; the rvalue form moves it out, the lvalue form (for
  // one-line chains on a temporary) copies it.
  std::string Finish() && { return std::move(out_); }
  std::string Finish() const& { return out_; }

 private:
  std::string out_;
};

}  // namespace fieldsync::crypto

#endif  // FIELDSYNC_CRYPTO_CANONICAL_H_
