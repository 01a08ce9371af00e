#include "crypto/canonical.h"

#include <cstdio>
#include <cstdlib>
#include <limits>

namespace fieldsync::crypto {
namespace {

void AppendBigEndian(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>(v >> (8 * i)));
}

// A canonical encoding that silently differed from its layout would be a
// signature or AAD nobody can reproduce: a broken invariant, so abort.
[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "fieldsync: CanonicalWriter: %s\n", what);
  std::abort();
}

}  // namespace

CanonicalWriter::CanonicalWriter(std::string_view domain) {
  if (domain.empty() || domain.find('\0') != std::string_view::npos) {
    Die("the domain must be non-empty and hold no 0x00 byte");
  }
  out_.reserve(domain.size() + 64);
  out_.append(domain);
  out_.push_back('\0');
}

CanonicalWriter& CanonicalWriter::U8(uint8_t v) {
  out_.push_back(static_cast<char>(v));
  return *this;
}

CanonicalWriter& CanonicalWriter::U16(uint16_t v) {
  AppendBigEndian(out_, v, 2);
  return *this;
}

CanonicalWriter& CanonicalWriter::U32(uint32_t v) {
  AppendBigEndian(out_, v, 4);
  return *this;
}

CanonicalWriter& CanonicalWriter::U64(uint64_t v) {
  AppendBigEndian(out_, v, 8);
  return *this;
}

CanonicalWriter& CanonicalWriter::Uuid(const fieldsync::Uuid& id) {
  out_.append(reinterpret_cast<const char*>(id.data()), id.size());
  return *this;
}

CanonicalWriter& CanonicalWriter::Fixed(std::span<const uint8_t> bytes) {
  out_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return *this;
}

CanonicalWriter& CanonicalWriter::Bytes(std::span<const uint8_t> bytes) {
  if (bytes.size() > std::numeric_limits<uint32_t>::max()) {
    Die("a length-prefixed field is 4 GiB or longer");
  }
  AppendBigEndian(out_, bytes.size(), 4);
  return Fixed(bytes);
}

CanonicalWriter& CanonicalWriter::Bytes(std::string_view bytes) {
  return Bytes(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

}  // namespace fieldsync::crypto
