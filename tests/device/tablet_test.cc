// device/tablet.h: a tablet journals changes with the base versions it last
// saw, seals them as numbered batches the server opens, learns new versions
// from push answers and pulls, and keeps its HLC monotonic.
#include "device/tablet.h"

#include "absl/time/time.h"
#include "common/uuid.h"
#include "crypto/bytes.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/sealed_batch.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::device {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;

constexpr char kDevice[] = "11111111-2222-4333-8444-555555555555";
constexpr char kCase[] = "ca000000-0000-4000-8000-000000000001";

v1::FieldValue Enum(const std::string& s) {
  v1::FieldValue v;
  v.set_enum_value(s);
  return v;
}

class TabletTest : public ::testing::Test {
 protected:
  void SetUp() override {
    v1::EnrollResponse enrolment;
    enrolment.set_device_id(kDevice);
    enrolment.set_officer_id("officer1");
    enrolment.set_next_sequence(1);
    v1::SealingKey* old_key = enrolment.add_sealing_keys();
    old_key->set_key_id(1);
    old_key->set_public_key(crypto::ToString(crypto::GenerateX25519(random_).public_key));
    v1::SealingKey* current = enrolment.add_sealing_keys();
    current->set_key_id(2);
    current->set_public_key(crypto::ToString(server_pair_.public_key));
    absl::StatusOr<Tablet> t =
        Tablet::Create(enrolment, *crypto::Ed25519Signer::Create(signing_.seed.span()),
                       *crypto::X25519PrivateKey::Create(receiving_.private_key.span()));
    ASSERT_THAT(t, IsOk());
    tablet_ = std::make_unique<Tablet>(*std::move(t));
  }

  std::string NewId() { return FormatUuid(NewUuid(random_)); }

  absl::StatusOr<server::OpenedBatch> OpenOnServer(const v1::SealedBatch& sealed) {
    server::PushKeys keys;
    keys.device_id = kDevice;
    keys.signing_public_key = crypto::AsStringView(signing_.public_key);
    keys.sealing_keys = server_keys_.get();
    keys.now = now_;
    return server::OpenSealedBatch(sealed, sealed.ByteSizeLong(), keys, server::BatchLimits{});
  }

  fieldsync::testing::SeededRandom random_{99};
  crypto::X25519KeyPair server_pair_ = crypto::GenerateX25519(random_);
  std::shared_ptr<const admin::SealingKeySet> server_keys_ =
      *admin::SealingKeySet::Single(2, server_pair_.private_key.span());
  crypto::Ed25519KeyPair signing_ = crypto::GenerateEd25519(random_);
  crypto::X25519KeyPair receiving_ = crypto::GenerateX25519(random_);
  std::unique_ptr<Tablet> tablet_;
  absl::Time now_ = absl::FromUnixSeconds(1790000000);
};

TEST_F(TabletTest, NeverSealsAnEmptyBatchNorUsesASequenceForIt) {
  EXPECT_THAT(tablet_->SealNext(10, NewUuid(random_), random_),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  tablet_->Upsert(NewId(), kCase, kCase, "case_registration", {{"priority", Enum("high")}}, now_);
  EXPECT_THAT(tablet_->SealNext(0, NewUuid(random_), random_),
              StatusIs(absl::StatusCode::kFailedPrecondition));

  EXPECT_EQ(tablet_->next_sequence(), 1u);
}

TEST_F(TabletTest, SealsJournalledChangesToTheNewestKeyAsNumberedBatches) {
  tablet_->Upsert(NewId(), kCase, kCase, "case_registration", {{"priority", Enum("high")}}, now_);
  tablet_->Upsert(NewId(), kCase, kCase, "case_registration", {{"priority", Enum("low")}}, now_);

  absl::StatusOr<v1::SealedBatch> sealed = tablet_->SealNext(10, NewUuid(random_), random_);

  ASSERT_THAT(sealed, IsOk());
  EXPECT_EQ(sealed->header().sequence(), 1u);
  EXPECT_EQ(sealed->header().sealing_key_id(), 2u);
  EXPECT_EQ(tablet_->next_sequence(), 2u);
  EXPECT_EQ(tablet_->pending(), 0u);
  absl::StatusOr<server::OpenedBatch> opened = OpenOnServer(*sealed);
  ASSERT_THAT(opened, IsOk());
  EXPECT_EQ(opened->payload->changes_size(), 2);
}

// After a rotation the server holds key 2 until a cutoff and key 3, new.
TEST_F(TabletTest, BatchInFlightIsResealedToTheNewKeyWithItsIdSequenceAndChanges) {
  tablet_->Upsert(NewId(), kCase, kCase, "case_registration", {{"priority", Enum("high")}}, now_);
  absl::StatusOr<v1::SealedBatch> first = tablet_->SealNext(10, NewUuid(random_), random_);
  ASSERT_THAT(first, IsOk());
  ASSERT_EQ(first->header().sealing_key_id(), 2u);
  crypto::X25519KeyPair new_pair = crypto::GenerateX25519(random_);
  std::vector<admin::SealingKeyPair> server(2);
  server[0].key_id = 2;
  server[0].private_key = server_pair_.private_key.Clone();
  server[0].public_key = server_pair_.public_key;
  server[0].not_after = now_;
  server[1].key_id = 3;
  server[1].private_key = new_pair.private_key.Clone();
  server[1].public_key = new_pair.public_key;
  server_keys_ = *admin::SealingKeySet::Prepare(server);
  now_ += absl::Seconds(1);  // past key 2's cutoff
  ASSERT_THAT(OpenOnServer(*first),
              StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::HasSubstr("retired")));
  google::protobuf::RepeatedPtrField<v1::SealingKey> keys;
  v1::SealingKey* k = keys.Add();
  k->set_key_id(3);
  k->set_public_key(crypto::ToString(new_pair.public_key));

  ASSERT_THAT(tablet_->UpdateSealingKeys(keys), IsOk());
  absl::StatusOr<v1::SealedBatch> resealed = tablet_->ResealInFlight(random_);

  ASSERT_THAT(resealed, IsOk());
  EXPECT_EQ(tablet_->sealing_key_id(), 3u);
  EXPECT_EQ(resealed->header().sealing_key_id(), 3u);
  EXPECT_EQ(resealed->header().batch_id(), first->header().batch_id());
  EXPECT_EQ(resealed->header().sequence(), first->header().sequence());
  EXPECT_EQ(tablet_->next_sequence(), 2u) << "a reseal uses no new sequence number";
  absl::StatusOr<server::OpenedBatch> opened = OpenOnServer(*resealed);
  ASSERT_THAT(opened, IsOk());
  EXPECT_EQ(opened->payload->changes_size(), 1);
  EXPECT_EQ(opened->payload->changes(0).fields(0).value().enum_value(), "high");
}

TEST_F(TabletTest, NoBatchInFlightHasNothingToReseal) {
  EXPECT_THAT(tablet_->ResealInFlight(random_), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(TabletTest, EmptyOrMalformedKeyListIsRefusedAndTheKeyStays) {
  google::protobuf::RepeatedPtrField<v1::SealingKey> keys;
  EXPECT_THAT(tablet_->UpdateSealingKeys(keys), StatusIs(absl::StatusCode::kInvalidArgument));
  v1::SealingKey* k = keys.Add();
  k->set_key_id(9);
  k->set_public_key("short");
  EXPECT_THAT(tablet_->UpdateSealingKeys(keys), StatusIs(absl::StatusCode::kInvalidArgument));

  EXPECT_EQ(tablet_->sealing_key_id(), 2u);
}

TEST_F(TabletTest, SecondBatchWaitsForTheAnswerToTheFirst) {
  tablet_->Upsert(NewId(), kCase, kCase, "case_registration", {{"priority", Enum("high")}}, now_);
  tablet_->Upsert(NewId(), kCase, kCase, "case_registration", {{"priority", Enum("low")}}, now_);
  ASSERT_THAT(tablet_->SealNext(1, NewUuid(random_), random_), IsOk());

  EXPECT_THAT(tablet_->SealNext(1, NewUuid(random_), random_),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(tablet_->pending(), 1u);
}

TEST_F(TabletTest, AnsweredVersionsBecomeTheNextBaseVersions) {
  std::string change_id = NewId();
  tablet_->Upsert(change_id, kCase, kCase, "case_registration", {{"priority", Enum("high")}}, now_);
  absl::StatusOr<v1::SealedBatch> sealed = tablet_->SealNext(10, NewUuid(random_), random_);
  ASSERT_THAT(sealed, IsOk());
  v1::PushResponse answer;
  answer.set_batch_id(sealed->header().batch_id());
  answer.set_next_sequence(2);
  v1::ChangeResult* r = answer.add_results();
  r->set_change_id(change_id);
  r->set_outcome(v1::CHANGE_OUTCOME_APPLIED);
  v1::FieldResult* f = r->add_fields();
  f->set_field("priority");
  f->set_version(41);
  ASSERT_THAT(tablet_->Acknowledge(answer), IsOk());

  const v1::RecordChange& next = tablet_->Upsert(NewId(), kCase, kCase, "case_registration",
                                                 {{"priority", Enum("low")}}, now_);

  EXPECT_EQ(next.fields(0).base_version(), 41u);
}

TEST_F(TabletTest, AnswerForAnotherBatchIsRefused) {
  tablet_->Upsert(NewId(), kCase, kCase, "case_registration", {{"priority", Enum("high")}}, now_);
  ASSERT_THAT(tablet_->SealNext(10, NewUuid(random_), random_), IsOk());
  v1::PushResponse answer;
  answer.set_batch_id(NewId());

  EXPECT_THAT(tablet_->Acknowledge(answer), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(TabletTest, PulledChangesTeachVersionsRecordsAndClock) {
  v1::PulledChanges changes;
  v1::PulledChange* c = changes.add_changes();
  c->set_position(3);
  c->set_case_id(kCase);
  c->set_record_id(kCase);
  c->set_record_type("case_registration");
  c->mutable_hlc()->set_wall_micros(absl::ToUnixMicros(now_ + absl::Hours(1)));
  v1::PulledField* f = c->add_fields();
  f->set_field("priority");
  f->set_version(3);
  changes.set_next_cursor(3);
  changes.set_caught_up(true);
  absl::StatusOr<v1::PullChunk> chunk = protocol::SealPullChunk(
      changes, *ParseUuid(kDevice), 0, crypto::AsStringView(receiving_.public_key), random_);
  ASSERT_THAT(chunk, IsOk());

  ASSERT_THAT(tablet_->TakePullChunk(*chunk), IsOk());

  EXPECT_TRUE(tablet_->Knows(kCase));
  EXPECT_EQ(tablet_->BaseVersion(kCase, "priority"), 3u);
  EXPECT_EQ(tablet_->cursor(), 3u);
  v1::Hlc after = tablet_->Tick(now_);
  EXPECT_EQ(after.wall_micros(), absl::ToUnixMicros(now_ + absl::Hours(1)));
  EXPECT_EQ(after.logical(), 1u);
  EXPECT_THAT(tablet_->TakePullChunk(*chunk), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(TabletTest, ClockNeverGoesBackwards) {
  v1::Hlc first = tablet_->Tick(now_);
  v1::Hlc earlier = tablet_->Tick(now_ - absl::Seconds(5));
  v1::Hlc later = tablet_->Tick(now_ + absl::Seconds(1));

  EXPECT_EQ(earlier.wall_micros(), first.wall_micros());
  EXPECT_EQ(earlier.logical(), first.logical() + 1);
  EXPECT_EQ(later.wall_micros(), absl::ToUnixMicros(now_ + absl::Seconds(1)));
  EXPECT_EQ(later.logical(), 0u);
}

}  // namespace
}  // namespace fieldsync::device
