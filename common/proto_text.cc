#include "common/proto_text.h"

#include <string>

#include "absl/strings/str_format.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"

namespace fieldsync {
namespace {

class CollectFirstError : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (!error.empty()) return;
    error = absl::StrFormat("line %d column %d: %s", line + 1, column + 1, message);
  }
  std::string error;
};

}  // namespace

absl::Status ParseTextOrJson(std::string_view text, std::string_view what,
                             google::protobuf::Message* msg) {
  msg->Clear();
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && text[first] == '{') {
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    auto status = google::protobuf::util::JsonStringToMessage(
        google::protobuf::StringPiece(text.data(), text.size()), msg, options);
    if (!status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: invalid JSON: %s", what, std::string(status.message())));
    }
    return absl::OkStatus();
  }
  google::protobuf::TextFormat::Parser parser;
  CollectFirstError errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), msg)) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: invalid text: %s", what, errors.error));
  }
  return absl::OkStatus();
}

}  // namespace fieldsync
