#include "common/logging.h"

#include <atomic>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace fieldsync::log {
namespace {

std::atomic<int> g_min_level{static_cast<int>(Level::kInfo)};
std::atomic<int> g_format{static_cast<int>(Format::kKeyValue)};

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

spdlog::logger& Logger() {
  // Never destroyed, so that logging from static destructors stays safe.
  static spdlog::logger* logger = [] {
    auto* l = new spdlog::logger("fieldsync", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    // The timestamp is part of the formatted line (a JSON line must be
    // nothing but its object).
    l->set_pattern("%v");
    l->set_level(spdlog::level::trace);
    l->flush_on(spdlog::level::trace);
    return l;
  }();
  return *logger;
}

// key=value: a value with spaces, quotes, '=' or control bytes is quoted and
// escaped so that one event is always one parseable line.
void AppendKeyValue(std::string* out, std::string_view value) {
  bool needs_quotes = value.empty();
  for (char c : value) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      needs_quotes = true;
      break;
    }
  }
  if (!needs_quotes) {
    out->append(value);
    return;
  }
  out->push_back('"');
  for (char c : value) {
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(out, "\\x%02x", static_cast<unsigned char>(c));
    } else {
      out->push_back(c);
    }
  }
  out->push_back('"');
}

// Length of the well-formed UTF-8 sequence at the start of `s`, 0 if
// there is none (a stray continuation byte, an overlong form, a surrogate,
// a truncated sequence).
size_t Utf8SequenceLength(std::string_view s) {
  const auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const auto cont = [&](size_t i) { return i < s.size() && (b(i) & 0xC0) == 0x80; };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;  // overlong
    if (c == 0xED && b(1) > 0x9F) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;  // overlong
    if (c == 0xF4 && b(1) > 0x8F) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

// A JSON string: quotes, backslashes and control bytes escaped, and each
// byte that is not part of well-formed UTF-8 replaced by U+FFFD, so that
// every line is valid JSON whatever bytes a value holds.
void AppendJsonString(std::string* out, std::string_view value) {
  out->push_back('"');
  for (size_t i = 0; i < value.size();) {
    const char c = value[i];
    if (static_cast<unsigned char>(c) >= 0x80) {
      const size_t n = Utf8SequenceLength(value.substr(i));
      if (n == 0) {
        out->append("\\ufffd");
        ++i;
      } else {
        out->append(value.substr(i, n));
        i += n;
      }
      continue;
    }
    ++i;
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(out, "\\u%04x", static_cast<unsigned char>(c));
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

}  // namespace

absl::Status ParseLevel(std::string_view name, Level* level) {
  if (name == "debug")
    *level = Level::kDebug;
  else if (name == "info")
    *level = Level::kInfo;
  else if (name == "warn")
    *level = Level::kWarn;
  else if (name == "error")
    *level = Level::kError;
  else
    return absl::InvalidArgumentError(absl::StrFormat(
        "unknown log level \"%s\": use debug, info, warn or error", std::string(name)));
  return absl::OkStatus();
}

absl::Status ParseFormat(std::string_view name, Format* format) {
  if (name == "text")
    *format = Format::kKeyValue;
  else if (name == "json")
    *format = Format::kJson;
  else
    return absl::InvalidArgumentError(
        absl::StrFormat("unknown log format \"%s\": use text or json", std::string(name)));
  return absl::OkStatus();
}

void Configure(Level min_level, Format format) {
  g_min_level.store(static_cast<int>(min_level));
  g_format.store(static_cast<int>(format));
}

bool Enabled(Level level) { return static_cast<int>(level) >= g_min_level.load(); }

std::string FormatLine(Format format, Level level, std::string_view event,
                       std::initializer_list<Field> fields) {
  std::string line;
  if (format == Format::kJson) {
    line = absl::StrFormat("{\"level\":\"%s\",\"event\":", LevelName(level));
    AppendJsonString(&line, event);
    for (const Field& f : fields) {
      line.push_back(',');
      AppendJsonString(&line, f.key);
      line.push_back(':');
      // nan and inf are not JSON numbers: they go as strings.
      if (f.is_number && f.value.find_first_of("ni") == std::string::npos) {
        line.append(f.value);
      } else {
        AppendJsonString(&line, f.value);
      }
    }
    line.push_back('}');
  } else {
    line = absl::StrFormat("level=%s event=", LevelName(level));
    AppendKeyValue(&line, event);
    for (const Field& f : fields) {
      line.push_back(' ');
      line.append(f.key);
      line.push_back('=');
      AppendKeyValue(&line, f.value);
    }
  }
  return line;
}

std::string FormatLineAt(Format format, absl::Time time, Level level, std::string_view event,
                         std::initializer_list<Field> fields) {
  const std::string timestamp = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
  std::string line = FormatLine(format, level, event, fields);
  if (format == Format::kJson) {
    // {"time":"...", then the rest of the object.
    return absl::StrCat("{\"time\":\"", timestamp, "\",", line.substr(1));
  }
  return absl::StrCat(timestamp, " ", line);
}

void Write(Level level, std::string_view event, std::initializer_list<Field> fields) {
  std::string line =
      FormatLineAt(static_cast<Format>(g_format.load()), absl::Now(), level, event, fields);
  Logger().info("{}", line);
}

}  // namespace fieldsync::log
