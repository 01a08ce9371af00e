#include "sync/pull.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"
#include "common/arena_blocks.h"
#include "common/status_macros.h"
#include "fieldsync/v1/records.pb.h"
#include "storage/key_codec.h"
#include "sync/errors.h"
#include "sync/log_codec.h"

namespace fieldsync::sync {
namespace {

using storage::Cf;

// Positions read ahead per case stream and index seek.
constexpr size_t kReadAhead = 64;

// Decodes a stored log entry into *entry.
absl::Status ParseInto(const storage::NameDictionary& names, uint64_t position,
                       std::string_view raw, v1::CaseLogEntry* entry) {
  if (absl::Status s = DecodeLogEntry(raw, position, names, entry); !s.ok()) {
    return absl::DataLossError(absl::StrFormat("case log entry %d: %s", position, s.message()));
  }
  return absl::OkStatus();
}

}  // namespace

ScopedLogReader::ScopedLogReader(const ChangeFeed* feed, ReadScope scope, Options options)
    : feed_(feed),
      scope_(std::move(scope)),
      options_(std::move(options)),
      cursor_(options_.cursor) {}

bool ScopedLogReader::Member(const Uuid& case_id, const CaseOwner& owner) const {
  if (options_.only.has_value() && !options_.only->contains(case_id)) return false;
  return Reaches(scope_, owner);
}

uint64_t ScopedLogReader::Limit() const {
  return options_.through != 0 ? std::min(covered_, options_.through) : covered_;
}

absl::Status ScopedLogReader::Fill(const Uuid& case_id, Stream& s, uint64_t after) {
  s.ahead.clear();
  s.next = 0;
  s.more = false;
  const uint64_t limit = Limit();
  if (after >= limit) return absl::OkStatus();
  RETURN_IF_ERROR(entries_->Read(case_id, after, limit, kReadAhead, &s.ahead, &s.more));
  if (!s.ahead.empty() && !s.queued) {
    heap_.emplace(s.ahead.front(), case_id);
    s.queued = true;
  }
  return absl::OkStatus();
}

absl::Status ScopedLogReader::Rebuild(const storage::Snapshot* snap) {
  members_.clear();
  heap_ = {};
  ++streams_seeded_;
  std::vector<Uuid> cases;
  if (options_.only.has_value()) {
    for (const Uuid& id : *options_.only) {
      ASSIGN_OR_RETURN(CaseOwner owner, ReadCaseOwner(feed_->store(), feed_->schema(), id, snap));
      if (Member(id, owner)) cases.push_back(id);
    }
  } else {
    // The scope lists hold each case under its current region and officer,
    // the fields Reaches() looks at.
    ASSIGN_OR_RETURN(std::vector<std::string> prefixes,
                     CaseIndexPrefixes(feed_->store(), snap, scope_.officer_id, scope_.regions));
    for (const std::string& prefix : prefixes) {
      RETURN_IF_ERROR(ForEachListedCase(feed_->store(), snap, prefix, "",
                                        [&](const Uuid& id, std::string_view) {
                                          cases.push_back(id);
                                          return true;
                                        }));
    }
  }
  // In id order, so that the entry index is read front to back.
  std::sort(cases.begin(), cases.end());
  cases.erase(std::unique(cases.begin(), cases.end()), cases.end());
  members_.reserve(cases.size());
  for (const Uuid& id : cases) {
    Stream& s = members_[id];
    RETURN_IF_ERROR(Fill(id, s, cursor_));
  }
  built_ = true;
  return absl::OkStatus();
}

absl::Status ScopedLogReader::CatchUp(const storage::Snapshot* snap, uint64_t last) {
  struct Added {
    uint64_t position;
    Uuid case_id;
  };
  std::vector<Added> added;
  absl::flat_hash_set<Uuid> registrations;
  {
    std::unique_ptr<storage::Iterator> it =
        feed_->store()->NewIterator(Cf::kCaseLog, storage::EncodeCaseLogKey(covered_ + 1),
                                    storage::EncodeCaseLogKey(last + 1), snap);
    for (; it->Valid(); it->Next()) {
      ASSIGN_OR_RETURN(uint64_t position, storage::DecodeCaseLogKey(it->key()));
      RETURN_IF_ERROR(ParseInto(feed_->store()->names(), position, it->value(), &entry_));
      ASSIGN_OR_RETURN(Uuid case_id, ParseUuid(entry_.case_id()));
      // An officer or region changes only through an entry of the
      // registration record (whose id is the case's).
      if (entry_.record_id() == entry_.case_id()) registrations.insert(case_id);
      added.push_back({position, case_id});
    }
    RETURN_IF_ERROR(it->status());
  }
  covered_ = last;
  // Cases whose owner may have changed: decided again at this snapshot.
  absl::flat_hash_set<Uuid> seeded;
  for (const Uuid& id : registrations) {
    ASSIGN_OR_RETURN(CaseOwner owner, ReadCaseOwner(feed_->store(), feed_->schema(), id, snap));
    const bool now = Member(id, owner);
    auto it = members_.find(id);
    if (it != members_.end() && !now) {
      members_.erase(it);  // its queued head is dropped when it surfaces
    } else if (it == members_.end() && now) {
      Stream& s = members_[id];
      RETURN_IF_ERROR(Fill(id, s, cursor_));  // its whole stream after the cursor
      seeded.insert(id);
    }
  }
  const uint64_t limit = Limit();
  for (const Added& a : added) {
    if (a.position > limit || seeded.contains(a.case_id)) continue;
    auto it = members_.find(a.case_id);
    if (it == members_.end()) continue;
    Stream& s = it->second;
    if (s.more) continue;  // the next read of its index reaches this entry
    if (s.next == s.ahead.size()) {
      s.ahead.clear();
      s.next = 0;
    }
    s.ahead.push_back(a.position);
    if (!s.queued) {
      heap_.emplace(s.ahead[s.next], a.case_id);
      s.queued = true;
    }
  }
  return absl::OkStatus();
}

absl::Status ScopedLogReader::NextOfAllCases(const storage::Snapshot* snap, uint64_t last,
                                             size_t max_changes, size_t max_bytes,
                                             v1::PulledChanges* chunk) {
  covered_ = last;
  const uint64_t limit = Limit();
  v1::PulledChanges& out = *chunk;
  std::unique_ptr<storage::Iterator> it =
      feed_->store()->NewIterator(Cf::kCaseLog, storage::EncodeCaseLogKey(cursor_ + 1),
                                  storage::EncodeCaseLogKey(limit + 1), snap);
  size_t bytes = 0;
  for (; it->Valid(); it->Next()) {
    if (out.changes_size() >= static_cast<int>(max_changes)) break;
    ASSIGN_OR_RETURN(uint64_t position, storage::DecodeCaseLogKey(it->key()));
    RETURN_IF_ERROR(ParseInto(feed_->store()->names(), position, it->value(), &entry_));
    if (!AddChange(position, max_bytes, &bytes, &out)) break;
    cursor_ = position;
  }
  RETURN_IF_ERROR(it->status());
  RETURN_IF_ERROR(status_);
  const bool caught_up = !it->Valid();
  if (caught_up) cursor_ = std::max(cursor_, limit);
  out.set_next_cursor(cursor_);
  out.set_caught_up(caught_up);
  return absl::OkStatus();
}

bool ScopedLogReader::AddChange(uint64_t position, size_t max_bytes, size_t* bytes,
                                v1::PulledChanges* out) {
  v1::PulledChange* change = out->add_changes();
  status_ = feed_->ToPulled(entry_, position, scope_.readable, change);
  if (!status_.ok()) return false;
  const size_t size = change->ByteSizeLong();
  if (out->changes_size() > 1 && *bytes + size > max_bytes) {
    out->mutable_changes()->RemoveLast();
    return false;
  }
  *bytes += size;
  return true;
}

absl::StatusOr<v1::PulledChanges> ScopedLogReader::Next(size_t max_changes, size_t max_bytes) {
  v1::PulledChanges out;
  RETURN_IF_ERROR(Next(max_changes, max_bytes, &out));
  return out;
}

absl::Status ScopedLogReader::Next(size_t max_changes, size_t max_bytes, v1::PulledChanges* chunk) {
  chunk->Clear();
  status_ = absl::OkStatus();
  max_changes = std::max<size_t>(max_changes, 1);
  std::unique_ptr<storage::Snapshot> snap = feed_->store()->GetSnapshot();
  ASSIGN_OR_RETURN(const uint64_t last, feed_->LastPosition(snap.get(), covered_));
  if (scope_.all_cases && !options_.only.has_value()) {
    return NextOfAllCases(snap.get(), last, max_changes, max_bytes, chunk);
  }
  entries_.emplace(feed_->store(), snap.get());
  if (!built_ || last - std::min(covered_, last) > options_.max_catch_up) {
    covered_ = std::max(covered_, last);
    RETURN_IF_ERROR(Rebuild(snap.get()));
  } else if (last > covered_) {
    RETURN_IF_ERROR(CatchUp(snap.get(), last));
  }

  v1::PulledChanges& out = *chunk;
  size_t bytes = 0;
  bool caught_up = true;
  while (!heap_.empty()) {
    const auto [position, case_id] = heap_.top();
    auto member = members_.find(case_id);
    if (member == members_.end() || !member->second.queued ||
        member->second.next >= member->second.ahead.size() ||
        member->second.ahead[member->second.next] != position) {
      heap_.pop();  // a case that left the scope, or a head already sent
      continue;
    }
    if (out.changes_size() >= static_cast<int>(max_changes)) {
      caught_up = false;
      break;
    }
    absl::StatusOr<std::string> raw =
        feed_->store()->Get(Cf::kCaseLog, storage::EncodeCaseLogKey(position), snap.get());
    if (absl::IsNotFound(raw.status())) {
      return absl::DataLossError(absl::StrFormat(
          "the case entry index names log position %d, which is missing", position));
    }
    if (!raw.ok()) return raw.status();
    RETURN_IF_ERROR(ParseInto(feed_->store()->names(), position, *raw, &entry_));
    if (!AddChange(position, max_bytes, &bytes, &out)) {
      RETURN_IF_ERROR(status_);
      caught_up = false;
      break;
    }
    cursor_ = position;
    heap_.pop();
    Stream& s = member->second;
    s.queued = false;
    ++s.next;
    if (s.next < s.ahead.size()) {
      heap_.emplace(s.ahead[s.next], case_id);
      s.queued = true;
    } else if (s.more) {
      RETURN_IF_ERROR(Fill(case_id, s, position));
    }
  }
  entries_.reset();
  if (caught_up) cursor_ = std::max(cursor_, Limit());
  out.set_next_cursor(cursor_);
  out.set_caught_up(caught_up);
  return absl::OkStatus();
}

// --- PullStream ----------------------------------------------------------------

PullStream::PullStream(const ChangeFeed* feed, const ReadScope& scope, const Request& request,
                       absl::flat_hash_set<Uuid> backfill)
    : request_(request),
      main_cursor_(request.cursor),
      main_(feed, scope, ScopedLogReader::Options{.cursor = request.cursor}) {
  if (!backfill.empty() && request.cursor > 0) {
    ScopedLogReader::Options o;
    o.cursor = 0;
    o.through = request.cursor;
    o.only = std::move(backfill);
    backfill_ = std::make_unique<ScopedLogReader>(feed, scope, std::move(o));
  }
}

absl::StatusOr<std::unique_ptr<PullStream>> PullStream::Start(const ChangeFeed* feed,
                                                              const ReadScope& scope,
                                                              const Request& request) {
  absl::flat_hash_set<Uuid> backfill;
  for (const std::string& text : request.backfill_case_ids) {
    absl::StatusOr<Uuid> id = ParseUuid(text);
    if (!id.ok()) {
      return SyncError(absl::StatusCode::kInvalidArgument, v1::SYNC_ERROR_REASON_MALFORMED,
                       "a backfill case id is not a UUID");
    }
    ASSIGN_OR_RETURN(CaseReach reach, feed->Reach(scope, *id));
    if (reach != CaseReach::kInScope) {
      v1::SyncErrorDetail detail;
      detail.set_case_id(text);
      return SyncError(absl::StatusCode::kPermissionDenied, v1::SYNC_ERROR_REASON_OUT_OF_SCOPE,
                       "a backfill case is not in the caller's scope", detail);
    }
    backfill.insert(*id);
  }
  return std::unique_ptr<PullStream>(new PullStream(feed, scope, request, std::move(backfill)));
}

PullStream::Chunk::Chunk() {
  arena = std::make_unique<google::protobuf::Arena>(ArenaOptionsFor(64 << 10));
  changes = google::protobuf::Arena::CreateMessage<v1::PulledChanges>(arena.get());
}

absl::StatusOr<std::unique_ptr<PullStream::Chunk>> PullStream::Next() {
  auto chunk = std::make_unique<Chunk>();
  chunk->cursor = request_.cursor;
  if (backfill_ != nullptr) {
    RETURN_IF_ERROR(backfill_->Next(request_.max_changes, request_.max_bytes, chunk->changes));
    if (chunk->changes->caught_up()) backfill_.reset();
    if (chunk->changes->changes_size() > 0 || backfill_ != nullptr) {
      // Backfill chunks keep the cursor where the request put it.
      chunk->changes->set_next_cursor(request_.cursor);
      chunk->changes->set_caught_up(false);
      return chunk;
    }
  }
  chunk->cursor = main_cursor_;
  RETURN_IF_ERROR(main_.Next(request_.max_changes, request_.max_bytes, chunk->changes));
  main_cursor_ = chunk->changes->next_cursor();
  done_ = chunk->changes->caught_up();
  return chunk;
}

}  // namespace fieldsync::sync
