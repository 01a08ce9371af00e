#include "tools/cli.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"

namespace fieldsync::tools {

std::string Args::Get(const std::string& name, const std::string& fallback) const {
  auto it = options.find(name);
  return it == options.end() ? fallback : it->second;
}

std::vector<std::string> Args::GetAll(const std::string& name) const {
  std::vector<std::string> out;
  auto [begin, end] = options.equal_range(name);
  for (auto it = begin; it != end; ++it) out.push_back(it->second);
  return out;
}

absl::StatusOr<Args> ParseArgs(int argc, char** argv, const std::vector<std::string>& flags) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      args.help = true;
    } else if (absl::StartsWith(arg, "--")) {
      size_t eq = arg.find('=');
      if (eq != std::string::npos) {
        args.options.emplace(arg.substr(0, eq), arg.substr(eq + 1));
      } else if (std::find(flags.begin(), flags.end(), arg) != flags.end()) {
        args.options.emplace(arg, "true");
      } else if (i + 1 < argc) {
        args.options.emplace(arg, argv[++i]);
      } else {
        return absl::InvalidArgumentError(absl::StrFormat("%s needs a value", arg));
      }
    } else {
      args.words.push_back(arg);
    }
  }
  return args;
}

absl::Status CheckOptions(const Args& args, const std::vector<std::string>& allowed) {
  for (const auto& [name, value] : args.options) {
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("unknown option %s here; see --help", name));
    }
  }
  return absl::OkStatus();
}

}  // namespace fieldsync::tools
