#include "storage/key_codec.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/column_families.h"
#include "storage/counter.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::storage {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::IsOkAndHolds;
using ::fieldsync::testing::SeededRandom;
using ::fieldsync::testing::StatusIs;
using ::testing::HasSubstr;

constexpr int kIterations = 2000;

// Strings over a tiny alphabet rich in the bytes the escaping cares about,
// so that equal prefixes, embedded 00 and FF, and prefix pairs are common.
std::string RandomString(SeededRandom& rng, size_t max_len = 6) {
  static constexpr char kAlphabet[] = {'\x00', '\x01', '\xFE', '\xFF', 'a', 'b'};
  std::string s(rng.Uniform(max_len + 1), '\0');
  for (char& c : s) c = kAlphabet[rng.Uniform(sizeof(kAlphabet))];
  return s;
}

int64_t RandomI64(SeededRandom& rng) {
  static constexpr int64_t kEdges[] = {std::numeric_limits<int64_t>::min(),
                                       std::numeric_limits<int64_t>::min() + 1,
                                       -256,
                                       -1,
                                       0,
                                       1,
                                       255,
                                       256,
                                       std::numeric_limits<int64_t>::max()};
  if (rng.Uniform(3) == 0) return kEdges[rng.Uniform(std::size(kEdges))];
  return static_cast<int64_t>(rng.Uniform(std::numeric_limits<uint64_t>::max()));
}

uint64_t RandomU64(SeededRandom& rng) {
  if (rng.Uniform(3) == 0) return rng.Uniform(4) * 255;  // collisions and byte edges
  return rng.Uniform(std::numeric_limits<uint64_t>::max());
}

template <typename T>
int Sign(const T& a, const T& b) {
  return a < b ? -1 : (b < a ? 1 : 0);
}

// Byte order of std::string (unsigned, as RocksDB's bytewise comparator).
int ByteSign(const std::string& a, const std::string& b) {
  const int c = a.compare(b);  // char_traits<char>::compare uses memcmp: unsigned
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

// Checks that `encode` maps tuple order to byte order over random pairs.
template <typename Gen, typename Encode>
void ExpectOrderPreserved(SeededRandom& rng, Gen gen, Encode encode) {
  for (int i = 0; i < kIterations; ++i) {
    auto a = gen(rng);
    auto b = gen(rng);
    ASSERT_EQ(ByteSign(encode(a), encode(b)), Sign(a, b))
        << "iteration " << i << " seed " << rng.seed();
  }
}

TEST(KeyCodecTest, StringEncodingIsEscapedAndTerminated) {
  std::string raw("a\0b", 3);
  EXPECT_EQ(KeyBuilder().String(raw).Finish(), std::string("a\x00\xff"
                                                           "b\x00\x01",
                                                           6));
  EXPECT_EQ(KeyBuilder().String("").Finish(), std::string("\x00\x01", 2));
}

TEST(KeyCodecTest, I64FlipsSignBitBigEndian) {
  EXPECT_EQ(KeyBuilder().I64(0).Finish(), std::string("\x80\0\0\0\0\0\0\0", 8));
  EXPECT_EQ(KeyBuilder().I64(-1).Finish(), std::string("\x7f\xff\xff\xff\xff\xff\xff\xff", 8));
  EXPECT_EQ(KeyBuilder().I64(std::numeric_limits<int64_t>::min()).Finish(), std::string(8, '\0'));
  EXPECT_EQ(KeyBuilder().U32(0x01020304).Finish(), "\x01\x02\x03\x04");
}

TEST(KeyCodecTest, CompositeKeysPreserveTupleOrder) {
  SeededRandom rng;
  using Tuple = std::tuple<uint8_t, std::string, int64_t, std::string, uint64_t>;
  ExpectOrderPreserved(
      rng,
      [](SeededRandom& r) {
        return Tuple(static_cast<uint8_t>(r.Uniform(3)), RandomString(r), RandomI64(r),
                     RandomString(r), RandomU64(r));
      },
      [](const Tuple& t) {
        return KeyBuilder()
            .U8(std::get<0>(t))
            .String(std::get<1>(t))
            .I64(std::get<2>(t))
            .String(std::get<3>(t))
            .U64(std::get<4>(t))
            .Finish();
      });
}

TEST(KeyCodecTest, CompositeKeysRoundTrip) {
  SeededRandom rng;
  for (int i = 0; i < kIterations; ++i) {
    const uint8_t u8 = static_cast<uint8_t>(rng.Uniform(256));
    const uint32_t u32 = static_cast<uint32_t>(rng.Uniform(1ull << 32));
    const int64_t i64 = RandomI64(rng);
    const std::string s = RandomString(rng, 20);
    std::array<uint8_t, 16> id;
    rng.Fill(id);
    const uint64_t u64 = RandomU64(rng);
    const std::string tail = RandomString(rng);
    const std::string key =
        KeyBuilder().U8(u8).U32(u32).I64(i64).String(s).Uuid(id).U64(u64).Bytes(tail).Finish();

    KeyReader r(key);
    EXPECT_THAT(r.U8(), IsOkAndHolds(u8));
    EXPECT_THAT(r.U32(), IsOkAndHolds(u32));
    EXPECT_THAT(r.I64(), IsOkAndHolds(i64));
    EXPECT_THAT(r.String(), IsOkAndHolds(s));
    EXPECT_THAT(r.Uuid(), IsOkAndHolds(id));
    EXPECT_THAT(r.U64(), IsOkAndHolds(u64));
    EXPECT_EQ(r.Rest(), tail);
    EXPECT_TRUE(r.AtEnd());
    ASSERT_FALSE(::testing::Test::HasFailure()) << "seed " << rng.seed();
  }
}

TEST(KeyCodecTest, NoEncodedStringIsAPrefixOfAnother) {
  SeededRandom rng;
  for (int i = 0; i < kIterations * 5; ++i) {
    const std::string a = RandomString(rng);
    const std::string b = RandomString(rng);
    if (a == b) continue;
    const std::string ea = KeyBuilder().String(a).Finish();
    const std::string eb = KeyBuilder().String(b).Finish();
    ASSERT_FALSE(eb.starts_with(ea)) << "seed " << rng.seed();
    ASSERT_FALSE(ea.starts_with(eb)) << "seed " << rng.seed();
  }
}

TEST(KeyCodecTest, PrincipalKeysPreserveOrderAndRoundTrip) {
  SeededRandom rng;
  using Tuple = std::tuple<uint8_t, std::string>;
  auto gen = [](SeededRandom& r) {
    constexpr uint8_t kKinds[] = {1, 2, 4};  // device, staff, officer
    return Tuple(kKinds[r.Uniform(3)], RandomString(r));
  };
  auto encode = [](const Tuple& t) {
    return EncodePrincipalKey(static_cast<PrincipalKind>(std::get<0>(t)), std::get<1>(t));
  };
  ExpectOrderPreserved(rng, gen, encode);
  for (int i = 0; i < kIterations; ++i) {
    Tuple t = gen(rng);
    EXPECT_THAT(
        DecodePrincipalKey(encode(t)),
        IsOkAndHolds(PrincipalKey{static_cast<PrincipalKind>(std::get<0>(t)), std::get<1>(t)}));
  }
}

TEST(KeyCodecTest, PrincipalKindPrefixBoundsExactlyThatKind) {
  const std::string prefix = PrincipalKindPrefix(PrincipalKind::kDevice);
  const std::string upper = PrefixUpperBound(prefix);
  for (std::string id : {std::string(""), std::string("\xff\xff\xff"), std::string("x")}) {
    const std::string device = EncodePrincipalKey(PrincipalKind::kDevice, id);
    const std::string staff = EncodePrincipalKey(PrincipalKind::kStaff, id);
    EXPECT_TRUE(device >= prefix && device < upper);
    EXPECT_FALSE(staff >= prefix && staff < upper);
  }
}

TEST(KeyCodecTest, OfficerKeysRoundTripAndStayApartFromEnrolmentCodes) {
  const std::string officer = EncodePrincipalKey(PrincipalKind::kOfficer, "amina.k");
  EXPECT_EQ(officer[0], '\x04');
  EXPECT_THAT(DecodePrincipalKey(officer),
              IsOkAndHolds(PrincipalKey{PrincipalKind::kOfficer, "amina.k"}));
  EXPECT_THAT(DecodeEnrolmentCodeKey(officer), StatusIs(absl::StatusCode::kDataLoss));
  // The officer prefix bounds officers only: not enrolment codes (tag 3,
  // just below) nor staff with the same id.
  const std::string prefix = PrincipalKindPrefix(PrincipalKind::kOfficer);
  const std::string upper = PrefixUpperBound(prefix);
  for (std::string id : {std::string(""), std::string("\xff\xff\xff"), std::string("x")}) {
    const std::string code = EncodeEnrolmentCodeKey(id);
    const std::string staff = EncodePrincipalKey(PrincipalKind::kStaff, id);
    const std::string mine = EncodePrincipalKey(PrincipalKind::kOfficer, id);
    EXPECT_TRUE(mine >= prefix && mine < upper);
    EXPECT_FALSE(code >= prefix && code < upper);
    EXPECT_FALSE(staff >= prefix && staff < upper);
  }
  // Tag 3 is never a principal kind.
  EXPECT_THAT(DecodePrincipalKey(std::string_view("\x03x\x00\x01", 4)),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("kind tag")));
}

TEST(KeyCodecTest, EnrolmentCodeKeysPreserveOrderAndRoundTrip) {
  SeededRandom rng;
  auto gen = [](SeededRandom& r) { return RandomString(r); };
  ExpectOrderPreserved(rng, gen, [](const std::string& s) { return EncodeEnrolmentCodeKey(s); });
  for (int i = 0; i < kIterations; ++i) {
    const std::string hex = RandomString(rng);
    EXPECT_THAT(DecodeEnrolmentCodeKey(EncodeEnrolmentCodeKey(hex)), IsOkAndHolds(hex));
  }
  // Disjoint from principal keys: the tag differs.
  EXPECT_THAT(DecodePrincipalKey(EncodeEnrolmentCodeKey("ab")),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(DecodeEnrolmentCodeKey(EncodePrincipalKey(PrincipalKind::kStaff, "ab")),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(KeyCodecTest, DeviceLastSyncKeysRoundTripAndStayApartFromPrincipals) {
  SeededRandom rng;
  ExpectOrderPreserved(
      rng, [](SeededRandom& r) { return RandomString(r); },
      [](const std::string& s) { return EncodeDeviceLastSyncKey(s); });
  for (int i = 0; i < kIterations; ++i) {
    const std::string id = RandomString(rng);
    EXPECT_THAT(DecodeDeviceLastSyncKey(EncodeDeviceLastSyncKey(id)), IsOkAndHolds(id));
  }
  const std::string key = EncodeDeviceLastSyncKey("0b3c7a2e-0000-4000-8000-000000000001");
  EXPECT_EQ(key[0], '\x05');
  const std::string prefix = DeviceLastSyncPrefix();
  EXPECT_TRUE(key >= prefix && key < PrefixUpperBound(prefix));
  // Never a principal, a code or a key of another kind, and the other way round.
  EXPECT_THAT(DecodePrincipalKey(key), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(DecodeEnrolmentCodeKey(key), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(DecodeDeviceLastSyncKey(EncodePrincipalKey(PrincipalKind::kDevice, "x")),
              StatusIs(absl::StatusCode::kDataLoss));
  for (PrincipalKind kind :
       {PrincipalKind::kDevice, PrincipalKind::kStaff, PrincipalKind::kOfficer}) {
    const std::string principal_prefix = PrincipalKindPrefix(kind);
    EXPECT_FALSE(key >= principal_prefix && key < PrefixUpperBound(principal_prefix));
  }
  // Truncated and trailing bytes are refused.
  EXPECT_THAT(DecodeDeviceLastSyncKey(key.substr(0, key.size() - 1)),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(DecodeDeviceLastSyncKey(key + "x"), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(DecodeDeviceLastSyncKey(""), StatusIs(absl::StatusCode::kDataLoss));
}

TEST(KeyCodecTest, CaseLogKeysPreserveOrderAndRoundTrip) {
  SeededRandom rng;
  ExpectOrderPreserved(rng, RandomU64, [](uint64_t p) { return EncodeCaseLogKey(p); });
  for (int i = 0; i < kIterations; ++i) {
    const uint64_t p = RandomU64(rng);
    EXPECT_THAT(DecodeCaseLogKey(EncodeCaseLogKey(p)), IsOkAndHolds(p));
  }
  EXPECT_EQ(EncodeCaseLogKey(0x0102030405060708), "\x01\x02\x03\x04\x05\x06\x07\x08");
}

TEST(KeyCodecTest, MetadataKeysPreserveOrderAndRoundTrip) {
  SeededRandom rng;
  auto gen = [](SeededRandom& r) { return RandomString(r); };
  ExpectOrderPreserved(rng, gen, [](const std::string& s) { return EncodeMetadataKey(s); });
  for (int i = 0; i < kIterations; ++i) {
    const std::string name = RandomString(rng, 30);
    EXPECT_THAT(DecodeMetadataKey(EncodeMetadataKey(name)), IsOkAndHolds(name));
  }
}

TEST(KeyCodecTest, I64AndU32PreserveOrder) {
  SeededRandom rng;
  ExpectOrderPreserved(rng, RandomI64, [](int64_t v) { return KeyBuilder().I64(v).Finish(); });
  ExpectOrderPreserved(
      rng, [](SeededRandom& r) { return static_cast<uint32_t>(r.Uniform(1ull << 32)); },
      [](uint32_t v) { return KeyBuilder().U32(v).Finish(); });
}

using Id = std::array<uint8_t, 16>;

Id RandomId(SeededRandom& rng) {
  Id id;
  for (uint8_t& b : id) b = static_cast<uint8_t>(rng.Uniform(3) * 0x7f);  // 00, 7f, fe
  return id;
}

// Every key kind, for the malformed-input tests: a generator of valid keys,
// the decoder (status only) and decode-then-encode of an accepted key.
struct KeyKind {
  const char* name;
  std::function<std::string(SeededRandom&)> make;
  std::function<absl::Status(std::string_view)> decode;
  std::function<std::string(std::string_view)> reencode;
};

std::vector<KeyKind> KeyKinds() {
  return {
      {"principal",
       [](SeededRandom& r) {
         constexpr PrincipalKind kKinds[] = {PrincipalKind::kDevice, PrincipalKind::kStaff,
                                             PrincipalKind::kOfficer};
         return EncodePrincipalKey(kKinds[r.Uniform(3)], RandomString(r, 8));
       },
       [](std::string_view k) { return DecodePrincipalKey(k).status(); },
       [](std::string_view k) {
         PrincipalKey p = *DecodePrincipalKey(k);
         return EncodePrincipalKey(p.kind, p.id);
       }},
      {"enrolment", [](SeededRandom& r) { return EncodeEnrolmentCodeKey(RandomString(r, 8)); },
       [](std::string_view k) { return DecodeEnrolmentCodeKey(k).status(); },
       [](std::string_view k) { return EncodeEnrolmentCodeKey(*DecodeEnrolmentCodeKey(k)); }},
      {"case_dek", [](SeededRandom& r) { return EncodeCaseDekKey(RandomId(r)); },
       [](std::string_view k) { return DecodeCaseDekKey(k).status(); },
       [](std::string_view k) { return EncodeCaseDekKey(*DecodeCaseDekKey(k)); }},
      {"case_log", [](SeededRandom& r) { return EncodeCaseLogKey(RandomU64(r)); },
       [](std::string_view k) { return DecodeCaseLogKey(k).status(); },
       [](std::string_view k) { return EncodeCaseLogKey(*DecodeCaseLogKey(k)); }},
      {"metadata", [](SeededRandom& r) { return EncodeMetadataKey(RandomString(r, 8)); },
       [](std::string_view k) { return DecodeMetadataKey(k).status(); },
       [](std::string_view k) { return EncodeMetadataKey(*DecodeMetadataKey(k)); }},
      {"records",
       [](SeededRandom& r) {
         Id case_id = RandomId(r);
         Id record_id = RandomId(r);
         switch (r.Uniform(3)) {
           case 0:
             return EncodeRecordStateKey(case_id, record_id);
           case 1:
             return EncodeRecordHeaderKey(case_id, record_id);
           default:
             return EncodeFieldStateKey(case_id, record_id, RandomString(r, 8));
         }
       },
       [](std::string_view k) { return DecodeRecordsKey(k).status(); },
       [](std::string_view k) {
         RecordsKey rk = *DecodeRecordsKey(k);
         if (rk.is_state) return EncodeRecordStateKey(rk.case_id, rk.record_id);
         if (rk.is_header) return EncodeRecordHeaderKey(rk.case_id, rk.record_id);
         return EncodeFieldStateKey(rk.case_id, rk.record_id, rk.field);
       }},
      {"case_scope_list",
       [](SeededRandom& r) {
         return EncodeCaseScopeListKey(RandomString(r, 8), RandomString(r, 8));
       },
       [](std::string_view k) { return DecodeCaseScopeListKey(k).status(); },
       [](std::string_view k) {
         CaseScopeListKey c = *DecodeCaseScopeListKey(k);
         return EncodeCaseScopeListKey(c.region, c.officer_id);
       }},
      {"counter_page",
       [](SeededRandom& r) {
         return EncodeCounterPageKey(RandomString(r, 8), "SWM"[r.Uniform(3)],
                                     static_cast<uint32_t>(RandomU64(r)));
       },
       [](std::string_view k) { return DecodeCounterPageKey(k).status(); },
       [](std::string_view k) {
         CounterKey c = *DecodeCounterPageKey(k);
         return EncodeCounterPageKey(c.metric, c.granularity, c.period);
       }},
      {"case_entry", [](SeededRandom& r) { return EncodeCaseEntryKey(RandomId(r), RandomU64(r)); },
       [](std::string_view k) { return DecodeCaseEntryKey(k).status(); },
       [](std::string_view k) {
         CaseEntryKey c = *DecodeCaseEntryKey(k);
         return EncodeCaseEntryKey(c.case_id, c.position);
       }},
      {"conflict",
       [](SeededRandom& r) {
         return EncodeConflictKey(RandomId(r), RandomU64(r), RandomString(r, 6));
       },
       [](std::string_view k) { return DecodeConflictKey(k).status(); },
       [](std::string_view k) {
         ConflictKey c = *DecodeConflictKey(k);
         return EncodeConflictKey(c.case_id, c.position, c.field);
       }},
      {"open_conflict",
       [](SeededRandom& r) {
         return EncodeOpenConflictKey(RandomString(r, 6), RandomId(r), RandomU64(r),
                                      RandomString(r, 6));
       },
       [](std::string_view k) { return DecodeOpenConflictKey(k).status(); },
       [](std::string_view k) {
         OpenConflictKey o = *DecodeOpenConflictKey(k);
         return EncodeOpenConflictKey(o.region, o.conflict.case_id, o.conflict.position,
                                      o.conflict.field);
       }},
      {"batch", [](SeededRandom& r) { return EncodeBatchKey(RandomString(r, 8), RandomId(r)); },
       [](std::string_view k) { return DecodeBatchKey(k).status(); },
       [](std::string_view k) {
         BatchKey b = *DecodeBatchKey(k);
         return EncodeBatchKey(b.device_id, b.batch_id);
       }},
      {"device_sequence",
       [](SeededRandom& r) { return EncodeDeviceSequenceKey(RandomString(r, 8)); },
       [](std::string_view k) { return DecodeDeviceSequenceKey(k).status(); },
       [](std::string_view k) { return EncodeDeviceSequenceKey(*DecodeDeviceSequenceKey(k)); }},
  };
}

TEST(KeyCodecTest, SyncKeysPreserveTupleOrder) {
  SeededRandom rng;
  using Records = std::tuple<Id, Id, uint8_t, std::string>;
  ExpectOrderPreserved(
      rng,
      [](SeededRandom& r) {
        constexpr uint8_t kTags[] = {kRecordHeaderTag, kFieldStateTag, kRecordStateTag};
        const uint8_t tag = kTags[r.Uniform(3)];
        // One statement each: a seed makes the same keys whatever order a
        // compiler evaluates call arguments in.
        Id case_id = RandomId(r);
        Id record_id = RandomId(r);
        return Records(case_id, record_id, tag,
                       tag == kFieldStateTag ? RandomString(r) : std::string());
      },
      [](const Records& t) {
        switch (std::get<2>(t)) {
          case kRecordHeaderTag:
            return EncodeRecordHeaderKey(std::get<0>(t), std::get<1>(t));
          case kRecordStateTag:
            return EncodeRecordStateKey(std::get<0>(t), std::get<1>(t));
          default:
            return EncodeFieldStateKey(std::get<0>(t), std::get<1>(t), std::get<3>(t));
        }
      });
  using Scope = std::tuple<std::string, std::string>;
  ExpectOrderPreserved(
      rng, [](SeededRandom& r) { return Scope(RandomString(r), RandomString(r)); },
      [](const Scope& t) { return EncodeCaseScopeListKey(std::get<0>(t), std::get<1>(t)); });
  using Page = std::tuple<std::string, uint8_t, uint32_t>;
  ExpectOrderPreserved(
      rng,
      [](SeededRandom& r) {
        return Page(RandomString(r), "MSW"[r.Uniform(3)], static_cast<uint32_t>(RandomU64(r)));
      },
      [](const Page& t) {
        return EncodeCounterPageKey(std::get<0>(t), std::get<1>(t), std::get<2>(t));
      });
  using Entry = std::tuple<Id, uint64_t>;
  ExpectOrderPreserved(
      rng, [](SeededRandom& r) { return Entry(RandomId(r), RandomU64(r)); },
      [](const Entry& t) { return EncodeCaseEntryKey(std::get<0>(t), std::get<1>(t)); });
  using Conflict = std::tuple<Id, uint64_t, std::string>;
  ExpectOrderPreserved(
      rng, [](SeededRandom& r) { return Conflict(RandomId(r), RandomU64(r), RandomString(r)); },
      [](const Conflict& t) {
        return EncodeConflictKey(std::get<0>(t), std::get<1>(t), std::get<2>(t));
      });
  using Open = std::tuple<std::string, uint64_t, Id, std::string>;
  ExpectOrderPreserved(
      rng,
      [](SeededRandom& r) {
        return Open(RandomString(r), RandomU64(r), RandomId(r), RandomString(r));
      },
      [](const Open& t) {
        return EncodeOpenConflictKey(std::get<0>(t), std::get<2>(t), std::get<1>(t),
                                     std::get<3>(t));
      });
  using Batch = std::tuple<std::string, Id>;
  ExpectOrderPreserved(
      rng, [](SeededRandom& r) { return Batch(RandomString(r), RandomId(r)); },
      [](const Batch& t) { return EncodeBatchKey(std::get<0>(t), std::get<1>(t)); });
}

std::vector<std::string> ValidKeys(SeededRandom& rng, const KeyKind& kind) {
  std::vector<std::string> keys;
  for (int i = 0; i < 50; ++i) keys.push_back(kind.make(rng));
  return keys;
}

TEST(KeyCodecTest, EveryTruncationIsDataLoss) {
  SeededRandom rng;
  int checked = 0;
  for (const KeyKind& d : KeyKinds()) {
    for (const std::string& key : ValidKeys(rng, d)) {
      ASSERT_THAT(d.decode(key), IsOk()) << d.name;
      for (size_t n = 0; n < key.size(); ++n) {
        ASSERT_THAT(d.decode(std::string_view(key).substr(0, n)),
                    StatusIs(absl::StatusCode::kDataLoss))
            << d.name << " truncated to " << n << " seed " << rng.seed();
        ++checked;
      }
    }
  }
  std::cout << "checked " << checked << " truncations\n";
}

TEST(KeyCodecTest, TrailingBytesAreDataLoss) {
  SeededRandom rng;
  for (const KeyKind& d : KeyKinds()) {
    for (const std::string& key : ValidKeys(rng, d)) {
      for (std::string extra : {std::string(1, '\0'), std::string("\x01"), std::string("zz")}) {
        EXPECT_THAT(d.decode(key + extra),
                    StatusIs(absl::StatusCode::kDataLoss, HasSubstr("trailing")))
            << d.name;
      }
    }
  }
}

// Each flipped byte gives either kDataLoss or another key in canonical form
// (decoding then encoding gives back the same bytes), never a crash.
TEST(KeyCodecTest, FlippedBytesGiveDataLossOrAnotherCanonicalKey) {
  SeededRandom rng;
  int rejected = 0;
  int accepted = 0;
  for (const KeyKind& d : KeyKinds()) {
    for (const std::string& key : ValidKeys(rng, d)) {
      for (size_t i = 0; i < key.size(); ++i) {
        for (int mask : {0x01, 0x80, 0xFF, 1 + static_cast<int>(rng.Uniform(255))}) {
          std::string bad = key;
          bad[i] = static_cast<char>(bad[i] ^ mask);
          absl::Status s = d.decode(bad);
          if (s.ok()) {
            ASSERT_EQ(d.reencode(bad), bad) << d.name << " seed " << rng.seed();
            ++accepted;
          } else {
            ASSERT_THAT(s, StatusIs(absl::StatusCode::kDataLoss)) << d.name;
            ++rejected;
          }
        }
      }
    }
  }
  std::cout << "flips: " << rejected << " rejected, " << accepted << " other valid keys\n";
  EXPECT_GT(rejected, 0);
}

// A layout-1 header key whose tag byte is changed to the layout-2 record state
// tag is a valid record state key of the same record, and says so.
TEST(KeyCodecTest, HeaderTagChangedToStateTagIsThatRecordsStateKey) {
  Id case_id{};
  Id record_id{};
  case_id[0] = 0x7f;
  record_id[15] = 0xfe;
  std::string key = EncodeRecordHeaderKey(case_id, record_id);
  key.back() = static_cast<char>(kRecordStateTag);
  absl::StatusOr<RecordsKey> rk = DecodeRecordsKey(key);
  ASSERT_THAT(rk, IsOk());
  EXPECT_TRUE(rk->is_state);
  EXPECT_FALSE(rk->is_header);
  EXPECT_EQ(key, EncodeRecordStateKey(case_id, record_id));
}

TEST(KeyCodecTest, ReaderNamesWhatWasExpected) {
  EXPECT_THAT(KeyReader("\x01\x02").U64(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("u64")));
  EXPECT_THAT(KeyReader(std::string_view("a\x00\x05", 3)).String(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("bad escape")));
  EXPECT_THAT(KeyReader("abc").String(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("terminator")));
  EXPECT_THAT(KeyReader(std::string_view("ab\x00", 3)).String(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("terminator")));
  EXPECT_THAT(KeyReader("short").Uuid(), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(DecodePrincipalKey(std::string_view("\x07x\x00\x01", 4)),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("kind tag")));
}

TEST(KeyCodecTest, RandomGarbageNeverCrashesTheReader) {
  SeededRandom rng;
  for (int i = 0; i < kIterations * 5; ++i) {
    std::string garbage = RandomString(rng, 24);
    KeyReader r(garbage);
    // Read components in a random order until one fails or input ends.
    while (!r.AtEnd()) {
      absl::Status s;
      switch (rng.Uniform(6)) {
        case 0:
          s = r.U8().status();
          break;
        case 1:
          s = r.U32().status();
          break;
        case 2:
          s = r.U64().status();
          break;
        case 3:
          s = r.I64().status();
          break;
        case 4:
          s = r.String().status();
          break;
        default:
          s = r.Uuid().status();
          break;
      }
      if (!s.ok()) {
        ASSERT_THAT(s, StatusIs(absl::StatusCode::kDataLoss));
        break;
      }
    }
  }
}

TEST(KeyCodecTest, PrefixUpperBoundIsTheSmallestKeyAboveThePrefix) {
  EXPECT_EQ(PrefixUpperBound("ab"), "ac");
  EXPECT_EQ(PrefixUpperBound("a\xff\xff"), "b");
  EXPECT_EQ(PrefixUpperBound("\xff\xff"), "");
  EXPECT_EQ(PrefixUpperBound(""), "");
  SeededRandom rng;
  for (int i = 0; i < kIterations; ++i) {
    const std::string prefix = RandomString(rng, 4);
    const std::string upper = PrefixUpperBound(prefix);
    const std::string key = RandomString(rng, 8);
    const bool has_prefix = key.starts_with(prefix);
    const bool below = upper.empty() || ByteSign(key, upper) < 0;
    // Below the bound and >= prefix exactly when the key has the prefix.
    ASSERT_EQ(has_prefix, ByteSign(key, prefix) >= 0 && below) << "seed " << rng.seed();
    const std::string with = prefix + key;
    ASSERT_TRUE(upper.empty() || ByteSign(with, upper) < 0) << "seed " << rng.seed();
  }
}

TEST(CounterTest, RoundTripsLittleEndianTwosComplement) {
  EXPECT_EQ(EncodeInt64Counter(1), std::string("\x01\0\0\0\0\0\0\0", 8));
  EXPECT_EQ(EncodeInt64Counter(-1), std::string(8, '\xff'));
  for (int64_t v : {std::numeric_limits<int64_t>::min(), int64_t{-5}, int64_t{0}, int64_t{1} << 40,
                    std::numeric_limits<int64_t>::max()}) {
    EXPECT_THAT(DecodeInt64Counter(EncodeInt64Counter(v)), IsOkAndHolds(v));
  }
}

TEST(CounterTest, WrongSizeIsDataLoss) {
  EXPECT_THAT(DecodeInt64Counter(""), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(DecodeInt64Counter("1234567"), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(DecodeInt64Counter("123456789"), StatusIs(absl::StatusCode::kDataLoss));
}

TEST(KeyCodecTest, AuditLeafKeysPreserveOrderAndRoundTrip) {
  SeededRandom rng;
  ExpectOrderPreserved(rng, RandomU64, [](uint64_t i) { return EncodeAuditLeafKey(i); });
  for (int i = 0; i < kIterations; ++i) {
    const uint64_t index = RandomU64(rng);
    const std::string key = EncodeAuditLeafKey(index);
    EXPECT_THAT(DecodeAuditLeafKey(key), IsOkAndHolds(index));
    EXPECT_TRUE(key.starts_with(AuditLeafKeyPrefix()));
  }
  EXPECT_EQ(EncodeAuditLeafKey(0x0102030405060708),
            std::string("\x01\x01\x02\x03\x04\x05\x06\x07\x08", 9));
  EXPECT_THAT(DecodeAuditLeafKey(EncodeAuditNodeKey(2, 5)), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(DecodeAuditLeafKey(std::string("\x01\x00", 2)),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(KeyCodecTest, AuditLeafByHashAndBatchKeysRoundTrip) {
  std::array<uint8_t, 32> hash;
  for (size_t i = 0; i < hash.size(); ++i) hash[i] = static_cast<uint8_t>(i * 7);
  EXPECT_THAT(DecodeAuditLeafByHashKey(EncodeAuditLeafByHashKey(hash)), IsOkAndHolds(hash));
  EXPECT_THAT(DecodeAuditLeafByHashKey(EncodeAuditLeafByHashKey(hash).substr(0, 32)),
              StatusIs(absl::StatusCode::kDataLoss));
  std::array<uint8_t, 16> batch{};
  batch[3] = 9;
  const std::string key = EncodeAuditBatchLeafKey(std::string("dev\0ice", 7), batch);
  absl::StatusOr<BatchKey> decoded = DecodeAuditBatchLeafKey(key);
  ASSERT_THAT(decoded, IsOk());
  EXPECT_EQ(decoded->device_id, std::string("dev\0ice", 7));
  EXPECT_EQ(decoded->batch_id, batch);
  for (size_t n = 0; n < key.size(); ++n) {
    EXPECT_THAT(DecodeAuditBatchLeafKey(key.substr(0, n)), StatusIs(absl::StatusCode::kDataLoss));
  }
  // The three kinds never collide: their tags differ.
  EXPECT_NE(EncodeAuditLeafByHashKey(hash)[0], EncodeAuditLeafKey(0)[0]);
  EXPECT_NE(key[0], EncodeAuditLeafKey(0)[0]);
}

TEST(KeyCodecTest, AuditNodeKeysPreserveOrderAndRoundTrip) {
  SeededRandom rng;
  auto gen = [](SeededRandom& r) {
    return std::make_tuple(static_cast<uint8_t>(r.Uniform(64)), RandomU64(r));
  };
  ExpectOrderPreserved(rng, gen, [](const std::tuple<uint8_t, uint64_t>& t) {
    return EncodeAuditNodeKey(std::get<0>(t), std::get<1>(t));
  });
  for (int i = 0; i < kIterations; ++i) {
    const AuditNodeKey k{static_cast<uint8_t>(rng.Uniform(64)), RandomU64(rng)};
    EXPECT_THAT(DecodeAuditNodeKey(EncodeAuditNodeKey(k.level, k.index)), IsOkAndHolds(k));
  }
  EXPECT_THAT(DecodeAuditNodeKey(EncodeAuditNodeKey(64, 1)), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(DecodeAuditNodeKey(EncodeAuditNodeKey(3, 1) + "x"),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(ColumnFamiliesTest, NamesAreThePersistedOnes) {
  EXPECT_EQ(CfName(Cf::kDefault), "default");
  EXPECT_EQ(CfName(Cf::kCaseLog), "case_log");
  EXPECT_EQ(CfName(Cf::kAuditNodes), "audit_nodes");
  EXPECT_EQ(static_cast<int>(Cf::kMetadata), 11);
  for (size_t i = 0; i < kAllCfs.size(); ++i) {
    EXPECT_EQ(static_cast<size_t>(kAllCfs[i]), i);
    Cf back;
    ASSERT_TRUE(CfFromName(CfName(kAllCfs[i]), &back));
    EXPECT_EQ(back, kAllCfs[i]);
  }
  Cf unused;
  EXPECT_FALSE(CfFromName("records2", &unused));
}

TEST(KeyCodecTest, CounterPageKeysRoundTripAndOrderPeriodsWithinAMetric) {
  const std::string a = EncodeCounterPageKey("registrations", 'W', 202647);
  EXPECT_THAT(DecodeCounterPageKey(a), IsOkAndHolds(CounterKey{"registrations", 'W', 202647, {}}));
  EXPECT_EQ(a,
            KeyBuilder().U8(kCounterPageTag).String("registrations").U8('W').U32(202647).Finish());
  // A period range of one metric and granularity is one contiguous range.
  EXPECT_LT(a, EncodeCounterPageKey("registrations", 'W', 202648));
  EXPECT_LT(EncodeCounterPageKey("registrations", 'W', 202648),
            EncodeCounterPageKey("registrations", 'W', 202649));
  EXPECT_LT(EncodeCounterPageKey("registrations", 'M', 0xffffffff),
            EncodeCounterPageKey("registrations", 'W', 0));
  EXPECT_LT(EncodeCounterPageKey("registrations", 'W', 0xffffffff),
            EncodeCounterPageKey("registrations2", 'M', 0));
  EXPECT_THAT(DecodeCounterPageKey(EncodeCounterPageKey("open_cases", 'S', 0)),
              IsOkAndHolds(CounterKey{"open_cases", 'S', 0, {}}));
}

TEST(KeyCodecTest, CounterCellsRoundTripInOrder) {
  const std::vector<std::string> cell = {"northern", "", std::string("a\0b", 3)};
  EXPECT_THAT(DecodeCounterCell(EncodeCounterCell(cell)), IsOkAndHolds(cell));
  EXPECT_THAT(DecodeCounterCell(EncodeCounterCell({})), IsOkAndHolds(std::vector<std::string>{}));
  EXPECT_LT(EncodeCounterCell({"a", "z"}), EncodeCounterCell({"b", ""}));
  EXPECT_LT(EncodeCounterCell({"a", "z"}), EncodeCounterCell({"aa", ""}));
  const std::string good = EncodeCounterCell({"ab", "c"});
  for (size_t n = 1; n < good.size(); ++n) {
    absl::StatusOr<std::vector<std::string>> c = DecodeCounterCell(good.substr(0, n));
    // A cut between components is a shorter cell; any other cut is corrupt.
    if (n == 4) {
      EXPECT_THAT(c, IsOkAndHolds(std::vector<std::string>{"ab"}));
    } else {
      EXPECT_THAT(c, StatusIs(absl::StatusCode::kDataLoss)) << n;
    }
  }
  EXPECT_THAT(DecodeCounterCell(std::string("a\0\x02", 3)), StatusIs(absl::StatusCode::kDataLoss));
}

TEST(KeyCodecTest, MalformedCounterPageKeysAreDataLoss) {
  const std::string good = EncodeCounterPageKey("m", 'M', 202611);
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_THAT(DecodeCounterPageKey(good.substr(0, n)), StatusIs(absl::StatusCode::kDataLoss))
        << n;
  }
  EXPECT_THAT(DecodeCounterPageKey(good + "x"), StatusIs(absl::StatusCode::kDataLoss));
  std::string bad_granularity = good;
  bad_granularity[4] = 'Q';  // tag, "m", 00 01, granularity
  EXPECT_THAT(DecodeCounterPageKey(bad_granularity), StatusIs(absl::StatusCode::kDataLoss));
  // Keys of the retired tags are not pages.
  for (uint8_t tag : {kCounterTag, kRetiredAggregateCaseTag, uint8_t{9}}) {
    std::string other = good;
    other[0] = static_cast<char>(tag);
    EXPECT_THAT(DecodeCounterPageKey(other), StatusIs(absl::StatusCode::kDataLoss)) << int{tag};
  }
}

}  // namespace
}  // namespace fieldsync::storage
