#include "crypto/field_cipher.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "crypto/aead.h"
#include "crypto/bytes.h"
#include "crypto/system_random.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::crypto {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::IsOkAndHolds;
using ::fieldsync::testing::SeededRandom;
using ::fieldsync::testing::StatusIs;
using ::testing::HasSubstr;
using namespace std::string_literals;  // NOLINT

Uuid Fill(uint8_t b) {
  Uuid id;
  id.fill(b);
  return id;
}

class FieldCipherTest : public ::testing::Test {
 protected:
  FieldCipherTest() : dek_(32) {
    random_.Fill(dek_.mutable_span());
    cipher_ = std::make_unique<FieldCipher>(*FieldCipher::Create(dek_.span()));
    address_.case_id = Fill(0xca);
    address_.record_id = Fill(0x7e);
    address_.field_name = "given_name";
    address_.key_version = 1;
  }

  std::string Seal(std::string_view value) {
    absl::StatusOr<std::string> c = cipher_->Encrypt(address_, value, random_);
    EXPECT_THAT(c, IsOk());
    return c.ok() ? *c : "";
  }

  SeededRandom random_;
  SecretBytes dek_;
  std::unique_ptr<FieldCipher> cipher_;
  FieldAddress address_;
};

TEST_F(FieldCipherTest, RoundTripsAndHasTheDocumentedShape) {
  const std::string c = Seal("José Ñúñez");

  EXPECT_EQ(c.size(), kFieldCiphertextOverhead + std::string("José Ñúñez").size());
  EXPECT_EQ(c[0], 1);
  EXPECT_THAT(cipher_->Decrypt(address_, c), IsOkAndHolds("José Ñúñez"));
}

TEST_F(FieldCipherTest, EmptyValueRoundTrips) {
  const std::string c = Seal("");
  EXPECT_EQ(c.size(), kFieldCiphertextOverhead);
  EXPECT_THAT(cipher_->Decrypt(address_, c), IsOkAndHolds(""));
}

TEST_F(FieldCipherTest, AadHasTheDocumentedLayout) {
  FieldAddress a;
  for (int i = 0; i < 16; ++i) a.case_id[i] = static_cast<uint8_t>(i);
  for (int i = 0; i < 16; ++i) a.record_id[i] = static_cast<uint8_t>(0x10 + i);
  a.field_name = "name";
  a.key_version = 0x01020304;

  EXPECT_EQ(FieldAad(a),
            "fieldsync/field/v1\x00"s
            "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"
            "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f"
            "\x00\x00\x00\x04name"
            "\x01\x02\x03\x04"s);
}

// The fast path builds its AAD by hand; an independent AES-GCM open with
// FieldAad's bytes proves the two agree, short and long field names alike.
TEST_F(FieldCipherTest, CiphertextIsPlainAesGcmOverTheDocumentedAad) {
  const std::string long_name(300, 'n');
  for (std::string_view name : {std::string_view("given_name"), std::string_view(long_name)}) {
    address_.field_name = name;
    const std::string c = Seal("value");
    absl::StatusOr<std::string> opened =
        AesGcmOpen(dek_.span(), AsBytes(c).subspan(1, 12), AsBytes(FieldAad(address_)),
                   AsBytes(c).subspan(13));
    EXPECT_THAT(opened, IsOkAndHolds("value")) << "name of " << name.size() << " bytes";
  }
}

TEST_F(FieldCipherTest, FlippingAnyBitFailsToOpen) {
  const std::string c = Seal("a 32-byte identifying value here");
  for (size_t i = 0; i < c.size() * 8; ++i) {
    std::string t = c;
    t[i / 8] = static_cast<char>(t[i / 8] ^ (1 << (i % 8)));
    ASSERT_THAT(cipher_->Decrypt(address_, t), StatusIs(absl::StatusCode::kInvalidArgument))
        << "bit " << i;
  }
}

TEST_F(FieldCipherTest, TruncatedAndEmptyInputsAreCleanErrors) {
  const std::string c = Seal("value");
  for (size_t n = 0; n < c.size(); ++n) {
    ASSERT_THAT(cipher_->Decrypt(address_, std::string_view(c).substr(0, n)),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << "truncated to " << n;
  }
  EXPECT_THAT(cipher_->Decrypt(address_, std::string_view()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("too short")));
}

TEST_F(FieldCipherTest, UnknownFormatVersionIsNamed) {
  std::string c = Seal("value");
  c[0] = 2;
  EXPECT_THAT(cipher_->Decrypt(address_, c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("format 2")));
}

TEST_F(FieldCipherTest, MovedCiphertextFailsToOpen) {
  const std::string c = Seal("value");
  FieldAddress other_case = address_, other_record = address_, other_field = address_,
               other_version = address_, prefix_field = address_;
  other_case.case_id[0] ^= 1;
  other_record.record_id[15] ^= 1;
  other_field.field_name = "family_name";
  prefix_field.field_name = "given_nam";
  other_version.key_version = 2;
  for (const FieldAddress& a :
       {other_case, other_record, other_field, prefix_field, other_version}) {
    EXPECT_THAT(cipher_->Decrypt(a, c),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("decryption failed")));
  }
}

TEST_F(FieldCipherTest, WrongKeyFailsToOpen) {
  const std::string c = Seal("value");
  SecretBytes other(32);
  random_.Fill(other.mutable_span());
  EXPECT_THAT(DecryptField(other, address_, AsBytes(c)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("decryption failed")));
}

TEST_F(FieldCipherTest, KeyOfWrongLengthIsRefused) {
  EXPECT_THAT(FieldCipher::Create(std::vector<uint8_t>(16)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("32 bytes")));
  EXPECT_THAT(EncryptField(SecretBytes(), address_, {}, random_),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(FieldCipherTest, OneShotFormsAgreeWithTheKeptCipher) {
  absl::StatusOr<std::string> c = EncryptField(dek_, address_, AsBytes("value"), random_);
  ASSERT_THAT(c, IsOk());
  EXPECT_THAT(cipher_->Decrypt(address_, *c), IsOkAndHolds("value"));
  EXPECT_THAT(DecryptField(dek_, address_, AsBytes(Seal("other"))), IsOkAndHolds("other"));
}

TEST_F(FieldCipherTest, NoncesDifferBetweenEncryptionsOfOneValue) {
  const std::string a = Seal("same");
  const std::string b = Seal("same");
  EXPECT_NE(a.substr(1, 12), b.substr(1, 12));
  EXPECT_NE(a, b);
}

TEST_F(FieldCipherTest, ErrorsNeverHoldTheValueOrKey) {
  const std::string c = Seal("SECRET-NAME");
  std::string t = c;
  t.back() ^= 1;
  absl::StatusOr<std::string> r = cipher_->Decrypt(address_, t);
  EXPECT_THAT(r.status().message(), ::testing::Not(HasSubstr("SECRET")));
}

TEST_F(FieldCipherTest, ConcurrentEncryptAndDecryptShareOneCipher) {
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      SystemRandom random;
      for (int i = 0; i < 500; ++i) {
        const std::string v = std::to_string(t) + ":" + std::to_string(i);
        absl::StatusOr<std::string> c = cipher_->Encrypt(address_, v, random);
        if (!c.ok() || cipher_->Decrypt(address_, *c).value_or("") != v) failures.fetch_add(1);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace fieldsync::crypto
