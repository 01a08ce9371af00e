#include "tests/testing/temp_dir.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <sstream>

#include "gtest/gtest.h"

namespace fieldsync::testing {

ScopedTempDir::ScopedTempDir() {
  const char* root = std::getenv("TMPDIR");
  std::string name = "fieldsync";
  if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info()) {
    name += std::string("-") + info->test_suite_name() + "." + info->name();
  }
  for (char& c : name) {
    if (c == '/') c = '_';
  }
  std::random_device rd;
  name += "-" + std::to_string(rd());
  path_ = std::string(root != nullptr ? root : "/tmp") + "/" + name;
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

ScopedTempDir::~ScopedTempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string VectorsDir() {
  std::string dir;
  if (const char* env = std::getenv("FIELDSYNC_VECTORS_DIR"); env != nullptr && *env != '\0') {
    dir = env;
  } else if (const char* src = std::getenv("FIELDSYNC_SOURCE_DIR"); src != nullptr) {
    dir = std::string(src) + "/../shared/vectors";
  } else {
    dir = "../shared/vectors";
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return "";
  return dir;
}

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::cerr << "cannot read " << path << "\n";
    std::abort();
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> FilesContaining(const std::string& dir, std::string_view needle) {
  const std::string_view find =
      needle.size() >= 16 ? needle.substr(needle.size() / 4, needle.size() / 2) : needle;
  std::vector<std::string> found;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bytes.find(find) != std::string::npos) found.push_back(entry.path().filename());
  }
  return found;
}

}  // namespace fieldsync::testing
