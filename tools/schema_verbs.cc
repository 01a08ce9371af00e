#include "tools/schema_verbs.h"

#include <iostream>
#include <memory>
#include <optional>
#include <vector>

#include "absl/strings/str_format.h"
#include "admin/deployment.h"
#include "common/file_io.h"
#include "common/proto_text.h"
#include "fieldsync/v1/config.pb.h"
#include "nlohmann/json.hpp"
#include "storage/store.h"
#include "sync/schema.h"
#include "sync/schema_compat.h"

namespace fieldsync::tools {

const char kSchemaUsage[] =
    "usage: fieldsync schema check --data-dir DIR [--schema FILE] [--config FILE] [--json]\n"
    "see fieldsync schema check --help\n";

namespace {

constexpr char kCheckHelp[] =
    "usage: fieldsync schema check --data-dir DIR [--schema FILE] [--config FILE] [--json]\n"
    "\n"
    "Prints, before a restart, what fieldsyncd will say about a schema file at its\n"
    "next start: every change against the schema the store was last served under,\n"
    "each compatible or INCOMPATIBLE, and the verdict. Offline and read-only: the\n"
    "store is opened for reading (fieldsyncd may be running) and nothing is written.\n"
    "\n"
    "FILE defaults to the schema_file of the config (--config FILE, else\n"
    "DIR/fieldsyncd.conf), else DIR/schema.textproto, as fieldsyncd reads it.\n"
    "Incompatible: a record type, field or enum value in use removed; a field's\n"
    "type changed; a sensitivity class lowered (or raised while values are stored\n"
    "in clear); a field made required or a required field added; max_length\n"
    "lowered; a server-managed case field moved; schema_id changed. fieldsyncd\n"
    "refuses these unless started once with --accept-schema-change (audited).\n"
    "A changed schema must raise its version; no flag overrides that.\n"
    "\n"
    "Exit status: 0 fieldsyncd will start with it; 1 it will refuse it (or the\n"
    "check failed); 2 bad usage. --json prints {\"outcome\", \"store\",\n"
    "\"configured\", \"changes\": [{\"level\", \"kind\", \"subject\", \"detail\"}], \"message\"}.\n"
    "(docs/OPERATIONS.md, \"Schema upgrades\")\n";

int Usage(std::string* error, std::string message) {
  *error = std::move(message);
  return 2;
}

int Failed(std::string* error, const absl::Status& status) {
  *error = std::string(status.message());
  return 1;
}

// The schema file fieldsyncd would read: --schema, else the config's
// schema_file, else DIR/schema.textproto.
absl::StatusOr<std::string> SchemaPath(const Args& args, const std::string& data_dir) {
  if (args.Has("--schema")) return args.Get("--schema");
  const bool named = args.Has("--config");
  const std::string config_path =
      named ? args.Get("--config") : admin::DeploymentPaths(data_dir).config;
  absl::StatusOr<std::string> text = ReadFile(config_path);
  if (!text.ok()) {
    if (!named && absl::IsNotFound(text.status())) return admin::DeploymentPaths(data_dir).schema;
    return absl::Status(text.status().code(),
                        absl::StrFormat("config %s: %s", config_path, text.status().message()));
  }
  v1::ServerConfig config;
  if (absl::Status s = ParseTextOrJson(*text, config_path, &config); !s.ok()) return s;
  if (!config.schema_file().empty()) return config.schema_file();
  return admin::DeploymentPaths(data_dir).schema;
}

std::string LevelName(sync::ChangeLevel level) {
  switch (level) {
    case sync::ChangeLevel::kCompatible:
      return "compatible";
    case sync::ChangeLevel::kIncompatible:
      return "INCOMPATIBLE";
    case sync::ChangeLevel::kVersionError:
      return "VERSION";
  }
  return "?";
}

std::string OutcomeName(sync::SchemaVerdict::Outcome outcome) {
  using Outcome = sync::SchemaVerdict::Outcome;
  switch (outcome) {
    case Outcome::kFirstRecord:
      return "first-record";
    case Outcome::kUnchanged:
      return "unchanged";
    case Outcome::kCompatible:
      return "compatible";
    case Outcome::kIncompatible:
      return "incompatible";
    case Outcome::kVersionError:
      return "version-error";
  }
  return "?";
}

// The verdict line (without "verdict: ").
std::string Message(const sync::SchemaVerdict& v, const v1::Schema& configured) {
  using Outcome = sync::SchemaVerdict::Outcome;
  const std::string to = sync::SchemaName(configured);
  switch (v.outcome) {
    case Outcome::kFirstRecord:
      return absl::StrFormat(
          "the store records no schema yet: fieldsyncd records %s at its next start", to);
    case Outcome::kUnchanged:
      return absl::StrFormat("unchanged: fieldsyncd serves %s as before", to);
    case Outcome::kCompatible:
      return absl::StrFormat(
          "compatible: fieldsyncd records %s at its next start (audit log: schema.changed)", to);
    case Outcome::kIncompatible:
    case Outcome::kVersionError:
      return v.RefusalLine(configured);
  }
  return "";
}

}  // namespace

int SchemaCheck(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kCheckHelp;
    return 0;
  }
  if (absl::Status s = CheckOptions(args, {"--data-dir", "--schema", "--config", "--json"});
      !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  if (args.words.size() != 2) return Usage(error, "schema check takes no operand; see --help");
  const std::string data_dir = args.Get("--data-dir");
  if (data_dir.empty()) return Usage(error, "schema check needs --data-dir DIR");
  if (absl::Status s = admin::CheckDeployment(data_dir).status(); !s.ok()) {
    return Failed(error, s);
  }
  absl::StatusOr<std::string> path = SchemaPath(args, data_dir);
  if (!path.ok()) return Failed(error, path.status());
  absl::StatusOr<v1::Schema> proto = sync::LoadSchemaFile(*path);
  if (!proto.ok()) {
    return Failed(error,
                  absl::InvalidArgumentError(absl::StrFormat(
                      "%s; fieldsyncd would not start with it either", proto.status().message())));
  }
  absl::StatusOr<std::unique_ptr<sync::Schema>> schema = sync::Schema::Create(*std::move(proto));
  if (!schema.ok()) return Failed(error, schema.status());
  const v1::Schema& configured = (*schema)->proto();

  storage::StoreOptions store_options;
  store_options.path = admin::DeploymentPaths(data_dir).db;
  store_options.read_only = true;
  absl::StatusOr<std::unique_ptr<storage::Store>> store = storage::Store::Open(store_options);
  if (!store.ok()) return Failed(error, store.status());
  absl::StatusOr<sync::SchemaVerdict> verdict = sync::CheckSchemaUpgrade(**store, configured);
  if (!verdict.ok()) return Failed(error, verdict.status());
  (void)(*store)->Close();

  using Outcome = sync::SchemaVerdict::Outcome;
  const bool refused =
      verdict->outcome == Outcome::kIncompatible || verdict->outcome == Outcome::kVersionError;
  const std::string served = verdict->served.has_value() ? sync::SchemaName(*verdict->served) : "";
  if (args.Has("--json")) {
    nlohmann::json out;
    out["outcome"] = OutcomeName(verdict->outcome);
    out["store"] = served;
    out["configured"] = sync::SchemaName(configured);
    out["schema_file"] = *path;
    out["changes"] = nlohmann::json::array();
    for (const sync::SchemaChange& c : verdict->changes) {
      std::string level = LevelName(c.level);
      for (char& ch : level) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      out["changes"].push_back(
          {{"level", level}, {"kind", c.kind}, {"subject", c.subject}, {"detail", c.detail}});
    }
    out["message"] = Message(*verdict, configured);
    std::cout << out.dump() << "\n";
  } else {
    std::cout << absl::StrFormat("store:      %s\n", served.empty() ? "(no schema recorded yet)"
                                                                    : served + " (as last served)");
    std::cout << absl::StrFormat("configured: %s (%s)\n", sync::SchemaName(configured), *path);
    for (const sync::SchemaChange& c : verdict->changes) {
      std::cout << absl::StrFormat("  %-12s  %-26s  %s\n", LevelName(c.level), c.kind, c.detail);
    }
    std::cout << "verdict: " << Message(*verdict, configured) << "\n";
  }
  if (refused) {
    *error = verdict->outcome == Outcome::kVersionError
                 ? "fieldsyncd would refuse this schema: raise its version"
                 : "fieldsyncd would refuse this schema without --accept-schema-change";
    return 1;
  }
  return 0;
}

}  // namespace fieldsync::tools
