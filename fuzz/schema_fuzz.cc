// Fuzzes the schema file parser (sync/schema.h ParseSchema: protobuf text
// or JSON, then ValidateSchema) and the index Schema::Create builds, as
// `fieldsync schema check` and the server's start do.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "fuzz/fuzz_fixtures.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "sync/schema.h"

using namespace fieldsync;  // NOLINT: a fuzz target's one file

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<v1::Schema> schema = sync::ParseSchema(text);
  if (!schema.ok()) {
    fuzz::Check(schema.status().code() == absl::StatusCode::kInvalidArgument,
                "a bad schema is kInvalidArgument");
    return 0;
  }
  absl::StatusOr<std::unique_ptr<sync::Schema>> index = sync::Schema::Create(*schema);
  fuzz::Check(index.ok(), "a schema that parsed (and so validated) indexes");
  fuzz::Check((*index)->digest().size() == 64, "a schema digest is 64 hex digits");
  for (const v1::RecordType& type : schema->record_types()) {
    fuzz::Check((*index)->FindRecordType(type.name()) != nullptr, "each record type is found");
    (void)(*index)->DimensionFields(type.name());
  }
  for (const std::string& region : (*index)->regions()) {
    fuzz::Check((*index)->CheckRegion(region).ok(), "each region is a region");
    (void)(*index)->DistrictsOfRegion(region);
  }
  // What parsed prints as protobuf text that parses to the same schema with
  // the same digest.
  std::string printed;
  fuzz::Check(google::protobuf::TextFormat::PrintToString(*schema, &printed), "a schema prints");
  absl::StatusOr<v1::Schema> again = sync::ParseSchema(printed);
  fuzz::Check(again.ok(), "a printed schema parses");
  fuzz::Check(google::protobuf::util::MessageDifferencer::Equals(*schema, *again),
              "a printed schema parses to the same schema");
  absl::StatusOr<std::unique_ptr<sync::Schema>> index_again = sync::Schema::Create(*again);
  fuzz::Check(index_again.ok() && (*index_again)->digest() == (*index)->digest(),
              "the digest does not depend on the file's layout");
  return 0;
}
