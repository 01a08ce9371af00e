#include "storage/column_families.h"

#include <cstdlib>

namespace fieldsync::storage {
namespace {

// Indexed by the Cf value. Persisted: these names are what RocksDB stores.
constexpr std::array<std::string_view, kNumCfs> kCfNames = {
    "default",    "principals", "keys",         "records",
    "case_log",   "case_index", "conflicts",    "batches",
    "aggregates", "audit_leaves", "audit_nodes", "metadata"};

}  // namespace

std::string_view CfName(Cf cf) {
  const size_t i = static_cast<size_t>(cf);
  if (i >= kNumCfs) std::abort();  // not a Cf: a bug in the caller
  return kCfNames[i];
}

bool CfFromName(std::string_view name, Cf* cf) {
  for (size_t i = 0; i < kNumCfs; ++i) {
    if (kCfNames[i] == name) {
      *cf = static_cast<Cf>(i);
      return true;
    }
  }
  return false;
}

}  // namespace fieldsync::storage
