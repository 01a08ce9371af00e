// The attacker of the disclosure tests, written independently of
// aggregates/suppression.cc: it knows every published entry of a table
// (cells and all their totals) and solves the additive equations
// "a total along d = the sum of the entries along d" for the suppressed
// ones, by Gaussian elimination over the reals.
#ifndef FIELDSYNC_TESTS_AGGREGATES_ATTACKER_H_
#define FIELDSYNC_TESTS_AGGREGATES_ATTACKER_H_

#include <cmath>
#include <cstddef>
#include <utility>
#include <vector>

namespace fieldsync::aggregates::testing {

// Entries are numbered row-major, last dimension fastest, coordinate
// sizes[d] meaning the total along d. A suppressed entry is recovered when
// its unit vector is in the span of the equations' rows (the rank does not
// grow when it is added).
class Attacker {
 public:
  Attacker(std::vector<size_t> sizes, const std::vector<bool>& suppressed)
      : sizes_(std::move(sizes)), suppressed_(suppressed) {
    size_t n = 1;
    for (size_t s : sizes_) n *= s + 1;
    n_ = n;
    for (size_t i = 0; i < n_; ++i) {
      if (suppressed_[i]) {
        col_.push_back(i);
      }
    }
    // Build rows.
    for (size_t e = 0; e < n_; ++e) {
      std::vector<size_t> c = Coords(e);
      for (size_t d = 0; d < sizes_.size(); ++d) {
        if (c[d] != sizes_[d]) continue;
        std::vector<double> row(col_.size(), 0.0);
        bool any = false;
        auto add = [&](size_t entry, double coef) {
          for (size_t j = 0; j < col_.size(); ++j) {
            if (col_[j] == entry) {
              row[j] += coef;
              any = true;
            }
          }
        };
        add(e, -1.0);
        for (size_t v = 0; v < sizes_[d]; ++v) {
          std::vector<size_t> m = c;
          m[d] = v;
          add(Index(m), 1.0);
        }
        if (any) rows_.push_back(row);
      }
    }
  }

  // Entries the attacker can compute exactly.
  std::vector<size_t> Recoverable() const {
    std::vector<size_t> out;
    const size_t base = Rank(rows_);
    for (size_t j = 0; j < col_.size(); ++j) {
      std::vector<std::vector<double>> m = rows_;
      std::vector<double> unit(col_.size(), 0.0);
      unit[j] = 1.0;
      m.push_back(unit);
      if (Rank(m) == base) out.push_back(col_[j]);
    }
    return out;
  }

 private:
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
  static size_t Rank(std::vector<std::vector<double>> m) {
    if (m.empty()) return 0;
    const size_t cols = m[0].size();
    size_t rank = 0;
    for (size_t c = 0; c < cols && rank < m.size(); ++c) {
      size_t best = rank;
      for (size_t r = rank; r < m.size(); ++r) {
        if (std::fabs(m[r][c]) > std::fabs(m[best][c])) best = r;
      }
      if (std::fabs(m[best][c]) < 1e-9) continue;
      std::swap(m[rank], m[best]);
      for (size_t r = 0; r < m.size(); ++r) {
        if (r == rank) continue;
        double f = m[r][c] / m[rank][c];
        if (f == 0) continue;
        for (size_t k = c; k < cols; ++k) m[r][k] -= f * m[rank][k];
      }
      ++rank;
    }
    return rank;
  }

  std::vector<size_t> sizes_;
  std::vector<bool> suppressed_;
  size_t n_ = 0;
  std::vector<size_t> col_;
  std::vector<std::vector<double>> rows_;
};

}  // namespace fieldsync::aggregates::testing

#endif  // FIELDSYNC_TESTS_AGGREGATES_ATTACKER_H_
