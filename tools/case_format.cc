#include "tools/case_format.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "tools/field_value_text.h"

namespace fieldsync::tools {
namespace {

// Characters, not bytes, so that names in any script line up.
size_t DisplayWidth(std::string_view s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

}  // namespace

std::string UtcTime(int64_t unix_micros) {
  if (unix_micros == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMicros(unix_micros),
                          absl::UTCTimeZone());
}

std::string UtcTime(const v1::Hlc& hlc) { return UtcTime(hlc.wall_micros()); }

nlohmann::json JsonTime(int64_t unix_micros) {
  if (unix_micros == 0) return nullptr;
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", absl::FromUnixMicros(unix_micros),
                          absl::UTCTimeZone());
}

std::string WriterName(std::string_view writer, std::string_view officer_id,
                       std::string_view device_label) {
  if (writer.starts_with("staff:")) return std::string(writer);
  if (officer_id.empty() && device_label.empty()) {
    return writer.empty() ? "-" : std::string(writer);
  }
  if (device_label.empty()) return absl::StrFormat("%s / device %s", officer_id, writer);
  if (officer_id.empty()) return std::string(device_label);
  return absl::StrFormat("%s / %s", officer_id, device_label);
}

std::string OutcomeName(v1::ChangeOutcome outcome) {
  switch (outcome) {
    case v1::CHANGE_OUTCOME_APPLIED:
      return "applied";
    case v1::CHANGE_OUTCOME_CONVERGED:
      return "converged";
    case v1::CHANGE_OUTCOME_SUPERSEDED:
      return "superseded";
    case v1::CHANGE_OUTCOME_CONFLICT:
      return "conflict";
    case v1::CHANGE_OUTCOME_REJECTED:
      return "rejected";
    default:
      return "-";
  }
}

std::string ChangeKindName(v1::ChangeKind kind) {
  switch (kind) {
    case v1::CHANGE_KIND_UPSERT:
      return "upsert";
    case v1::CHANGE_KIND_DELETE:
      return "delete";
    case v1::CHANGE_KIND_CLOSE_CASE:
      return "close";
    case v1::CHANGE_KIND_REOPEN_CASE:
      return "reopen";
    case v1::CHANGE_KIND_ASSIGN_CASE:
      return "assign";
    case v1::CHANGE_KIND_TRANSFER_CASE:
      return "transfer";
    case v1::CHANGE_KIND_RESOLVE_CONFLICT:
      return "resolve";
    default:
      return absl::StrCat("kind ", static_cast<int>(kind));
  }
}

void PutJsonValue(const v1::FieldValue* value, bool withheld, nlohmann::json* out) {
  (*out)["withheld"] = withheld;
  if (withheld || value == nullptr) {
    (*out)["value"] = nullptr;
    (*out)["field_value"] = nullptr;
    return;
  }
  (*out)["value"] = value->kind_case() == v1::FieldValue::KIND_NOT_SET
                        ? nlohmann::json(nullptr)
                        : nlohmann::json(FormatFieldValue(*value));
  std::string text;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  if (google::protobuf::util::MessageToJsonString(*value, &text, options).ok()) {
    (*out)["field_value"] = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  } else {
    (*out)["field_value"] = nullptr;
  }
}

std::string CellValue(const v1::FieldValue* value, bool withheld, size_t width) {
  if (withheld) return "(withheld)";
  if (value == nullptr) return "(cleared)";
  return Shorten(FormatFieldValue(*value), width);
}

void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows, std::ostream& out) {
  std::vector<size_t> width(header.size(), 0);
  auto widen = [&width](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], DisplayWidth(row[i]));
    }
  };
  widen(header);
  for (const auto& row : rows) widen(row);
  auto print = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) {
        line.append(width[i] - DisplayWidth(row[i]) + 2, ' ');
      }
    }
    // An empty last column would leave the padding of the one before it.
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  };
  print(header);
  for (const auto& row : rows) print(row);
}

std::string ShellQuote(std::string_view s) {
  bool plain = !s.empty();
  for (char c : s) {
    plain = plain && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      std::string_view("-_./:=@,+").find(c) != std::string_view::npos);
  }
  if (plain) return std::string(s);
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string CommandPrefix(const Args& args) {
  std::string out = "fieldsync";
  for (const char* name : {"--data-dir", "--server", "--cert", "--key", "--ca"}) {
    if (args.Has(name)) absl::StrAppend(&out, " ", name, " ", ShellQuote(args.Get(name)));
  }
  return out;
}

}  // namespace fieldsync::tools
