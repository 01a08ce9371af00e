// Fuzzes the server's config file parser (server/config.h): protobuf text
// or JSON, then defaults and the range checks fieldsyncd runs at start.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_fixtures.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/config.h"

using namespace fieldsync;  // NOLINT: a fuzz target's one file

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<v1::ServerConfig> config = server::ParseConfig(text, "fuzz.conf");
  if (!config.ok()) {
    fuzz::Check(config.status().code() == absl::StatusCode::kInvalidArgument,
                "a bad config is kInvalidArgument");
    return 0;
  }
  // What parsed prints as protobuf text that parses to the same config.
  std::string printed;
  fuzz::Check(google::protobuf::TextFormat::PrintToString(*config, &printed), "a config prints");
  absl::StatusOr<v1::ServerConfig> again = server::ParseConfig(printed, "printed.conf");
  fuzz::Check(again.ok(), "a printed config parses");
  fuzz::Check(google::protobuf::util::MessageDifferencer::Equals(*config, *again),
              "a printed config parses to the same config");
  server::ApplyDefaults("/var/lib/fieldsync", &*config);
  (void)server::ValidateConfig(*config);
  return 0;
}
