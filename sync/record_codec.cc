#include "sync/record_codec.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "sync/byte_codec.h"

namespace fieldsync::sync {
namespace {

using storage::NameKind;

// kPlainFields: every field's greatest write is write 0 and it has none of
// the FieldFlags, so each field is stored as its name id alone.
// kPackedFields: a field's greatest write index and flags are one varint,
// index << kFieldFlagBits | flags.
enum HeaderFlags : uint64_t { kDeleted = 1, kPlainFields = 2, kPackedFields = 4 };
constexpr int kFieldFlagBits = 3;
enum MarkFlags : uint64_t { kIsDelete = 1 };
enum FieldFlags : uint64_t { kOtherWrites = 1, kConflict = 2, kOwnVersion = 4 };

struct Write {
  uint64_t position = 0;
  uint32_t writer = 0;
  int64_t wall = 0;
  uint32_t logical = 0;
  auto Key() const { return std::tie(position, writer, wall, logical); }
  bool operator<(const Write& o) const { return Key() < o.Key(); }
  bool operator==(const Write& o) const { return Key() == o.Key(); }
};

absl::Status Malformed(std::string_view what) {
  return absl::DataLossError(absl::StrFormat("record state is truncated or malformed (%s)", what));
}

}  // namespace

const v1::FieldState* RecordState::Find(std::string_view field) const {
  auto it = std::lower_bound(fields.begin(), fields.end(), field,
                             [](const auto& f, std::string_view n) { return f.first < n; });
  return it != fields.end() && it->first == field ? &it->second : nullptr;
}

v1::FieldState* RecordState::FindMutable(std::string_view field) {
  return const_cast<v1::FieldState*>(std::as_const(*this).Find(field));
}

v1::FieldState& RecordState::Upsert(std::string_view field) {
  auto it = std::lower_bound(fields.begin(), fields.end(), field,
                             [](const auto& f, std::string_view n) { return f.first < n; });
  if (it != fields.end() && it->first == field) return it->second;
  return fields.insert(it, {std::string(field), v1::FieldState()})->second;
}

std::string EncodeRecordState(const RecordState& state, storage::NameDictionary& names,
                              storage::WriteBatch* batch) {
  auto writer_id = [&](std::string_view w) {
    return w.empty() ? 0 : names.Intern(NameKind::kWriter, w, batch);
  };
  auto make = [&](std::string_view writer, const v1::Hlc& hlc, uint64_t position) {
    return Write{position, writer_id(writer), hlc.wall_micros(), hlc.logical()};
  };
  // The record's distinct writes, each stored once.
  std::vector<Write> writes;
  for (const v1::HeadWrite& m : state.header.marks()) {
    writes.push_back(make(m.writer(), m.hlc(), m.position()));
  }
  for (const auto& [name, s] : state.fields) {
    writes.push_back(make(s.writer(), s.hlc(), ValuePosition(s)));
    for (const v1::HeadWrite& o : s.other_writes()) {
      writes.push_back(make(o.writer(), o.hlc(), o.position()));
    }
  }
  std::sort(writes.begin(), writes.end());
  writes.erase(std::unique(writes.begin(), writes.end()), writes.end());
  auto index_of = [&](const Write& w) {
    return static_cast<uint64_t>(std::lower_bound(writes.begin(), writes.end(), w) -
                                 writes.begin());
  };

  std::string out;
  out.reserve(32 + writes.size() * 14 + state.fields.size() * 4);
  ByteWriter b(&out);
  b.U8(kRecordStateFormat);
  const v1::RecordHeader& h = state.header;
  b.Varint(h.record_type().empty() ? 0
                                   : names.Intern(NameKind::kRecordType, h.record_type(), batch));
  b.Varint(h.created_position());
  b.Varint(h.record_version());
  auto field_flags = [](const v1::FieldState& s) {
    uint64_t flags = 0;
    if (s.other_writes_size() > 0) flags |= kOtherWrites;
    if (s.conflict_position() != 0) flags |= kConflict;
    if (s.position() != 0) flags |= kOwnVersion;
    return flags;
  };
  // A record as one change made it: every field of its one write.
  bool plain = !writes.empty();
  for (const auto& [name, s] : state.fields) {
    plain =
        plain && field_flags(s) == 0 && index_of(make(s.writer(), s.hlc(), ValuePosition(s))) == 0;
  }
  b.Varint((h.deleted() ? uint64_t{kDeleted} : uint64_t{0}) |
           (plain ? uint64_t{kPlainFields} : uint64_t{kPackedFields}));
  b.Varint(h.conflict_position());
  b.Varint(writes.size());
  uint64_t previous = 0;
  for (const Write& w : writes) {
    b.Varint(w.position - previous);
    previous = w.position;
    b.Varint(w.writer);
    b.Signed(w.wall);
    b.Varint(w.logical);
  }
  b.Varint(static_cast<uint64_t>(h.marks_size()));
  for (const v1::HeadWrite& m : h.marks()) {
    b.Varint(index_of(make(m.writer(), m.hlc(), m.position())));
    b.Varint(m.is_delete() ? uint64_t{kIsDelete} : uint64_t{0});
    if (m.is_delete()) b.Varint(m.delete_base());
  }
  b.Varint(state.fields.size());
  for (const auto& [name, s] : state.fields) {
    b.Varint(names.Intern(NameKind::kField, name, batch));
    if (plain) continue;
    const uint64_t flags = field_flags(s);
    b.Varint(index_of(make(s.writer(), s.hlc(), ValuePosition(s))) << kFieldFlagBits | flags);
    if (s.position() != 0) b.Varint(s.version());
    if (s.other_writes_size() > 0) {
      b.Varint(static_cast<uint64_t>(s.other_writes_size()));
      for (const v1::HeadWrite& o : s.other_writes()) {
        b.Varint(index_of(make(o.writer(), o.hlc(), o.position())));
      }
    }
    if (s.conflict_position() != 0) b.Varint(s.conflict_position());
  }
  return out;
}

absl::StatusOr<uint64_t> DecodeRecordCreatedPosition(std::string_view bytes) {
  if (bytes.empty() || static_cast<uint8_t>(bytes[0]) != kRecordStateFormat) {
    return Malformed("unknown format");
  }
  ByteReader r(bytes.substr(1));
  uint32_t type = 0;
  uint64_t created = 0;
  if (!r.Varint32(&type) || !r.Varint(&created)) return Malformed("header");
  return created;
}

absl::Status DecodeRecordState(std::string_view bytes, const storage::NameDictionary& names,
                               RecordState* state) {
  state->header.Clear();
  state->fields.clear();
  if (bytes.empty() || static_cast<uint8_t>(bytes[0]) != kRecordStateFormat) {
    return Malformed("unknown format");
  }
  ByteReader r(bytes.substr(1));
  auto name = [&](NameKind kind, uint32_t id, std::string* out) -> absl::Status {
    if (id == 0) {
      out->clear();
      return absl::OkStatus();
    }
    absl::StatusOr<std::string_view> n = names.Name(kind, id);
    if (!n.ok()) return absl::DataLossError(absl::StrCat("record state: ", n.status().message()));
    out->assign(*n);
    return absl::OkStatus();
  };
  v1::RecordHeader& h = state->header;
  uint32_t type = 0;
  uint64_t created = 0, version = 0, flags = 0, conflict = 0, nwrites = 0;
  if (!r.Varint32(&type) || !r.Varint(&created) || !r.Varint(&version) || !r.Varint(&flags) ||
      !r.Varint(&conflict) || !r.Varint(&nwrites)) {
    return Malformed("header");
  }
  if (absl::Status s = name(NameKind::kRecordType, type, h.mutable_record_type()); !s.ok()) {
    return s;
  }
  h.set_created_position(created);
  h.set_record_version(version);
  h.set_deleted((flags & kDeleted) != 0);
  h.set_conflict_position(conflict);
  if (nwrites > bytes.size()) return Malformed("write count");
  struct Decoded {
    uint64_t position;
    std::string writer;
    v1::Hlc hlc;
  };
  std::vector<Decoded> writes(nwrites);
  uint64_t position = 0;
  for (Decoded& w : writes) {
    uint64_t delta = 0;
    uint32_t writer = 0, logical = 0;
    int64_t wall = 0;
    if (!r.Varint(&delta) || !r.Varint32(&writer) || !r.Signed(&wall) || !r.Varint32(&logical)) {
      return Malformed("write");
    }
    position += delta;
    w.position = position;
    if (absl::Status s = name(NameKind::kWriter, writer, &w.writer); !s.ok()) return s;
    w.hlc.set_wall_micros(wall);
    w.hlc.set_logical(logical);
  }
  auto write_at = [&](uint64_t index, v1::HeadWrite* out) -> bool {
    if (index >= writes.size()) return false;
    out->set_writer(writes[index].writer);
    *out->mutable_hlc() = writes[index].hlc;
    out->set_position(writes[index].position);
    return true;
  };
  uint64_t nmarks = 0;
  if (!r.Varint(&nmarks) || nmarks > bytes.size()) return Malformed("mark count");
  for (uint64_t i = 0; i < nmarks; ++i) {
    uint64_t index = 0, mflags = 0;
    if (!r.Varint(&index) || !r.Varint(&mflags)) return Malformed("mark");
    v1::HeadWrite* m = h.add_marks();
    if (!write_at(index, m)) return Malformed("mark write index");
    if ((mflags & kIsDelete) != 0) {
      uint64_t base = 0;
      if (!r.Varint(&base)) return Malformed("mark delete base");
      m->set_is_delete(true);
      m->set_delete_base(base);
    }
  }
  uint64_t nfields = 0;
  if (!r.Varint(&nfields) || nfields > bytes.size()) return Malformed("field count");
  state->fields.reserve(nfields);
  for (uint64_t i = 0; i < nfields; ++i) {
    uint32_t field = 0;
    uint64_t index = 0, fflags = 0;
    if (!r.Varint32(&field)) return Malformed("field");
    if ((flags & kPackedFields) != 0) {
      uint64_t packed = 0;
      if (!r.Varint(&packed)) return Malformed("field");
      index = packed >> kFieldFlagBits;
      fflags = packed & ((uint64_t{1} << kFieldFlagBits) - 1);
    } else if ((flags & kPlainFields) == 0 && (!r.Varint(&index) || !r.Varint(&fflags))) {
      return Malformed("field");
    }
    std::string field_name;
    if (absl::Status s = name(NameKind::kField, field, &field_name); !s.ok()) return s;
    if (!state->fields.empty() && !(state->fields.back().first < field_name)) {
      return Malformed("fields out of order");
    }
    v1::FieldState& s = state->fields.emplace_back(std::move(field_name), v1::FieldState()).second;
    v1::HeadWrite greatest;
    if (!write_at(index, &greatest)) return Malformed("field write index");
    s.set_writer(greatest.writer());
    *s.mutable_hlc() = greatest.hlc();
    if ((fflags & kOwnVersion) != 0) {
      uint64_t v = 0;
      if (!r.Varint(&v)) return Malformed("field version");
      s.set_version(v);
      s.set_position(greatest.position());
    } else {
      s.set_version(greatest.position());
    }
    if ((fflags & kOtherWrites) != 0) {
      uint64_t n = 0;
      if (!r.Varint(&n) || n > bytes.size()) return Malformed("other writes");
      for (uint64_t j = 0; j < n; ++j) {
        uint64_t at = 0;
        if (!r.Varint(&at) || !write_at(at, s.add_other_writes())) {
          return Malformed("other write index");
        }
      }
    }
    if ((fflags & kConflict) != 0) {
      uint64_t c = 0;
      if (!r.Varint(&c)) return Malformed("field conflict");
      s.set_conflict_position(c);
    }
  }
  if (!r.AtEnd()) return Malformed("trailing bytes");
  return absl::OkStatus();
}

}  // namespace fieldsync::sync
