// Disclosure control of one table of counts (DESIGN §9): a cross-table of
// up to kMaxGroupBy dimensions with every sub-total and the grand total.
// Counts from 1 to k-1 are suppressed (primary suppression), then further
// entries (complementary suppression) until no suppressed entry can be
// derived from the published ones: for every suppressed entry, the
// additive equations between the entries and their totals, with the
// published values substituted, leave it undetermined (it is not fixed by
// any linear combination of them). Zero counts are published; a zero may
// be suppressed as a complement. Non-negativity still bounds a suppressed
// value by the totals it is in; that interval is not controlled here.
#ifndef FIELDSYNC_AGGREGATES_SUPPRESSION_H_
#define FIELDSYNC_AGGREGATES_SUPPRESSION_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"

namespace fieldsync::aggregates {

// At most this many entries may be suppressed in one table: the exact
// check above is cubic in it.
inline constexpr size_t kMaxSuppressedPerTable = 600;

// The shape of a table: sizes[d] values along dimension d. An entry has a
// coordinate per dimension, in [0, sizes[d]]: sizes[d] is that
// dimension's total. Entries are numbered in row-major order with the
// last dimension fastest (the total last along each).
class TableShape {
 public:
  explicit TableShape(std::vector<size_t> sizes);

  const std::vector<size_t>& sizes() const { return sizes_; }
  // The number of entries, totals included: the product of (sizes[d] + 1).
  size_t entries() const { return entries_; }
  size_t Index(std::span<const size_t> coords) const;
  std::vector<size_t> Coords(size_t index) const;
  bool IsInterior(size_t index) const;

  // The additive equations: for each dimension d and each choice of the
  // other coordinates (totals included), the entries along d followed by
  // their total, which equals their sum.
  const std::vector<std::vector<size_t>>& Equations() const { return equations_; }

 private:
  std::vector<size_t> sizes_;
  std::vector<size_t> strides_;
  size_t entries_ = 1;
  std::vector<std::vector<size_t>> equations_;
};

// Fills the totals of `counts` (entries() long) from its interior entries.
void FillTotals(const TableShape& shape, std::vector<int64_t>* counts);

// For each entry, whether it must be withheld (see the file comment) with
// threshold `k`. kResourceExhausted when protecting the table needs more
// than kMaxSuppressedPerTable suppressions (ask for a coarser table).
absl::StatusOr<std::vector<bool>> Suppress(const TableShape& shape,
                                           const std::vector<int64_t>& counts, uint32_t k);

// For each entry, true when it is suppressed and the published entries
// determine its value through the table's equations.
std::vector<bool> DeterminedEntries(const TableShape& shape, const std::vector<bool>& suppressed);

}  // namespace fieldsync::aggregates

#endif  // FIELDSYNC_AGGREGATES_SUPPRESSION_H_
