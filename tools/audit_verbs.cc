#include "tools/audit_verbs.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "audit/export.h"
#include "common/file_io.h"
#include "fieldsync/v1/audit.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "protocol/checkpoint.h"
#include "tools/client.h"

namespace fieldsync::tools {
namespace {

const std::vector<std::string> kConnection = {"--data-dir", "--server", "--cert", "--key", "--ca"};

constexpr char kExportHelp[] =
    "usage: fieldsync audit export --out FILE [connection options]\n"
    "\n"
    "Fetches the latest signed tree head and every audit entry it covers\n"
    "(auditor or administrator credentials) and writes them to FILE in the\n"
    "export format of docs/AUDIT.md, with the head of each audit key\n"
    "transition (signed by the old and the new key). FILE must not exist.\n";

constexpr char kVerifyHelp[] =
    "usage: fieldsync audit verify FILE --key KEYFILE [--trusted-head SAVED]\n"
    "                 [--save-head OUT] [--json] [--threads N]\n"
    "\n"
    "Checks an export offline: every leaf and root, every tree-head signature\n"
    "against KEYFILE (the audit-log.pub you keep; never a key from the\n"
    "export), every batch's device signature against the key its enrolment\n"
    "entry recorded, and, with --trusted-head, that the log extends a head you\n"
    "saved earlier. Exits 0 if all holds, 1 naming the first bad entry.\n"
    "Prints every rollback an administrator accepted (fieldsyncd --accept-rollback):\n"
    "the entry, the tree the log continued from and each abandoned signed head.\n"
    "Follows every rotation of the log's signing key (`keys rotate-audit`): a\n"
    "transition counts only if a head signed by the key in force covers it, and\n"
    "later heads must be signed by the key it announced. KEYFILE may be the\n"
    "log's first key (audit-log.pub: every head is checked) or a later one\n"
    "(audit-log.vN.pub: heads from its announcement on are checked, earlier\n"
    "ones by their roots only).\n"
    "\n"
    "--save-head OUT   after a successful check, write the latest signed head\n"
    "                  (its signed note) to OUT, replacing it: give OUT as\n"
    "                  --trusted-head next time (it may be the same file).\n"
    "--trusted-head    takes such a file, or the \"latest head: ...\" line this\n"
    "                  verb prints, saved in a file.\n"
    "--threads N       workers checking device signatures (default 2).\n";

// Replaces `path` with `content` through a temporary file and a rename.
absl::Status ReplaceFile(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".partial";
  std::error_code ec;
  std::filesystem::remove(tmp, ec);
  if (absl::Status s = WriteNewFile(tmp, content, 0644); !s.ok()) return s;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return absl::FailedPreconditionError(absl::StrFormat("cannot write %s", path));
  }
  return absl::OkStatus();
}

std::string RootBase64(const protocol::Hash& root) {
  std::string_view b = protocol::HashBytes(root);
  return absl::Base64Escape(absl::string_view(b.data(), b.size()));
}

int Usage(std::string* error, const std::string& message) {
  *error = message;
  return 2;
}

}  // namespace

int AuditExport(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kExportHelp;
    return 0;
  }
  std::vector<std::string> allowed = kConnection;
  allowed.push_back("--out");
  if (absl::Status s = CheckOptions(args, allowed); !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  if (!args.Has("--out")) return Usage(error, "audit export needs --out FILE");
  const std::string out_path = args.Get("--out");
  if (std::filesystem::exists(out_path)) {
    *error = absl::StrFormat("%s exists: choose a new file", out_path);
    return 1;
  }
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) {
    *error = std::string(conn.status().message());
    return 1;
  }
  auto stub = v1::AuditService::NewStub(conn->channel);
  v1::SignedTreeHead head;
  {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    grpc::Status status = stub->GetSignedTreeHead(&context, v1::GetSignedTreeHeadRequest(), &head);
    if (!status.ok()) {
      *error = DescribeRpcError(status, conn->server);
      return 1;
    }
  }
  const std::string tmp = out_path + ".partial";
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  if (!out) {
    *error = absl::StrFormat("cannot write %s", tmp);
    return 1;
  }
  // The heads of the log's key transitions go first: the verifier follows
  // them from the auditor's key to the key that signed the latest head.
  v1::KeyTransitions transitions;
  {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    grpc::Status status =
        stub->GetKeyTransitions(&context, v1::GetKeyTransitionsRequest(), &transitions);
    if (!status.ok()) {
      *error = DescribeRpcError(status, conn->server);
      return 1;
    }
  }
  uint32_t heads = 1;
  out << audit::kExportMagic;
  for (const v1::AuditKeyTransition& t : transitions.transitions()) {
    if (t.head().tree_size() > head.tree_size()) continue;
    out << audit::ExportHeadRecord(t.head().note());
    ++heads;
  }
  out << audit::ExportHeadRecord(head.note());
  grpc::ClientContext context;
  v1::GetEntriesRequest request;
  request.set_end(head.tree_size());
  std::unique_ptr<grpc::ClientReader<v1::AuditEntries>> reader =
      stub->GetEntries(&context, request);
  v1::AuditEntries chunk;
  uint64_t next = 0;
  const bool tty = isatty(STDERR_FILENO);
  while (reader->Read(&chunk)) {
    if (chunk.first_index() != next) {
      *error = absl::StrFormat("the server sent entry %d where %d was expected",
                               chunk.first_index(), next);
      return 1;
    }
    for (const std::string& entry : chunk.entries()) {
      out << audit::ExportEntryRecord(next++, entry);
    }
    if (tty) std::cerr << absl::StrFormat("\rexported %d / %d entries", next, head.tree_size());
  }
  if (tty) std::cerr << "\n";
  grpc::Status status = reader->Finish();
  if (!status.ok()) {
    *error = DescribeRpcError(status, conn->server);
    return 1;
  }
  if (next != head.tree_size()) {
    *error =
        absl::StrFormat("the server sent %d entries, its head covers %d", next, head.tree_size());
    return 1;
  }
  out << audit::ExportEndRecord(next, heads);
  out.close();
  if (!out) {
    *error = absl::StrFormat("cannot write %s", tmp);
    return 1;
  }
  std::filesystem::rename(tmp, out_path);
  std::cout << absl::StrFormat("wrote %s: %d entries, signed tree head of size %d\n", out_path,
                               next, head.tree_size());
  return 0;
}

int AuditVerify(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kVerifyHelp;
    return 0;
  }
  if (absl::Status s =
          CheckOptions(args, {"--key", "--trusted-head", "--json", "--threads", "--save-head"});
      !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  if (args.words.size() != 3) return Usage(error, "audit verify needs one FILE");
  if (!args.Has("--key")) {
    return Usage(error, "audit verify needs --key KEYFILE (the audit-log.pub you keep)");
  }
  absl::StatusOr<std::string> key_text = ReadFile(args.Get("--key"));
  if (!key_text.ok()) {
    *error = std::string(key_text.status().message());
    return 1;
  }
  std::string key_line = *key_text;
  while (!key_line.empty() && (key_line.back() == '\n' || key_line.back() == '\r')) {
    key_line.pop_back();
  }
  absl::StatusOr<protocol::NoteVerifier> key = protocol::NoteVerifier::FromVerifierKey(key_line);
  if (!key.ok()) {
    *error = absl::StrFormat("%s is not a signed-note verifier key: %s", args.Get("--key"),
                             key.status().message());
    return 1;
  }
  audit::VerifyOptions options;
  options.key = &*key;
  if (args.Has("--trusted-head")) {
    absl::StatusOr<std::string> saved = ReadFile(args.Get("--trusted-head"));
    if (!saved.ok()) {
      *error = std::string(saved.status().message());
      return 1;
    }
    options.trusted_head = *saved;
  }
  if (args.Has("--threads")) {
    int threads = 0;
    if (!absl::SimpleAtoi(args.Get("--threads"), &threads) || threads < 1 || threads > 64) {
      return Usage(error, "--threads must be a number from 1 to 64");
    }
    options.threads = threads;
  }
  const std::string save_path = args.Get("--save-head");
  if (args.Has("--save-head") && save_path.empty()) {
    return Usage(error, "--save-head needs a file");
  }
  const bool json = args.Has("--json");
  const std::string path = args.words[2];
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = absl::StrFormat("cannot read %s", path);
    return 1;
  }
  const uint64_t total = std::filesystem::file_size(path);
  const bool tty = !json && isatty(STDERR_FILENO);
  absl::Time start = absl::Now();
  if (tty) {
    options.progress = [&](uint64_t bytes, uint64_t entries) {
      std::cerr << absl::StrFormat("\rverifying: %d entries, %.0f%%", entries,
                                   total == 0 ? 100.0 : 100.0 * bytes / total);
    };
  }
  audit::VerifyReport r = audit::VerifyExport(in, options);
  if (tty) std::cerr << "\n";
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (json) {
    nlohmann::json j;
    j["ok"] = r.ok;
    j["entries"] = r.entries;
    j["heads"] = r.heads;
    j["devices"] = r.devices;
    j["device_signatures"] = r.device_signatures;
    j["unsigned_tail"] = r.unsigned_tail;
    j["trusted_head_checked"] = r.trusted_head_checked;
    j["events_by_kind"] = r.events_by_kind;
    j["rollbacks"] = nlohmann::json::array();
    for (const audit::RollbackSeen& rb : r.rollbacks) {
      nlohmann::json abandoned = nlohmann::json::array();
      for (size_t k = 0; k < rb.abandoned_sizes.size(); ++k) {
        abandoned.push_back(
            {{"size", rb.abandoned_sizes[k]}, {"root", RootBase64(rb.abandoned_roots[k])}});
      }
      j["rollbacks"].push_back({{"entry", rb.entry},
                                {"actor", rb.actor},
                                {"continued_size", rb.continued_size},
                                {"continued_root", RootBase64(rb.continued_root)},
                                {"abandoned_heads", abandoned}});
    }
    j["key_transitions"] = nlohmann::json::array();
    for (const audit::KeyTransitionSeen& t : r.key_transitions) {
      j["key_transitions"].push_back({{"entry", t.entry},
                                      {"old_version", t.old_version},
                                      {"new_version", t.new_version},
                                      {"new_key", t.new_key},
                                      {"head_size", t.head_size},
                                      {"old_key_checked", t.is_old_key_checked}});
    }
    j["unchecked_heads"] = r.unchecked_heads;
    if (!r.final_key.empty()) j["key_in_force"] = r.final_key;
    j["seconds"] = seconds;
    if (r.latest_head.has_value()) {
      j["latest_head"] = {{"origin", r.latest_head->origin},
                          {"size", r.latest_head->size},
                          {"root", RootBase64(r.latest_head->root)},
                          {"line", audit::FormatHeadLine(*r.latest_head)}};
    }
    if (!r.ok) {
      j["error"] = r.error;
      j["bad_record"] = r.bad_record;
      if (r.bad_entry.has_value()) j["bad_entry"] = *r.bad_entry;
    }
    std::cout << j.dump(2) << "\n";
  } else if (r.ok) {
    std::cout << absl::StrFormat(
        "OK: %d entries, %d signed tree head(s), %d device signatures from %d devices checked "
        "in %.1f s\n",
        r.entries, r.heads, r.device_signatures, r.devices, seconds);
    if (r.latest_head.has_value()) {
      std::cout << audit::FormatHeadLine(*r.latest_head) << "\n";
    }
    for (const auto& [kind, n] : r.events_by_kind) {
      std::cout << absl::StrFormat("  %-18s %d\n", kind, n);
    }
    for (const audit::RollbackSeen& rb : r.rollbacks) {
      // An administrator accepted a rollback or fork (docs/AUDIT.md).
      std::cout << absl::StrFormat(
          "ROLLBACK accepted at entry %d by %s: the log continued from %d entries (root %s)\n",
          rb.entry, rb.actor, rb.continued_size, RootBase64(rb.continued_root));
      for (size_t k = 0; k < rb.abandoned_sizes.size(); ++k) {
        std::cout << absl::StrFormat("  abandoned signed head: size %d, root %s\n",
                                     rb.abandoned_sizes[k], RootBase64(rb.abandoned_roots[k]));
      }
    }
    for (const audit::KeyTransitionSeen& t : r.key_transitions) {
      std::cout << absl::StrFormat(
          "KEY TRANSITION at entry %d: audit key version %d -> %d, confirmed by the head of size "
          "%d%s\n  new key: %s\n",
          t.entry, t.old_version, t.new_version, t.head_size,
          t.is_old_key_checked ? " (signed by the old and the new key)"
                               : " (signed by the new key; the old one is not in your key file)",
          t.new_key);
    }
    if (r.unchecked_heads > 0) {
      std::cout << absl::StrFormat(
          "note: %d head(s) signed before your key was announced were checked by their roots "
          "only; give the log's first key (audit-log.pub) to check their signatures\n",
          r.unchecked_heads);
    }
    if (options.trusted_head.has_value()) {
      std::cout << "the log extends your saved head\n";
    }
    if (r.unsigned_tail > 0) {
      std::cout << absl::StrFormat("note: %d entries after the last head are not signed yet\n",
                                   r.unsigned_tail);
    }
  }
  if (!r.ok) {
    *error = absl::StrFormat("verification FAILED at %s: %s", r.bad_record, r.error);
    return 1;
  }
  if (!save_path.empty()) {
    if (r.latest_head_note.empty()) {
      *error = "the export holds no signed head to save";
      return 1;
    }
    if (absl::Status s = ReplaceFile(save_path, r.latest_head_note); !s.ok()) {
      *error = std::string(s.message());
      return 1;
    }
    if (!json) {
      std::cout << absl::StrFormat("saved the head of size %d to %s (give it as --trusted-head)\n",
                                   r.latest_head->size, save_path);
    }
  }
  return 0;
}

}  // namespace fieldsync::tools
