#include "admin/schema_upgrade.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "admin/officers.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace fieldsync::admin {
namespace {

using Outcome = sync::SchemaVerdict::Outcome;

// Records `schema` as the served one, with `event` when given, in one commit.
absl::Status Record(const SchemaStartOptions& options, std::optional<protocol::Event> event) {
  storage::WriteBatch batch;
  sync::PutServedSchema(options.schema->proto(), &batch);
  audit::AuditSession session(options.audit, &batch);
  if (options.audit != nullptr && event.has_value()) {
    RETURN_IF_ERROR(session.Append(*event).status());
  }
  RETURN_IF_ERROR(options.store->Commit(&batch));
  session.Committed();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<sync::SchemaVerdict> CheckSchemaAtStart(const SchemaStartOptions& options) {
  const v1::Schema& configured = options.schema->proto();
  ASSIGN_OR_RETURN(sync::SchemaVerdict verdict,
                   sync::CheckSchemaUpgrade(*options.store, configured));
  const std::string to = sync::SchemaName(configured);
  const bool incompatible = verdict.outcome == Outcome::kIncompatible;
  if (options.accept_change && !incompatible) {
    log::Warn("schema.accept_unused",
              {{"schema", to},
               {"note",
                "--accept-schema-change had nothing to accept; leave it off so that the next "
                "incompatible change is refused"}});
  }
  switch (verdict.outcome) {
    case Outcome::kUnchanged:
      return verdict;
    case Outcome::kFirstRecord:
      RETURN_IF_ERROR(Record(options, std::nullopt));
      log::Info("schema.recorded", {{"schema", to}, {"sha256", options.schema->digest()}});
      return verdict;
    case Outcome::kVersionError:
      return absl::FailedPreconditionError(verdict.RefusalLine(configured));
    case Outcome::kIncompatible:
      if (!options.accept_change) {
        return absl::FailedPreconditionError(verdict.RefusalLine(configured));
      }
      break;
    case Outcome::kCompatible:
      break;
  }
  const std::string from = sync::SchemaName(*verdict.served);
  protocol::AdminAction action;
  action.actor = std::string(kUpgradeActor);
  action.action = std::string(incompatible ? kSchemaChangeAcceptedAction : kSchemaChangedAction);
  action.subject_ids = {absl::StrCat("from=", from), absl::StrCat("to=", to),
                        absl::StrCat("sha256=", options.schema->digest())};
  std::vector<std::string> names;
  for (const sync::SchemaChange& c : verdict.changes) {
    if (!incompatible || c.level == sync::ChangeLevel::kIncompatible) names.push_back(c.Name());
  }
  action.subject_ids.insert(action.subject_ids.end(), names.begin(), names.end());
  RETURN_IF_ERROR(Record(options, protocol::Event{options.now, std::move(action)}));
  if (incompatible) {
    log::Warn("schema.change-accepted", {{"from", from},
                                         {"to", to},
                                         {"incompatible", absl::StrJoin(names, ",")},
                                         {"by", "--accept-schema-change"}});
  } else {
    log::Info("schema.changed", {{"from", from}, {"to", to}, {"changes", verdict.changes.size()}});
  }
  return verdict;
}

}  // namespace fieldsync::admin
