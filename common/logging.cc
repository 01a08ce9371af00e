#include "common/logging.h"

#include <atomic>
#include <memory>

#include "absl/strings/str_format.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace fieldsync::log {
namespace {

std::atomic<int> g_min_level{static_cast<int>(Level::kInfo)};
std::atomic<int> g_format{static_cast<int>(Format::kKeyValue)};

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}

spdlog::logger& Logger() {
  // Never destroyed, so that logging from static destructors stays safe.
  static spdlog::logger* logger = [] {
    auto* l = new spdlog::logger("fieldsync", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    l->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %v", spdlog::pattern_time_type::utc);
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

void AppendJsonString(std::string* out, std::string_view value) {
  out->push_back('"');
  for (char c : value) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\t': out->append("\\t"); break;
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
  if (name == "debug") *level = Level::kDebug;
  else if (name == "info") *level = Level::kInfo;
  else if (name == "warn") *level = Level::kWarn;
  else if (name == "error") *level = Level::kError;
  else
    return absl::InvalidArgumentError(absl::StrFormat(
        "unknown log level \"%s\": use debug, info, warn or error", std::string(name)));
  return absl::OkStatus();
}

absl::Status ParseFormat(std::string_view name, Format* format) {
  if (name == "text") *format = Format::kKeyValue;
  else if (name == "json") *format = Format::kJson;
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
      if (f.is_number) {
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

void Write(Level level, std::string_view event, std::initializer_list<Field> fields) {
  std::string line = FormatLine(static_cast<Format>(g_format.load()), level, event, fields);
  Logger().info("{}", line);
}

}  // namespace fieldsync::log
