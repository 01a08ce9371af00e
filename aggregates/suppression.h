// Disclosure control of one table of counts (DESIGN §9): a cross-table of
// up to kMaxGroupBy dimensions with every sub-total and the grand total.
//
// What Suppress guarantees, for the counts it is given: no count from 1 to
// k-1 is published (primary suppression), and for every such withheld
// count x, the values the withheld entry can take in the non-negative real
// solutions of the table's additive equations ("a total = the sum of the
// entries along a dimension"), with every published entry fixed to its
// value, range from at most ProtectionLevel::low (default 0) to at least
// k + ProtectionLevel::high_above_k (default k). So an attacker who knows
// the equations, the published entries and that counts are non-negative
// cannot exclude that the entry is empty nor that it is publishable. The
// ranges are computed as linear programs (lp.h, GLPK) over the answer
// itself; further entries are withheld (complementary suppression) until
// every primary's range is wide enough.
//
// Not guaranteed: a complement (a zero or a count of k or more) may itself
// be derivable; its value is publishable anyway. Ranges are over real
// solutions: reasoning over integers may narrow them in tables of three or
// more dimensions. Nothing here relates one answer to another (differencing
// between queries, periods or metrics): see docs/SECURITY.md §7.
#ifndef FIELDSYNC_AGGREGATES_SUPPRESSION_H_
#define FIELDSYNC_AGGREGATES_SUPPRESSION_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"

namespace fieldsync::aggregates {

// At most this many entries may be withheld in one table: past it the
// table is refused (the protection LPs grow with it, and so much withheld
// leaves little of the answer).
inline constexpr size_t kMaxSuppressedPerTable = 600;

// At most this many linear programs are solved to protect one table (two
// per primary entry when complements are not needed, two more per round of
// complements); past it the table is refused.
inline constexpr size_t kMaxLpSolvesPerTable = 2000;

// The protection required of every withheld count x from 1 to k-1: the
// range [lo, hi] of its feasible values (file comment) must satisfy
// lo <= low and hi >= k + high_above_k. The default, lo = 0 and hi >= k,
// is the practice of statistical offices for frequency tables under a
// threshold rule (τ-ARGUS protection levels): the answer is consistent with
// the entry being empty and with it being publishable.
struct ProtectionLevel {
  int64_t low = 0;
  int64_t high_above_k = 0;
};

struct SuppressionOptions {
  // k: counts from 1 to k-1 are withheld. REQUIRES: >= 2.
  uint32_t min_cell_count = 5;
  ProtectionLevel protection;
  // Refusal limits (kResourceExhausted), see the constants above.
  size_t max_suppressed = kMaxSuppressedPerTable;
  size_t max_lp_solves = kMaxLpSolvesPerTable;
};

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

// For each entry of `counts` (entries() long, totals filled), whether it
// is withheld: see the file comment for what holds of the result.
// Complements are chosen by an LP that, for an entry whose range is too
// narrow, finds the cheapest set of published entries whose withholding
// lets it reach the missing bound (suppression.cc: cheapest are small
// interior counts; zeros and totals cost more). Deterministic: the same
// table and options give the same answer.
// Errors:
//   kResourceExhausted  protecting the table needs more than
//                       options.max_suppressed withheld entries or more
//                       than options.max_lp_solves linear programs (the
//                       message asks for a coarser table).
//   kInternal           the LP solver failed.
absl::StatusOr<std::vector<bool>> Suppress(const TableShape& shape,
                                           const std::vector<int64_t>& counts,
                                           const SuppressionOptions& options);

}  // namespace fieldsync::aggregates

#endif  // FIELDSYNC_AGGREGATES_SUPPRESSION_H_
