// Argument handling shared by the fieldsync command's verbs.
#ifndef FIELDSYNC_TOOLS_CLI_H_
#define FIELDSYNC_TOOLS_CLI_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace fieldsync::tools {

// Parsed command line: positional words (the verb path and its operands)
// and --name value / --flag options, which may appear anywhere.
struct Args {
  std::vector<std::string> words;
  std::multimap<std::string, std::string> options;  // "--host" -> "a", ...
  bool help = false;

  bool Has(const std::string& name) const { return options.count(name) > 0; }
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  std::vector<std::string> GetAll(const std::string& name) const;
};

// Parses argv[1..]. `flags` lists the options that take no value; every
// other --option takes the next word. kInvalidArgument for an option
// without its value.
absl::StatusOr<Args> ParseArgs(int argc, char** argv, const std::vector<std::string>& flags);

// kInvalidArgument naming the first option not in `allowed`.
absl::Status CheckOptions(const Args& args, const std::vector<std::string>& allowed);

}  // namespace fieldsync::tools

#endif  // FIELDSYNC_TOOLS_CLI_H_
