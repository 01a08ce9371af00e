#include "aggregates/suppression.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"
#include "aggregates/lp.h"
#include "common/status_macros.h"

namespace fieldsync::aggregates {
namespace {

constexpr size_t kNone = std::numeric_limits<size_t>::max();

// LP optima of integer tables are compared with this slack: a bound of
// 4.9999999 reaches 5.
constexpr double kTolerance = 1e-6;

// Simplex iterations allowed to one LP; a table needing more is refused
// like one needing too many LPs.
constexpr int kIterationLimit = 200000;

absl::Status Refuse(absl::string_view why) {
  return absl::ResourceExhaustedError(absl::StrFormat(
      "the answer has too many small counts to protect (%s); group by fewer dimensions, "
      "filter it, or ask for a coarser granularity",
      why));
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

// The attacker's view of a table. A withheld entry e is a_e + d_e, with a
// free column d_e and a row d_e >= -a_e (non-negativity); each equation
// with a withheld entry becomes a row over the d's equal to 0 (the true
// counts satisfy it). So d = 0 is a solution and GLPK's first basis is
// already feasible: a solve goes straight to optimizing. Its optima are the
// bounds an attacker can prove for a withheld entry.
class RangeLp {
 public:
  RangeLp(const TableShape& shape, const std::vector<int64_t>& counts,
          const std::vector<bool>& withheld)
      : counts_(counts), column_of_(shape.entries(), kNone) {
    for (size_t e = 0; e < shape.entries(); ++e) {
      if (!withheld[e]) continue;
      column_of_[e] = entry_of_.size();
      entry_of_.push_back(e);
    }
    lp_.AddColumns(entry_of_.size());
    std::vector<std::pair<size_t, double>> terms;
    for (size_t e = 0; e < shape.entries(); ++e) {
      if (column_of_[e] == kNone) continue;
      lp_.SetBounds(column_of_[e], -LinearProgram::kInfinity, LinearProgram::kInfinity);
      terms = {{column_of_[e], 1.0}};
      lp_.AddRow(terms, -static_cast<double>(counts[e]), LinearProgram::kInfinity);
    }
    for (const std::vector<size_t>& eq : shape.Equations()) {
      terms.clear();
      for (size_t j = 0; j < eq.size(); ++j) {
        const double sign = j + 1 == eq.size() ? -1.0 : 1.0;  // members minus their total
        if (withheld[eq[j]]) terms.emplace_back(column_of_[eq[j]], sign);
      }
      if (!terms.empty()) lp_.AddRow(terms, 0.0, 0.0);
    }
  }

  // The least (`maximize` false) or greatest value of withheld `entry`;
  // +infinity when nothing bounds it.
  absl::StatusOr<double> Bound(size_t entry, bool maximize) {
    if (objective_ != kNone) lp_.SetObjective(objective_, 0.0);
    objective_ = column_of_[entry];
    lp_.SetObjective(objective_, 1.0);
    ASSIGN_OR_RETURN(LinearProgram::Outcome outcome, lp_.Solve(maximize, kIterationLimit));
    switch (outcome) {
      case LinearProgram::Outcome::kOptimal:
        return static_cast<double>(counts_[entry]) + lp_.Objective();
      case LinearProgram::Outcome::kUnbounded:
        if (maximize) return LinearProgram::kInfinity;
        break;
      case LinearProgram::Outcome::kInfeasible:
        break;
    }
    // d = 0 is a solution and every entry is at least 0.
    return absl::InternalError("aggregates: a protection LP has no optimum");
  }

  // Calls note(entry, value) for every withheld entry in the solution the
  // last Bound found. REQUIRES: that Bound returned a finite value.
  template <typename Note>
  void ForEachValue(Note note) const {
    for (size_t col = 0; col < entry_of_.size(); ++col) {
      note(entry_of_[col], static_cast<double>(counts_[entry_of_[col]]) + lp_.Value(col));
    }
  }

 private:
  LinearProgram lp_;
  const std::vector<int64_t>& counts_;
  std::vector<size_t> column_of_;
  std::vector<size_t> entry_of_;
  size_t objective_ = kNone;
};

// Chooses complements. An entry e may move from its count a_e by
// up_e - down_e (up_e >= 0, 0 <= down_e <= a_e, so the moved value stays
// non-negative) while every equation still holds. Moving a published entry
// costs UnitCost per unit, moving a withheld one nothing. The cheapest move
// that takes an entry to a target bound names the published entries to
// withhold: once they are, that move is a solution the attacker cannot
// exclude, so the entry's range reaches the target.
//
// Only the entries of a box around the entry move: along each dimension
// its own value, the total and the kBoxOthers cheapest other values (of the
// entries next to it along that dimension), or every value along a
// dimension where the entry is a total. The box keeps the LP small (at
// most 6 values per dimension for an interior entry) and always holds a
// move: the entry with every total above it (up), or with its members
// down.
class ComplementFinder {
 public:
  static constexpr size_t kBoxOthers = 4;

  ComplementFinder(const TableShape& shape, const std::vector<int64_t>& counts)
      : shape_(shape), counts_(counts), cost_(shape.entries()) {
    const int64_t largest = *std::max_element(counts.begin(), counts.end());
    for (size_t e = 0; e < shape.entries(); ++e) {
      cost_[e] = UnitCost(counts[e], shape.IsInterior(e), largest);
    }
  }

  // The published entries (per `withheld`) to withhold so that `entry`
  // can take a value >= target (`raise`) or <= target (otherwise). Calls
  // note(e, value) with withheld entries' values in the move found.
  // REQUIRES: target > counts[entry] when raising, target < counts[entry]
  // and target >= 0 when lowering.
  template <typename Note>
  absl::StatusOr<std::vector<size_t>> Find(size_t entry, bool raise, double target,
                                           const std::vector<bool>& withheld, Note note) {
    const std::vector<size_t>& sizes = shape_.sizes();
    const std::vector<size_t> at = shape_.Coords(entry);
    auto cost = [&](size_t e) { return withheld[e] ? 0.0 : cost_[e]; };
    // The box's values along each dimension, and its entries.
    std::vector<std::vector<size_t>> values(sizes.size());
    for (size_t d = 0; d < sizes.size(); ++d) {
      std::vector<std::pair<double, size_t>> others;
      std::vector<size_t> c = at;
      for (size_t v = 0; v < sizes[d]; ++v) {
        if (v == at[d]) continue;
        c[d] = v;
        others.emplace_back(cost(shape_.Index(c)), v);
      }
      std::sort(others.begin(), others.end());
      values[d].push_back(at[d]);
      // Lowering a total takes its members down: all of them may be needed.
      const size_t keep = at[d] == sizes[d] ? others.size() : kBoxOthers;
      for (size_t i = 0; i < others.size() && i < keep; ++i) {
        values[d].push_back(others[i].second);
      }
      if (at[d] != sizes[d]) values[d].push_back(sizes[d]);
    }
    std::vector<size_t> box;  // entries
    std::vector<size_t> pick(sizes.size(), 0), c(sizes.size());
    while (true) {
      for (size_t d = 0; d < sizes.size(); ++d) c[d] = values[d][pick[d]];
      box.push_back(shape_.Index(c));
      size_t d = sizes.size();
      while (d > 0 && ++pick[d - 1] == values[d - 1].size()) pick[--d] = 0;
      if (d == 0) break;
    }
    absl::flat_hash_map<size_t, size_t> local;
    for (size_t i = 0; i < box.size(); ++i) local[box[i]] = i;
    const size_t n = box.size();
    auto up = [](size_t i) { return 2 * i; };
    auto down = [](size_t i) { return 2 * i + 1; };

    LinearProgram lp;
    lp.AddColumns(2 * n);
    for (size_t i = 0; i < n; ++i) {
      const double a = static_cast<double>(counts_[box[i]]);
      lp.SetBounds(down(i), 0.0, a);
      lp.SetObjective(up(i), cost(box[i]));
      lp.SetObjective(down(i), cost(box[i]));
    }
    const size_t me = local.at(entry);
    const double a = static_cast<double>(counts_[entry]);
    if (raise) {
      lp.SetBounds(up(me), target - a, LinearProgram::kInfinity);
      lp.SetBounds(down(me), 0.0, 0.0);
    } else {
      lp.SetBounds(up(me), 0.0, 0.0);
      lp.SetBounds(down(me), a - target, a);
    }
    // Every line through the box, along each dimension: the members in the
    // box minus the total; the members outside do not move.
    std::vector<std::pair<size_t, double>> terms;
    for (size_t i = 0; i < n; ++i) {
      std::vector<size_t> t = shape_.Coords(box[i]);
      for (size_t d = 0; d < sizes.size(); ++d) {
        if (t[d] != sizes[d]) continue;
        terms = {{up(i), -1.0}, {down(i), 1.0}};
        for (size_t v : values[d]) {
          if (v == sizes[d]) continue;
          t[d] = v;
          const size_t j = local.at(shape_.Index(t));
          terms.emplace_back(up(j), 1.0);
          terms.emplace_back(down(j), -1.0);
        }
        t[d] = sizes[d];
        lp.AddRow(terms, 0.0, 0.0);
      }
    }
    ASSIGN_OR_RETURN(LinearProgram::Outcome outcome, lp.Solve(false, kIterationLimit));
    // Raising an entry with all the totals above it, or lowering it with
    // them, is always a move: the LP is feasible and bounded below.
    if (outcome != LinearProgram::Outcome::kOptimal) {
      return absl::InternalError("aggregates: no move of an entry found for its protection");
    }
    std::vector<size_t> found;
    for (size_t i = 0; i < n; ++i) {
      const double u = lp.Value(up(i)), v = lp.Value(down(i));
      if (withheld[box[i]]) {
        note(box[i], static_cast<double>(counts_[box[i]]) + u - v);
      } else if (u + v > kTolerance) {
        found.push_back(box[i]);
      }
    }
    std::sort(found.begin(), found.end());
    return found;
  }

 private:
  // Per unit moved: small counts are cheapest (the answer loses least);
  // zeros (which can only move up) cost twice as much and totals four
  // times, so that interior entries with counts are preferred.
  static double UnitCost(int64_t count, bool interior, int64_t largest) {
    double cost = 1.0 + static_cast<double>(count) / static_cast<double>(largest + 1);
    if (count == 0) cost *= 2.0;
    if (!interior) cost *= 4.0;
    return cost;
  }

  const TableShape& shape_;
  const std::vector<int64_t>& counts_;
  std::vector<double> cost_;
};

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

absl::StatusOr<std::vector<bool>> Suppress(const TableShape& shape,
                                           const std::vector<int64_t>& counts,
                                           const SuppressionOptions& options) {
  const int64_t k = options.min_cell_count;
  std::vector<bool> withheld(shape.entries(), false);
  std::vector<size_t> primaries;
  for (size_t e = 0; e < shape.entries(); ++e) {
    if (counts[e] >= 1 && counts[e] < k) {
      withheld[e] = true;
      primaries.push_back(e);
    }
  }
  size_t withheld_count = primaries.size();
  auto check_count = [&]() -> absl::Status {
    if (withheld_count <= options.max_suppressed) return absl::OkStatus();
    return Refuse(
        absl::StrFormat("more than %d entries of one table withheld", options.max_suppressed));
  };
  RETURN_IF_ERROR(check_count());
  size_t solves = 0;
  auto spend = [&]() -> absl::Status {
    if (++solves <= options.max_lp_solves) return absl::OkStatus();
    return Refuse(
        absl::StrFormat("more than %d linear programs for one table", options.max_lp_solves));
  };
  const double high = static_cast<double>(k + options.protection.high_above_k);
  const double low = static_cast<double>(options.protection.low);

  // Withholding more only widens ranges: a solution of the attacker's
  // equations stays one. So a primary protected once stays protected (one
  // pass suffices), and any solution met on the way, an LP's optimum or a
  // move once its entries are withheld, is a witness: every primary it
  // takes to `high` or more (to `low` or less) needs no LP for that bound.
  std::vector<bool> reaches_high(shape.entries(), false), reaches_low(shape.entries(), false);
  std::optional<RangeLp> ranges;
  auto note = [&](size_t e, double value) {
    if (value >= high - kTolerance) reaches_high[e] = true;
    if (value <= low + kTolerance) reaches_low[e] = true;
  };
  auto bound = [&](size_t p, bool maximize) -> absl::StatusOr<double> {
    RETURN_IF_ERROR(spend());
    absl::StatusOr<double> b = ranges->Bound(p, maximize);
    if (absl::IsResourceExhausted(b.status())) return Refuse(b.status().message());
    if (b.ok() && !std::isinf(*b)) ranges->ForEachValue(note);
    return b;
  };
  std::optional<ComplementFinder> complements;
  for (size_t p : primaries) {
    if (static_cast<double>(counts[p]) <= low) reaches_low[p] = true;
    while (true) {
      if (!ranges.has_value()) ranges.emplace(shape, counts, withheld);
      if (!reaches_high[p]) {
        ASSIGN_OR_RETURN(double hi, bound(p, true));
        if (hi >= high - kTolerance) reaches_high[p] = true;
      }
      const bool raise = !reaches_high[p];
      if (!raise && !reaches_low[p]) {
        ASSIGN_OR_RETURN(double lo, bound(p, false));
        if (lo <= low + kTolerance) reaches_low[p] = true;
      }
      if (reaches_high[p] && reaches_low[p]) break;
      if (!complements.has_value()) complements.emplace(shape, counts);
      RETURN_IF_ERROR(spend());
      std::vector<std::pair<size_t, double>> moved;
      absl::StatusOr<std::vector<size_t>> added =
          complements->Find(p, raise, raise ? high : low, withheld,
                            [&](size_t e, double value) { moved.emplace_back(e, value); });
      if (absl::IsResourceExhausted(added.status())) return Refuse(added.status().message());
      RETURN_IF_ERROR(added.status());
      if (added->empty()) {
        return absl::InternalError("aggregates: the LPs disagree on a protection range");
      }
      for (size_t e : *added) withheld[e] = true;
      // Now that its entries are withheld, the move is a solution.
      for (const auto& [e, value] : moved) note(e, value);
      withheld_count += added->size();
      RETURN_IF_ERROR(check_count());
      ranges.reset();
    }
  }
  return withheld;
}

}  // namespace fieldsync::aggregates
