// fieldsyncd's configuration: a ServerConfig message read from a file in
// protobuf text or JSON form, then flags, then defaults.
#ifndef FIELDSYNC_SERVER_CONFIG_H_
#define FIELDSYNC_SERVER_CONFIG_H_

#include <string>

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
// the listen address, plaintext on a non-loopback address.
// kInvalidArgument naming the key and the fix.
absl::Status ValidateConfig(const v1::ServerConfig& config);

}  // namespace fieldsync::server

#endif  // FIELDSYNC_SERVER_CONFIG_H_
