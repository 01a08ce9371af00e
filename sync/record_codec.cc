#include "sync/record_codec.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/byte_codec.h"
#include "common/status_macros.h"

namespace fieldsync::sync {
namespace {

using storage::NameKind;

// Format 2 only (format 3 always lists names first, then the fields that
// are not the first write alone):
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

// a - b as a signed distance (modulo 2^64, so that any pair round-trips).
int64_t Delta(uint64_t a, uint64_t b) { return static_cast<int64_t>(a - b); }
int64_t Delta(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}
uint64_t Plus(uint64_t a, int64_t d) { return a + static_cast<uint64_t>(d); }
int64_t Plus(int64_t a, int64_t d) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(d));
}

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
  // Most fields name the same writer or two: looked up once each.
  std::string_view last_writer;
  uint32_t last_id = 0;
  auto writer_id = [&](std::string_view w) {
    if (w.empty()) return uint32_t{0};
    if (last_id == 0 || w != last_writer) {
      last_id = names.Intern(NameKind::kWriter, w, batch);
      last_writer = w;
    }
    return last_id;
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
  out.reserve(32 + writes.size() * 14 + state.fields.size() * 2);
  ByteWriter b(&out);
  b.U8(kRecordStateFormat);
  const v1::RecordHeader& h = state.header;
  b.Varint(h.record_type().empty() ? 0
                                   : names.Intern(NameKind::kRecordType, h.record_type(), batch));
  const uint64_t created = h.created_position();
  b.Varint(created);
  b.Signed(Delta(h.record_version(), created));
  b.Varint(h.deleted() ? uint64_t{kDeleted} : uint64_t{0});
  b.Varint(h.conflict_position());
  b.Varint(writes.size());
  for (size_t i = 0; i < writes.size(); ++i) {
    const Write& w = writes[i];
    if (i == 0) {
      b.Signed(Delta(w.position, created));
      b.Varint(w.writer);
      b.Signed(w.wall);
    } else {
      b.Varint(w.position - writes[i - 1].position);
      b.Varint(w.writer);
      b.Signed(Delta(w.wall, writes[i - 1].wall));
    }
    b.Varint(w.logical);
  }
  b.Varint(static_cast<uint64_t>(h.marks_size()));
  for (const v1::HeadWrite& m : h.marks()) {
    b.Varint(index_of(make(m.writer(), m.hlc(), m.position())));
    b.Varint(m.is_delete() ? uint64_t{kIsDelete} : uint64_t{0});
    if (m.is_delete()) b.Varint(m.delete_base());
  }
  b.Varint(state.fields.size());
  for (const auto& [name, s] : state.fields) b.Varint(names.Intern(NameKind::kField, name, batch));
  // Then only the fields that are not the record's first write alone.
  auto field_flags = [](const v1::FieldState& s) {
    uint64_t flags = 0;
    if (s.other_writes_size() > 0) flags |= kOtherWrites;
    if (s.conflict_position() != 0) flags |= kConflict;
    if (s.position() != 0) flags |= kOwnVersion;
    return flags;
  };
  std::vector<std::pair<uint64_t, uint64_t>> listed;  // (ordinal, index << 3 | flags)
  for (size_t i = 0; i < state.fields.size(); ++i) {
    const v1::FieldState& s = state.fields[i].second;
    const uint64_t packed =
        index_of(make(s.writer(), s.hlc(), ValuePosition(s))) << kFieldFlagBits | field_flags(s);
    if (packed != 0) listed.emplace_back(i, packed);
  }
  b.Varint(listed.size());
  uint64_t next = 0;
  for (const auto& [ordinal, packed] : listed) {
    const v1::FieldState& s = state.fields[ordinal].second;
    b.Varint(ordinal - next);
    next = ordinal + 1;
    b.Varint(packed);
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
  const uint8_t format = bytes.empty() ? 0 : static_cast<uint8_t>(bytes[0]);
  if (format != kRecordStateFormat && format != kRecordStateFormat2) {
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
  const uint8_t format = bytes.empty() ? 0 : static_cast<uint8_t>(bytes[0]);
  if (format != kRecordStateFormat && format != kRecordStateFormat2) {
    return Malformed("unknown format");
  }
  const bool relative = format == kRecordStateFormat;
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
  if (!r.Varint32(&type) || !r.Varint(&created)) return Malformed("header");
  if (relative) {
    int64_t d = 0;
    if (!r.Signed(&d)) return Malformed("header");
    version = Plus(created, d);
  } else if (!r.Varint(&version)) {
    return Malformed("header");
  }
  if (!r.Varint(&flags) || !r.Varint(&conflict) || !r.Varint(&nwrites)) {
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
  int64_t wall = 0;
  for (size_t i = 0; i < writes.size(); ++i) {
    Decoded& w = writes[i];
    uint32_t writer = 0, logical = 0;
    if (relative && i == 0) {
      int64_t d = 0;
      if (!r.Signed(&d)) return Malformed("write");
      position = Plus(created, d);
    } else {
      uint64_t delta = 0;
      if (!r.Varint(&delta)) return Malformed("write");
      position += delta;
    }
    int64_t stored_wall = 0;
    if (!r.Varint32(&writer) || !r.Signed(&stored_wall) || !r.Varint32(&logical)) {
      return Malformed("write");
    }
    wall = relative && i > 0 ? Plus(wall, stored_wall) : stored_wall;
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
  // The rest of a field's state after its name: its greatest write index
  // and flags (`packed`), then what the flags say follows.
  auto read_rest = [&](uint64_t packed, v1::FieldState& s) -> absl::Status {
    const uint64_t index = packed >> kFieldFlagBits;
    const uint64_t fflags = packed & ((uint64_t{1} << kFieldFlagBits) - 1);
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
      s.clear_other_writes();
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
    return absl::OkStatus();
  };
  for (uint64_t i = 0; i < nfields; ++i) {
    uint32_t field = 0;
    if (!r.Varint32(&field)) return Malformed("field");
    std::string field_name;
    if (absl::Status s = name(NameKind::kField, field, &field_name); !s.ok()) return s;
    if (!state->fields.empty() && !(state->fields.back().first < field_name)) {
      return Malformed("fields out of order");
    }
    v1::FieldState& s = state->fields.emplace_back(std::move(field_name), v1::FieldState()).second;
    if (relative) continue;  // the rest follows the names
    uint64_t packed = 0;
    if ((flags & kPackedFields) != 0) {
      if (!r.Varint(&packed)) return Malformed("field");
    } else if ((flags & kPlainFields) == 0) {
      uint64_t index = 0, fflags = 0;
      if (!r.Varint(&index) || !r.Varint(&fflags)) return Malformed("field");
      if (index > (UINT64_MAX >> kFieldFlagBits) || fflags >= (uint64_t{1} << kFieldFlagBits)) {
        return Malformed("field");
      }
      packed = index << kFieldFlagBits | fflags;
    }
    RETURN_IF_ERROR(read_rest(packed, s));
  }
  if (relative) {
    // Every field starts as the record's first write alone; the listed ones
    // say otherwise.
    std::vector<bool> listed(state->fields.size(), false);
    uint64_t nlisted = 0;
    if (!r.Varint(&nlisted) || nlisted > state->fields.size()) return Malformed("listed fields");
    uint64_t next = 0;
    for (uint64_t i = 0; i < nlisted; ++i) {
      uint64_t skip = 0, packed = 0;
      if (!r.Varint(&skip) || !r.Varint(&packed)) return Malformed("listed field");
      if (skip >= state->fields.size() - next || packed == 0) return Malformed("listed field");
      const uint64_t ordinal = next + skip;
      next = ordinal + 1;
      listed[ordinal] = true;
      RETURN_IF_ERROR(read_rest(packed, state->fields[ordinal].second));
    }
    for (size_t i = 0; i < state->fields.size(); ++i) {
      if (!listed[i]) RETURN_IF_ERROR(read_rest(0, state->fields[i].second));
    }
  }
  if (!r.AtEnd()) return Malformed("trailing bytes");
  return absl::OkStatus();
}

}  // namespace fieldsync::sync
