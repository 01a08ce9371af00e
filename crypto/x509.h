// The deployment's private PKI: ECDSA P-256 keys, the deployment CA, server
// and principal (device, staff) certificates, CSRs and chain checks. PEM in,
// PEM out; no OpenSSL type crosses this header. All functions are
// thread-safe (they share no state).
#ifndef FIELDSYNC_CRYPTO_X509_H_
#define FIELDSYNC_CRYPTO_X509_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fieldsync::crypto {

// Default lifetimes.
inline constexpr absl::Duration kCaValidity = absl::Hours(24 * 3652);     // ~10 years
inline constexpr absl::Duration kServerValidity = absl::Hours(24 * 730);  // ~2 years
inline constexpr absl::Duration kClientValidity = absl::Hours(24 * 365);  // 1 year
// Every certificate's notBefore is `now` minus this, so that a tablet whose
// clock runs a little behind still accepts a certificate issued just now.
inline constexpr absl::Duration kNotBeforeBackdate = absl::Minutes(5);
// A principal URI becomes the subject CN, which X.509 caps at 64 characters.
inline constexpr size_t kMaxPrincipalUriLength = 64;

// An ECDSA P-256 key pair.
struct KeyPem {
  std::string private_key_pem;  // PKCS#8 ("BEGIN PRIVATE KEY"), unencrypted. Secret.
  std::string public_key_pem;   // SubjectPublicKeyInfo ("BEGIN PUBLIC KEY").
};

// Returns a fresh P-256 key pair from OpenSSL's CSPRNG. kInternal only if
// OpenSSL fails.
absl::StatusOr<KeyPem> GenerateP256Key();

struct IssuedCertificate {
  std::string certificate_pem;
  std::string serial_hex;  // Lowercase hex of the serial number, as ParseCertificate gives it.
  absl::Time not_before;   // Whole seconds, as written in the certificate.
  absl::Time not_after;
};

struct CertificateAuthority {
  std::string certificate_pem;
  std::string private_key_pem;  // PKCS#8 P-256. Secret.
};

// Creates a self-signed deployment CA with a new P-256 key: subject
// CN=common_name, basicConstraints CA:TRUE, pathlen:0 (critical), keyUsage
// keyCertSign, cRLSign (critical), subject key identifier. Valid from
// now - kNotBeforeBackdate to now + validity.
// Errors: kInvalidArgument if common_name is empty or over 64 characters or
// validity is not positive; kInternal if OpenSSL fails.
absl::StatusOr<CertificateAuthority> CreateCertificateAuthority(std::string_view common_name,
                                                                absl::Time now,
                                                                absl::Duration validity);

struct ServerCertificateRequest {
  std::string public_key_pem;             // P-256 SubjectPublicKeyInfo PEM.
  std::vector<std::string> dns_names;     // An entry that parses as an IP address goes in as IP.
  std::vector<std::string> ip_addresses;  // IPv4 or IPv6 text form.
  std::string common_name;                // Empty: "fieldsync server".
};

// Returns a request for `public_key_pem` that names localhost, 127.0.0.1 and
// ::1 plus each of `hosts` (host names or IP addresses, sorted into DNS and IP
// entries, duplicates dropped): what `fieldsync init` asks for.
ServerCertificateRequest MakeServerCertificateRequest(std::string_view public_key_pem,
                                                      const std::vector<std::string>& hosts);

// Issues a TLS server certificate signed by `ca`: EKU serverAuth, keyUsage
// digitalSignature, CA:FALSE, SAN with the DNS and IP entries (duplicates
// dropped), subject and authority key identifiers, a 128-bit random serial.
// notAfter is now + validity but never later than the CA's own notAfter.
// Errors: kInvalidArgument for a malformed or non-P-256 public key, no SAN
// entry, a malformed DNS name or IP address, a non-positive validity, or a CA
// whose key does not match its certificate or that is not a CA;
// kInternal if OpenSSL fails.
absl::StatusOr<IssuedCertificate> IssueServerCertificate(const CertificateAuthority& ca,
                                                         const ServerCertificateRequest& request,
                                                         absl::Time now, absl::Duration validity);

// Issues a TLS client certificate for a principal: EKU clientAuth, keyUsage
// digitalSignature, CA:FALSE, SAN with the one URI `principal_uri` (e.g.
// "fieldsync://device/<id>"), subject CN = principal_uri, key identifiers,
// a 128-bit random serial; notAfter clamped as for IssueServerCertificate.
// Errors: kInvalidArgument for a malformed or non-P-256 public key, a URI
// that is not "fieldsync://..." printable ASCII of at most
// kMaxPrincipalUriLength characters, a non-positive validity or a bad CA;
// kInternal if OpenSSL fails.
absl::StatusOr<IssuedCertificate> IssueClientCertificate(const CertificateAuthority& ca,
                                                         std::string_view public_key_pem,
                                                         std::string_view principal_uri,
                                                         absl::Time now, absl::Duration validity);

// The extendedKeyUsage a principal certificate is issued with. The
// deployment issues only kClientAuth (IssueClientCertificate); the others
// make the certificates a careless or hostile issuer could present, so
// that the server's refusal of them can be tested.
enum class KeyPurposes {
  kClientAuth,
  kServerAuth,
  kServerAndClientAuth,
  kNoExtension,  // no extendedKeyUsage extension at all
};

// IssueClientCertificate with the extendedKeyUsage `purposes`; same rules
// and errors.
absl::StatusOr<IssuedCertificate> IssuePrincipalCertificate(const CertificateAuthority& ca,
                                                            std::string_view public_key_pem,
                                                            std::string_view principal_uri,
                                                            absl::Time now, absl::Duration validity,
                                                            KeyPurposes purposes);

// Returns a PEM certificate signing request (PKCS#10) for the P-256 key
// `private_key_pem`, self-signed with it (ECDSA-SHA256), subject
// CN = principal_uri and a SAN URI extension request: what a device or the
// CLI sends. Errors: kInvalidArgument for a malformed or non-P-256 key or a
// bad URI (rules as IssueClientCertificate); kInternal if OpenSSL fails.
absl::StatusOr<std::string> CreateCsr(std::string_view private_key_pem,
                                      std::string_view principal_uri);

struct VerifiedCsr {
  std::string public_key_pem;     // The CSR's key, SubjectPublicKeyInfo PEM.
  std::vector<std::string> uris;  // URI entries of the requested SAN, in order.
};

// Parses a CSR (PEM, or raw DER), checks its self-signature and key type.
// The URIs are what the requester asked for; the caller decides what to
// issue (it must not trust them as an identity).
// Errors: kInvalidArgument "CSR key must be ECDSA P-256" for any other key;
// kInvalidArgument for malformed input, trailing bytes or a bad signature.
absl::StatusOr<VerifiedCsr> VerifyCsr(std::string_view csr_pem_or_der);

// What a certificate's extendedKeyUsage extension (RFC 5280 4.2.1.12)
// allows. A malformed extension makes the certificate malformed.
struct ExtendedKeyUsage {
  bool is_present = false;   // The certificate has the extension.
  bool server_auth = false;  // id-kp-serverAuth.
  bool client_auth = false;  // id-kp-clientAuth.
  bool any = false;          // anyExtendedKeyUsage.
  bool other = false;        // Any other purpose (code signing, ...).
};

// "serverAuth, clientAuth", "anyExtendedKeyUsage, other" or "none (no
// extendedKeyUsage extension)": for error messages.
std::string DescribeExtendedKeyUsage(const ExtendedKeyUsage& usage);

struct CertificateSummary {
  std::vector<std::string> uris;          // SAN URI entries, in order.
  std::vector<std::string> dns_names;     // SAN DNS entries, in order.
  std::vector<std::string> ip_addresses;  // SAN IP entries in canonical text form ("::1").
  std::string serial_hex;                 // Lowercase hex; "-" first if negative.
  absl::Time not_before;
  absl::Time not_after;
  bool is_ca = false;  // basicConstraints CA:TRUE.
  ExtendedKeyUsage extended_key_usage;
};

// Parses a PEM certificate (the first, if several). Checks nothing about its
// validity or issuer.
// Errors: kInvalidArgument if it is not a well-formed certificate (a
// malformed or repeated extension, extendedKeyUsage included, makes it so).
absl::StatusOr<CertificateSummary> ParseCertificate(std::string_view pem);

// OK if the certificate `pem` is fit to be the server's own: it has an
// extendedKeyUsage that allows serverAuth and nothing else (so that it can
// never act as a client). Errors: kFailedPrecondition naming what it
// allows; kInvalidArgument if it is not a well-formed certificate.
absl::Status CheckServerOnlyUsage(std::string_view pem);

// Parses every certificate of a PEM bundle (at least one), in order. Checks
// nothing about their validity or issuers.
// Errors: kInvalidArgument if there is none or a block is not a
// well-formed certificate.
absl::StatusOr<std::vector<CertificateSummary>> ParseCertificates(std::string_view pem);

// Checks that `cert_pem` was issued by the CA `ca_pem` and that both are
// valid at `now`. `ca_pem` may hold several CA certificates (during a CA
// rotation, the new CA and the one being retired): the certificate must be
// issued by one of them. OK on success. Errors:
//   kFailedPrecondition "certificate expired on <date>; issue a new one" (or
//     "not valid before <date>", or the same about the CA certificate);
//   kUnauthenticated if it was not issued by this CA (unknown issuer, bad
//     signature) or the chain is otherwise unacceptable;
//   kInvalidArgument if either PEM is malformed or a certificate of
//     `ca_pem` is not a CA.
absl::Status VerifyCertificateChain(std::string_view ca_pem, std::string_view cert_pem,
                                    absl::Time now);

// OK if `private_key_pem` is the private half of the key in `cert_pem`.
// Errors: kInvalidArgument "private key does not match the certificate", or
// for malformed input.
absl::Status CheckKeyMatchesCertificate(std::string_view private_key_pem,
                                        std::string_view cert_pem);

}  // namespace fieldsync::crypto

#endif  // FIELDSYNC_CRYPTO_X509_H_
