// Helpers for the crypto tests: hex, and loading the public conformance
// vectors from ../shared/vectors (never copied into the repository).
#ifndef FIELDSYNC_TESTS_CRYPTO_CRYPTO_TEST_UTIL_H_
#define FIELDSYNC_TESTS_CRYPTO_CRYPTO_TEST_UTIL_H_

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/temp_dir.h"

namespace fieldsync::crypto::testing {

// The bytes of a hex string; aborts on malformed hex (a broken test).
inline std::vector<uint8_t> Unhex(std::string_view hex) {
  auto nibble = [hex](char c) -> uint8_t {
    if (c >= '0' && c <= '9') return static_cast<uint8_t>(c - '0');
    if (c >= 'a' && c <= 'f') return static_cast<uint8_t>(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return static_cast<uint8_t>(c - 'A' + 10);
    std::cerr << "bad hex in test data: " << hex << "\n";
    std::abort();
  };
  if (hex.size() % 2 != 0) {
    std::cerr << "odd-length hex in test data: " << hex << "\n";
    std::abort();
  }
  std::vector<uint8_t> out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<uint8_t>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  }
  return out;
}

// The bytes of a JSON string of hex (a template so that string literals and
// std::string never convert to JSON).
template <typename Json>
  requires std::is_same_v<Json, nlohmann::json>
std::vector<uint8_t> Unhex(const Json& j) {
  return Unhex(std::string_view(j.template get_ref<const std::string&>()));
}

inline std::string Hex(std::span<const uint8_t> bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

inline std::string Hex(std::string_view bytes) {
  return Hex(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()),
                                      bytes.size()));
}

// The parsed JSON of <vectors dir>/<relative>, or nullopt when the vectors
// folder is absent (after saying so on stdout).
inline std::optional<nlohmann::json> LoadVectors(const std::string& relative) {
  std::string dir = fieldsync::testing::VectorsDir();
  if (dir.empty()) {
    std::cout << "conformance vectors folder is absent (set FIELDSYNC_VECTORS_DIR or place "
                 "../shared/vectors): "
              << relative << " NOT checked\n";
    return std::nullopt;
  }
  return nlohmann::json::parse(fieldsync::testing::ReadFileOrDie(dir + "/" + relative));
}

// Prints the line every vector test ends with.
inline void ReportChecked(size_t n, std::string_view suite) {
  std::cout << "checked " << n << " " << suite << " vectors\n";
}

}  // namespace fieldsync::crypto::testing

// Declares `json var` from the vectors file, or skips the test (saying so)
// when the vectors folder is absent.
#define FS_LOAD_VECTORS_OR_SKIP(var, relative)                                    \
  std::optional<nlohmann::json> var##_loaded_ =                                   \
      ::fieldsync::crypto::testing::LoadVectors(relative);                        \
  if (!var##_loaded_.has_value()) GTEST_SKIP() << "vectors folder absent";        \
  const nlohmann::json& var = *var##_loaded_

#endif  // FIELDSYNC_TESTS_CRYPTO_CRYPTO_TEST_UTIL_H_
