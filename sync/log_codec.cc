#include "sync/log_codec.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/byte_codec.h"
#include "common/uuid.h"
#include "storage/key_codec.h"

namespace fieldsync::sync {
namespace {

using storage::NameKind;

enum IdForm : uint8_t { kEmpty = 0, kUuid = 1, kText = 2, kSameAsCase = 3, kServerChange = 4 };

enum EntryFlags : uint64_t { kClamped = 1, kRevived = 2, kResolves = 4, kHasHlc = 8 };
enum FieldFlags : uint64_t {
  kHasValue = 1,
  kCleared = 2,
  kEncrypted = 4,
  kServerSet = 8,
  kHasDigest = 16,
};
constexpr int kOutcomeShift = 5;

void PutId(ByteWriter& w, std::string_view text, std::string_view case_id, uint64_t position,
           bool record, bool change) {
  if (text.empty()) return w.U8(kEmpty);
  if (record && text == case_id) return w.U8(kSameAsCase);
  if (change && text == absl::StrCat("server:", position)) return w.U8(kServerChange);
  absl::StatusOr<Uuid> id = ParseUuid(text);
  if (id.ok() && FormatUuid(*id) == text) {
    w.U8(kUuid);
    return w.Id(*id);
  }
  w.U8(kText);
  w.Bytes(text);
}

bool GetId(ByteReader& r, std::string_view case_id, uint64_t position, std::string* out) {
  uint8_t form = 0;
  if (!r.U8(&form)) return false;
  switch (form) {
    case kEmpty:
      out->clear();
      return true;
    case kUuid: {
      Uuid id{};
      if (!r.Id(&id)) return false;
      *out = FormatUuid(id);
      return true;
    }
    case kText: {
      std::string_view t;
      if (!r.Bytes(&t)) return false;
      out->assign(t);
      return true;
    }
    case kSameAsCase:
      out->assign(case_id);
      return true;
    case kServerChange:
      *out = absl::StrCat("server:", position);
      return true;
    default:
      return false;
  }
}

uint32_t NameId(storage::NameDictionary& names, NameKind kind, std::string_view name,
                storage::WriteBatch* batch) {
  return name.empty() ? 0 : names.Intern(kind, name, batch);
}

absl::Status GetName(ByteReader& r, const storage::NameDictionary& names, NameKind kind,
                     std::string* out) {
  uint32_t id = 0;
  if (!r.Varint32(&id)) return absl::DataLossError("case log entry is truncated");
  if (id == 0) {
    out->clear();
    return absl::OkStatus();
  }
  absl::StatusOr<std::string_view> name = names.Name(kind, id);
  if (!name.ok())
    return absl::DataLossError(absl::StrCat("case log entry: ", name.status().message()));
  out->assign(*name);
  return absl::OkStatus();
}

absl::Status Truncated(std::string_view what) {
  return absl::DataLossError(
      absl::StrFormat("case log entry is truncated or malformed (%s)", what));
}

}  // namespace

std::string EncodeLogEntry(const v1::CaseLogEntry& e, storage::NameDictionary& names,
                           storage::WriteBatch* batch) {
  std::string out;
  out.reserve(64 + e.fields_size() * 24);
  ByteWriter w(&out);
  w.U8(kLogEntryFormat);
  PutId(w, e.change_id(), e.case_id(), e.position(), false, true);
  PutId(w, e.case_id(), "", e.position(), false, false);
  PutId(w, e.record_id(), e.case_id(), e.position(), true, false);
  w.Varint(NameId(names, NameKind::kRecordType, e.record_type(), batch));
  w.Varint(static_cast<uint32_t>(e.kind()));
  uint64_t flags = 0;
  if (e.clock_clamped()) flags |= kClamped;
  if (e.revived()) flags |= kRevived;
  if (e.has_resolves()) flags |= kResolves;
  if (e.has_hlc()) flags |= kHasHlc;
  w.Varint(flags);
  if (e.has_hlc()) {
    w.Signed(e.hlc().wall_micros());
    w.Varint(e.hlc().logical());
  }
  // Commit time as its distance from the HLC's wall time (small).
  w.Signed(static_cast<int64_t>(static_cast<uint64_t>(e.committed_unix_micros()) -
                                static_cast<uint64_t>(e.hlc().wall_micros())));
  w.Varint(NameId(names, NameKind::kWriter, e.writer(), batch));
  w.Varint(static_cast<uint32_t>(e.outcome()));
  w.Varint(e.base_version());
  if (e.has_resolves()) {
    w.Varint(e.resolves().position());
    w.Varint(NameId(names, NameKind::kField, e.resolves().field(), batch));
  }
  w.Varint(static_cast<uint64_t>(e.fields_size()));
  for (const v1::EntryField& f : e.fields()) {
    w.Varint(NameId(names, NameKind::kField, f.field(), batch));
    uint64_t ff = static_cast<uint64_t>(static_cast<uint32_t>(f.outcome())) << kOutcomeShift;
    if (f.has_value()) ff |= kHasValue;
    if (f.value().cleared()) ff |= kCleared;
    if (f.value().encrypted()) ff |= kEncrypted;
    if (f.server_set()) ff |= kServerSet;
    if (!f.value().digest().empty()) ff |= kHasDigest;
    w.Varint(ff);
    w.Varint(f.base_version());
    w.Varint(f.version());
    if (f.has_value()) w.Bytes(f.value().data());
    if (!f.value().digest().empty()) w.Bytes(f.value().digest());
  }
  return out;
}

absl::Status DecodeLogEntry(std::string_view bytes, uint64_t position,
                            const storage::NameDictionary& names, v1::CaseLogEntry* e) {
  e->Clear();
  const uint8_t format = bytes.empty() ? 0 : static_cast<uint8_t>(bytes[0]);
  if (format != kLogEntryFormat && format != kLogEntryFormat2) {
    if (!e->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return absl::DataLossError("case log entry does not parse");
    }
    return absl::OkStatus();
  }
  ByteReader r(bytes.substr(1));
  if (format == kLogEntryFormat2 && !r.Varint(&position)) return Truncated("header");
  e->set_position(position);
  std::string case_id;
  if (!GetId(r, "", position, e->mutable_change_id()) || !GetId(r, "", position, &case_id)) {
    return Truncated("ids");
  }
  if (!GetId(r, case_id, position, e->mutable_record_id())) return Truncated("record id");
  e->set_case_id(std::move(case_id));
  if (absl::Status s = GetName(r, names, NameKind::kRecordType, e->mutable_record_type());
      !s.ok()) {
    return s;
  }
  uint32_t kind = 0;
  uint64_t flags = 0;
  if (!r.Varint32(&kind) || !r.Varint(&flags)) return Truncated("kind");
  e->set_kind(static_cast<v1::ChangeKind>(kind));
  e->set_clock_clamped((flags & kClamped) != 0);
  e->set_revived((flags & kRevived) != 0);
  if ((flags & kHasHlc) != 0) {
    int64_t wall = 0;
    uint32_t logical = 0;
    if (!r.Signed(&wall) || !r.Varint32(&logical)) return Truncated("hlc");
    e->mutable_hlc()->set_wall_micros(wall);
    e->mutable_hlc()->set_logical(logical);
  }
  int64_t committed = 0;
  if (!r.Signed(&committed)) return Truncated("commit time");
  e->set_committed_unix_micros(static_cast<int64_t>(static_cast<uint64_t>(committed) +
                                                    static_cast<uint64_t>(e->hlc().wall_micros())));
  if (absl::Status s = GetName(r, names, NameKind::kWriter, e->mutable_writer()); !s.ok()) {
    return s;
  }
  if (format == kLogEntryFormat2 && !GetId(r, "", position, e->mutable_batch_id())) {
    return Truncated("batch id");
  }
  uint32_t outcome = 0;
  uint64_t base = 0;
  if (!r.Varint32(&outcome) || !r.Varint(&base)) return Truncated("outcome");
  e->set_outcome(static_cast<v1::ChangeOutcome>(outcome));
  e->set_base_version(base);
  if ((flags & kResolves) != 0) {
    uint64_t at = 0;
    if (!r.Varint(&at)) return Truncated("resolves");
    e->mutable_resolves()->set_position(at);
    if (absl::Status s =
            GetName(r, names, NameKind::kField, e->mutable_resolves()->mutable_field());
        !s.ok()) {
      return s;
    }
  }
  uint64_t count = 0;
  if (!r.Varint(&count) || count > bytes.size()) return Truncated("field count");
  e->mutable_fields()->Reserve(static_cast<int>(count));
  for (uint64_t i = 0; i < count; ++i) {
    v1::EntryField* f = e->add_fields();
    if (absl::Status s = GetName(r, names, NameKind::kField, f->mutable_field()); !s.ok()) {
      return s;
    }
    uint64_t ff = 0, fbase = 0, version = 0;
    if (!r.Varint(&ff) || !r.Varint(&fbase) || !r.Varint(&version)) return Truncated("field");
    if ((ff >> kOutcomeShift) > UINT32_MAX) return Truncated("field outcome");
    f->set_outcome(static_cast<v1::ChangeOutcome>(static_cast<uint32_t>(ff >> kOutcomeShift)));
    f->set_server_set((ff & kServerSet) != 0);
    f->set_base_version(fbase);
    f->set_version(version);
    const bool has_value = (ff & kHasValue) != 0;
    if (!has_value && (ff & (kCleared | kEncrypted | kHasDigest)) != 0) {
      return Truncated("field value flags");
    }
    if (has_value) {
      v1::StoredValue* v = f->mutable_value();
      std::string_view data;
      if (!r.Bytes(&data)) return Truncated("field value");
      v->set_data(std::string(data));
      v->set_cleared((ff & kCleared) != 0);
      v->set_encrypted((ff & kEncrypted) != 0);
      if ((ff & kHasDigest) != 0) {
        std::string_view digest;
        if (!r.Bytes(&digest)) return Truncated("field digest");
        v->set_digest(std::string(digest));
      }
    }
  }
  if (!r.AtEnd()) return Truncated("trailing bytes");
  return absl::OkStatus();
}

absl::StatusOr<bool> ReadLogEntry(storage::Store* store, uint64_t position, v1::CaseLogEntry* entry,
                                  const storage::Snapshot* snap) {
  absl::StatusOr<std::string> raw =
      store->Get(storage::Cf::kCaseLog, storage::EncodeCaseLogKey(position), snap);
  if (absl::IsNotFound(raw.status())) return false;
  if (!raw.ok()) return raw.status();
  if (absl::Status s = DecodeLogEntry(*raw, position, store->names(), entry); !s.ok()) {
    return absl::DataLossError(absl::StrFormat("case log entry %d: %s", position, s.message()));
  }
  return true;
}

}  // namespace fieldsync::sync
