// The attacker of the disclosure tests, written independently of
// aggregates/ (it shares no code with it and uses another solver): it
// knows every published entry of a table (cells and all their totals),
// the additive equations "a total along d = the sum of the entries along
// d", and that counts are non-negative. For a withheld entry it solves two
// linear programs with COIN-OR CLP (the product uses GLPK): the least and
// the greatest value the entry can take in any non-negative solution.
#ifndef FIELDSYNC_TESTS_AGGREGATES_ATTACKER_H_
#define FIELDSYNC_TESTS_AGGREGATES_ATTACKER_H_

#include <ClpSimplex.hpp>
#include <CoinPackedMatrix.hpp>
#include <CoinPackedVector.hpp>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

namespace fieldsync::aggregates::testing {

// The least (direction 1) or greatest (-1) value of column `col` over the
// model's feasible set; infinity when unbounded. Throws when CLP finds no
// optimum.
inline double OptimizeColumn(ClpSimplex* model, int col, double direction) {
  for (int j = 0; j < model->numberColumns(); ++j) model->setObjectiveCoefficient(j, 0.0);
  model->setObjectiveCoefficient(col, 1.0);
  model->setOptimizationDirection(direction);
  model->primal();
  if (model->status() == 2) return std::numeric_limits<double>::infinity();  // unbounded
  if (model->status() != 0) throw std::runtime_error("attacker: CLP found no optimum");
  return model->primalColumnSolution()[col];
}

// Entries are numbered row-major, last dimension fastest, coordinate
// sizes[d] meaning the total along d. Not thread-safe.
class Attacker {
 public:
  struct Range {
    double low = 0;
    double high = 0;  // +infinity when nothing bounds the entry
  };

  // `published` holds every entry's published count; entries withheld in
  // `suppressed` are never read from it.
  Attacker(std::vector<size_t> sizes, const std::vector<bool>& suppressed,
           const std::vector<int64_t>& published)
      : sizes_(std::move(sizes)), suppressed_(suppressed) {
    size_t n = 1;
    for (size_t s : sizes_) n *= s + 1;
    column_.assign(n, -1);
    int columns = 0;
    for (size_t i = 0; i < n; ++i) {
      if (suppressed_[i]) column_[i] = columns++;
    }
    // One row per equation holding a withheld entry: the withheld members
    // minus a withheld total equal what the published ones leave.
    CoinPackedMatrix rows(false, 0, 0);
    rows.setDimensions(0, columns);
    std::vector<double> rhs;
    for (size_t e = 0; e < n; ++e) {
      std::vector<size_t> c = Coords(e);
      for (size_t d = 0; d < sizes_.size(); ++d) {
        if (c[d] != sizes_[d]) continue;
        CoinPackedVector row;
        double constant = 0;
        auto add = [&](size_t entry, double coef) {
          if (suppressed_[entry]) {
            row.insert(column_[entry], coef);
          } else {
            constant -= coef * static_cast<double>(published[entry]);
          }
        };
        add(e, -1.0);
        for (size_t v = 0; v < sizes_[d]; ++v) {
          std::vector<size_t> m = c;
          m[d] = v;
          add(Index(m), 1.0);
        }
        if (row.getNumElements() == 0) continue;
        rows.appendRow(row);
        rhs.push_back(constant);
      }
    }
    std::vector<double> lower(columns, 0.0), upper(columns, COIN_DBL_MAX), objective(columns, 0.0);
    model_ = std::make_unique<ClpSimplex>();
    model_->setLogLevel(0);
    model_->loadProblem(rows, lower.data(), upper.data(), objective.data(), rhs.data(), rhs.data());
  }

  // The feasible range of withheld `entry`. Throws if CLP fails (the
  // published entries are inconsistent).
  Range RangeOf(size_t entry) {
    Range r;
    r.low = Optimize(entry, 1.0);
    r.high = Optimize(entry, -1.0);
    return r;
  }

  // The withheld entries whose true count (in `truth`) is from 1 to k-1
  // and whose range fails the protection level: it must reach down to at
  // most `low` and up to at least k + `high_above_k`. Empty when the
  // attacker learns nothing it should not.
  std::vector<size_t> Disclosed(const std::vector<int64_t>& truth, int64_t k, int64_t low = 0,
                                int64_t high_above_k = 0) {
    std::vector<size_t> out;
    for (size_t e = 0; e < column_.size(); ++e) {
      if (truth[e] < 1 || truth[e] >= k) continue;
      if (!suppressed_[e]) {
        out.push_back(e);  // published outright
        continue;
      }
      Range r = RangeOf(e);
      if (r.low > static_cast<double>(low) + 1e-6 ||
          r.high < static_cast<double>(k + high_above_k) - 1e-6) {
        out.push_back(e);
      }
    }
    return out;
  }

  // Withheld entries the attacker computes exactly (a range of width 0).
  std::vector<size_t> Recoverable() {
    std::vector<size_t> out;
    for (size_t e = 0; e < column_.size(); ++e) {
      if (!suppressed_[e]) continue;
      Range r = RangeOf(e);
      if (r.high - r.low < 1e-6) out.push_back(e);
    }
    return out;
  }

 private:
  // Minimizes (direction 1) or maximizes (-1) the entry's column.
  double Optimize(size_t entry, double direction) {
    const int col = column_.at(entry);
    if (col < 0) throw std::logic_error("attacker: the entry is published");
    return OptimizeColumn(model_.get(), col, direction);
  }

  std::vector<size_t> Coords(size_t index) const {
    std::vector<size_t> c(sizes_.size());
    for (size_t d = sizes_.size(); d-- > 0;) {
      c[d] = index % (sizes_[d] + 1);
      index /= sizes_[d] + 1;
    }
    return c;
  }
  size_t Index(const std::vector<size_t>& c) const {
    size_t index = 0;
    for (size_t d = 0; d < sizes_.size(); ++d) index = index * (sizes_[d] + 1) + c[d];
    return index;
  }

  std::vector<size_t> sizes_;
  std::vector<bool> suppressed_;
  std::vector<int> column_;  // entry -> LP column, -1 when published
  std::unique_ptr<ClpSimplex> model_;
};

}  // namespace fieldsync::aggregates::testing

#endif  // FIELDSYNC_TESTS_AGGREGATES_ATTACKER_H_
