#include "aggregates/lp.h"

#include <glpk.h>

#include <cmath>
#include <cstdlib>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"

namespace fieldsync::aggregates {
namespace {

// A re-entrant GLPK keeps its environment (memory, terminal hook, error
// hook) per thread; GLPK's documentation asks each thread to call
// glp_free_env before it ends, or that memory leaks.
bool GlpkIsReentrant() {
  static const bool reentrant = glp_config("TLS") != nullptr;
  return reentrant;
}

struct ThreadEnvironment {
  ThreadEnvironment() { glp_term_out(GLP_OFF); }
  ~ThreadEnvironment() { glp_free_env(); }
};

// Without thread-local storage there is one environment for the process:
// every GLPK object lives under this mutex. A thread may hold several
// objects at once, hence the per-thread depth.
absl::Mutex& SharedEnvironmentMutex() {
  static absl::Mutex* mu = new absl::Mutex();
  return *mu;
}
thread_local int shared_depth = 0;

void EnterShared() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  if (shared_depth++ == 0) SharedEnvironmentMutex().Lock();
  glp_term_out(GLP_OFF);
}
void LeaveShared() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  if (--shared_depth == 0) SharedEnvironmentMutex().Unlock();
}

int Col(size_t col) { return static_cast<int>(col) + 1; }

// GLPK's bound type for [lower, upper]; an infinite bound's value is unused.
int BoundType(double lower, double upper) {
  const bool has_lower = !std::isinf(lower), has_upper = !std::isinf(upper);
  if (has_lower && has_upper) return lower == upper ? GLP_FX : GLP_DB;
  if (has_lower) return GLP_LO;
  if (has_upper) return GLP_UP;
  return GLP_FR;
}
double Finite(double bound) { return std::isinf(bound) ? 0.0 : bound; }

}  // namespace

LinearProgram::LinearProgram() {
  if (GlpkIsReentrant()) {
    thread_local ThreadEnvironment environment;
    (void)environment;
  } else {
    EnterShared();
    holds_lock_ = true;
  }
  lp_ = glp_create_prob();
}

LinearProgram::~LinearProgram() {
  glp_delete_prob(lp_);
  if (holds_lock_) LeaveShared();
}

size_t LinearProgram::AddColumns(size_t n) {
  const size_t first = columns_;
  if (n == 0) return first;
  glp_add_cols(lp_, static_cast<int>(n));
  for (size_t c = first; c < first + n; ++c) glp_set_col_bnds(lp_, Col(c), GLP_LO, 0.0, 0.0);
  columns_ += n;
  return first;
}

void LinearProgram::SetBounds(size_t col, double lower, double upper) {
  glp_set_col_bnds(lp_, Col(col), BoundType(lower, upper), Finite(lower), Finite(upper));
}

void LinearProgram::SetObjective(size_t col, double coefficient) {
  glp_set_obj_coef(lp_, Col(col), coefficient);
}

void LinearProgram::AddRow(std::span<const std::pair<size_t, double>> terms, double lower,
                           double upper) {
  const int row = glp_add_rows(lp_, 1);
  glp_set_row_bnds(lp_, row, BoundType(lower, upper), Finite(lower), Finite(upper));
  // GLPK's arrays are 1-based: element 0 is unused.
  std::vector<int> index(terms.size() + 1, 0);
  std::vector<double> value(terms.size() + 1, 0.0);
  for (size_t i = 0; i < terms.size(); ++i) {
    index[i + 1] = Col(terms[i].first);
    value[i + 1] = terms[i].second;
  }
  glp_set_mat_row(lp_, row, static_cast<int>(terms.size()), index.data(), value.data());
}

absl::StatusOr<LinearProgram::Outcome> LinearProgram::Solve(bool maximize, int iteration_limit) {
  glp_set_obj_dir(lp_, maximize ? GLP_MAX : GLP_MIN);
  glp_smcp parm;
  glp_init_smcp(&parm);
  parm.msg_lev = GLP_MSG_OFF;
  parm.it_lim = iteration_limit;
  parm.presolve = GLP_OFF;  // keeps the basis, so the next solve starts from it
  int rc = glp_simplex(lp_, &parm);
  if (rc == GLP_EBADB || rc == GLP_ESING || rc == GLP_ECOND) {
    // The kept basis went bad (ill-conditioned after changes): start over
    // from the standard one.
    glp_std_basis(lp_);
    rc = glp_simplex(lp_, &parm);
  }
  if (rc == GLP_EITLIM) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("linear program needs more than %d simplex iterations", iteration_limit));
  }
  if (rc != 0) return absl::InternalError(absl::StrFormat("GLPK simplex failed (code %d)", rc));
  switch (glp_get_status(lp_)) {
    case GLP_OPT:
      return Outcome::kOptimal;
    case GLP_UNBND:
      return Outcome::kUnbounded;
    case GLP_NOFEAS:
      return Outcome::kInfeasible;
    default:
      return absl::InternalError(
          absl::StrFormat("GLPK simplex ended with status %d", glp_get_status(lp_)));
  }
}

double LinearProgram::Objective() const { return glp_get_obj_val(lp_); }

double LinearProgram::Value(size_t col) const { return glp_get_col_prim(lp_, Col(col)); }

}  // namespace fieldsync::aggregates
