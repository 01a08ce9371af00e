#include "aggregates/suppression.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <utility>

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

// Chooses complements. Every entry e may move from its count a_e by
// up_e - down_e (up_e >= 0, 0 <= down_e <= a_e, so the moved value stays
// non-negative) while every equation still holds. Moving a published entry
// costs UnitCost per unit, moving a withheld one nothing. The cheapest move
// that takes an entry to a target bound names the published entries to
// withhold: once they are, that move is a solution the attacker cannot
// exclude, so the entry's range reaches the target.
class ComplementLp {
 public:
  ComplementLp(const TableShape& shape, const std::vector<int64_t>& counts)
      : counts_(counts), n_(shape.entries()), cost_(n_) {
    lp_.AddColumns(2 * n_);
    const int64_t largest = *std::max_element(counts.begin(), counts.end());
    for (size_t e = 0; e < n_; ++e) {
      lp_.SetBounds(Down(e), 0.0, static_cast<double>(counts[e]));
      cost_[e] = UnitCost(counts[e], shape.IsInterior(e), largest);
      lp_.SetObjective(Up(e), cost_[e]);
      lp_.SetObjective(Down(e), cost_[e]);
    }
    std::vector<std::pair<size_t, double>> terms;
    for (const std::vector<size_t>& eq : shape.Equations()) {
      terms.clear();
      for (size_t j = 0; j < eq.size(); ++j) {
        const double sign = j + 1 == eq.size() ? -1.0 : 1.0;
        terms.emplace_back(Up(eq[j]), sign);
        terms.emplace_back(Down(eq[j]), -sign);
      }
      lp_.AddRow(terms, 0.0, 0.0);
    }
  }

  // Moving a withheld entry is free.
  void Withhold(size_t entry) {
    lp_.SetObjective(Up(entry), 0.0);
    lp_.SetObjective(Down(entry), 0.0);
  }

  // The published entries (per `withheld`) to withhold so that `entry`
  // can take a value >= target (`raise`) or <= target (otherwise). Calls
  // note(e, value) with every withheld entry's value in the move found.
  // REQUIRES: target > counts[entry] when raising, target < counts[entry]
  // and target >= 0 when lowering.
  template <typename Note>
  absl::StatusOr<std::vector<size_t>> Find(size_t entry, bool raise, double target,
                                           const std::vector<bool>& withheld, Note note) {
    const double a = static_cast<double>(counts_[entry]);
    if (raise) {
      lp_.SetBounds(Up(entry), target - a, LinearProgram::kInfinity);
      lp_.SetBounds(Down(entry), 0.0, 0.0);
    } else {
      lp_.SetBounds(Up(entry), 0.0, 0.0);
      lp_.SetBounds(Down(entry), a - target, a);
    }
    absl::StatusOr<LinearProgram::Outcome> outcome = lp_.Solve(false, kIterationLimit);
    std::vector<size_t> found;
    if (outcome.ok() && *outcome == LinearProgram::Outcome::kOptimal) {
      for (size_t e = 0; e < n_; ++e) {
        const double up = lp_.Value(Up(e)), down = lp_.Value(Down(e));
        if (withheld[e]) {
          note(e, static_cast<double>(counts_[e]) + up - down);
        } else if (up + down > kTolerance) {
          found.push_back(e);
        }
      }
    }
    lp_.SetBounds(Up(entry), 0.0, LinearProgram::kInfinity);
    lp_.SetBounds(Down(entry), 0.0, a);
    RETURN_IF_ERROR(outcome.status());
    // Raising an entry with all the totals above it, or lowering it with
    // them, is always a move: the LP is feasible and bounded below.
    if (*outcome != LinearProgram::Outcome::kOptimal) {
      return absl::InternalError("aggregates: no move of an entry found for its protection");
    }
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
  size_t Up(size_t e) const { return e; }
  size_t Down(size_t e) const { return n_ + e; }

  LinearProgram lp_;
  const std::vector<int64_t>& counts_;
  size_t n_;
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
  std::optional<ComplementLp> complements;
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
      if (!complements.has_value()) {
        complements.emplace(shape, counts);
        for (size_t e = 0; e < shape.entries(); ++e) {
          if (withheld[e]) complements->Withhold(e);
        }
      }
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
      for (size_t e : *added) {
        withheld[e] = true;
        complements->Withhold(e);
      }
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
