#include "crypto/x509.h"

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_pki.h"

namespace fieldsync::crypto {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
constexpr char kDeviceUri[] = "fieldsync://device/0f1e2d3c4b5a69788796a5b4c3d2e1f0";
constexpr char kStaffUri[] = "fieldsync://staff/admin";

// Made with `openssl req` (an Ed25519 and a P-384 key); both self-signatures
// are valid, so only the key type can make VerifyCsr refuse them.
constexpr char kEd25519Csr[] = R"(-----BEGIN CERTIFICATE REQUEST-----
MIHTMIGGAgEAMCAxHjAcBgNVBAMMFWZpZWxkc3luYzovL2RldmljZS9lZDAqMAUG
AytlcAMhAAWqbccLvHDB61/7gnmTZ3Nn0F5vqJzGgtq0Fw/YpmB0oDMwMQYJKoZI
hvcNAQkOMSQwIjAgBgNVHREEGTAXhhVmaWVsZHN5bmM6Ly9kZXZpY2UvZWQwBQYD
K2VwA0EA9HyijpUv5KHAy5dfySi9ckQLNLYb8zDPNow6tUYjJ7vpmXX/DPV669mr
ZV5PewMW5NXPRyocx1piCOZJLZEpAQ==
-----END CERTIFICATE REQUEST-----
)";
constexpr char kP384Csr[] = R"(-----BEGIN CERTIFICATE REQUEST-----
MIIBPTCBwwIBADAPMQ0wCwYDVQQDDARwMzg0MHYwEAYHKoZIzj0CAQYFK4EEACID
YgAEenlSShEWz9J9D77wCyf2wtYoLQEgfnh3Femnd/bNLo/wyPAGn92O+WB8GDPG
W7YhVEgdGAN2ET4g5uoaQ5x3K/AL3KkWsfIJ5R6mdhpewCsV2aTjG3BoEoo1J/U7
qQgdoDUwMwYJKoZIhvcNAQkOMSYwJDAiBgNVHREEGzAZhhdmaWVsZHN5bmM6Ly9k
ZXZpY2UvcDM4NDAKBggqhkjOPQQDAgNpADBmAjEA4XhxMAa5B7nb54BCsrjc5Tbc
pRTFDYh9vg1mlQCy+zkty7rKtONmAnjSm6fpNriSAjEA5szKfLxPmktiLtnru/yR
XA4hvhoCLhR4YIaP9OGPg0jMFNylAGh8D/SY1wltrgvX
-----END CERTIFICATE REQUEST-----
)";
constexpr char kEd25519PublicKey[] = R"(-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEABaptxwu8cMHrX/uCeZNnc2fQXm+onMaC2rQXD9imYHQ=
-----END PUBLIC KEY-----
)";

// The DER inside a single-block PEM.
std::string PemToDer(const std::string& pem) {
  size_t begin = pem.find('\n', pem.find("-----BEGIN")) + 1;
  size_t end = pem.find("-----END");
  std::string body;
  for (char c : pem.substr(begin, end - begin)) {
    if (c != '\n') body.push_back(c);
  }
  std::string der;
  EXPECT_TRUE(absl::Base64Unescape(body, &der));
  return der;
}

std::string DerToPem(const std::string& der, const std::string& label) {
  std::string b64 = absl::Base64Escape(der);
  std::string pem = "-----BEGIN " + label + "-----\n";
  for (size_t i = 0; i < b64.size(); i += 64) pem += b64.substr(i, 64) + "\n";
  return pem + "-----END " + label + "-----\n";
}

class X509Test : public ::testing::Test {
 protected:
  static constexpr absl::Duration kDay = absl::Hours(24);

  void SetUp() override {
    absl::StatusOr<CertificateAuthority> ca =
        CreateCertificateAuthority("fieldsync test CA", now_, kCaValidity);
    ASSERT_THAT(ca, IsOk());
    ca_ = *ca;
  }

  KeyPem NewKey() {
    absl::StatusOr<KeyPem> key = GenerateP256Key();
    EXPECT_THAT(key, IsOk());
    return key.ok() ? *key : KeyPem{};
  }

  IssuedCertificate IssueClient(const CertificateAuthority& ca, absl::Time now,
                                absl::Duration validity = kClientValidity) {
    absl::StatusOr<IssuedCertificate> cert =
        IssueClientCertificate(ca, NewKey().public_key_pem, kDeviceUri, now, validity);
    EXPECT_THAT(cert, IsOk());
    return cert.ok() ? *cert : IssuedCertificate{};
  }

  const absl::Time now_ = absl::FromUnixSeconds(1795000000);
  CertificateAuthority ca_;
};

TEST_F(X509Test, GeneratedKeyIsPkcs8Pem) {
  KeyPem key = NewKey();

  EXPECT_THAT(key.private_key_pem, StartsWith("-----BEGIN PRIVATE KEY-----\n"));
  EXPECT_THAT(key.public_key_pem, StartsWith("-----BEGIN PUBLIC KEY-----\n"));
}

TEST_F(X509Test, CertificateAuthorityIsSelfSignedCa) {
  absl::StatusOr<CertificateSummary> summary = ParseCertificate(ca_.certificate_pem);

  ASSERT_THAT(summary, IsOk());
  EXPECT_TRUE(summary->is_ca);
  EXPECT_EQ(summary->not_before, now_ - kNotBeforeBackdate);
  EXPECT_EQ(summary->not_after, now_ + kCaValidity);
  EXPECT_THAT(VerifyCertificateChain(ca_.certificate_pem, ca_.certificate_pem, now_), IsOk());
  EXPECT_THAT(CheckKeyMatchesCertificate(ca_.private_key_pem, ca_.certificate_pem), IsOk());
}

TEST_F(X509Test, CertificateAuthorityRefusesEmptyNameAndNonPositiveValidity) {
  EXPECT_THAT(CreateCertificateAuthority("", now_, kCaValidity), StatusIs(kInvalid));
  EXPECT_THAT(CreateCertificateAuthority("ca", now_, absl::ZeroDuration()), StatusIs(kInvalid));
}

TEST_F(X509Test, ServerCertificateSansParseBack) {
  KeyPem key = NewKey();
  ServerCertificateRequest request = MakeServerCertificateRequest(
      key.public_key_pem, {"sync.example.org", "10.1.2.3", "fe80::1", "localhost", "127.0.0.1"});

  absl::StatusOr<IssuedCertificate> cert =
      IssueServerCertificate(ca_, request, now_, kServerValidity);

  ASSERT_THAT(cert, IsOk());
  absl::StatusOr<CertificateSummary> summary = ParseCertificate(cert->certificate_pem);
  ASSERT_THAT(summary, IsOk());
  EXPECT_THAT(summary->dns_names, ElementsAre("localhost", "sync.example.org"));
  EXPECT_THAT(summary->ip_addresses, ElementsAre("127.0.0.1", "::1", "10.1.2.3", "fe80::1"));
  EXPECT_THAT(summary->uris, IsEmpty());
  EXPECT_FALSE(summary->is_ca);
  EXPECT_EQ(summary->serial_hex, cert->serial_hex);
  EXPECT_EQ(summary->not_after, now_ + kServerValidity);
  EXPECT_THAT(VerifyCertificateChain(ca_.certificate_pem, cert->certificate_pem, now_), IsOk());
}

TEST_F(X509Test, ServerHostNameThatParsesAsIpGoesInAsIp) {
  ServerCertificateRequest request;
  request.public_key_pem = NewKey().public_key_pem;
  request.dns_names = {"192.0.2.7", "0:0:0:0:0:0:0:1"};

  absl::StatusOr<IssuedCertificate> cert =
      IssueServerCertificate(ca_, request, now_, kServerValidity);

  ASSERT_THAT(cert, IsOk());
  absl::StatusOr<CertificateSummary> summary = ParseCertificate(cert->certificate_pem);
  ASSERT_THAT(summary, IsOk());
  EXPECT_THAT(summary->dns_names, IsEmpty());
  EXPECT_THAT(summary->ip_addresses, ElementsAre("192.0.2.7", "::1"));
}

TEST_F(X509Test, ServerRequestWithBadNamesIsRefused) {
  ServerCertificateRequest request;
  request.public_key_pem = NewKey().public_key_pem;
  EXPECT_THAT(IssueServerCertificate(ca_, request, now_, kServerValidity), StatusIs(kInvalid));

  request.dns_names = {"bad host,DNS:evil.example"};
  EXPECT_THAT(IssueServerCertificate(ca_, request, now_, kServerValidity), StatusIs(kInvalid));

  request.dns_names = {};
  request.ip_addresses = {"300.1.1.1"};
  EXPECT_THAT(IssueServerCertificate(ca_, request, now_, kServerValidity), StatusIs(kInvalid));
}

TEST_F(X509Test, ClientCertificateUriRoundTrips) {
  KeyPem key = NewKey();

  absl::StatusOr<IssuedCertificate> cert =
      IssueClientCertificate(ca_, key.public_key_pem, kStaffUri, now_, kClientValidity);

  ASSERT_THAT(cert, IsOk());
  absl::StatusOr<CertificateSummary> summary = ParseCertificate(cert->certificate_pem);
  ASSERT_THAT(summary, IsOk());
  EXPECT_THAT(summary->uris, ElementsAre(kStaffUri));
  EXPECT_THAT(summary->dns_names, IsEmpty());
  EXPECT_THAT(summary->ip_addresses, IsEmpty());
  EXPECT_FALSE(summary->is_ca);
  EXPECT_EQ(summary->serial_hex, cert->serial_hex);
  EXPECT_EQ(summary->not_before, cert->not_before);
  EXPECT_EQ(summary->not_after, cert->not_after);
  EXPECT_EQ(cert->not_after, now_ + kClientValidity);
  EXPECT_THAT(VerifyCertificateChain(ca_.certificate_pem, cert->certificate_pem, now_), IsOk());
  EXPECT_THAT(CheckKeyMatchesCertificate(key.private_key_pem, cert->certificate_pem), IsOk());
}

TEST_F(X509Test, ClientCertificateRefusesMalformedPrincipalUri) {
  std::string key = NewKey().public_key_pem;
  for (std::string uri :
       {std::string(""), std::string("fieldsync://"), std::string("https://device/1"),
        std::string("fieldsync://device/a b"), "fieldsync://device/" + std::string(64, 'a')}) {
    EXPECT_THAT(IssueClientCertificate(ca_, key, uri, now_, kClientValidity), StatusIs(kInvalid))
        << uri;
  }
}

TEST_F(X509Test, ClientCertificateRefusesNonP256Key) {
  EXPECT_THAT(IssueClientCertificate(ca_, kEd25519PublicKey, kDeviceUri, now_, kClientValidity),
              StatusIs(kInvalid, HasSubstr("P-256")));
}

TEST_F(X509Test, SerialNumbersAreRandomAndPositive) {
  IssuedCertificate a = IssueClient(ca_, now_);
  IssuedCertificate b = IssueClient(ca_, now_);

  EXPECT_NE(a.serial_hex, b.serial_hex);
  for (const std::string& serial : {a.serial_hex, b.serial_hex}) {
    EXPECT_LE(serial.size(), 32u);
    EXPECT_GE(serial.size(), 20u);  // Fails with probability 2^-48.
    EXPECT_NE(serial[0], '-');
  }
}

TEST_F(X509Test, LeafNeverOutlivesItsCa) {
  absl::StatusOr<CertificateAuthority> short_ca = CreateCertificateAuthority("ca", now_, kDay);
  ASSERT_THAT(short_ca, IsOk());

  IssuedCertificate cert = IssueClient(*short_ca, now_, kClientValidity);

  EXPECT_EQ(cert.not_after, now_ + kDay);
}

TEST_F(X509Test, IssuingFromExpiredCaFails) {
  absl::StatusOr<CertificateAuthority> short_ca = CreateCertificateAuthority("ca", now_, kDay);
  ASSERT_THAT(short_ca, IsOk());

  EXPECT_THAT(IssueClientCertificate(*short_ca, NewKey().public_key_pem, kDeviceUri,
                                     now_ + 2 * kDay, kClientValidity),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("CA certificate expired")));
}

TEST_F(X509Test, IssuingWithMismatchedCaKeyFails) {
  CertificateAuthority broken = ca_;
  broken.private_key_pem = NewKey().private_key_pem;

  EXPECT_THAT(
      IssueClientCertificate(broken, NewKey().public_key_pem, kDeviceUri, now_, kClientValidity),
      StatusIs(kInvalid, HasSubstr("does not match")));
}

TEST_F(X509Test, IssuingFromNonCaFails) {
  KeyPem key = NewKey();
  absl::StatusOr<IssuedCertificate> leaf =
      IssueClientCertificate(ca_, key.public_key_pem, kDeviceUri, now_, kClientValidity);
  ASSERT_THAT(leaf, IsOk());
  CertificateAuthority not_a_ca{leaf->certificate_pem, key.private_key_pem};

  EXPECT_THAT(
      IssueClientCertificate(not_a_ca, NewKey().public_key_pem, kDeviceUri, now_, kClientValidity),
      StatusIs(kInvalid, HasSubstr("not a CA")));
}

TEST_F(X509Test, CsrRoundTripsAsPemAndDer) {
  KeyPem key = NewKey();
  absl::StatusOr<std::string> csr = CreateCsr(key.private_key_pem, kDeviceUri);
  ASSERT_THAT(csr, IsOk());

  absl::StatusOr<VerifiedCsr> from_pem = VerifyCsr(*csr);
  absl::StatusOr<VerifiedCsr> from_der = VerifyCsr(PemToDer(*csr));

  ASSERT_THAT(from_pem, IsOk());
  EXPECT_EQ(from_pem->public_key_pem, key.public_key_pem);
  EXPECT_THAT(from_pem->uris, ElementsAre(kDeviceUri));
  ASSERT_THAT(from_der, IsOk());
  EXPECT_EQ(from_der->public_key_pem, key.public_key_pem);
  EXPECT_THAT(from_der->uris, ElementsAre(kDeviceUri));
}

TEST_F(X509Test, CsrKeyBecomesAVerifiableClientCertificate) {
  KeyPem key = NewKey();
  absl::StatusOr<std::string> csr = CreateCsr(key.private_key_pem, kDeviceUri);
  ASSERT_THAT(csr, IsOk());
  absl::StatusOr<VerifiedCsr> verified = VerifyCsr(*csr);
  ASSERT_THAT(verified, IsOk());

  absl::StatusOr<IssuedCertificate> cert =
      IssueClientCertificate(ca_, verified->public_key_pem, kDeviceUri, now_, kClientValidity);

  ASSERT_THAT(cert, IsOk());
  EXPECT_THAT(CheckKeyMatchesCertificate(key.private_key_pem, cert->certificate_pem), IsOk());
}

TEST_F(X509Test, CsrWithEachByteFlippedGivesCleanError) {
  absl::StatusOr<std::string> csr = CreateCsr(NewKey().private_key_pem, kDeviceUri);
  ASSERT_THAT(csr, IsOk());
  const std::string der = PemToDer(*csr);

  for (size_t i = 0; i < der.size(); ++i) {
    std::string tampered = der;
    tampered[i] = static_cast<char>(tampered[i] ^ 0xff);
    EXPECT_THAT(VerifyCsr(tampered), StatusIs(kInvalid)) << "byte " << i;
    EXPECT_THAT(VerifyCsr(DerToPem(tampered, "CERTIFICATE REQUEST")), StatusIs(kInvalid))
        << "byte " << i;
  }
  std::printf("flipped each of %zu CSR bytes (DER and PEM)\n", der.size());
}

TEST_F(X509Test, CsrWithEachBitFlippedGivesCleanError) {
  absl::StatusOr<std::string> csr = CreateCsr(NewKey().private_key_pem, kDeviceUri);
  ASSERT_THAT(csr, IsOk());
  const std::string der = PemToDer(*csr);

  for (size_t i = 0; i < der.size() * 8; ++i) {
    std::string tampered = der;
    tampered[i / 8] = static_cast<char>(tampered[i / 8] ^ (1 << (i % 8)));
    EXPECT_THAT(VerifyCsr(tampered), StatusIs(kInvalid)) << "bit " << i;
  }
}

TEST_F(X509Test, TruncatedCsrGivesCleanError) {
  absl::StatusOr<std::string> csr = CreateCsr(NewKey().private_key_pem, kDeviceUri);
  ASSERT_THAT(csr, IsOk());
  const std::string der = PemToDer(*csr);

  for (size_t n = 0; n < der.size(); ++n) {
    EXPECT_THAT(VerifyCsr(der.substr(0, n)), StatusIs(kInvalid)) << "length " << n;
  }
  EXPECT_THAT(VerifyCsr(csr->substr(0, csr->size() / 2)), StatusIs(kInvalid));
  EXPECT_THAT(VerifyCsr(der + std::string(1, '\0')), StatusIs(kInvalid, HasSubstr("trailing")));
}

TEST_F(X509Test, CsrWithOtherKeyTypesIsRefused) {
  EXPECT_THAT(VerifyCsr(kEd25519Csr), StatusIs(kInvalid, HasSubstr("CSR key must be ECDSA P-256")));
  EXPECT_THAT(VerifyCsr(kP384Csr), StatusIs(kInvalid, HasSubstr("CSR key must be ECDSA P-256")));
}

TEST_F(X509Test, CsrRefusesNonP256PrivateKeyAndBadUri) {
  EXPECT_THAT(CreateCsr("not a key", kDeviceUri), StatusIs(kInvalid));
  EXPECT_THAT(CreateCsr(NewKey().private_key_pem, "device/1"), StatusIs(kInvalid));
}

TEST_F(X509Test, TruncatedCertificatePemIsRefused) {
  IssuedCertificate cert = IssueClient(ca_, now_);
  const std::string& pem = cert.certificate_pem;

  EXPECT_THAT(ParseCertificate(pem.substr(0, pem.size() / 2)), StatusIs(kInvalid));
  EXPECT_THAT(ParseCertificate(pem.substr(0, pem.find("-----END"))), StatusIs(kInvalid));
  EXPECT_THAT(ParseCertificate(""), StatusIs(kInvalid));
  EXPECT_THAT(ParseCertificate("garbage"), StatusIs(kInvalid));
  EXPECT_THAT(VerifyCertificateChain(ca_.certificate_pem, pem.substr(0, pem.size() / 2), now_),
              StatusIs(kInvalid));
}

TEST_F(X509Test, TamperedCertificateNeverVerifies) {
  IssuedCertificate cert = IssueClient(ca_, now_);
  const std::string der = PemToDer(cert.certificate_pem);

  size_t parsed = 0;
  for (size_t i = 0; i < der.size(); ++i) {
    std::string tampered = der;
    tampered[i] = static_cast<char>(tampered[i] ^ 0xff);
    std::string pem = DerToPem(tampered, "CERTIFICATE");
    absl::StatusOr<CertificateSummary> summary = ParseCertificate(pem);
    if (summary.ok()) {
      ++parsed;
    } else {
      EXPECT_THAT(summary, StatusIs(kInvalid)) << "byte " << i;
    }
    EXPECT_FALSE(VerifyCertificateChain(ca_.certificate_pem, pem, now_).ok()) << "byte " << i;
  }
  std::printf("flipped each of %zu certificate bytes; %zu still parsed, none verified\n",
              der.size(), parsed);
}

TEST_F(X509Test, CertificateFromAnotherCaIsRefused) {
  absl::StatusOr<CertificateAuthority> other =
      CreateCertificateAuthority("fieldsync test CA", now_, kCaValidity);
  ASSERT_THAT(other, IsOk());
  IssuedCertificate foreign = IssueClient(*other, now_);

  EXPECT_THAT(VerifyCertificateChain(ca_.certificate_pem, foreign.certificate_pem, now_),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST_F(X509Test, CaBundleAcceptsCertificatesOfEitherCa) {
  absl::StatusOr<CertificateAuthority> next =
      CreateCertificateAuthority("fieldsync deployment CA 2", now_, kCaValidity);
  ASSERT_THAT(next, IsOk());
  const std::string bundle = next->certificate_pem + ca_.certificate_pem;
  IssuedCertificate old_cert = IssueClient(ca_, now_);
  IssuedCertificate new_cert = IssueClient(*next, now_);

  EXPECT_THAT(VerifyCertificateChain(bundle, old_cert.certificate_pem, now_), IsOk());
  EXPECT_THAT(VerifyCertificateChain(bundle, new_cert.certificate_pem, now_), IsOk());
  // Either CA alone accepts only its own.
  EXPECT_THAT(VerifyCertificateChain(next->certificate_pem, old_cert.certificate_pem, now_),
              StatusIs(absl::StatusCode::kUnauthenticated));
  absl::StatusOr<CertificateAuthority> third =
      CreateCertificateAuthority("another deployment", now_, kCaValidity);
  ASSERT_THAT(third, IsOk());
  EXPECT_THAT(VerifyCertificateChain(bundle, IssueClient(*third, now_).certificate_pem, now_),
              StatusIs(absl::StatusCode::kUnauthenticated));

  absl::StatusOr<std::vector<CertificateSummary>> parsed = ParseCertificates(bundle);
  ASSERT_THAT(parsed, IsOk());
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ((*parsed)[1].serial_hex, ParseCertificate(ca_.certificate_pem)->serial_hex);
}

TEST_F(X509Test, CaBundleWithALeafOrABrokenBlockIsRefused) {
  IssuedCertificate leaf = IssueClient(ca_, now_);
  EXPECT_THAT(VerifyCertificateChain(ca_.certificate_pem + leaf.certificate_pem,
                                     leaf.certificate_pem, now_),
              StatusIs(kInvalid, HasSubstr("not a CA")));
  // A second block cut short, or with its body tampered with.
  std::string cut = ca_.certificate_pem + ca_.certificate_pem.substr(0, 100);
  EXPECT_THAT(VerifyCertificateChain(cut, leaf.certificate_pem, now_), StatusIs(kInvalid));
  EXPECT_THAT(ParseCertificates(cut), StatusIs(kInvalid));
  std::string tampered = ca_.certificate_pem + ca_.certificate_pem;
  tampered[ca_.certificate_pem.size() + 40] = '*';
  EXPECT_THAT(VerifyCertificateChain(tampered, leaf.certificate_pem, now_), StatusIs(kInvalid));
  EXPECT_THAT(ParseCertificates(""), StatusIs(kInvalid));
  EXPECT_THAT(ParseCertificates("no certificate here\n"), StatusIs(kInvalid));
}

TEST_F(X509Test, ExpiredCertificateIsRefusedWithClearMessage) {
  IssuedCertificate old = IssueClient(ca_, now_ - 2 * kDay, kDay);

  absl::Status status = VerifyCertificateChain(ca_.certificate_pem, old.certificate_pem, now_);

  EXPECT_THAT(status, StatusIs(absl::StatusCode::kFailedPrecondition,
                               HasSubstr(absl::StrCat("certificate expired on ",
                                                      absl::FormatTime("%Y-%m-%d", old.not_after,
                                                                       absl::UTCTimeZone())))));
  EXPECT_THAT(status.message(), HasSubstr("issue a new one"));
}

TEST_F(X509Test, NotYetValidCertificateIsRefused) {
  IssuedCertificate cert = IssueClient(ca_, now_ + kDay);

  EXPECT_THAT(VerifyCertificateChain(ca_.certificate_pem, cert.certificate_pem, now_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not valid before")));
}

TEST_F(X509Test, NonCaAsTrustAnchorIsRefused) {
  IssuedCertificate leaf = IssueClient(ca_, now_);

  EXPECT_THAT(VerifyCertificateChain(leaf.certificate_pem, leaf.certificate_pem, now_),
              StatusIs(kInvalid));
}

TEST_F(X509Test, KeyCertificateMismatchIsDetected) {
  IssuedCertificate cert = IssueClient(ca_, now_);

  EXPECT_THAT(CheckKeyMatchesCertificate(NewKey().private_key_pem, cert.certificate_pem),
              StatusIs(kInvalid, HasSubstr("does not match")));
  EXPECT_THAT(CheckKeyMatchesCertificate("-----BEGIN PRIVATE KEY-----\n", cert.certificate_pem),
              StatusIs(kInvalid));
}

// --- Extended key usage (RFC 5280 4.2.1.12) ---

// DER of id-kp-clientAuth as an OBJECT IDENTIFIER (1.3.6.1.5.5.7.3.2).
const std::string kClientAuthOidDer("\x06\x08\x2b\x06\x01\x05\x05\x07\x03\x02", 10);

TEST_F(X509Test, IssuedServerCertificateAllowsServerAuthOnly) {
  absl::StatusOr<IssuedCertificate> cert = IssueServerCertificate(
      ca_, MakeServerCertificateRequest(NewKey().public_key_pem, {}), now_, kServerValidity);
  ASSERT_THAT(cert, IsOk());

  absl::StatusOr<CertificateSummary> summary = ParseCertificate(cert->certificate_pem);

  ASSERT_THAT(summary, IsOk());
  EXPECT_TRUE(summary->extended_key_usage.is_present);
  EXPECT_TRUE(summary->extended_key_usage.server_auth);
  EXPECT_FALSE(summary->extended_key_usage.client_auth);
  EXPECT_FALSE(summary->extended_key_usage.any);
  EXPECT_FALSE(summary->extended_key_usage.other);
  EXPECT_EQ(DescribeExtendedKeyUsage(summary->extended_key_usage), "serverAuth");
  EXPECT_THAT(CheckServerOnlyUsage(cert->certificate_pem), IsOk());
}

TEST_F(X509Test, IssuedClientCertificateAllowsClientAuthOnly) {
  absl::StatusOr<CertificateSummary> summary =
      ParseCertificate(IssueClient(ca_, now_).certificate_pem);

  ASSERT_THAT(summary, IsOk());
  EXPECT_TRUE(summary->extended_key_usage.is_present);
  EXPECT_TRUE(summary->extended_key_usage.client_auth);
  EXPECT_FALSE(summary->extended_key_usage.server_auth);
  EXPECT_FALSE(summary->extended_key_usage.any);
  EXPECT_EQ(DescribeExtendedKeyUsage(summary->extended_key_usage), "clientAuth");
}

TEST_F(X509Test, CertificateWithBothPurposesParsesBoth) {
  absl::StatusOr<IssuedCertificate> cert =
      IssuePrincipalCertificate(ca_, NewKey().public_key_pem, kStaffUri, now_, kClientValidity,
                                KeyPurposes::kServerAndClientAuth);
  ASSERT_THAT(cert, IsOk());

  absl::StatusOr<CertificateSummary> summary = ParseCertificate(cert->certificate_pem);

  ASSERT_THAT(summary, IsOk());
  EXPECT_TRUE(summary->extended_key_usage.server_auth);
  EXPECT_TRUE(summary->extended_key_usage.client_auth);
  EXPECT_EQ(DescribeExtendedKeyUsage(summary->extended_key_usage), "serverAuth, clientAuth");
  EXPECT_THAT(CheckServerOnlyUsage(cert->certificate_pem),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("serverAuth, clientAuth")));
}

TEST_F(X509Test, CertificateWithoutExtendedKeyUsageParsesAsAbsent) {
  absl::StatusOr<IssuedCertificate> cert = IssuePrincipalCertificate(
      ca_, NewKey().public_key_pem, kStaffUri, now_, kClientValidity, KeyPurposes::kNoExtension);
  ASSERT_THAT(cert, IsOk());

  absl::StatusOr<CertificateSummary> summary = ParseCertificate(cert->certificate_pem);

  ASSERT_THAT(summary, IsOk());
  EXPECT_FALSE(summary->extended_key_usage.is_present);
  EXPECT_FALSE(summary->extended_key_usage.client_auth);
  EXPECT_FALSE(summary->extended_key_usage.server_auth);
  EXPECT_THAT(DescribeExtendedKeyUsage(summary->extended_key_usage), HasSubstr("none"));
  // The chain itself is fine: refusing it is the caller's decision.
  EXPECT_THAT(VerifyCertificateChain(ca_.certificate_pem, cert->certificate_pem, now_), IsOk());
  EXPECT_THAT(CheckServerOnlyUsage(cert->certificate_pem),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("none")));
}

TEST_F(X509Test, ServerAuthOnlyPrincipalCertificateParsesWithoutClientAuth) {
  absl::StatusOr<IssuedCertificate> cert = IssuePrincipalCertificate(
      ca_, NewKey().public_key_pem, kStaffUri, now_, kClientValidity, KeyPurposes::kServerAuth);
  ASSERT_THAT(cert, IsOk());

  absl::StatusOr<CertificateSummary> summary = ParseCertificate(cert->certificate_pem);

  ASSERT_THAT(summary, IsOk());
  EXPECT_THAT(summary->uris, ElementsAre(kStaffUri));
  EXPECT_TRUE(summary->extended_key_usage.server_auth);
  EXPECT_FALSE(summary->extended_key_usage.client_auth);
}

TEST_F(X509Test, MalformedExtendedKeyUsageIsRefused) {
  const std::string der = PemToDer(IssueClient(ca_, now_).certificate_pem);
  const size_t oid = der.find(kClientAuthOidDer);
  ASSERT_NE(oid, std::string::npos);
  // The byte before the OID is the length of the extension's SEQUENCE
  // (one OID), the one before that its tag.
  ASSERT_EQ(der[oid - 2], '\x30');

  // The purpose as an OCTET STRING rather than an OBJECT IDENTIFIER.
  std::string not_an_oid = der;
  not_an_oid[oid] = '\x04';
  // A SET rather than a SEQUENCE of purposes.
  std::string not_a_sequence = der;
  not_a_sequence[oid - 2] = '\x31';
  // An OID whose length runs past the end of the extension.
  std::string overlong = der;
  overlong[oid + 1] = '\x09';

  for (const std::string& tampered : {not_an_oid, not_a_sequence, overlong}) {
    EXPECT_THAT(ParseCertificate(DerToPem(tampered, "CERTIFICATE")), StatusIs(kInvalid));
    EXPECT_THAT(CheckServerOnlyUsage(DerToPem(tampered, "CERTIFICATE")), StatusIs(kInvalid));
  }
}

TEST(TestPkiTest, GivesVerifiableServerAndClientCredentials) {
  const absl::Time now = absl::FromUnixSeconds(1795000000);
  fieldsync::testing::TestPki pki = fieldsync::testing::TestPki::CreateOrDie(now);

  fieldsync::testing::TestCredentials client =
      pki.IssueClientOrDie(kDeviceUri, now, absl::Hours(1));

  EXPECT_THAT(VerifyCertificateChain(pki.ca_certificate_pem(), pki.server.certificate_pem, now),
              IsOk());
  EXPECT_THAT(CheckKeyMatchesCertificate(pki.server.private_key_pem, pki.server.certificate_pem),
              IsOk());
  EXPECT_THAT(VerifyCertificateChain(pki.ca_certificate_pem(), client.certificate_pem, now),
              IsOk());
  EXPECT_THAT(VerifyCertificateChain(pki.ca_certificate_pem(), client.certificate_pem,
                                     now + absl::Hours(2)),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

}  // namespace
}  // namespace fieldsync::crypto
