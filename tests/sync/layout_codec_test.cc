// The layout-2 stored forms: the name dictionary, the case log entry codec
// and the record state codec, against malformed, truncated and tampered
// bytes, and round trips of every field they carry.
#include <memory>
#include <string>

#include "common/byte_codec.h"
#include "common/uuid.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "storage/key_codec.h"
#include "storage/name_dictionary.h"
#include "storage/store.h"
#include "sync/log_codec.h"
#include "sync/record_codec.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::sync {
namespace {

using storage::NameKind;

class LayoutCodecTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  void Open() {
    storage::StoreOptions o;
    o.path = dir_.Sub("db");
    o.create_if_missing = true;
    o.sync_writes = false;
    absl::StatusOr<std::unique_ptr<storage::Store>> s = storage::Store::Open(o);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
  }
  void Reopen() {
    store_.reset();
    Open();
  }

  // A full entry: every field of CaseLogEntry set, two written fields (an
  // encrypted one with a digest, a clear one) and a cleared one.
  static v1::CaseLogEntry FullEntry() {
    v1::CaseLogEntry e;
    e.set_position(4242);
    e.set_change_id("0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b");
    e.set_case_id("11111111-2222-4333-8444-555555555555");
    e.set_record_id("66666666-7777-4888-8999-aaaaaaaaaaaa");
    e.set_record_type("service");
    e.set_kind(v1::CHANGE_KIND_RESOLVE_CONFLICT);
    e.mutable_hlc()->set_wall_micros(1795000000123456);
    e.mutable_hlc()->set_logical(7);
    e.set_clock_clamped(true);
    e.set_writer("3b1f0c1e-5a6b-4c7d-8e9f-0a1b2c3d4e5f");
    e.set_batch_id("99999999-8888-4777-8666-555555555555");
    e.set_outcome(v1::CHANGE_OUTCOME_CONFLICT);
    e.set_base_version(4000);
    e.mutable_resolves()->set_position(4100);
    e.mutable_resolves()->set_field("caregiver_phone");
    e.set_committed_unix_micros(1795000000999999);
    e.set_revived(true);
    v1::EntryField* f = e.add_fields();
    f->set_field("caregiver_phone");
    f->mutable_value()->set_data(std::string("\x01\x00\xffsealed", 9));
    f->mutable_value()->set_encrypted(true);
    f->mutable_value()->set_digest(std::string(16, '\x5a'));
    f->set_base_version(4100);
    f->set_outcome(v1::CHANGE_OUTCOME_SUPERSEDED);
    f->set_version(4101);
    v1::EntryField* g = e.add_fields();
    g->set_field("priority");
    g->mutable_value()->set_data("\x3a\x04high");
    g->set_outcome(v1::CHANGE_OUTCOME_APPLIED);
    g->set_server_set(true);
    v1::EntryField* h = e.add_fields();
    h->set_field("notes");
    h->mutable_value()->set_cleared(true);
    h->set_outcome(v1::CHANGE_OUTCOME_CONVERGED);
    return e;
  }

  fieldsync::testing::ScopedTempDir dir_;
  std::unique_ptr<storage::Store> store_;
};

TEST_F(LayoutCodecTest, DictionaryGivesStableIdsThatSurviveReopen) {
  storage::NameDictionary& names = store_->names();
  storage::WriteBatch batch;
  EXPECT_EQ(names.Intern(NameKind::kField, "given_name", &batch), 1u);
  EXPECT_EQ(names.Intern(NameKind::kField, "family_name", &batch), 2u);
  EXPECT_EQ(names.Intern(NameKind::kField, "given_name", &batch), 1u);
  EXPECT_EQ(names.Intern(NameKind::kWriter, "given_name", &batch), 1u);  // kinds apart
  EXPECT_EQ(batch.Count(), 3) << "each new name is written once per batch";
  ASSERT_TRUE(store_->Commit(&batch).ok());
  storage::WriteBatch again;
  EXPECT_EQ(names.Intern(NameKind::kField, "given_name", &again), 1u);
  EXPECT_EQ(again.Count(), 0) << "a durable name is not written again";
  Reopen();
  EXPECT_EQ(store_->names().Find(NameKind::kField, "family_name"), 2u);
  EXPECT_EQ(*store_->names().Name(NameKind::kWriter, 1), "given_name");
  EXPECT_TRUE(absl::IsDataLoss(store_->names().Name(NameKind::kField, 3).status()));
  EXPECT_TRUE(absl::IsDataLoss(store_->names().Name(NameKind::kField, 0).status()));
}

TEST_F(LayoutCodecTest, NameOfABatchThatNeverCommittedIsWrittenByTheNextOne) {
  storage::NameDictionary& names = store_->names();
  {
    storage::WriteBatch lost;
    EXPECT_EQ(names.Intern(NameKind::kRecordType, "service", &lost), 1u);
    // dropped without a commit
  }
  storage::WriteBatch next;
  EXPECT_EQ(names.Intern(NameKind::kRecordType, "service", &next), 1u);
  EXPECT_EQ(next.Count(), 1) << "the id is written by the batch that uses it";
  ASSERT_TRUE(store_->Commit(&next).ok());
  Reopen();
  EXPECT_EQ(*store_->names().Name(NameKind::kRecordType, 1), "service");
}

TEST_F(LayoutCodecTest, DictionaryRefusesGapsAndDuplicatesInTheStore) {
  storage::WriteBatch batch;
  batch.Put(storage::Cf::kMetadata, storage::EncodeNameKey(NameKind::kField, 2), "skips_one");
  ASSERT_TRUE(store_->Commit(&batch).ok());
  storage::NameDictionary fresh;
  absl::Status s = fresh.Load(store_.get());
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  storage::WriteBatch fix;
  fix.Put(storage::Cf::kMetadata, storage::EncodeNameKey(NameKind::kField, 1), "skips_one");
  ASSERT_TRUE(store_->Commit(&fix).ok());
  s = fresh.Load(store_.get());
  EXPECT_TRUE(absl::IsDataLoss(s)) << "one name, two ids: " << s;
}

TEST_F(LayoutCodecTest, LogEntryRoundTripsEveryField) {
  // A new CaseLogEntry field must be added to the codec (and here).
  EXPECT_EQ(v1::CaseLogEntry::descriptor()->field_count(), 16);
  EXPECT_EQ(v1::EntryField::descriptor()->field_count(), 6);
  EXPECT_EQ(v1::StoredValue::descriptor()->field_count(), 4);
  const v1::CaseLogEntry e = FullEntry();
  storage::WriteBatch batch;
  const std::string bytes = EncodeLogEntry(e, store_->names(), &batch);
  ASSERT_TRUE(store_->Commit(&batch).ok());
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), kLogEntryFormat);
  v1::CaseLogEntry back;
  ASSERT_TRUE(DecodeLogEntry(bytes, e.position(), store_->names(), &back).ok());
  // Every field but the batch id, which the batch's stored answer keeps.
  v1::CaseLogEntry expected = e;
  expected.clear_batch_id();
  EXPECT_EQ(back.SerializeAsString(), expected.SerializeAsString()) << back.DebugString();
  // The position comes from the key the entry is read at.
  ASSERT_TRUE(DecodeLogEntry(bytes, 17, store_->names(), &back).ok());
  EXPECT_EQ(back.position(), 17u);
  // Neither the position nor the batch id is in the bytes.
  const std::string batch_uuid = "\x99\x99\x99\x99\x88\x88\x47\x77";
  EXPECT_EQ(bytes.find(batch_uuid), std::string::npos);
  // Far smaller than the message it encodes.
  EXPECT_LT(bytes.size(), e.ByteSizeLong() / 2);
}

// The first layout-2 release's entries (format 2: the position and the
// batch id in the value), written byte by byte as it wrote them.
TEST_F(LayoutCodecTest, LogEntryOfFormatTwoStillDecodesWithItsPositionAndBatch) {
  storage::NameDictionary& names = store_->names();
  storage::WriteBatch batch;
  const uint32_t type = names.Intern(NameKind::kRecordType, "service", &batch);
  const uint32_t writer = names.Intern(NameKind::kWriter, "device-7", &batch);
  const uint32_t field = names.Intern(NameKind::kField, "priority", &batch);
  ASSERT_TRUE(store_->Commit(&batch).ok());
  const Uuid change = *ParseUuid("0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b");
  const Uuid case_id = *ParseUuid("11111111-2222-4333-8444-555555555555");
  const Uuid batch_id = *ParseUuid("99999999-8888-4777-8666-555555555555");
  std::string bytes;
  ByteWriter w(&bytes);
  w.U8(2);
  w.Varint(4242);  // position
  w.U8(1);
  w.Id(change);
  w.U8(1);
  w.Id(case_id);
  w.U8(3);  // the registration record
  w.Varint(type);
  w.Varint(v1::CHANGE_KIND_UPSERT);
  w.Varint(8);  // has an HLC
  w.Signed(1795000000123456);
  w.Varint(2);
  w.Signed(5000);  // committed 5 ms after the HLC
  w.Varint(writer);
  w.U8(1);
  w.Id(batch_id);
  w.Varint(v1::CHANGE_OUTCOME_APPLIED);
  w.Varint(4000);  // base version
  w.Varint(1);     // one field
  w.Varint(field);
  w.Varint(1 | (v1::CHANGE_OUTCOME_APPLIED << 5));  // a clear value
  w.Varint(4001);
  w.Varint(0);
  w.Bytes("\x3a\x04high");

  v1::CaseLogEntry e;
  ASSERT_THAT(DecodeLogEntry(bytes, 1, store_->names(), &e), ::fieldsync::testing::IsOk());
  EXPECT_EQ(e.position(), 4242u) << "a format-2 entry keeps its own position";
  EXPECT_EQ(e.batch_id(), "99999999-8888-4777-8666-555555555555");
  EXPECT_EQ(e.change_id(), "0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b");
  EXPECT_EQ(e.record_id(), e.case_id());
  EXPECT_EQ(e.writer(), "device-7");
  EXPECT_EQ(e.committed_unix_micros(), 1795000000128456);
  EXPECT_EQ(e.base_version(), 4000u);
  ASSERT_EQ(e.fields_size(), 1);
  EXPECT_EQ(e.fields(0).field(), "priority");
  EXPECT_EQ(e.fields(0).base_version(), 4001u);
  EXPECT_EQ(e.fields(0).value().data(), "\x3a\x04high");
  for (size_t n = 1; n < bytes.size(); ++n) {
    EXPECT_TRUE(absl::IsDataLoss(DecodeLogEntry(bytes.substr(0, n), 1, store_->names(), &e)))
        << "prefix of " << n << " bytes";
  }
}

TEST_F(LayoutCodecTest, LogEntryKeepsIdsThatAreNotCanonicalUuids) {
  v1::CaseLogEntry e = FullEntry();
  e.set_change_id("server:4242");                         // a server-side change's id
  e.set_record_id(e.case_id());                           // the registration record
  e.set_batch_id("");                                     // no batch
  e.set_case_id("11111111-2222-4333-8444-55555555555A");  // upper case: kept as text
  e.set_record_id(e.case_id());
  e.clear_hlc();
  e.clear_resolves();
  storage::WriteBatch batch;
  const std::string bytes = EncodeLogEntry(e, store_->names(), &batch);
  v1::CaseLogEntry back;
  ASSERT_TRUE(DecodeLogEntry(bytes, 4242, store_->names(), &back).ok());
  EXPECT_EQ(back.SerializeAsString(), e.SerializeAsString()) << back.DebugString();
  e.set_change_id("server:17");  // not its own position: text
  v1::CaseLogEntry back2;
  ASSERT_TRUE(
      DecodeLogEntry(EncodeLogEntry(e, store_->names(), &batch), 4242, store_->names(), &back2)
          .ok());
  EXPECT_EQ(back2.change_id(), "server:17");
}

TEST_F(LayoutCodecTest, LogEntryStoredBeforeLayoutTwoStillDecodes) {
  const v1::CaseLogEntry e = FullEntry();
  v1::CaseLogEntry back;
  ASSERT_TRUE(DecodeLogEntry(e.SerializeAsString(), 1, store_->names(), &back).ok());
  EXPECT_EQ(back.SerializeAsString(), e.SerializeAsString());
}

TEST_F(LayoutCodecTest, TruncatedOrTamperedLogEntryIsDataLossNeverACrash) {
  storage::WriteBatch batch;
  const std::string bytes = EncodeLogEntry(FullEntry(), store_->names(), &batch);
  ASSERT_TRUE(store_->Commit(&batch).ok());
  v1::CaseLogEntry out;
  for (size_t n = 1; n < bytes.size(); ++n) {
    absl::Status s = DecodeLogEntry(bytes.substr(0, n), 4242, store_->names(), &out);
    EXPECT_TRUE(absl::IsDataLoss(s)) << "prefix of " << n << " bytes: " << s;
  }
  EXPECT_TRUE(absl::IsDataLoss(DecodeLogEntry(bytes + "x", 4242, store_->names(), &out)));
  // Every single-byte change either fails cleanly or decodes to something.
  for (size_t i = 1; i < bytes.size(); ++i) {
    for (uint8_t delta : {uint8_t{1}, uint8_t{0x80}, uint8_t{0xff}}) {
      std::string t = bytes;
      t[i] = static_cast<char>(static_cast<uint8_t>(t[i]) ^ delta);
      absl::Status s = DecodeLogEntry(t, 4242, store_->names(), &out);
      EXPECT_TRUE(s.ok() || absl::IsDataLoss(s)) << s;
    }
  }
  // A name id the dictionary lacks (a newer release, or damage).
  v1::CaseLogEntry e = FullEntry();
  storage::NameDictionary other;
  storage::WriteBatch scratch;
  other.Intern(NameKind::kRecordType, "a", &scratch);
  other.Intern(NameKind::kRecordType, "b", &scratch);
  e.set_record_type("c");
  const std::string foreign = EncodeLogEntry(e, other, &scratch);
  absl::Status s = DecodeLogEntry(foreign, 4242, store_->names(), &out);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("dictionary"));
}

RecordState FullState() {
  RecordState s;
  s.header.set_record_type("service");
  s.header.set_created_position(10);
  s.header.set_record_version(42);
  s.header.set_deleted(true);
  s.header.set_conflict_position(40);
  for (int i = 0; i < 2; ++i) {
    v1::HeadWrite* m = s.header.add_marks();
    m->set_writer(i == 0 ? "dev-a" : "dev-b");
    m->mutable_hlc()->set_wall_micros(1795000000000000 + i);
    m->mutable_hlc()->set_logical(static_cast<uint32_t>(i));
    m->set_position(static_cast<uint64_t>(30 + i));
    m->set_is_delete(i == 1);
    m->set_delete_base(i == 1 ? 29 : 0);
  }
  v1::FieldState& a = s.Upsert("b_field");
  a.set_writer("dev-a");
  a.mutable_hlc()->set_wall_micros(1795000000000000);
  a.set_version(30);  // the greatest write's own position
  v1::FieldState& b = s.Upsert("a_field");
  b.set_writer("staff:sup-1");
  b.mutable_hlc()->set_wall_micros(-5);  // signed values survive
  b.mutable_hlc()->set_logical(3);
  b.set_version(41);
  b.set_position(12);
  b.set_conflict_position(41);
  v1::HeadWrite* o = b.add_other_writes();
  o->set_writer("dev-b");
  o->mutable_hlc()->set_wall_micros(1795000000000001);
  o->mutable_hlc()->set_logical(1);
  o->set_position(31);
  return s;
}

TEST_F(LayoutCodecTest, RecordStateRoundTripsWithoutValues) {
  EXPECT_EQ(v1::RecordHeader::descriptor()->field_count(), 6);
  EXPECT_EQ(v1::FieldState::descriptor()->field_count(), 7);
  const RecordState s = FullState();
  ASSERT_EQ(s.fields[0].first, "a_field") << "fields are kept in name order";
  storage::WriteBatch batch;
  const std::string bytes = EncodeRecordState(s, store_->names(), &batch);
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), kRecordStateFormat);
  // Also positions and times whose distances are negative or span the
  // whole range: every value round-trips.
  RecordState odd = s;
  odd.header.set_created_position(UINT64_MAX);
  odd.header.set_record_version(0);
  odd.Upsert("b_field").mutable_hlc()->set_wall_micros(INT64_MIN);
  odd.Upsert("a_field").mutable_hlc()->set_wall_micros(INT64_MAX);
  for (const RecordState* state : {&s, static_cast<const RecordState*>(&odd)}) {
    RecordState back;
    ASSERT_TRUE(DecodeRecordState(EncodeRecordState(*state, store_->names(), &batch),
                                  store_->names(), &back)
                    .ok());
    EXPECT_EQ(back.header.SerializeAsString(), state->header.SerializeAsString())
        << back.header.DebugString();
    ASSERT_EQ(back.fields.size(), state->fields.size());
    for (size_t i = 0; i < state->fields.size(); ++i) {
      EXPECT_EQ(back.fields[i].first, state->fields[i].first);
      EXPECT_EQ(back.fields[i].second.SerializeAsString(),
                state->fields[i].second.SerializeAsString())
          << back.fields[i].second.DebugString();
    }
  }
  // Values are never stored.
  RecordState with_value = s;
  with_value.Upsert("a_field").mutable_value()->set_data("Amina");
  EXPECT_EQ(EncodeRecordState(with_value, store_->names(), &batch), bytes);
  EXPECT_EQ(bytes.find("Amina"), std::string::npos);
}

TEST_F(LayoutCodecTest, RecordMadeByOneChangeStoresItsWriteOnce) {
  RecordState s;
  s.header.set_record_type("registration");
  s.header.set_created_position(300007);  // a varint of three bytes
  s.header.set_record_version(300007);
  for (int i = 0; i < 21; ++i) {
    v1::FieldState& f = s.Upsert("field_" + std::to_string(100 + i));
    f.set_writer("0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b");
    f.mutable_hlc()->set_wall_micros(1795000000123456);
    f.set_version(300007);
  }
  storage::WriteBatch batch;
  const std::string bytes = EncodeRecordState(s, store_->names(), &batch);
  // Header with the position once (the version and the write's position
  // are distances from it, a byte each), one write (wall time 8 bytes),
  // a byte per field (its name id) and no listed field.
  EXPECT_LE(bytes.size(), 22u + 21u + 1u) << bytes.size();
  RecordState back;
  ASSERT_TRUE(DecodeRecordState(bytes, store_->names(), &back).ok());
  ASSERT_EQ(back.fields.size(), s.fields.size());
  for (size_t i = 0; i < s.fields.size(); ++i) {
    EXPECT_EQ(back.fields[i].second.SerializeAsString(), s.fields[i].second.SerializeAsString());
  }
  // One field written again later: the second write (its position and
  // wall time as distances from the first's) and that field alone listed.
  v1::FieldState& edited = s.Upsert("field_105");
  edited.set_version(300009);
  edited.mutable_hlc()->set_wall_micros(1795000000999999);  // 0.88 s later
  const std::string mixed = EncodeRecordState(s, store_->names(), &batch);
  EXPECT_LE(mixed.size(), bytes.size() + 6u + 2u) << mixed.size();
  ASSERT_TRUE(DecodeRecordState(mixed, store_->names(), &back).ok());
  EXPECT_EQ(back.Find("field_105")->version(), 300009u);
  EXPECT_EQ(back.Find("field_105")->hlc().wall_micros(), 1795000000999999);
  EXPECT_EQ(back.Find("field_104")->version(), 300007u);
  EXPECT_EQ(back.Find("field_120")->version(), 300007u);
  // A listed field past the last name, or listed without a difference, is
  // damage.
  std::string past = mixed;
  past[past.size() - 2] = 21;  // the listed field's distance
  EXPECT_TRUE(absl::IsDataLoss(DecodeRecordState(past, store_->names(), &back)));
  std::string plain = mixed;
  plain[plain.size() - 1] = 0;  // its write index and flags
  EXPECT_TRUE(absl::IsDataLoss(DecodeRecordState(plain, store_->names(), &back)));
}

TEST_F(LayoutCodecTest, TruncatedOrTamperedRecordStateIsDataLossNeverACrash) {
  storage::WriteBatch batch;
  const std::string bytes = EncodeRecordState(FullState(), store_->names(), &batch);
  ASSERT_TRUE(store_->Commit(&batch).ok());
  RecordState out;
  for (size_t n = 0; n < bytes.size(); ++n) {
    absl::Status s = DecodeRecordState(bytes.substr(0, n), store_->names(), &out);
    EXPECT_TRUE(absl::IsDataLoss(s)) << "prefix of " << n << " bytes: " << s;
  }
  EXPECT_TRUE(absl::IsDataLoss(DecodeRecordState(bytes + "x", store_->names(), &out)));
  v1::RecordHeader v1_header;
  v1_header.set_record_type("service");
  EXPECT_TRUE(
      absl::IsDataLoss(DecodeRecordState(v1_header.SerializeAsString(), store_->names(), &out)));
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string t = bytes;
    t[i] = static_cast<char>(static_cast<uint8_t>(t[i]) ^ 0x81);
    absl::Status s = DecodeRecordState(t, store_->names(), &out);
    EXPECT_TRUE(s.ok() || absl::IsDataLoss(s)) << s;
  }
}

TEST_F(LayoutCodecTest, RecordStateOfTheFirstLayoutTwoReleaseStillDecodes) {
  // Two writes, so that the fields are written out: then each field's
  // write index and flags were two varints, with no header flag saying so.
  storage::WriteBatch batch;
  const uint32_t type = store_->names().Intern(NameKind::kRecordType, "registration", &batch);
  const uint32_t writer = store_->names().Intern(NameKind::kWriter, "dev-a", &batch);
  const uint32_t a = store_->names().Intern(NameKind::kField, "a", &batch);
  const uint32_t b = store_->names().Intern(NameKind::kField, "b", &batch);
  ASSERT_TRUE(store_->Commit(&batch).ok());
  std::string old;
  ByteWriter w(&old);
  w.U8(kRecordStateFormat2);
  for (uint64_t v : {uint64_t{type}, uint64_t{5}, uint64_t{9}, uint64_t{0}, uint64_t{0}}) {
    w.Varint(v);
  }
  w.Varint(2);  // writes: positions 5 and 9
  for (uint64_t delta : {5, 4}) {
    w.Varint(delta);
    w.Varint(writer);
    w.Signed(1795000000000000);
    w.Varint(0);
  }
  w.Varint(0);  // marks
  w.Varint(2);  // fields: a by write 0, b by write 1
  w.Varint(a);
  w.Varint(0);
  w.Varint(0);
  w.Varint(b);
  w.Varint(1);
  w.Varint(0);
  RecordState out;
  ASSERT_TRUE(DecodeRecordState(old, store_->names(), &out).ok());
  ASSERT_EQ(out.fields.size(), 2u);
  EXPECT_EQ(out.Find("a")->version(), 5u);
  EXPECT_EQ(out.Find("b")->version(), 9u);
  EXPECT_EQ(out.Find("b")->writer(), "dev-a");
  // Written again, it takes format 3 and reads back the same.
  const std::string packed = EncodeRecordState(out, store_->names(), &batch);
  EXPECT_EQ(static_cast<uint8_t>(packed[0]), kRecordStateFormat);
  EXPECT_LT(packed.size(), old.size());
  RecordState back;
  ASSERT_TRUE(DecodeRecordState(packed, store_->names(), &back).ok());
  EXPECT_EQ(back.Find("a")->SerializeAsString(), out.Find("a")->SerializeAsString());
  EXPECT_EQ(back.Find("b")->SerializeAsString(), out.Find("b")->SerializeAsString());
}

TEST_F(LayoutCodecTest, CreatedPositionReadsAloneAndRefusesATruncatedHeader) {
  RecordState s = FullState();
  s.header.set_created_position(300000);  // a varint of three bytes
  storage::WriteBatch batch;
  const std::string bytes = EncodeRecordState(s, store_->names(), &batch);
  EXPECT_THAT(DecodeRecordCreatedPosition(bytes), ::fieldsync::testing::IsOkAndHolds(300000u));
  // The format byte, the type id, then the position: any shorter prefix
  // does not hold it.
  size_t header = 0;
  for (size_t n = 0; n <= bytes.size(); ++n) {
    if (DecodeRecordCreatedPosition(bytes.substr(0, n)).ok()) {
      header = n;
      break;
    }
    EXPECT_TRUE(absl::IsDataLoss(DecodeRecordCreatedPosition(bytes.substr(0, n)).status())) << n;
  }
  EXPECT_EQ(header, 1u + 1u + 3u);
  std::string other = bytes;
  other[0] = 9;  // an unknown format
  EXPECT_TRUE(absl::IsDataLoss(DecodeRecordCreatedPosition(other).status()));
}

}  // namespace
}  // namespace fieldsync::sync
