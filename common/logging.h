// Structured, levelled logging: one line per event, as key=value pairs or
// as a JSON object. Values are opaque ids, codes, counts and durations only:
// never a record value, a name, or key material.
//
//   log::Info("rpc.done", {{"principal", id}, {"rpc", method}, {"code", 0}});
//   -> 2026-11-27T21:40:00.123Z level=info event=rpc.done principal=... rpc=... code=0
//   -> {"time":"2026-11-27T21:40:00.123Z","level":"info","event":"rpc.done",...}
//      (--log-format json: each line is one JSON object and nothing else;
//      bytes that are not UTF-8 become U+FFFD, nan and inf become strings)
//
// Thread-safe.
#ifndef FIELDSYNC_COMMON_LOGGING_H_
#define FIELDSYNC_COMMON_LOGGING_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fieldsync::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
enum class Format { kKeyValue, kJson };

// One key=value pair of an event.
struct Field {
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(v) {}
  // absl::string_view is not std::string_view in Debian's abseil.
  Field(std::string_view k, absl::string_view v) : key(k), value(v.data(), v.size()) {}
  template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<T>>>
  Field(std::string_view k, T v) : key(k), value(std::to_string(v)), is_number(true) {}
  std::string_view key;
  std::string value;
  bool is_number = false;
};

// Parses "debug", "info", "warn" or "error"; kInvalidArgument otherwise.
absl::Status ParseLevel(std::string_view name, Level* level);
// Parses "text" (key=value) or "json"; kInvalidArgument otherwise.
absl::Status ParseFormat(std::string_view name, Format* format);

// Sets the minimum level and the line format for the whole process.
// Lines go to standard error. May be called at any time.
void Configure(Level min_level, Format format);

bool Enabled(Level level);
void Write(Level level, std::string_view event, std::initializer_list<Field> fields);

inline void Debug(std::string_view event, std::initializer_list<Field> fields = {}) {
  if (Enabled(Level::kDebug)) Write(Level::kDebug, event, fields);
}
inline void Info(std::string_view event, std::initializer_list<Field> fields = {}) {
  if (Enabled(Level::kInfo)) Write(Level::kInfo, event, fields);
}
inline void Warn(std::string_view event, std::initializer_list<Field> fields = {}) {
  if (Enabled(Level::kWarn)) Write(Level::kWarn, event, fields);
}
inline void Error(std::string_view event, std::initializer_list<Field> fields = {}) {
  if (Enabled(Level::kError)) Write(Level::kError, event, fields);
}

// Formats one line without the timestamp; exposed for tests.
std::string FormatLine(Format format, Level level, std::string_view event,
                       std::initializer_list<Field> fields);

// The line Write prints for an event at `time`: the timestamp first for
// text, a "time" member first for JSON.
std::string FormatLineAt(Format format, absl::Time time, Level level, std::string_view event,
                         std::initializer_list<Field> fields);

}  // namespace fieldsync::log

#endif  // FIELDSYNC_COMMON_LOGGING_H_
