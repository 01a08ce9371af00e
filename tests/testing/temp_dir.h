// Per-test scratch directories: a fresh, empty directory under the test
// temp root, named after the running test so that `ctest -j` never shares
// one, removed when the object goes away.
#ifndef FIELDSYNC_TESTS_TESTING_TEMP_DIR_H_
#define FIELDSYNC_TESTS_TESTING_TEMP_DIR_H_

#include <string>
#include <string_view>
#include <vector>

namespace fieldsync::testing {

class ScopedTempDir {
 public:
  // Creates <TMPDIR or /tmp>/fieldsync-<suite>.<test>-<random>/.
  ScopedTempDir();
  ~ScopedTempDir();
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The directory holding the public conformance vectors (FIELDSYNC_VECTORS_DIR,
// else $FIELDSYNC_SOURCE_DIR/../shared/vectors), or "" when it is absent.
std::string VectorsDir();

// The names of the files under `dir` (recursively: WAL, SST, MANIFEST, LOG,
// OPTIONS alike) whose bytes contain `needle`; for a needle of 16 bytes or
// more, its middle half (table files are compressed, and a value's first
// or last bytes can be folded into a back-reference with the bytes around
// it, its random middle not).
std::vector<std::string> FilesContaining(const std::string& dir, std::string_view needle);

// Reads a whole file; aborts the test binary with a message if it cannot.
std::string ReadFileOrDie(const std::string& path);

}  // namespace fieldsync::testing

#endif  // FIELDSYNC_TESTS_TESTING_TEMP_DIR_H_
