// fieldsyncd's configuration: a ServerConfig message read from a file in
// protobuf text or JSON form, then flags, then defaults.
#ifndef FIELDSYNC_SERVER_CONFIG_H_
#define FIELDSYNC_SERVER_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fieldsync/v1/config.pb.h"

namespace fieldsync::server {

// Parses `text` as a ServerConfig: JSON if it starts with '{' (after
// whitespace), protobuf text otherwise. kInvalidArgument naming the line
// and the unknown or ill-typed key.
absl::StatusOr<v1::ServerConfig> ParseConfig(const std::string& text, const std::string& origin);

// Reads and parses the file at `path`; kNotFound naming it if absent.
absl::StatusOr<v1::ServerConfig> LoadConfigFile(const std::string& path);

// Fills every unset field with its default (see config.proto); file paths
// default to their place in `data_dir`.
void ApplyDefaults(const std::string& data_dir, v1::ServerConfig* config);

// Checks values that parse but cannot work: log level and format names,
// the listen address, plaintext on a non-loopback address, and every
// numeric key against its NumericBounds() range.
// REQUIRES: ApplyDefaults ran (an unset number is 0, below every minimum).
// kInvalidArgument naming the key, the value and the fix (for a number:
// "config key sync.max_clock_skew_seconds is 4294967295, outside the
// allowed range 1..86400 seconds (at most one day)").
absl::Status ValidateConfig(const v1::ServerConfig& config);

// The allowed range of one numeric config key, both ends included.
struct NumericBound {
  const char* key;  // as written in the config: "storage.max_background_jobs"
  uint64_t min;
  uint64_t max;
  const char* unit;  // appended to the range in messages: " seconds"
  uint64_t (*get)(const v1::ServerConfig&);
};

// Every numeric key of ServerConfig, with its range.
const std::vector<NumericBound>& NumericBounds();

}  // namespace fieldsync::server

#endif  // FIELDSYNC_SERVER_CONFIG_H_
