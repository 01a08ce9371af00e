#include "tests/testing/test_pki.h"

#include <cstdlib>
#include <iostream>
#include <utility>

namespace fieldsync::testing {
namespace {

template <typename T>
T ValueOrDie(absl::StatusOr<T> value, std::string_view what) {
  if (!value.ok()) {
    std::cerr << "TestPki: " << what << " failed: " << value.status() << "\n";
    std::abort();
  }
  return *std::move(value);
}

}  // namespace

TestPki TestPki::CreateOrDie(absl::Time now) {
  TestPki pki;
  pki.ca = ValueOrDie(crypto::CreateCertificateAuthority("fieldsync test CA", now,
                                                         crypto::kCaValidity),
                      "creating the CA");
  pki.server = pki.IssueServerOrDie({}, now);
  return pki;
}

TestCredentials TestPki::IssueClientOrDie(std::string_view principal_uri, absl::Time now,
                                          absl::Duration validity) const {
  crypto::KeyPem key = ValueOrDie(crypto::GenerateP256Key(), "generating a client key");
  crypto::IssuedCertificate cert = ValueOrDie(
      crypto::IssueClientCertificate(ca, key.public_key_pem, principal_uri, now, validity),
      "issuing a client certificate");
  return TestCredentials{std::move(cert.certificate_pem), std::move(key.private_key_pem),
                         std::move(cert.serial_hex)};
}

TestCredentials TestPki::IssueServerOrDie(const std::vector<std::string>& extra_hosts,
                                          absl::Time now, absl::Duration validity) const {
  crypto::KeyPem key = ValueOrDie(crypto::GenerateP256Key(), "generating a server key");
  crypto::IssuedCertificate cert = ValueOrDie(
      crypto::IssueServerCertificate(
          ca, crypto::MakeServerCertificateRequest(key.public_key_pem, extra_hosts), now,
          validity),
      "issuing a server certificate");
  return TestCredentials{std::move(cert.certificate_pem), std::move(key.private_key_pem),
                         std::move(cert.serial_hex)};
}

}  // namespace fieldsync::testing
