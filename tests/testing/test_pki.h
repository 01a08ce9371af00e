// A throwaway deployment PKI for tests: a CA, a server certificate for
// localhost, 127.0.0.1 and ::1, and client certificates for any principal
// URI with any validity (expired ones included). Fresh P-256 keys each time.
// gRPC checks certificate validity against the real clock, so tests that
// hand these to gRPC should pass absl::Now() as `now`.
#ifndef FIELDSYNC_TESTS_TESTING_TEST_PKI_H_
#define FIELDSYNC_TESTS_TESTING_TEST_PKI_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "crypto/x509.h"

namespace fieldsync::testing {

// A certificate and its private key, both PEM.
struct TestCredentials {
  std::string certificate_pem;
  std::string private_key_pem;  // PKCS#8 P-256.
  std::string serial_hex;
};

// Immutable after creation, so thread-safe to read and to issue from.
// Every failure aborts the test binary with a message: these only fail if
// OpenSSL is broken or the arguments are nonsense.
struct TestPki {
  crypto::CertificateAuthority ca;
  TestCredentials server;  // For localhost, 127.0.0.1 and ::1.

  // A CA "fieldsync test CA" valid for 10 years from `now`, and a server
  // certificate valid for 2 years.
  static TestPki CreateOrDie(absl::Time now);

  const std::string& ca_certificate_pem() const { return ca.certificate_pem; }

  // A fresh key and a client certificate naming `principal_uri` (e.g.
  // "fieldsync://device/<id>") valid from `now` - kNotBeforeBackdate to
  // `now` + `validity`. For an expired certificate pass a `now` in the past.
  TestCredentials IssueClientOrDie(std::string_view principal_uri, absl::Time now,
                                   absl::Duration validity = crypto::kClientValidity) const;

  // A fresh key and a server certificate for localhost, 127.0.0.1, ::1 and
  // `extra_hosts`.
  TestCredentials IssueServerOrDie(const std::vector<std::string>& extra_hosts, absl::Time now,
                                   absl::Duration validity = crypto::kServerValidity) const;
};

}  // namespace fieldsync::testing

#endif  // FIELDSYNC_TESTS_TESTING_TEST_PKI_H_
