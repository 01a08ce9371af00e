#include "aggregates/suppression.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_format.h"

namespace fieldsync::aggregates {
namespace {

// Arithmetic modulo the Mersenne prime 2^61 - 1: exact linear algebra on
// the table's equations (coefficients 0, 1 and -1) without overflow.
constexpr uint64_t kP = (uint64_t{1} << 61) - 1;

uint64_t Reduce(unsigned __int128 x) {
  uint64_t lo = static_cast<uint64_t>(x & kP) + static_cast<uint64_t>(x >> 61);
  lo = (lo & kP) + (lo >> 61);
  return lo >= kP ? lo - kP : lo;
}
uint64_t MulMod(uint64_t a, uint64_t b) { return Reduce(static_cast<unsigned __int128>(a) * b); }
uint64_t SubMod(uint64_t a, uint64_t b) { return a >= b ? a - b : a + kP - b; }
uint64_t InvMod(uint64_t a) {
  uint64_t result = 1, base = a, e = kP - 2;
  while (e > 0) {
    if (e & 1) result = MulMod(result, base);
    base = MulMod(base, base);
    e >>= 1;
  }
  return result;
}

constexpr size_t kNone = std::numeric_limits<size_t>::max();

// The best complement among `candidates` (not suppressed): the smallest
// positive count, interior entries first on ties; a zero only when there
// is no positive count.
size_t PickComplement(const TableShape& shape, const std::vector<int64_t>& counts,
                      const std::vector<bool>& suppressed, const std::vector<size_t>& candidates) {
  size_t best = kNone;
  auto better = [&](size_t a, size_t b) {  // a better than b
    bool pa = counts[a] > 0, pb = counts[b] > 0;
    if (pa != pb) return pa;
    if (counts[a] != counts[b]) return counts[a] < counts[b];
    bool ia = shape.IsInterior(a), ib = shape.IsInterior(b);
    if (ia != ib) return ia;
    return a < b;
  };
  for (size_t c : candidates) {
    if (suppressed[c]) continue;
    if (best == kNone || better(c, best)) best = c;
  }
  return best;
}

// Suppresses a complement in every equation with exactly one suppressed
// entry, until there is none.
void CompleteLines(const TableShape& shape, const std::vector<int64_t>& counts,
                   const std::vector<std::vector<size_t>>& equations,
                   std::vector<bool>* suppressed) {
  bool changed = true;
  while (changed) {
    changed = false;
    for (const std::vector<size_t>& eq : equations) {
      size_t n = 0;
      for (size_t e : eq) n += (*suppressed)[e] ? 1 : 0;
      if (n != 1) continue;
      size_t pick = PickComplement(shape, counts, *suppressed, eq);
      if (pick == kNone) continue;
      (*suppressed)[pick] = true;
      changed = true;
    }
  }
}

std::vector<std::vector<size_t>> BuildEquations(const std::vector<size_t>& sizes_,
                                                const std::vector<size_t>& strides_,
                                                size_t entries_) {
  std::vector<std::vector<size_t>> out;
  for (size_t d = 0; d < sizes_.size(); ++d) {
    // Every entry whose coordinate along d is the total heads one equation.
    for (size_t i = 0; i < entries_; ++i) {
      if ((i / strides_[d]) % (sizes_[d] + 1) != sizes_[d]) continue;
      std::vector<size_t> eq;
      size_t base = i - sizes_[d] * strides_[d];
      for (size_t v = 0; v <= sizes_[d]; ++v) eq.push_back(base + v * strides_[d]);
      out.push_back(std::move(eq));
    }
  }
  return out;
}

}  // namespace

TableShape::TableShape(std::vector<size_t> sizes) : sizes_(std::move(sizes)) {
  strides_.assign(sizes_.size(), 1);
  for (size_t d = sizes_.size(); d-- > 0;) {
    strides_[d] = entries_;
    entries_ *= sizes_[d] + 1;
  }
  equations_ = BuildEquations(sizes_, strides_, entries_);
}

size_t TableShape::Index(std::span<const size_t> coords) const {
  size_t index = 0;
  for (size_t d = 0; d < sizes_.size(); ++d) index += coords[d] * strides_[d];
  return index;
}

std::vector<size_t> TableShape::Coords(size_t index) const {
  std::vector<size_t> coords(sizes_.size());
  for (size_t d = 0; d < sizes_.size(); ++d) {
    coords[d] = index / strides_[d];
    index %= strides_[d];
  }
  return coords;
}

bool TableShape::IsInterior(size_t index) const {
  std::vector<size_t> c = Coords(index);
  for (size_t d = 0; d < sizes_.size(); ++d) {
    if (c[d] == sizes_[d]) return false;
  }
  return true;
}

void FillTotals(const TableShape& shape, std::vector<int64_t>* counts) {
  // Equations come grouped by dimension, in order. An entry with totals
  // along the set S of dimensions is written last by the pass of the
  // greatest d in S, from entries with totals along S minus d, which
  // earlier passes completed.
  for (const std::vector<size_t>& eq : shape.Equations()) {
    int64_t sum = 0;
    for (size_t v = 0; v + 1 < eq.size(); ++v) sum += (*counts)[eq[v]];
    (*counts)[eq.back()] = sum;
  }
}

std::vector<bool> DeterminedEntries(const TableShape& shape, const std::vector<bool>& suppressed) {
  std::vector<bool> determined(shape.entries(), false);
  std::vector<size_t> column(shape.entries(), kNone);
  std::vector<size_t> unknowns;
  for (size_t i = 0; i < shape.entries(); ++i) {
    if (suppressed[i]) {
      column[i] = unknowns.size();
      unknowns.push_back(i);
    }
  }
  const size_t u = unknowns.size();
  if (u == 0) return determined;
  // Rows over the unknowns: +1 for the members, -1 for the total.
  std::vector<std::vector<uint64_t>> rows;
  for (const std::vector<size_t>& eq : shape.Equations()) {
    std::vector<uint64_t> row(u, 0);
    bool any = false;
    for (size_t j = 0; j < eq.size(); ++j) {
      if (column[eq[j]] == kNone) continue;
      row[column[eq[j]]] = (j + 1 == eq.size()) ? kP - 1 : 1;
      any = true;
    }
    if (any) rows.push_back(std::move(row));
  }
  // Reduced row echelon form.
  size_t rank = 0;
  std::vector<size_t> pivot_col;
  for (size_t col = 0; col < u && rank < rows.size(); ++col) {
    size_t pivot = rank;
    while (pivot < rows.size() && rows[pivot][col] == 0) ++pivot;
    if (pivot == rows.size()) continue;
    std::swap(rows[rank], rows[pivot]);
    std::vector<uint64_t>& p = rows[rank];
    uint64_t inv = InvMod(p[col]);
    for (size_t j = col; j < u; ++j) {
      if (p[j] != 0) p[j] = MulMod(p[j], inv);
    }
    for (size_t r = 0; r < rows.size(); ++r) {
      if (r == rank || rows[r][col] == 0) continue;
      uint64_t f = rows[r][col];
      std::vector<uint64_t>& row = rows[r];
      for (size_t j = col; j < u; ++j) {
        if (p[j] != 0) row[j] = SubMod(row[j], MulMod(f, p[j]));
      }
    }
    pivot_col.push_back(col);
    ++rank;
  }
  // An unknown is determined iff a row of the reduced form is its unit vector.
  for (size_t r = 0; r < rank; ++r) {
    size_t nonzero = 0;
    for (size_t j = pivot_col[r]; j < u && nonzero < 2; ++j) nonzero += rows[r][j] != 0;
    if (nonzero == 1) determined[unknowns[pivot_col[r]]] = true;
  }
  return determined;
}

absl::StatusOr<std::vector<bool>> Suppress(const TableShape& shape,
                                           const std::vector<int64_t>& counts, uint32_t k) {
  std::vector<bool> suppressed(shape.entries(), false);
  for (size_t i = 0; i < shape.entries(); ++i) {
    suppressed[i] = counts[i] >= 1 && counts[i] < static_cast<int64_t>(k);
  }
  const std::vector<std::vector<size_t>>& equations = shape.Equations();
  std::vector<std::vector<size_t>> equations_of(shape.entries());
  for (size_t q = 0; q < equations.size(); ++q) {
    for (size_t e : equations[q]) equations_of[e].push_back(q);
  }
  auto too_many = [&] {
    return static_cast<size_t>(std::count(suppressed.begin(), suppressed.end(), true)) >
           kMaxSuppressedPerTable;
  };
  CompleteLines(shape, counts, equations, &suppressed);
  while (true) {
    if (too_many()) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "the answer has too many small counts to protect (more than %d withheld in one "
          "table); group by fewer dimensions or filter it",
          kMaxSuppressedPerTable));
    }
    std::vector<bool> determined = DeterminedEntries(shape, suppressed);
    bool any = false, added = false;
    for (size_t e = 0; e < shape.entries(); ++e) {
      if (!determined[e]) continue;
      any = true;
      std::vector<size_t> near;
      for (size_t q : equations_of[e])
        near.insert(near.end(), equations[q].begin(), equations[q].end());
      size_t pick = PickComplement(shape, counts, suppressed, near);
      if (pick == kNone) {
        // Every neighbour is withheld: widen to the equations of any
        // suppressed entry.
        std::vector<size_t> wider;
        for (const std::vector<size_t>& eq : equations) {
          bool touches = std::any_of(eq.begin(), eq.end(), [&](size_t x) { return suppressed[x]; });
          if (touches) wider.insert(wider.end(), eq.begin(), eq.end());
        }
        pick = PickComplement(shape, counts, suppressed, wider);
      }
      if (pick != kNone) {
        suppressed[pick] = true;
        added = true;
      }
    }
    if (!any) break;
    if (!added) return absl::InternalError("aggregates: suppression found no complement");
    CompleteLines(shape, counts, equations, &suppressed);
  }
  return suppressed;
}

}  // namespace fieldsync::aggregates
