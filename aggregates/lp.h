// A small linear program solved with GLPK's simplex method (Debian's
// libglpk), for the protection intervals of suppression.h. Only this
// module's .cc includes <glpk.h>.
#ifndef FIELDSYNC_AGGREGATES_LP_H_
#define FIELDSYNC_AGGREGATES_LP_H_

#include <cstddef>
#include <limits>
#include <span>
#include <utility>

#include "absl/status/statusor.h"

struct glp_prob;  // <glpk.h>

namespace fieldsync::aggregates {

// Columns x_0 .. x_{n-1} with bounds, equality rows over them, and a linear
// objective, minimized or maximized from the last basis found (a solve after
// a change of bounds or objective starts from the previous optimum).
//
// Threads: an object is used by one thread at a time. Objects in different
// threads are independent: Debian builds GLPK (5.0) re-entrant, with its
// environment in thread-local storage, so each thread has its own; this
// module silences that environment's terminal output and frees it when the
// thread exits. If the GLPK found at run time was built without
// thread-local storage (glp_config("TLS") is null), every LinearProgram
// holds one process-wide absl::Mutex for its lifetime (a thread may hold
// several), which serializes the solves of different threads.
class LinearProgram {
 public:
  static constexpr double kInfinity = std::numeric_limits<double>::infinity();

  LinearProgram();
  ~LinearProgram();
  LinearProgram(const LinearProgram&) = delete;
  LinearProgram& operator=(const LinearProgram&) = delete;

  // Adds `n` columns bounded by [0, +inf) with objective coefficient 0;
  // returns the index of the first.
  size_t AddColumns(size_t n);
  size_t columns() const { return columns_; }
  // Either bound may be infinite (-kInfinity, kInfinity). REQUIRES:
  // col < columns(), lower <= upper.
  void SetBounds(size_t col, double lower, double upper);
  void SetObjective(size_t col, double coefficient);
  // Adds the row lower <= sum(coefficient * x_col) <= upper (an equation
  // when lower == upper; either bound may be infinite). REQUIRES: each
  // column at most once, every column < columns(), lower <= upper.
  void AddRow(std::span<const std::pair<size_t, double>> terms, double lower, double upper);

  enum class Outcome { kOptimal, kUnbounded, kInfeasible };
  // Solves with the objective minimized (`maximize` false) or maximized.
  // Returns the outcome; Objective() and Value() then read the optimum.
  // kResourceExhausted when the simplex method needs more than
  // `iteration_limit` iterations; kInternal when GLPK fails otherwise.
  absl::StatusOr<Outcome> Solve(bool maximize, int iteration_limit);
  double Objective() const;
  double Value(size_t col) const;

 private:
  glp_prob* lp_;
  size_t columns_ = 0;
  bool holds_lock_ = false;
};

}  // namespace fieldsync::aggregates

#endif  // FIELDSYNC_AGGREGATES_LP_H_
