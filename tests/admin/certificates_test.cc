// admin/certificates.h without a server: which certificate a principal may
// still use, the not-after a registry upgrade records, and finishing a
// server certificate renewal cut short between its two file renames.
#include "admin/certificates.h"

#include "common/file_io.h"
#include "crypto/x509.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::admin {
namespace {

using ::fieldsync::testing::IsOk;

constexpr absl::Duration kDay = absl::Hours(24);

v1::Principal WithCertificates() {
  v1::Principal p;
  p.set_id("amina");
  p.set_kind(v1::PRINCIPAL_KIND_STAFF);
  p.set_certificate_serial("0c");
  p.set_certificate_not_after_unix_micros(absl::ToUnixMicros(absl::FromUnixSeconds(3000)));
  v1::CertificateRecord* old = p.add_previous_certificates();
  old->set_serial("0b");
  old->set_not_after_unix_micros(absl::ToUnixMicros(absl::FromUnixSeconds(2000)));
  return p;
}

TEST(AcceptsCertificateTest, CurrentAndUnexpiredPreviousSerialsOnly) {
  const v1::Principal p = WithCertificates();
  EXPECT_TRUE(AcceptsCertificate(p, "0c", absl::FromUnixSeconds(1000)));
  EXPECT_TRUE(AcceptsCertificate(p, "0b", absl::FromUnixSeconds(1000)));
  EXPECT_FALSE(AcceptsCertificate(p, "0b", absl::FromUnixSeconds(2000)));
  EXPECT_FALSE(AcceptsCertificate(p, "0a", absl::FromUnixSeconds(1000)));
  EXPECT_FALSE(AcceptsCertificate(p, "", absl::FromUnixSeconds(1000)));
}

TEST(AcceptsCertificateTest, PrincipalWithoutRecordedSerialAcceptsAny) {
  v1::Principal p;
  p.set_id("legacy");
  EXPECT_TRUE(AcceptsCertificate(p, "0a", absl::FromUnixSeconds(1000)));
}

TEST(ClientCertificateNotAfterTest, WholeSecondsAndClampedToTheCa) {
  const absl::Time issued = absl::FromUnixMicros(1'795'000'000'750'000);
  EXPECT_EQ(ClientCertificateNotAfter(issued, absl::InfiniteFuture()),
            absl::FromUnixSeconds(1'795'000'000) + crypto::kClientValidity);
  EXPECT_EQ(ClientCertificateNotAfter(issued, absl::FromUnixSeconds(1'795'000'100)),
            absl::FromUnixSeconds(1'795'000'100));
}

TEST(DaysLeftTest, RoundsDownAndGoesNegative) {
  const absl::Time now = absl::FromUnixSeconds(1'000'000);
  EXPECT_EQ(DaysLeft(now + 3 * kDay, now), 3);
  EXPECT_EQ(DaysLeft(now + 3 * kDay - absl::Seconds(1), now), 2);
  EXPECT_EQ(DaysLeft(now - absl::Seconds(1), now), -1);
}

class CompleteRenewalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const absl::Time now = absl::Now();
    absl::StatusOr<crypto::CertificateAuthority> ca =
        crypto::CreateCertificateAuthority("test", now, crypto::kCaValidity);
    ASSERT_THAT(ca, IsOk());
    for (Pair* pair : {&old_, &new_}) {
      absl::StatusOr<crypto::KeyPem> key = crypto::GenerateP256Key();
      ASSERT_THAT(key, IsOk());
      absl::StatusOr<crypto::IssuedCertificate> cert = crypto::IssueServerCertificate(
          *ca, crypto::MakeServerCertificateRequest(key->public_key_pem, {}), now,
          crypto::kServerValidity);
      ASSERT_THAT(cert, IsOk());
      pair->key = key->private_key_pem;
      pair->cert = cert->certificate_pem;
    }
    ASSERT_THAT(WriteNewFile(cert_file_, old_.cert, 0644), IsOk());
    ASSERT_THAT(WriteNewFile(key_file_, old_.key, 0600), IsOk());
  }

  struct Pair {
    std::string key;
    std::string cert;
  };
  fieldsync::testing::ScopedTempDir dir_;
  const std::string cert_file_ = dir_.Sub("server.crt");
  const std::string key_file_ = dir_.Sub("server.key");
  Pair old_, new_;
};

TEST_F(CompleteRenewalTest, NothingStagedChangesNothing) {
  ASSERT_THAT(CompleteServerCertificateRenewal(cert_file_, key_file_), IsOk());
  EXPECT_EQ(*ReadFile(cert_file_), old_.cert);
  EXPECT_EQ(*ReadFile(key_file_), old_.key);
}

TEST_F(CompleteRenewalTest, BothStagedAreMovedIntoPlace) {
  ASSERT_THAT(WriteNewFile(key_file_ + ".new", new_.key, 0600), IsOk());
  ASSERT_THAT(WriteNewFile(cert_file_ + ".new", new_.cert, 0644), IsOk());
  ASSERT_THAT(CompleteServerCertificateRenewal(cert_file_, key_file_), IsOk());
  EXPECT_EQ(*ReadFile(cert_file_), new_.cert);
  EXPECT_EQ(*ReadFile(key_file_), new_.key);
  EXPECT_FALSE(ReadFile(cert_file_ + ".new").ok());
}

TEST_F(CompleteRenewalTest, StoppedBetweenTheRenamesTheCertificateFollowsTheKey) {
  std::remove(key_file_.c_str());
  ASSERT_THAT(WriteNewFile(key_file_, new_.key, 0600), IsOk());  // renamed already
  ASSERT_THAT(WriteNewFile(cert_file_ + ".new", new_.cert, 0644), IsOk());
  ASSERT_THAT(CompleteServerCertificateRenewal(cert_file_, key_file_), IsOk());
  EXPECT_EQ(*ReadFile(cert_file_), new_.cert);
  EXPECT_THAT(crypto::CheckKeyMatchesCertificate(*ReadFile(key_file_), *ReadFile(cert_file_)),
              IsOk());
}

TEST_F(CompleteRenewalTest, StagedCertificateOfNoKeyIsRemoved) {
  ASSERT_THAT(WriteNewFile(cert_file_ + ".new", new_.cert, 0644), IsOk());
  ASSERT_THAT(CompleteServerCertificateRenewal(cert_file_, key_file_), IsOk());
  EXPECT_EQ(*ReadFile(cert_file_), old_.cert);
  EXPECT_EQ(*ReadFile(key_file_), old_.key);
  EXPECT_FALSE(ReadFile(cert_file_ + ".new").ok());
}

}  // namespace
}  // namespace fieldsync::admin
