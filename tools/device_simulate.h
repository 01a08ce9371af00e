// `fieldsync device simulate`: enrols simulated tablets with the
// administrator's credentials, lets them work offline on overlapping cases
// of the deployment's schema with synthetic values, syncs them over mutual
// TLS (sealed, signed pushes; sealed pulls) and reports what the server did.
#ifndef FIELDSYNC_TOOLS_DEVICE_SIMULATE_H_
#define FIELDSYNC_TOOLS_DEVICE_SIMULATE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "tools/cli.h"

namespace fieldsync::tools {

struct SimulateOptions {
  int devices = 0;    // tablets to enrol, 1..200
  uint64_t seed = 1;  // seeds every generated value and choice
  int cases = 3;      // cases each tablet registers, 1..200
  int edits = 6;      // offline edits each tablet makes afterwards, 0..500
};

// What the run did. Every count is a function of the options alone (the
// server's answers to the same work are the same), so two runs with the same
// seed on fresh deployments give the same counts; `run`, the ids and the
// time differ.
struct SimulateReport {
  std::string run;  // the tag in the officer ids of this run: sim-<tag>-officer-N
  uint64_t seed = 0;
  int devices_enrolled = 0;
  int officers = 0;
  int batches_pushed = 0;
  int changes_sent = 0;
  int applied = 0;
  int converged = 0;
  int superseded = 0;
  int conflict = 0;
  int rejected = 0;
  std::map<std::string, int> rejected_reasons;  // "ENUM_VALUE_NOT_ALLOWED" -> 2
  // Open conflicts of this run's cases, as a supervisor of the officers'
  // regions lists them (one per field or record).
  int conflicts_open = 0;
  // Of those, conflicts in which one tablet stands on two sides; the merge
  // rules make it 0.
  int self_conflicts = 0;
  int pulls = 0;
  int changes_pulled = 0;
  // After the last pull every tablet of an officer holds the same field
  // versions.
  bool replicas_agree = false;
  absl::Duration elapsed;
  // The regions of the run's officers, in schema order, and the id of one
  // open conflict of the run ("" when none is left), for next_steps.
  std::vector<std::string> regions;
  std::string example_conflict;
  // The commands a supervisor runs next: get credentials, list, show and
  // resolve the run's conflicts (filled in by the verb, which knows the
  // connection options).
  std::vector<std::string> next_steps;
};

// The supervisor's commands after a run: `admin_prefix` is the fieldsync
// command with the administrator's connection options, `server` the
// address a supervisor connects to.
std::vector<std::string> SupervisorNextSteps(const SimulateReport& report,
                                             const std::string& admin_prefix,
                                             const std::string& server);

// The human summary (several lines) and the same as one JSON object.
std::string FormatSimulateReport(const SimulateReport& report);
std::string SimulateReportJson(const SimulateReport& report);

// The verb. Returns the exit code (0 success, 1 failure, 2 usage) and on
// failure sets *error to the one line to print.
int DeviceSimulate(const Args& args, std::string* error);

}  // namespace fieldsync::tools

#endif  // FIELDSYNC_TOOLS_DEVICE_SIMULATE_H_
