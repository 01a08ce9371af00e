// The offline verifier against tampered exports: each kind of damage is
// detected and the first bad entry (or head) is named.
#include "audit/export.h"

#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "protocol/events.h"
#include "tests/audit/audit_test_util.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::audit {

using protocol::BatchAccepted;
using protocol::Checkpoint;
using protocol::DecodeEvent;
using protocol::EmptyRoot;
using protocol::EncodeEvent;
using protocol::Event;
using protocol::EventKind;
using protocol::kAuditSigningPurpose;
using protocol::KeyRotated;
using protocol::KindOf;
using protocol::LeafHash;
using protocol::MemoryNodeSource;
using protocol::NoteSigner;
using protocol::NoteVerifier;
using protocol::RollbackAccepted;
using protocol::SignCheckpoint;
using protocol::SignCheckpointWithAll;
using protocol::TimestampExtension;

namespace {

using ::testing::HasSubstr;
using ::testing::Optional;

constexpr std::string_view kOrigin = "audit.test.example/log";

NoteSigner MakeSigner(uint8_t fill) {
  std::array<uint8_t, 32> seed;
  seed.fill(fill);
  return *NoteSigner::Create(kOrigin, seed);
}

std::string SignedHead(const NoteSigner& signer, const std::vector<std::string>& entries,
                       uint64_t size) {
  MemoryNodeSource mem;
  for (uint64_t i = 0; i < size; ++i) mem.AppendLeaf(LeafHash(entries[i]));
  Checkpoint cp{std::string(kOrigin),
                size,
                mem.Root(),
                {TimestampExtension(absl::FromUnixSeconds(1795000000))}};
  return *SignCheckpoint(cp, signer);
}

class ExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const Event& e : testing::MixedEvents(60)) entries_.push_back(*EncodeEvent(e));
    heads_ = {SignedHead(signer_, entries_, 30), SignedHead(signer_, entries_, 60)};
  }

  // An export of entries_ (as given) with `heads`, records kept apart so
  // that tests can damage them.
  std::vector<std::string> Records(const std::vector<std::string>& heads) const {
    std::vector<std::string> out;
    for (const std::string& h : heads) out.push_back(ExportHeadRecord(h));
    for (size_t i = 0; i < entries_.size(); ++i) out.push_back(ExportEntryRecord(i, entries_[i]));
    out.push_back(ExportEndRecord(entries_.size(), static_cast<uint32_t>(heads.size())));
    return out;
  }
  static std::string Join(const std::vector<std::string>& records) {
    std::string out(kExportMagic);
    for (const std::string& r : records) out += r;
    return out;
  }
  VerifyReport Verify(const std::string& file, std::optional<std::string> trusted = {}) const {
    std::istringstream in(file);
    VerifyOptions options;
    options.key = &signer_.verifier();
    options.trusted_head = std::move(trusted);
    return VerifyExport(in, options);
  }
  // The record index of entry i (after the heads).
  size_t EntryRecord(size_t i) const { return heads_.size() + i; }

  NoteSigner signer_ = MakeSigner(7);
  std::vector<std::string> entries_;
  std::vector<std::string> heads_;
};

TEST_F(ExportTest, AnIntactExportVerifies) {
  VerifyReport r = Verify(Join(Records(heads_)));
  EXPECT_TRUE(r.ok) << r.bad_record << ": " << r.error;
  EXPECT_EQ(r.entries, 60u);
  EXPECT_EQ(r.heads, 2u);
  EXPECT_EQ(r.devices, 4u);
  EXPECT_EQ(r.device_signatures, 28u);
  ASSERT_TRUE(r.latest_head.has_value());
  EXPECT_EQ(r.latest_head->size, 60u);
  EXPECT_EQ(r.unsigned_tail, 0u);
}

TEST_F(ExportTest, AChangedByteInAnyEntryNamesThatEntry) {
  const std::vector<std::string> records = Records(heads_);
  for (size_t i = 0; i < entries_.size(); ++i) {
    for (size_t offset :
         {size_t{5}, size_t{5 + 8 + 3}, size_t{5 + 40 + 30}, records[EntryRecord(i)].size() - 1}) {
      std::vector<std::string> damaged = records;
      damaged[EntryRecord(i)][offset] ^= 0x01;
      VerifyReport r = Verify(Join(damaged));
      EXPECT_FALSE(r.ok);
      EXPECT_THAT(r.bad_entry, Optional(i)) << "offset " << offset << ": " << r.error;
    }
  }
}

TEST_F(ExportTest, EveryByteFlipOfOneEntryRecordIsDetected) {
  const std::vector<std::string> records = Records(heads_);
  const std::string& record = records[EntryRecord(9)];
  for (size_t offset = 0; offset < record.size(); ++offset) {
    std::vector<std::string> damaged = records;
    damaged[EntryRecord(9)][offset] ^= 0x80;
    VerifyReport r = Verify(Join(damaged));
    EXPECT_FALSE(r.ok) << "offset " << offset;
  }
}

TEST_F(ExportTest, ARecomputedForgeryIsCaughtByTheDeviceSignature) {
  // A forger who also fixes the recorded leaf hash: a batch's sequence
  // changed, so its device signature no longer verifies.
  Event e = *DecodeEvent(entries_[20]);
  ASSERT_EQ(KindOf(e), EventKind::kBatchAccepted);
  std::get<BatchAccepted>(e.body).outcomes.applied = 2;  // not signed: caught by the root
  entries_[20] = *EncodeEvent(e);
  VerifyReport r = Verify(Join(Records(heads_)));
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.bad_record, HasSubstr("tree head #1"));
  EXPECT_THAT(r.error, HasSubstr("0..29"));

  SetUp();
  e = *DecodeEvent(entries_[21]);
  std::get<BatchAccepted>(e.body).payload_sha256[0] ^= 1;  // signed: named
  entries_[21] = *EncodeEvent(e);
  r = Verify(Join(Records(heads_)));
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.bad_entry, Optional(21u));
  EXPECT_THAT(r.error, HasSubstr("device signature"));
}

// Thousands of batches, so that signatures go through the worker queue in
// many chunks: every one is checked whatever the thread count, and with two
// bad signatures far apart the first is named (the heads are re-signed over
// the altered entries, so only the device signatures can catch them).
TEST(ExportSignatureTest, ManyBatchesOnAnyThreadCountNameTheFirstBadSignature) {
  NoteSigner signer = MakeSigner(9);
  std::vector<std::string> entries;
  uint64_t batches = 0;
  std::vector<size_t> batch_indexes;
  for (const Event& e : testing::MixedEvents(3000, 8)) {
    if (KindOf(e) == EventKind::kBatchAccepted) batch_indexes.push_back(entries.size());
    entries.push_back(*EncodeEvent(e));
  }
  batches = batch_indexes.size();
  ASSERT_GT(batches, 4 * 256u);
  auto file_of = [&](const std::vector<std::string>& es) {
    std::string file(kExportMagic);
    file += ExportHeadRecord(SignedHead(signer, es, es.size()));
    for (size_t i = 0; i < es.size(); ++i) file += ExportEntryRecord(i, es[i]);
    file += ExportEndRecord(es.size(), 1);
    return file;
  };
  auto verify = [&](const std::string& file, int threads) {
    std::istringstream in(file);
    VerifyOptions options;
    options.key = &signer.verifier();
    options.threads = threads;
    return VerifyExport(in, options);
  };
  const std::string intact = file_of(entries);
  std::vector<std::string> damaged_entries = entries;
  const size_t first_bad = batch_indexes[batches / 3];
  const size_t second_bad = batch_indexes[batches * 2 / 3];
  for (size_t i : {second_bad, first_bad}) {
    Event e = *DecodeEvent(damaged_entries[i]);
    std::get<BatchAccepted>(e.body).signature[5] ^= 1;
    damaged_entries[i] = *EncodeEvent(e);
  }
  const std::string damaged = file_of(damaged_entries);
  for (int threads : {1, 2, 4}) {
    VerifyReport r = verify(intact, threads);
    EXPECT_TRUE(r.ok) << threads << ": " << r.bad_record << ": " << r.error;
    EXPECT_EQ(r.device_signatures, batches) << threads;
    r = verify(damaged, threads);
    EXPECT_FALSE(r.ok) << threads;
    EXPECT_THAT(r.bad_entry, Optional(first_bad)) << threads << ": " << r.error;
    EXPECT_THAT(r.error, HasSubstr("device signature")) << threads;
  }
}

TEST_F(ExportTest, ADroppedEntryIsNamed) {
  for (size_t i : {0, 17, 59}) {
    std::vector<std::string> damaged = Records(heads_);
    damaged.erase(damaged.begin() + EntryRecord(i));
    VerifyReport r = Verify(Join(damaged));
    EXPECT_FALSE(r.ok);
    EXPECT_THAT(r.bad_entry, Optional(i)) << r.error;
  }
}

TEST_F(ExportTest, TwoSwappedEntriesAreNamed) {
  std::vector<std::string> damaged = Records(heads_);
  std::swap(damaged[EntryRecord(12)], damaged[EntryRecord(13)]);
  VerifyReport r = Verify(Join(damaged));
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.bad_entry, Optional(12u));
  EXPECT_THAT(r.error, HasSubstr("reordered"));

  // Swapped and renumbered (indexes and leaf hashes rewritten): the batch
  // sequence of the device gives it away.
  std::swap(entries_[4], entries_[8]);  // two batches of device 1
  r = Verify(Join(Records(heads_)));
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.bad_entry, Optional(4u)) << r.error;
}

TEST_F(ExportTest, ATruncatedFileIsDetectedWherePossibleNamingTheEntry) {
  const std::string file = Join(Records(heads_));
  for (size_t cut = 0; cut < file.size(); cut += 7) {
    VerifyReport r = Verify(file.substr(0, cut));
    EXPECT_FALSE(r.ok) << "cut at " << cut;
  }
  std::vector<std::string> records = Records(heads_);
  records.resize(EntryRecord(45));  // entries 0..44, no end record
  VerifyReport r = Verify(Join(records));
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.bad_entry, Optional(45u));
  EXPECT_THAT(r.error, HasSubstr("truncated"));
}

TEST_F(ExportTest, AHeadFromAnotherKeyIsRefused) {
  NoteSigner other = MakeSigner(8);
  VerifyReport r = Verify(Join(Records({heads_[0], SignedHead(other, entries_, 60)})));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.bad_record, "tree head #2");
  EXPECT_THAT(r.error, HasSubstr("not signed by the key in your key file"));
}

TEST_F(ExportTest, AForkedLogIsDetected) {
  std::vector<std::string> forked = entries_;
  Event e = *DecodeEvent(forked[25]);
  e.time += absl::Seconds(1);
  forked[25] = *EncodeEvent(e);
  VerifyReport r = Verify(Join(Records({heads_[1], SignedHead(signer_, forked, 60)})));
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.bad_record, HasSubstr("size 60"));
  EXPECT_THAT(r.error, HasSubstr("forked"));
}

TEST_F(ExportTest, ConsistencyWithATrustedHead) {
  VerifyReport ok = Verify(Join(Records(heads_)), SignedHead(signer_, entries_, 17));
  EXPECT_TRUE(ok.ok) << ok.error;
  EXPECT_TRUE(ok.trusted_head_checked);

  // The auditor's saved head was of a log that differed at entry 10.
  std::vector<std::string> earlier = entries_;
  Event e = *DecodeEvent(earlier[10]);
  e.time += absl::Seconds(1);
  earlier[10] = *EncodeEvent(e);
  VerifyReport rewritten = Verify(Join(Records(heads_)), SignedHead(signer_, earlier, 17));
  EXPECT_FALSE(rewritten.ok);
  EXPECT_THAT(rewritten.error, HasSubstr("does not extend your saved head"));

  // The saved head is longer than the export: the log was rolled back.
  std::vector<std::string> longer = entries_;
  longer.push_back(entries_[0]);
  VerifyReport rolled = Verify(Join(Records(heads_)), SignedHead(signer_, longer, 61));
  EXPECT_FALSE(rolled.ok);
  EXPECT_THAT(rolled.error, HasSubstr("rolled back"));

  VerifyReport foreign = Verify(Join(Records(heads_)), SignedHead(MakeSigner(3), entries_, 17));
  EXPECT_FALSE(foreign.ok);
  EXPECT_EQ(foreign.bad_record, "trusted head");
}

TEST_F(ExportTest, EntriesAfterTheLastHeadAreReportedUnsigned) {
  VerifyReport r = Verify(Join(Records({heads_[0]})));
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.unsigned_tail, 30u);
}

TEST_F(ExportTest, AnExportWithoutAHeadFails) {
  VerifyReport r = Verify(Join(Records({})));
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("no signed tree head"));
}

// The log after an accepted rollback: entries 0..19 of entries_, then a
// RollbackAccepted abandoning the published head of size 30, then one
// more entry, under a head of size 22.
class RollbackExportTest : public ExportTest {
 protected:
  std::vector<std::string> Rolled(const RollbackAccepted& accepted) {
    std::vector<std::string> log(entries_.begin(), entries_.begin() + 20);
    log.push_back(*EncodeEvent(Event{absl::FromUnixSeconds(1795000100), accepted}));
    log.push_back(entries_[20]);
    return log;
  }
  RollbackAccepted Accepted() {
    MemoryNodeSource mem;
    for (int i = 0; i < 20; ++i) mem.AppendLeaf(LeafHash(entries_[i]));
    return RollbackAccepted{"local-operator:uid=0", 20, mem.Root(), {heads_[0]}};
  }
  std::string File(const std::vector<std::string>& log) {
    std::string out(kExportMagic);
    out += ExportHeadRecord(SignedHead(signer_, log, log.size()));
    for (size_t i = 0; i < log.size(); ++i) out += ExportEntryRecord(i, log[i]);
    out += ExportEndRecord(log.size(), 1);
    return out;
  }
};

TEST_F(RollbackExportTest, AnAcceptedRollbackIsReportedWithTheHeadsItAbandoned) {
  VerifyReport r = Verify(File(Rolled(Accepted())));

  ASSERT_TRUE(r.ok) << r.bad_record << ": " << r.error;
  EXPECT_EQ(r.events_by_kind["rollback-accepted"], 1u);
  ASSERT_EQ(r.rollbacks.size(), 1u);
  EXPECT_EQ(r.rollbacks[0].entry, 20u);
  EXPECT_EQ(r.rollbacks[0].continued_size, 20u);
  EXPECT_EQ(r.rollbacks[0].actor, "local-operator:uid=0");
  EXPECT_EQ(r.rollbacks[0].abandoned_sizes, std::vector<uint64_t>{30});
}

TEST_F(RollbackExportTest, AHeadSavedBeforeTheRollbackFailsNamingTheAcceptance) {
  VerifyReport r = Verify(File(Rolled(Accepted())), heads_[0]);

  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("accepted at entry 20"));
}

TEST_F(RollbackExportTest, AnAcceptanceClaimingAnotherTreeIsNamed) {
  RollbackAccepted wrong_size = Accepted();
  wrong_size.continued_size = 19;
  RollbackAccepted wrong_root = Accepted();
  wrong_root.continued_root[0] ^= 1;

  for (const RollbackAccepted& a : {wrong_size, wrong_root}) {
    VerifyReport r = Verify(File(Rolled(a)));
    EXPECT_FALSE(r.ok);
    EXPECT_THAT(r.bad_entry, Optional(20u)) << r.error;
  }
}

TEST_F(RollbackExportTest, AnAbandonedHeadNotSignedByTheLogIsNamed) {
  RollbackAccepted forged = Accepted();
  forged.abandoned_heads = {SignedHead(MakeSigner(9), entries_, 30)};

  VerifyReport r = Verify(File(Rolled(forged)));

  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.bad_entry, Optional(20u));
  EXPECT_THAT(r.error, HasSubstr("not signed by the key"));
}

}  // namespace
}  // namespace fieldsync::audit

namespace fieldsync::audit {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using ::testing::Not;

TEST_F(ExportTest, TheSavedHeadNoteIsTheLatestAndIsAcceptedAsTrustedHead) {
  VerifyReport first = Verify(Join(Records({heads_[0]})));
  ASSERT_TRUE(first.ok) << first.error;
  EXPECT_EQ(first.latest_head_note, heads_[0]);

  VerifyReport later = Verify(Join(Records(heads_)), first.latest_head_note);

  EXPECT_TRUE(later.ok) << later.error;
  EXPECT_TRUE(later.trusted_head_checked);
  EXPECT_EQ(later.latest_head_note, heads_[1]);
}

TEST_F(ExportTest, ThePrintedHeadLineIsAcceptedAsTrustedHead) {
  VerifyReport first = Verify(Join(Records({heads_[0]})));
  ASSERT_TRUE(first.ok) << first.error;
  const std::string line = FormatHeadLine(*first.latest_head);
  EXPECT_THAT(line, HasSubstr("latest head: audit.test.example/log, size 30, root "));

  for (const std::string& saved : {line, line + "\n", "  " + line + "\r\n",
                                   line.substr(std::string("latest head: ").size())}) {
    VerifyReport later = Verify(Join(Records(heads_)), saved);
    EXPECT_TRUE(later.ok) << saved << ": " << later.error;
    EXPECT_TRUE(later.trusted_head_checked) << saved;
  }
}

TEST_F(ExportTest, ATamperedSavedHeadIsRefused) {
  VerifyReport first = Verify(Join(Records({heads_[0]})));
  ASSERT_TRUE(first.ok) << first.error;
  const std::string line = FormatHeadLine(*first.latest_head);
  const std::string file = Join(Records(heads_));
  // Every byte of the signed note flipped in turn: refused, never a crash.
  for (size_t i = 0; i < first.latest_head_note.size(); ++i) {
    std::string note = first.latest_head_note;
    note[i] ^= 0x01;
    VerifyReport r = Verify(file, note);
    // A flip in the trailing newline's neighbourhood may leave an
    // equivalent note only if it does not change a byte: never.
    EXPECT_FALSE(r.ok) << "byte " << i;
  }
  // The printed line with another root, or a size beyond the log.
  std::string other_root = line;
  const size_t root_at = other_root.find("root ") + 5;
  other_root[root_at] = other_root[root_at] == 'B' ? 'C' : 'B';
  VerifyReport r = Verify(file, other_root);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.bad_record, "trusted head (size 30)");
  std::string bigger = line;
  bigger.replace(bigger.find("size 30"), 7, "size 99");
  r = Verify(file, bigger);
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("rolled back"));
}

TEST(TrustedHeadTest, MalformedAndForeignHeadsAreRefusedWithAReason) {
  NoteSigner signer = MakeSigner(3);
  const NoteVerifier& key = signer.verifier();
  const std::string root(44, 'A');
  EXPECT_THAT(ParseTrustedHead("", key), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseTrustedHead(" \n\t", key), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseTrustedHead("hello", key), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseTrustedHead("other.example/log, size 3, root " + root.substr(0, 43) + "=", key),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("other.example/log")));
  const std::string prefix = std::string(kOrigin);
  EXPECT_THAT(ParseTrustedHead(prefix + ", size -1, root " + root.substr(0, 43) + "=", key),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseTrustedHead(prefix + ", size 03, root " + root.substr(0, 43) + "=", key),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseTrustedHead(prefix + ", size 3, root AAAA", key),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseTrustedHead(prefix + ", size 3", key),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseTrustedHead(prefix + ", size 3, root " + root.substr(0, 43) + "=", key), IsOk());
  // Every truncation of a good line is refused or parses to a checkpoint
  // (never a crash).
  const std::string good = "latest head: " + prefix + ", size 3, root " + root.substr(0, 43) + "=";
  for (size_t n = 0; n < good.size(); ++n) (void)ParseTrustedHead(good.substr(0, n), key);
  // A note signed by another key.
  NoteSigner other = MakeSigner(4);
  Checkpoint cp{prefix, 0, EmptyRoot(), {}};
  EXPECT_THAT(ParseTrustedHead(*SignCheckpoint(cp, other), key), Not(IsOk()));
  EXPECT_THAT(ParseTrustedHead(*SignCheckpoint(cp, signer), key), IsOk());
}

// --- Audit key rotation (docs/AUDIT.md §9) ----------------------------------

// A log whose signing key K0 was rotated to K1 at entry 40: a head of size
// 30 by K0, the transition head of size 41 by K0 and K1, a head of size 61
// by K1.
class KeyRotationExportTest : public ExportTest {
 protected:
  static constexpr uint64_t kRotatedAt = 40;

  void SetUp() override {
    ExportTest::SetUp();
    log_.assign(entries_.begin(), entries_.begin() + kRotatedAt);
    log_.push_back(*EncodeEvent(Event{absl::FromUnixSeconds(1795000200), Rotation(k1_)}));
    log_.insert(log_.end(), entries_.begin() + kRotatedAt, entries_.end());
  }
  static KeyRotated Rotation(const NoteSigner& next, uint32_t from = 1, uint32_t to = 2) {
    const auto& pk = next.verifier().public_key();
    return KeyRotated{"fieldsync://staff/admin", std::string(kAuditSigningPurpose), from, to,
                      std::string(pk.begin(), pk.end())};
  }
  std::string Head(std::vector<const NoteSigner*> signers, uint64_t size) const {
    MemoryNodeSource mem;
    for (uint64_t i = 0; i < size; ++i) mem.AppendLeaf(LeafHash(log_[i]));
    Checkpoint cp{std::string(kOrigin),
                  size,
                  mem.Root(),
                  {TimestampExtension(absl::FromUnixSeconds(1795000300))}};
    return *SignCheckpointWithAll(cp, signers);
  }
  std::vector<std::string> GoodHeads() const {
    return {Head({&signer_}, 30), Head({&signer_, &k1_}, kRotatedAt + 1), Head({&k1_}, 61)};
  }
  std::vector<std::string> LogRecords(const std::vector<std::string>& heads) const {
    std::vector<std::string> out;
    for (const std::string& h : heads) out.push_back(ExportHeadRecord(h));
    for (size_t i = 0; i < log_.size(); ++i) out.push_back(ExportEntryRecord(i, log_[i]));
    out.push_back(ExportEndRecord(log_.size(), static_cast<uint32_t>(heads.size())));
    return out;
  }
  VerifyReport VerifyWith(const NoteSigner& key, const std::string& file,
                          std::optional<std::string> trusted = {}) const {
    std::istringstream in(file);
    VerifyOptions options;
    options.key = &key.verifier();
    options.trusted_head = std::move(trusted);
    return VerifyExport(in, options);
  }

  NoteSigner k1_ = MakeSigner(21);
  NoteSigner k2_ = MakeSigner(22);
  std::vector<std::string> log_;
};

TEST_F(KeyRotationExportTest, AnExportSpanningTheRotationVerifiesWithTheFirstKey) {
  VerifyReport r = VerifyWith(signer_, Join(LogRecords(GoodHeads())));
  ASSERT_TRUE(r.ok) << r.bad_record << ": " << r.error;
  EXPECT_EQ(r.entries, 61u);
  ASSERT_EQ(r.key_transitions.size(), 1u);
  EXPECT_EQ(r.key_transitions[0].entry, kRotatedAt);
  EXPECT_EQ(r.key_transitions[0].old_version, 1u);
  EXPECT_EQ(r.key_transitions[0].new_version, 2u);
  EXPECT_EQ(r.key_transitions[0].head_size, kRotatedAt + 1);
  EXPECT_TRUE(r.key_transitions[0].is_old_key_checked);
  EXPECT_EQ(r.key_transitions[0].new_key, k1_.verifier().VerifierKey());
  EXPECT_EQ(r.final_key, k1_.verifier().VerifierKey());
  EXPECT_EQ(r.unchecked_heads, 0u);
  EXPECT_EQ(r.latest_head->size, 61u);
}

TEST_F(KeyRotationExportTest, TheNewestKeyAloneChecksTheHeadsFromItsAnnouncement) {
  VerifyReport r = VerifyWith(k1_, Join(LogRecords(GoodHeads())));
  ASSERT_TRUE(r.ok) << r.bad_record << ": " << r.error;
  ASSERT_EQ(r.key_transitions.size(), 1u);
  EXPECT_FALSE(r.key_transitions[0].is_old_key_checked);
  EXPECT_EQ(r.unchecked_heads, 1u);  // the head of size 30, by K0
}

TEST_F(KeyRotationExportTest, TheNewestKeyAloneVerifiesAnExportOfTransitionHeadsOnly) {
  // As `fieldsync audit export` writes it: the transition heads, then the
  // latest head.
  VerifyReport r =
      VerifyWith(k1_, Join(LogRecords({Head({&signer_, &k1_}, kRotatedAt + 1), Head({&k1_}, 61)})));
  ASSERT_TRUE(r.ok) << r.bad_record << ": " << r.error;
  ASSERT_EQ(r.key_transitions.size(), 1u);
  EXPECT_EQ(r.unchecked_heads, 0u);
  VerifyReport first = VerifyWith(
      signer_, Join(LogRecords({Head({&signer_, &k1_}, kRotatedAt + 1), Head({&k1_}, 61)})));
  ASSERT_TRUE(first.ok) << first.bad_record << ": " << first.error;
  EXPECT_TRUE(first.key_transitions[0].is_old_key_checked);
}

TEST_F(KeyRotationExportTest, AnExportWithoutItsTransitionHeadIsAForgedTransition) {
  VerifyReport r = VerifyWith(signer_, Join(LogRecords({Head({&k1_}, 61)})));
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.bad_entry, Optional(kRotatedAt));
  EXPECT_THAT(r.error, HasSubstr("forged key transition"));
}

TEST_F(KeyRotationExportTest, ANewestKeyThatNoTransitionAnnouncesIsRefused) {
  VerifyReport r = VerifyWith(k2_, Join(LogRecords(GoodHeads())));
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("no key transition in the export announces that key"));
}

TEST_F(KeyRotationExportTest, ATransitionNotSignedByTheOldKeyIsRefused) {
  // Someone holding only a new key K1 announces it: the transition head
  // lacks K0's signature.
  VerifyReport r = VerifyWith(
      signer_,
      Join(LogRecords({Head({&signer_}, 30), Head({&k1_}, kRotatedAt + 1), Head({&k1_}, 61)})));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.bad_record, "tree head #2");
  EXPECT_THAT(r.bad_entry, Optional(kRotatedAt));
  EXPECT_THAT(r.error, HasSubstr("not covered by a head signed by the key in force before it"));
  EXPECT_THAT(r.error, HasSubstr("forged key transition"));
}

TEST_F(KeyRotationExportTest, ATransitionWhoseKeyDoesNotSignTheLogIsRefused) {
  // The transition announces K1, but the log goes on under K2.
  VerifyReport r = VerifyWith(
      signer_, Join(LogRecords({Head({&signer_}, 30), Head({&signer_, &k2_}, kRotatedAt + 1),
                                Head({&k2_}, 61)})));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.bad_record, "tree head #2");
  EXPECT_THAT(r.error, HasSubstr("not signed by the key that transition announces"));
}

TEST_F(KeyRotationExportTest, AHeadByAKeyNeverAnnouncedIsRefused) {
  VerifyReport r = VerifyWith(
      signer_, Join(LogRecords({Head({&signer_}, 30), Head({&signer_, &k1_}, kRotatedAt + 1),
                                Head({&k2_}, 61)})));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.bad_record, "tree head #3");
  EXPECT_THAT(r.error, HasSubstr("a key the log never announced"));
}

TEST_F(KeyRotationExportTest, AHeadByTheReplacedKeyAfterTheRotationIsRefused) {
  VerifyReport r = VerifyWith(
      signer_, Join(LogRecords({Head({&signer_}, 30), Head({&signer_, &k1_}, kRotatedAt + 1),
                                Head({&signer_}, 61)})));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.bad_record, "tree head #3");
  EXPECT_THAT(r.error, HasSubstr("replaced"));
}

TEST_F(KeyRotationExportTest, AHeadByTheNewKeyBeforeItsAnnouncementIsRefused) {
  VerifyReport r = VerifyWith(
      signer_, Join(LogRecords({Head({&k1_}, 30), Head({&signer_, &k1_}, kRotatedAt + 1)})));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.bad_record, "tree head #1");
  EXPECT_THAT(r.error, HasSubstr("not signed by the key in your key file"));
}

TEST_F(KeyRotationExportTest, ATransitionNoHeadCoversIsRefused) {
  VerifyReport r = VerifyWith(signer_, Join(LogRecords({Head({&signer_}, 30)})));
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.bad_entry, Optional(kRotatedAt));
  EXPECT_THAT(r.error, HasSubstr("covered by no head"));
}

TEST_F(KeyRotationExportTest, ASecondTransitionBeforeTheFirstIsCoveredIsRefused) {
  log_.insert(log_.begin() + kRotatedAt + 1,
              *EncodeEvent(Event{absl::FromUnixSeconds(1795000201), Rotation(k2_, 2, 3)}));
  VerifyReport r = VerifyWith(signer_, Join(LogRecords({Head({&signer_}, 30)})));
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.bad_entry, Optional(kRotatedAt + 1));
  EXPECT_THAT(r.error, HasSubstr("second key transition"));
}

TEST_F(KeyRotationExportTest, MalformedTransitionsAreRefused) {
  KeyRotated short_key = Rotation(k1_);
  short_key.new_public_key.pop_back();
  KeyRotated backwards = Rotation(k1_, 2, 1);
  KeyRotated same_key = Rotation(signer_);
  for (const KeyRotated& bad : {short_key, backwards, same_key}) {
    log_[kRotatedAt] = *EncodeEvent(Event{absl::FromUnixSeconds(1795000200), bad});
    VerifyReport r = VerifyWith(signer_, Join(LogRecords({Head({&signer_}, 30)})));
    EXPECT_FALSE(r.ok);
    EXPECT_THAT(r.bad_entry, Optional(kRotatedAt)) << r.error;
    EXPECT_THAT(r.error, HasSubstr("malformed key transition"));
  }
}

TEST_F(KeyRotationExportTest, EveryByteFlipOfTheTransitionRecordIsRefused) {
  const std::vector<std::string> records = LogRecords(GoodHeads());
  const size_t at = GoodHeads().size() + kRotatedAt;
  for (size_t offset = 0; offset < records[at].size(); ++offset) {
    std::vector<std::string> damaged = records;
    damaged[at][offset] ^= 0x04;
    VerifyReport r = VerifyWith(signer_, Join(damaged));
    EXPECT_FALSE(r.ok) << "offset " << offset;
  }
  // A transition entry re-hashed by a forger (a new key of their own):
  // the root no longer matches the heads.
  log_[kRotatedAt] = *EncodeEvent(Event{absl::FromUnixSeconds(1795000200), Rotation(k2_)});
  VerifyReport r = VerifyWith(signer_, Join(LogRecords(GoodHeads())));
  EXPECT_FALSE(r.ok);
}

TEST_F(KeyRotationExportTest, AnExportTruncatedInsideTheTransitionIsRefused) {
  const std::string file = Join(LogRecords(GoodHeads()));
  const std::vector<std::string> records = LogRecords(GoodHeads());
  size_t cut = kExportMagic.size();
  for (size_t i = 0; i < GoodHeads().size() + kRotatedAt; ++i) cut += records[i].size();
  for (size_t extra :
       {size_t{0}, size_t{3}, size_t{20}, records[GoodHeads().size() + kRotatedAt].size() - 1}) {
    VerifyReport r = VerifyWith(signer_, file.substr(0, cut + extra));
    EXPECT_FALSE(r.ok);
    EXPECT_THAT(r.error, HasSubstr("truncated")) << extra;
  }
}

TEST_F(KeyRotationExportTest, ASavedHeadSignedByTheNewKeyIsAcceptedWithTheFirstKey) {
  VerifyReport r = VerifyWith(signer_, Join(LogRecords(GoodHeads())), Head({&k1_}, 50));
  EXPECT_TRUE(r.ok) << r.bad_record << ": " << r.error;
  EXPECT_TRUE(r.trusted_head_checked);
  VerifyReport forged = VerifyWith(signer_, Join(LogRecords(GoodHeads())), Head({&k2_}, 50));
  EXPECT_FALSE(forged.ok);
  EXPECT_EQ(forged.bad_record, "trusted head");
}

}  // namespace
}  // namespace fieldsync::audit
