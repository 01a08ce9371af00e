#include "audit/access_ledger.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"

namespace fieldsync::audit {

using protocol::CaseAccess;
using protocol::Event;

AccessLedger::AccessLedger(AuditLog* log, storage::Store* store, const Clock* clock,
                           AccessLedgerOptions options)
    : log_(log), store_(store), clock_(clock), options_(options) {}

bool AccessLedger::Covers(const Entry& entry, uint64_t position, const Uuid& case_id) {
  return position >= entry.first_position && position <= entry.last_position &&
         entry.cases.contains(case_id);
}

std::string AccessLedger::KeyOf(const AccessRead& read) {
  return absl::StrCat(static_cast<int>(read.principal_kind), ":", static_cast<int>(read.access),
                      ":", read.principal_id);
}

AccessLedger::Principal& AccessLedger::PrincipalOf(const std::string& key) {
  auto it = principals_.find(key);
  if (it != principals_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return it->second;
  }
  lru_.push_front(key);
  principals_[key].lru = lru_.begin();
  Evict(key);
  return principals_.find(key)->second;
}

void AccessLedger::DropOldest(Principal& p) {
  cases_kept_ -= p.committed.front().cases.size();
  p.committed.pop_front();
}

void AccessLedger::Evict(const std::string& keep) {
  for (auto victim = lru_.end();
       principals_.size() > options_.max_principals || cases_kept_ > options_.max_cases;) {
    if (victim == lru_.begin()) break;
    --victim;
    if (*victim == keep) continue;
    auto found = principals_.find(*victim);
    if (!found->second.in_flight.empty()) continue;
    while (!found->second.committed.empty()) DropOldest(found->second);
    principals_.erase(found);
    victim = lru_.erase(victim);
  }
}

absl::StatusOr<AccessRecorded> AccessLedger::Record(const AccessRead& read) {
  if (read.changes.empty()) return AccessRecorded::kNothingToRecord;
  const bool dedupe = options_.repeat_window > absl::ZeroDuration();
  const std::string key = KeyOf(read);
  std::vector<std::shared_ptr<Pending>> waits;  // entries being committed that cover it
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  {
    Principal& p = PrincipalOf(key);
    while (!p.committed.empty() && now - p.committed.front().at >= options_.repeat_window) {
      DropOldest(p);
    }
    if (dedupe) {
      // Each change must be covered, by a committed entry or else by one
      // being committed (then waited for).
      bool covered = true;
      for (const auto& [position, case_id] : read.changes) {
        bool found = false;
        for (auto it = p.committed.rbegin(); !found && it != p.committed.rend(); ++it) {
          found = Covers(*it, position, case_id);
        }
        for (size_t i = 0; !found && i < p.in_flight.size(); ++i) {
          if (Covers(p.in_flight[i]->entry, position, case_id)) {
            found = true;
            if (std::find(waits.begin(), waits.end(), p.in_flight[i]) == waits.end()) {
              waits.push_back(p.in_flight[i]);
            }
          }
        }
        if (!found) {
          covered = false;
          break;
        }
      }
      if (covered && waits.empty()) return AccessRecorded::kCovered;
      if (!covered) waits.clear();
    }
    if (waits.empty()) {
      auto pending = std::make_shared<Pending>();
      Entry& entry = pending->entry;
      entry.first_position = read.changes.front().first;
      entry.last_position = read.changes.front().first;
      CaseAccess event;
      event.principal_kind = read.principal_kind;
      event.principal_id = read.principal_id;
      event.access = read.access;
      event.from_position = read.from_position;
      event.to_position = read.to_position;
      for (const auto& [position, case_id] : read.changes) {
        entry.first_position = std::min(entry.first_position, position);
        entry.last_position = std::max(entry.last_position, position);
        if (entry.cases.insert(case_id).second) event.case_ids.push_back(case_id);
      }
      entry.at = now;
      pending->event = Event{now, std::move(event)};
      p.in_flight.push_back(pending);
      queue_.emplace_back(key, pending);
      waits.push_back(std::move(pending));
    }
  }
  // Whoever finds no commit running commits the whole queue (its own read
  // is in it); the others wait for it, or take over after it.
  for (const std::shared_ptr<Pending>& pending : waits) {
    while (!pending->done) {
      if (!committing_) {
        CommitQueued();
        continue;
      }
      auto wake = [&]()
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return pending->done || !committing_; };
      mu_.Await(absl::Condition(&wake));
    }
    if (!pending->status.ok()) return pending->status;
  }
  return AccessRecorded::kWritten;
}

void AccessLedger::CommitQueued() {
  committing_ = true;
  std::vector<std::pair<std::string, std::shared_ptr<Pending>>> group;
  group.swap(queue_);
  std::vector<Event> events;
  events.reserve(group.size());
  for (const auto& [key, pending] : group) events.push_back(pending->event);
  mu_.Unlock();
  storage::WriteBatch batch;
  AuditSession session(log_, &batch);
  absl::Status s = session.AppendAll(events).status();
  if (s.ok()) s = store_->Commit(&batch);
  if (s.ok()) {
    session.Committed();
  } else {
    session.Abort();
    log::Error("audit.access.failed", {{"entries", group.size()}, {"reason", s.message()}});
    s = absl::UnavailableError(absl::StrFormat(
        "the read could not be recorded in the audit log (%s); nothing was sent: retry",
        s.message()));
  }
  mu_.Lock();
  for (const auto& [key, pending] : group) {
    pending->done = true;
    pending->status = s;
    Principal& p = PrincipalOf(key);
    auto it = std::find(p.in_flight.begin(), p.in_flight.end(), pending);
    if (it != p.in_flight.end()) p.in_flight.erase(it);
    if (s.ok() && options_.repeat_window > absl::ZeroDuration()) {
      p.committed.push_back(pending->entry);
      cases_kept_ += pending->entry.cases.size();
      while (p.committed.size() > options_.max_entries_per_principal) DropOldest(p);
    }
  }
  Evict(/*keep=*/"");
  if (s.ok()) {
    entries_written_ += group.size();
    ++commits_;
  }
  committing_ = false;
}

uint64_t AccessLedger::entries_written() const {
  absl::MutexLock lock(&mu_);
  return entries_written_;
}

uint64_t AccessLedger::commits() const {
  absl::MutexLock lock(&mu_);
  return commits_;
}

}  // namespace fieldsync::audit
