#include "protocol/events.h"

#include <set>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/audit/audit_test_util.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::protocol {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using ::testing::HasSubstr;

const absl::Time kT = absl::FromUnixMicros(1795000000123456);

std::vector<Event> OneOfEach() {
  std::vector<Event> v = audit::testing::MixedEvents(8, 2);
  StaffAdded s{"alice-1", 4, {"north", "south"}, "0ff1ce", "fieldsync://staff/admin"};
  v.push_back(Event{kT, s});
  v.push_back(
      Event{kT, PrincipalRevoked{PrincipalKind::kStaff, "alice-1", "fieldsync://staff/admin"}});
  v.push_back(
      Event{kT, KeyRotated{"fieldsync://staff/admin", "hpke-sealing", 1, 2, std::string(32, 'k')}});
  v.push_back(Event{kT, CaseErased{"fieldsync://staff/admin", Uuid{9, 9, 9}}});
  v.push_back(Event{kT, AdminAction{"fieldsync://staff/admin", "backup.create", {"b-1"}}});
  v.push_back(
      Event{kT, CaseAccess{PrincipalKind::kStaff, "sup1", AccessKind::kConflictList, 0, 0, {}}});
  std::array<uint8_t, 32> root;
  root.fill(0x5a);
  v.push_back(
      Event{kT, RollbackAccepted{"local-operator:uid=0", 12, root, {"note a\n", "note b\n"}}});
  v.push_back(Event{kT, EnrolmentFailures{kT - absl::Minutes(1), kT, 42, 3, 1, 7}});
  return v;
}

TEST(EventsTest, EveryKindRoundTrips) {
  std::set<EventKind> kinds;
  for (const Event& e : OneOfEach()) {
    absl::StatusOr<std::string> bytes = EncodeEvent(e);
    ASSERT_THAT(bytes, IsOk());
    absl::StatusOr<Event> back = DecodeEvent(*bytes);
    ASSERT_THAT(back, IsOk());
    EXPECT_EQ(*back, e);
    kinds.insert(KindOf(e));
  }
  EXPECT_EQ(kinds.size(), 11u);
}

TEST(EventsTest, EncodingIsTheDocumentedLayout) {
  Event e{kT, CaseErased{"ab", Uuid{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}}};
  absl::StatusOr<std::string> bytes = EncodeEvent(e);
  ASSERT_THAT(bytes, IsOk());
  EXPECT_EQ(absl::BytesToHexString(*bytes),
            // "fieldsync/audit-event/v1" 00 | kind 08 | time | Bytes "ab" | Uuid
            absl::BytesToHexString("fieldsync/audit-event/v1") + "00" + "08" + "0006608b01611240" +
                "000000026162" + "0102030405060708090a0b0c0d0e0f10");
}

TEST(EventsTest, RollbackAcceptedIsTheDocumentedLayout) {
  std::array<uint8_t, 32> root;
  root.fill(0xab);
  Event e{kT, RollbackAccepted{"op", 3, root, {"n"}}};
  absl::StatusOr<std::string> bytes = EncodeEvent(e);
  ASSERT_THAT(bytes, IsOk());
  EXPECT_EQ(absl::BytesToHexString(*bytes),
            // domain 00 | kind 0a | time | Bytes "op" | U64 3 | Fixed32 root |
            // list of 1: Bytes "n"
            absl::BytesToHexString("fieldsync/audit-event/v1") + "00" + "0a" + "0006608b01611240" +
                "00000002" + "6f70" + "0000000000000003" +
                absl::BytesToHexString(std::string(32, '\xab')) + "00000001" + "00000001" + "6e");
  EXPECT_EQ(KindName(EventKind::kRollbackAccepted), "rollback-accepted");
}

TEST(EventsTest, EnrolmentFailuresIsTheDocumentedLayout) {
  Event e{kT, EnrolmentFailures{absl::FromUnixMicros(1), absl::FromUnixMicros(2), 3, 4, 5, 6}};
  absl::StatusOr<std::string> bytes = EncodeEvent(e);
  ASSERT_THAT(bytes, IsOk());
  EXPECT_EQ(absl::BytesToHexString(*bytes),
            // domain 00 | kind 0b | time | U64 window_start | U64 window_end |
            // U64 failed | U64 distinct_addresses | U64 lockouts | U64 refused
            absl::BytesToHexString("fieldsync/audit-event/v1") + "00" + "0b" + "0006608b01611240" +
                "0000000000000001" + "0000000000000002" + "0000000000000003" + "0000000000000004" +
                "0000000000000005" + "0000000000000006");
  EXPECT_EQ(KindName(EventKind::kEnrolmentFailures), "enrolment-failures");
}

TEST(EventsTest, EnrolmentFailuresWindowMustNotEndBeforeItStarts) {
  Event backwards{kT, EnrolmentFailures{kT, kT - absl::Seconds(1), 1, 1, 0, 0}};
  EXPECT_THAT(EncodeEvent(backwards), StatusIs(absl::StatusCode::kInvalidArgument));
  Event e{kT, EnrolmentFailures{absl::FromUnixMicros(1), absl::FromUnixMicros(2), 3, 4, 5, 6}};
  std::string bytes = *EncodeEvent(e);
  // window_start 3 > window_end 2.
  bytes[25 + 1 + 8 + 7] = 3;
  EXPECT_THAT(DecodeEvent(bytes),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ends before it starts")));
}

TEST(EventsTest, EveryTruncationAndTrailingByteIsInvalidArgument) {
  for (const Event& e : OneOfEach()) {
    std::string bytes = *EncodeEvent(e);
    for (size_t n = 0; n < bytes.size(); ++n) {
      EXPECT_THAT(DecodeEvent(bytes.substr(0, n)), StatusIs(absl::StatusCode::kInvalidArgument))
          << KindName(KindOf(e)) << " cut at " << n;
    }
    EXPECT_THAT(DecodeEvent(bytes + "x"), StatusIs(absl::StatusCode::kInvalidArgument));
  }
}

TEST(EventsTest, FlippedBytesGiveACleanErrorOrAnotherEvent) {
  for (const Event& e : OneOfEach()) {
    const std::string bytes = *EncodeEvent(e);
    for (size_t i = 0; i < bytes.size(); ++i) {
      std::string bad = bytes;
      bad[i] ^= 0x41;
      absl::StatusOr<Event> d = DecodeEvent(bad);
      if (d.ok()) {
        EXPECT_NE(*d, e) << "flip at " << i;
        EXPECT_EQ(*EncodeEvent(*d), bad) << "not canonical, flip at " << i;
      } else {
        EXPECT_THAT(d, StatusIs(absl::StatusCode::kInvalidArgument));
      }
    }
  }
}

TEST(EventsTest, UnknownKindIsRefused) {
  std::string bytes = *EncodeEvent(OneOfEach()[0]);
  bytes[25] = 10;
  EXPECT_THAT(DecodeEvent(bytes), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(EventsTest, TimeBefore1970IsRefused) {
  Event e{absl::FromUnixSeconds(-1), CaseErased{}};
  EXPECT_THAT(EncodeEvent(e), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(EventsTest, BatchSignatureVerifiesWithTheDeviceKeyOnly) {
  audit::testing::FakeDevice device(1), other(2);
  Event e = device.Batch(kT, 1, 2);
  const auto& batch = std::get<BatchAccepted>(e.body);
  EXPECT_THAT(VerifyBatchSignature(batch, device.public_key()), IsOk());
  EXPECT_THAT(VerifyBatchSignature(batch, other.public_key()),
              StatusIs(absl::StatusCode::kUnauthenticated));
  BatchAccepted changed = batch;
  changed.sequence++;
  EXPECT_THAT(VerifyBatchSignature(changed, device.public_key()),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST(EventsTest, BatchSignedMessageIsTheDocumentedLayout) {
  std::array<uint8_t, 32> h;
  h.fill(0xAB);
  std::string header(70, 'h');
  std::string m = BatchSignedMessage(header, 1, h);
  ASSERT_EQ(m.size(), 132u);
  EXPECT_EQ(m.substr(0, 29), std::string("fieldsync/batch-signature/v1\0", 29));
  EXPECT_EQ(m.substr(29, 70), header);
  EXPECT_EQ(m[99], '\x01');
  EXPECT_EQ(m.substr(100), std::string(32, '\xAB'));
}

}  // namespace
}  // namespace fieldsync::protocol
