#include "crypto/x509.h"

#include <arpa/inet.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace fieldsync::crypto {
namespace {

// One deleter per OpenSSL type.
template <auto kFree>
struct Free {
  template <typename T>
  void operator()(T* p) const {
    kFree(p);
  }
};
using BioPtr = std::unique_ptr<BIO, Free<BIO_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Free<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Free<X509_free>>;
using ReqPtr = std::unique_ptr<X509_REQ, Free<X509_REQ_free>>;
using NamePtr = std::unique_ptr<X509_NAME, Free<X509_NAME_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Free<X509_EXTENSION_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, Free<BN_free>>;
using Asn1IntPtr = std::unique_ptr<ASN1_INTEGER, Free<ASN1_INTEGER_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Free<X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Free<X509_STORE_CTX_free>>;
using GeneralNamePtr = std::unique_ptr<GENERAL_NAME, Free<GENERAL_NAME_free>>;
using Ia5Ptr = std::unique_ptr<ASN1_IA5STRING, Free<ASN1_IA5STRING_free>>;
using OctetsPtr = std::unique_ptr<ASN1_OCTET_STRING, Free<ASN1_OCTET_STRING_free>>;
void FreeGeneralNames(GENERAL_NAMES* names) { sk_GENERAL_NAME_pop_free(names, GENERAL_NAME_free); }
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Free<FreeGeneralNames>>;
void FreeExtensions(STACK_OF(X509_EXTENSION) * exts) {
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
}
using ExtensionsPtr = std::unique_ptr<STACK_OF(X509_EXTENSION), Free<FreeExtensions>>;
void FreeOpenSslString(char* s) { OPENSSL_free(s); }
using OpenSslStringPtr = std::unique_ptr<char, Free<FreeOpenSslString>>;

// Inputs larger than this are refused before OpenSSL sees them.
constexpr size_t kMaxInputSize = 1 << 20;
constexpr std::string_view kPrincipalUriScheme = "fieldsync://";
constexpr std::string_view kDefaultServerCommonName = "fieldsync server";

// Clears OpenSSL's thread-local error queue on entry and exit, so that a
// failure here never leaks a stale error into gRPC's own TLS code, which
// reads the same queue.
class ErrorQueueScope {
 public:
  ErrorQueueScope() { ERR_clear_error(); }
  ~ErrorQueueScope() { ERR_clear_error(); }
  ErrorQueueScope(const ErrorQueueScope&) = delete;
  ErrorQueueScope& operator=(const ErrorQueueScope&) = delete;
};

// `code` with `what`, plus OpenSSL's reason for the oldest queued error
// (a fixed library string, never key material).
absl::Status OpenSslError(absl::StatusCode code, std::string_view what) {
  unsigned long err = ERR_peek_error();
  const char* reason = err != 0 ? ERR_reason_error_string(err) : nullptr;
  ERR_clear_error();
  if (reason == nullptr) return absl::Status(code, std::string(what));
  return absl::Status(code, absl::StrFormat("%s (%s)", what, reason));
}
absl::Status Internal(std::string_view what) {
  return OpenSslError(absl::StatusCode::kInternal, what);
}
absl::Status Invalid(std::string_view what) {
  return OpenSslError(absl::StatusCode::kInvalidArgument, what);
}

// A read-only memory BIO over `data`, which must outlive it.
absl::StatusOr<BioPtr> ReadBio(std::string_view data, std::string_view what) {
  if (data.empty()) return absl::InvalidArgumentError(absl::StrFormat("%s is empty", what));
  if (data.size() > kMaxInputSize) {
    return absl::InvalidArgumentError(absl::StrFormat("%s is larger than 1 MiB", what));
  }
  BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  if (bio == nullptr) return Internal("BIO_new_mem_buf failed");
  return bio;
}

std::string BioContents(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return len > 0 ? std::string(data, static_cast<size_t>(len)) : std::string();
}

// Never prompts on a terminal for a passphrase: an encrypted key just fails.
int NoPassphrase(char*, int, int, void*) { return -1; }

bool IsP256(const EVP_PKEY* key) {
  if (key == nullptr || !EVP_PKEY_is_a(key, "EC")) return false;
  char group[64] = {};
  size_t len = 0;
  if (EVP_PKEY_get_group_name(key, group, sizeof(group), &len) != 1) return false;
  return std::string_view(group, len) == "prime256v1";
}

absl::StatusOr<PkeyPtr> ParsePrivateKey(std::string_view pem) {
  ASSIGN_OR_RETURN(BioPtr bio, ReadBio(pem, "private key PEM"));
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (key == nullptr) return Invalid("private key PEM is malformed or encrypted");
  if (!IsP256(key.get())) return absl::InvalidArgumentError("private key must be ECDSA P-256");
  return key;
}

absl::StatusOr<PkeyPtr> ParsePublicKey(std::string_view pem) {
  ASSIGN_OR_RETURN(BioPtr bio, ReadBio(pem, "public key PEM"));
  PkeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, NoPassphrase, nullptr));
  if (key == nullptr) return Invalid("public key PEM is malformed");
  if (!IsP256(key.get())) return absl::InvalidArgumentError("public key must be ECDSA P-256");
  return key;
}

absl::StatusOr<X509Ptr> ParseCertificatePem(std::string_view pem, std::string_view what) {
  ASSIGN_OR_RETURN(BioPtr bio, ReadBio(pem, what));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr));
  if (cert == nullptr) return Invalid(absl::StrFormat("%s is not a well-formed certificate", what));
  // Decodes and caches the extensions; flags malformed or duplicated ones.
  if ((X509_get_extension_flags(cert.get()) & EXFLAG_INVALID) != 0) {
    return Invalid(absl::StrFormat("%s has malformed extensions", what));
  }
  return cert;
}

absl::StatusOr<std::string> PublicKeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_PUBKEY(bio.get(), key) != 1) {
    return Internal("writing public key PEM failed");
  }
  return BioContents(bio.get());
}

absl::StatusOr<std::string> PrivateKeyPem(EVP_PKEY* key) {
  // Secure-heap BIO: its buffer is wiped when freed.
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (bio == nullptr ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return Internal("writing private key PEM failed");
  }
  return BioContents(bio.get());
}

absl::StatusOr<std::string> CertificatePem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return Internal("writing certificate PEM failed");
  }
  return BioContents(bio.get());
}

absl::StatusOr<PkeyPtr> NewP256Key() {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (key == nullptr) return Internal("P-256 key generation failed");
  return key;
}

// --- Time. X.509 times have whole seconds; absl::Time is exact. ---

absl::Time WholeSeconds(absl::Time t) { return absl::FromUnixSeconds(absl::ToUnixSeconds(t)); }

absl::Status SetTime(ASN1_TIME* field, absl::Time t) {
  // ASN1_TIME_set picks UTCTime up to 2049 and GeneralizedTime after, as
  // RFC 5280 section 4.1.2.5 requires.
  if (ASN1_TIME_set(field, static_cast<time_t>(absl::ToUnixSeconds(t))) == nullptr) {
    return Internal("setting a certificate time failed");
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::Time> GetTime(const ASN1_TIME* field) {
  struct tm tm = {};
  if (field == nullptr || ASN1_TIME_to_tm(field, &tm) != 1) {
    return Invalid("certificate time is malformed");
  }
  return absl::FromCivil(absl::CivilSecond(tm.tm_year + 1900LL, tm.tm_mon + 1, tm.tm_mday,
                                           tm.tm_hour, tm.tm_min, tm.tm_sec),
                         absl::UTCTimeZone());
}

std::string FormatDate(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", t, absl::UTCTimeZone());
}

// --- Names. ---

absl::StatusOr<std::string> SerialHex(const ASN1_INTEGER* serial) {
  BignumPtr bn(ASN1_INTEGER_to_BN(serial, nullptr));
  if (bn == nullptr) return Invalid("serial number is malformed");
  OpenSslStringPtr hex(BN_bn2hex(bn.get()));
  if (hex == nullptr) return Internal("BN_bn2hex failed");
  return absl::AsciiStrToLower(hex.get());
}

// A fresh serial: 128 bits from OpenSSL's CSPRNG, read as an unsigned (so
// positive) integer; RFC 5280 allows up to 20 octets.
absl::StatusOr<Asn1IntPtr> RandomSerial() {
  std::array<unsigned char, 16> bytes;
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    return Internal("RAND_bytes failed");
  }
  bytes[15] |= 1;  // Never zero.
  BignumPtr bn(BN_bin2bn(bytes.data(), static_cast<int>(bytes.size()), nullptr));
  if (bn == nullptr) return Internal("BN_bin2bn failed");
  Asn1IntPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (serial == nullptr) return Internal("BN_to_ASN1_INTEGER failed");
  return serial;
}

absl::StatusOr<NamePtr> CommonNameOnly(std::string_view cn) {
  NamePtr name(X509_NAME_new());
  if (name == nullptr ||
      X509_NAME_add_entry_by_NID(name.get(), NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.data()),
                                 static_cast<int>(cn.size()), -1, 0) != 1) {
    return Invalid("common name is not acceptable");
  }
  return name;
}

absl::Status CheckCommonName(std::string_view cn) {
  if (cn.empty() || cn.size() > 64) {
    return absl::InvalidArgumentError("common name must be 1 to 64 characters");
  }
  return absl::OkStatus();
}

absl::Status CheckPrincipalUri(std::string_view uri) {
  bool printable = std::all_of(uri.begin(), uri.end(), [](char c) { return c > 0x20 && c < 0x7f; });
  if (!uri.starts_with(kPrincipalUriScheme) || uri.size() == kPrincipalUriScheme.size() ||
      uri.size() > kMaxPrincipalUriLength || !printable) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "principal URI must be fieldsync://... in printable ASCII, at most %d characters",
        kMaxPrincipalUriLength));
  }
  return absl::OkStatus();
}

// The canonical text of `text` if it is an IPv4 or IPv6 address, with its
// 4 or 16 raw bytes; nullopt otherwise.
struct IpAddress {
  std::string text;
  std::string bytes;
};
std::optional<IpAddress> ParseIp(const std::string& text) {
  unsigned char buf[16];
  char out[INET6_ADDRSTRLEN];
  for (int family : {AF_INET, AF_INET6}) {
    if (inet_pton(family, text.c_str(), buf) == 1 &&
        inet_ntop(family, buf, out, sizeof(out)) != nullptr) {
      return IpAddress{out, std::string(reinterpret_cast<char*>(buf), family == AF_INET ? 4 : 16)};
    }
  }
  return std::nullopt;
}

std::optional<std::string> IpText(const ASN1_OCTET_STRING* ip) {
  char out[INET6_ADDRSTRLEN];
  int len = ASN1_STRING_length(ip);
  int family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
  if (family == 0 || inet_ntop(family, ASN1_STRING_get0_data(ip), out, sizeof(out)) == nullptr) {
    return std::nullopt;
  }
  return std::string(out);
}

// RFC 1123 host name: dot-separated labels of letters, digits and inner
// hyphens, 1-63 characters each, 253 in all.
bool IsHostName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  while (true) {
    size_t dot = name.find('.');
    std::string_view label = name.substr(0, dot);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    }
    if (dot == std::string_view::npos) return true;
    name.remove_prefix(dot + 1);
  }
}

absl::Status PushIa5Name(GENERAL_NAMES* names, int type, std::string_view value) {
  Ia5Ptr s(ASN1_IA5STRING_new());
  GeneralNamePtr name(GENERAL_NAME_new());
  if (s == nullptr || name == nullptr ||
      ASN1_STRING_set(s.get(), value.data(), static_cast<int>(value.size())) != 1) {
    return Internal("building a SAN entry failed");
  }
  GENERAL_NAME_set0_value(name.get(), type, s.release());
  if (sk_GENERAL_NAME_push(names, name.get()) == 0) return Internal("building the SAN failed");
  name.release();
  return absl::OkStatus();
}

absl::Status PushIpName(GENERAL_NAMES* names, const IpAddress& ip) {
  OctetsPtr s(ASN1_OCTET_STRING_new());
  GeneralNamePtr name(GENERAL_NAME_new());
  if (s == nullptr || name == nullptr ||
      ASN1_OCTET_STRING_set(s.get(), reinterpret_cast<const unsigned char*>(ip.bytes.data()),
                            static_cast<int>(ip.bytes.size())) != 1) {
    return Internal("building a SAN entry failed");
  }
  GENERAL_NAME_set0_value(name.get(), GEN_IPADD, s.release());
  if (sk_GENERAL_NAME_push(names, name.get()) == 0) return Internal("building the SAN failed");
  name.release();
  return absl::OkStatus();
}

absl::StatusOr<GeneralNamesPtr> UriSan(std::string_view uri) {
  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  if (names == nullptr) return Internal("building the SAN failed");
  RETURN_IF_ERROR(PushIa5Name(names.get(), GEN_URI, uri));
  return names;
}

// DNS entries first, then IP, each deduplicated in first-seen order.
absl::StatusOr<GeneralNamesPtr> ServerSan(const ServerCertificateRequest& request) {
  std::vector<std::string> dns;
  std::vector<IpAddress> ips;
  auto add_ip = [&](IpAddress ip) {
    bool seen = std::any_of(ips.begin(), ips.end(),
                            [&](const IpAddress& other) { return other.bytes == ip.bytes; });
    if (!seen) ips.push_back(std::move(ip));
  };
  for (const std::string& name : request.dns_names) {
    if (std::optional<IpAddress> ip = ParseIp(name)) {
      add_ip(*std::move(ip));
      continue;
    }
    if (!IsHostName(name)) {
      return absl::InvalidArgumentError("server DNS name is not a valid host name");
    }
    std::string lower = absl::AsciiStrToLower(name);
    if (std::find(dns.begin(), dns.end(), lower) == dns.end()) dns.push_back(std::move(lower));
  }
  for (const std::string& text : request.ip_addresses) {
    std::optional<IpAddress> ip = ParseIp(text);
    if (!ip) return absl::InvalidArgumentError("server IP address is not IPv4 or IPv6");
    add_ip(*std::move(ip));
  }
  if (dns.empty() && ips.empty()) {
    return absl::InvalidArgumentError("server certificate needs at least one DNS name or IP");
  }
  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  if (names == nullptr) return Internal("building the SAN failed");
  for (const std::string& name : dns) RETURN_IF_ERROR(PushIa5Name(names.get(), GEN_DNS, name));
  for (const IpAddress& ip : ips) RETURN_IF_ERROR(PushIpName(names.get(), ip));
  return names;
}

// Appends the SAN entries of `names` to the summary's lists.
absl::Status ReadSan(const GENERAL_NAMES* names, std::vector<std::string>* uris,
                     std::vector<std::string>* dns, std::vector<std::string>* ips) {
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    int type = 0;
    void* value = GENERAL_NAME_get0_value(name, &type);
    if (type == GEN_URI || type == GEN_DNS) {
      const ASN1_IA5STRING* s = static_cast<const ASN1_IA5STRING*>(value);
      std::string text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<size_t>(ASN1_STRING_length(s)));
      if (text.find('\0') != std::string::npos) {
        return absl::InvalidArgumentError("SAN entry holds a NUL byte");
      }
      std::vector<std::string>* out = type == GEN_URI ? uris : dns;
      if (out != nullptr) out->push_back(std::move(text));
    } else if (type == GEN_IPADD && ips != nullptr) {
      std::optional<std::string> text = IpText(static_cast<const ASN1_OCTET_STRING*>(value));
      if (!text) return absl::InvalidArgumentError("SAN IP entry is malformed");
      ips->push_back(*std::move(text));
    }
  }
  return absl::OkStatus();
}

// --- Extensions. ---

// Adds a config-syntax extension (`value` is a fixed string from this file,
// never outside input). `issuer` and `subject` feed the key identifiers.
absl::Status AddExtension(X509* issuer, X509* subject, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, subject, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
  if (ext == nullptr || X509_add_ext(subject, ext.get(), -1) != 1) {
    return Internal(absl::StrFormat("adding extension %s failed", OBJ_nid2sn(nid)));
  }
  return absl::OkStatus();
}

struct LoadedCa {
  X509Ptr cert;
  PkeyPtr key;
  absl::Time not_after;
};

absl::StatusOr<LoadedCa> LoadCa(const CertificateAuthority& ca, absl::Time now) {
  LoadedCa loaded;
  ASSIGN_OR_RETURN(loaded.cert, ParseCertificatePem(ca.certificate_pem, "CA certificate"));
  ASSIGN_OR_RETURN(loaded.key, ParsePrivateKey(ca.private_key_pem));
  if (X509_check_ca(loaded.cert.get()) != 1) {
    return absl::InvalidArgumentError("CA certificate is not a CA (basicConstraints CA:TRUE)");
  }
  if (X509_check_private_key(loaded.cert.get(), loaded.key.get()) != 1) {
    return Invalid("CA private key does not match the CA certificate");
  }
  ASSIGN_OR_RETURN(loaded.not_after, GetTime(X509_get0_notAfter(loaded.cert.get())));
  if (loaded.not_after <= now) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "CA certificate expired on %s; create a new deployment CA", FormatDate(loaded.not_after)));
  }
  return loaded;
}

// Fills version, serial, names, validity and key; returns the serial and
// validity actually written.
absl::StatusOr<IssuedCertificate> FillBasics(X509* cert, const X509_NAME* subject,
                                             const X509_NAME* issuer, EVP_PKEY* key,
                                             absl::Time not_before, absl::Time not_after) {
  IssuedCertificate issued;
  issued.not_before = WholeSeconds(not_before);
  issued.not_after = WholeSeconds(not_after);
  if (issued.not_after <= issued.not_before) {
    return absl::InvalidArgumentError("certificate validity must be positive");
  }
  ASSIGN_OR_RETURN(Asn1IntPtr serial, RandomSerial());
  ASSIGN_OR_RETURN(issued.serial_hex, SerialHex(serial.get()));
  if (X509_set_version(cert, X509_VERSION_3) != 1 ||
      X509_set_serialNumber(cert, serial.get()) != 1 || X509_set_subject_name(cert, subject) != 1 ||
      X509_set_issuer_name(cert, issuer) != 1 || X509_set_pubkey(cert, key) != 1) {
    return Internal("filling the certificate failed");
  }
  RETURN_IF_ERROR(SetTime(X509_getm_notBefore(cert), issued.not_before));
  RETURN_IF_ERROR(SetTime(X509_getm_notAfter(cert), issued.not_after));
  return issued;
}

// `eku` is a config-syntax extendedKeyUsage value; nullptr for none.
absl::StatusOr<IssuedCertificate> IssueLeaf(const CertificateAuthority& ca, EVP_PKEY* key,
                                            std::string_view common_name, const char* eku,
                                            GENERAL_NAMES* san, absl::Time now,
                                            absl::Duration validity) {
  if (validity <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("certificate validity must be positive");
  }
  ASSIGN_OR_RETURN(LoadedCa signer, LoadCa(ca, now));
  ASSIGN_OR_RETURN(NamePtr subject, CommonNameOnly(common_name));
  X509Ptr cert(X509_new());
  if (cert == nullptr) return Internal("X509_new failed");
  // A leaf never outlives the CA that vouches for it.
  absl::Time not_after = std::min(now + validity, signer.not_after);
  ASSIGN_OR_RETURN(IssuedCertificate issued,
                   FillBasics(cert.get(), subject.get(), X509_get_subject_name(signer.cert.get()),
                              key, now - kNotBeforeBackdate, not_after));
  X509* c = cert.get();
  X509* i = signer.cert.get();
  RETURN_IF_ERROR(AddExtension(i, c, NID_basic_constraints, "critical,CA:FALSE"));
  RETURN_IF_ERROR(AddExtension(i, c, NID_key_usage, "critical,digitalSignature"));
  if (eku != nullptr) RETURN_IF_ERROR(AddExtension(i, c, NID_ext_key_usage, eku));
  RETURN_IF_ERROR(AddExtension(i, c, NID_subject_key_identifier, "hash"));
  RETURN_IF_ERROR(AddExtension(i, c, NID_authority_key_identifier, "keyid:always"));
  if (X509_add1_ext_i2d(c, NID_subject_alt_name, san, 0, X509V3_ADD_DEFAULT) != 1) {
    return Internal("adding the SAN failed");
  }
  if (X509_sign(c, signer.key.get(), EVP_sha256()) <= 0) return Internal("signing failed");
  ASSIGN_OR_RETURN(issued.certificate_pem, CertificatePem(c));
  return issued;
}

absl::StatusOr<ReqPtr> ParseCsr(std::string_view input) {
  ReqPtr req;
  if (input.find("-----BEGIN") != std::string_view::npos) {
    ASSIGN_OR_RETURN(BioPtr bio, ReadBio(input, "CSR"));
    req.reset(PEM_read_bio_X509_REQ(bio.get(), nullptr, NoPassphrase, nullptr));
    if (req == nullptr) return Invalid("CSR PEM is malformed");
    return req;
  }
  if (input.empty() || input.size() > kMaxInputSize) {
    return absl::InvalidArgumentError("CSR must be 1 byte to 1 MiB");
  }
  const unsigned char* p = reinterpret_cast<const unsigned char*>(input.data());
  const unsigned char* end = p + input.size();
  req.reset(d2i_X509_REQ(nullptr, &p, static_cast<long>(input.size())));
  if (req == nullptr) return Invalid("CSR DER is malformed");
  if (p != end) return absl::InvalidArgumentError("CSR DER has trailing bytes");
  return req;
}

}  // namespace

absl::StatusOr<KeyPem> GenerateP256Key() {
  ErrorQueueScope errors;
  ASSIGN_OR_RETURN(PkeyPtr key, NewP256Key());
  KeyPem pem;
  ASSIGN_OR_RETURN(pem.private_key_pem, PrivateKeyPem(key.get()));
  ASSIGN_OR_RETURN(pem.public_key_pem, PublicKeyPem(key.get()));
  return pem;
}

absl::StatusOr<CertificateAuthority> CreateCertificateAuthority(std::string_view common_name,
                                                                absl::Time now,
                                                                absl::Duration validity) {
  ErrorQueueScope errors;
  RETURN_IF_ERROR(CheckCommonName(common_name));
  if (validity <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("CA validity must be positive");
  }
  ASSIGN_OR_RETURN(PkeyPtr key, NewP256Key());
  ASSIGN_OR_RETURN(NamePtr name, CommonNameOnly(common_name));
  X509Ptr cert(X509_new());
  if (cert == nullptr) return Internal("X509_new failed");
  X509* c = cert.get();
  RETURN_IF_ERROR(
      FillBasics(c, name.get(), name.get(), key.get(), now - kNotBeforeBackdate, now + validity)
          .status());
  RETURN_IF_ERROR(AddExtension(c, c, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
  RETURN_IF_ERROR(AddExtension(c, c, NID_key_usage, "critical,keyCertSign,cRLSign"));
  RETURN_IF_ERROR(AddExtension(c, c, NID_subject_key_identifier, "hash"));
  if (X509_sign(c, key.get(), EVP_sha256()) <= 0) return Internal("signing the CA failed");
  CertificateAuthority ca;
  ASSIGN_OR_RETURN(ca.certificate_pem, CertificatePem(c));
  ASSIGN_OR_RETURN(ca.private_key_pem, PrivateKeyPem(key.get()));
  return ca;
}

ServerCertificateRequest MakeServerCertificateRequest(std::string_view public_key_pem,
                                                      const std::vector<std::string>& hosts) {
  ServerCertificateRequest request;
  request.public_key_pem = std::string(public_key_pem);
  request.dns_names = {"localhost"};
  request.ip_addresses = {"127.0.0.1", "::1"};
  for (const std::string& host : hosts) {
    std::vector<std::string>& list = ParseIp(host) ? request.ip_addresses : request.dns_names;
    if (std::find(list.begin(), list.end(), host) == list.end()) list.push_back(host);
  }
  return request;
}

absl::StatusOr<IssuedCertificate> IssueServerCertificate(const CertificateAuthority& ca,
                                                         const ServerCertificateRequest& request,
                                                         absl::Time now, absl::Duration validity) {
  ErrorQueueScope errors;
  std::string_view cn =
      request.common_name.empty() ? kDefaultServerCommonName : request.common_name;
  RETURN_IF_ERROR(CheckCommonName(cn));
  ASSIGN_OR_RETURN(PkeyPtr key, ParsePublicKey(request.public_key_pem));
  ASSIGN_OR_RETURN(GeneralNamesPtr san, ServerSan(request));
  return IssueLeaf(ca, key.get(), cn, "serverAuth", san.get(), now, validity);
}

absl::StatusOr<IssuedCertificate> IssueClientCertificate(const CertificateAuthority& ca,
                                                         std::string_view public_key_pem,
                                                         std::string_view principal_uri,
                                                         absl::Time now, absl::Duration validity) {
  return IssuePrincipalCertificate(ca, public_key_pem, principal_uri, now, validity,
                                   KeyPurposes::kClientAuth);
}

absl::StatusOr<IssuedCertificate> IssuePrincipalCertificate(const CertificateAuthority& ca,
                                                            std::string_view public_key_pem,
                                                            std::string_view principal_uri,
                                                            absl::Time now, absl::Duration validity,
                                                            KeyPurposes purposes) {
  ErrorQueueScope errors;
  RETURN_IF_ERROR(CheckPrincipalUri(principal_uri));
  ASSIGN_OR_RETURN(PkeyPtr key, ParsePublicKey(public_key_pem));
  ASSIGN_OR_RETURN(GeneralNamesPtr san, UriSan(principal_uri));
  const char* eku = nullptr;
  switch (purposes) {
    case KeyPurposes::kClientAuth:
      eku = "clientAuth";
      break;
    case KeyPurposes::kServerAuth:
      eku = "serverAuth";
      break;
    case KeyPurposes::kServerAndClientAuth:
      eku = "serverAuth,clientAuth";
      break;
    case KeyPurposes::kNoExtension:
      break;
  }
  return IssueLeaf(ca, key.get(), principal_uri, eku, san.get(), now, validity);
}

absl::StatusOr<std::string> CreateCsr(std::string_view private_key_pem,
                                      std::string_view principal_uri) {
  ErrorQueueScope errors;
  RETURN_IF_ERROR(CheckPrincipalUri(principal_uri));
  ASSIGN_OR_RETURN(PkeyPtr key, ParsePrivateKey(private_key_pem));
  ASSIGN_OR_RETURN(NamePtr subject, CommonNameOnly(principal_uri));
  ASSIGN_OR_RETURN(GeneralNamesPtr san, UriSan(principal_uri));
  ReqPtr req(X509_REQ_new());
  ExtensionsPtr exts(sk_X509_EXTENSION_new_null());
  if (req == nullptr || exts == nullptr) return Internal("X509_REQ_new failed");
  ExtPtr san_ext(X509V3_EXT_i2d(NID_subject_alt_name, 0, san.get()));
  if (san_ext == nullptr || sk_X509_EXTENSION_push(exts.get(), san_ext.get()) == 0) {
    return Internal("building the CSR SAN failed");
  }
  san_ext.release();
  if (X509_REQ_set_version(req.get(), 0) != 1 ||
      X509_REQ_set_subject_name(req.get(), subject.get()) != 1 ||
      X509_REQ_set_pubkey(req.get(), key.get()) != 1 ||
      X509_REQ_add_extensions(req.get(), exts.get()) != 1) {
    return Internal("filling the CSR failed");
  }
  if (X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0)
    return Internal("signing the CSR failed");
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1) {
    return Internal("writing the CSR PEM failed");
  }
  return BioContents(bio.get());
}

absl::StatusOr<VerifiedCsr> VerifyCsr(std::string_view csr_pem_or_der) {
  ErrorQueueScope errors;
  ASSIGN_OR_RETURN(ReqPtr req, ParseCsr(csr_pem_or_der));
  EVP_PKEY* key = X509_REQ_get0_pubkey(req.get());
  if (key == nullptr) return Invalid("CSR public key is malformed");
  if (!IsP256(key)) return absl::InvalidArgumentError("CSR key must be ECDSA P-256");
  if (X509_REQ_verify(req.get(), key) != 1) {
    return Invalid("CSR signature does not verify");
  }
  VerifiedCsr verified;
  ASSIGN_OR_RETURN(verified.public_key_pem, PublicKeyPem(key));
  ExtensionsPtr exts(X509_REQ_get_extensions(req.get()));
  if (exts == nullptr) {
    // NULL means "none" unless OpenSSL queued a decoding error.
    if (ERR_peek_error() != 0) return Invalid("CSR extension request is malformed");
    return verified;
  }
  int critical = -1;
  GeneralNamesPtr san(static_cast<GENERAL_NAMES*>(
      X509V3_get_d2i(exts.get(), NID_subject_alt_name, &critical, nullptr)));
  if (san == nullptr) {
    if (critical == -1) return verified;  // No SAN requested.
    return Invalid("CSR SAN is malformed or repeated");
  }
  RETURN_IF_ERROR(ReadSan(san.get(), &verified.uris, nullptr, nullptr));
  return verified;
}

namespace {

// The certificate's extendedKeyUsage. A malformed extension never gets
// here: OpenSSL flags it EXFLAG_INVALID, which ParseCertificatePem and
// ParseCertificateBundle refuse.
ExtendedKeyUsage ReadExtendedKeyUsage(X509* cert) {
  ExtendedKeyUsage usage;
  if ((X509_get_extension_flags(cert) & EXFLAG_XKUSAGE) == 0) return usage;
  usage.is_present = true;
  const uint32_t bits = X509_get_extended_key_usage(cert);
  usage.server_auth = (bits & XKU_SSL_SERVER) != 0;
  usage.client_auth = (bits & XKU_SSL_CLIENT) != 0;
  usage.any = (bits & XKU_ANYEKU) != 0;
  usage.other = (bits & ~static_cast<uint32_t>(XKU_SSL_SERVER | XKU_SSL_CLIENT | XKU_ANYEKU)) != 0;
  return usage;
}

absl::StatusOr<CertificateSummary> Summarize(X509* cert) {
  CertificateSummary summary;
  summary.extended_key_usage = ReadExtendedKeyUsage(cert);
  ASSIGN_OR_RETURN(summary.serial_hex, SerialHex(X509_get0_serialNumber(cert)));
  ASSIGN_OR_RETURN(summary.not_before, GetTime(X509_get0_notBefore(cert)));
  ASSIGN_OR_RETURN(summary.not_after, GetTime(X509_get0_notAfter(cert)));
  summary.is_ca = (X509_get_extension_flags(cert) & EXFLAG_CA) != 0;
  int critical = -1;
  GeneralNamesPtr san(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, &critical, nullptr)));
  if (san == nullptr && critical != -1) return Invalid("certificate SAN is malformed or repeated");
  if (san != nullptr) {
    RETURN_IF_ERROR(ReadSan(san.get(), &summary.uris, &summary.dns_names, &summary.ip_addresses));
  }
  return summary;
}

// Every certificate of a PEM bundle (at least one), in order. Text around
// the PEM blocks is ignored, as PEM readers do; a block that does not
// parse is an error.
absl::StatusOr<std::vector<X509Ptr>> ParseCertificateBundle(std::string_view pem,
                                                            std::string_view what) {
  ASSIGN_OR_RETURN(BioPtr bio, ReadBio(pem, what));
  std::vector<X509Ptr> certs;
  while (true) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr));
    if (cert == nullptr) break;
    if ((X509_get_extension_flags(cert.get()) & EXFLAG_INVALID) != 0) {
      return Invalid(absl::StrFormat("%s has malformed extensions", what));
    }
    certs.push_back(std::move(cert));
  }
  // The loop ends at the end of the input (no further start line) or at a
  // block that does not parse.
  const unsigned long last = ERR_peek_last_error();
  const bool at_end =
      ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE;
  if (certs.empty() || (last != 0 && !at_end)) {
    return Invalid(absl::StrFormat("%s is not a well-formed certificate", what));
  }
  return certs;
}

// Every certificate of a PEM bundle; each must be a CA.
absl::StatusOr<std::vector<X509Ptr>> ParseCaBundle(std::string_view pem) {
  ASSIGN_OR_RETURN(std::vector<X509Ptr> cas, ParseCertificateBundle(pem, "CA certificate"));
  for (const X509Ptr& ca : cas) {
    if (X509_check_ca(ca.get()) != 1) {
      return absl::InvalidArgumentError("CA certificate is not a CA (basicConstraints CA:TRUE)");
    }
  }
  return cas;
}

}  // namespace

std::string DescribeExtendedKeyUsage(const ExtendedKeyUsage& usage) {
  if (!usage.is_present) return "none (no extendedKeyUsage extension)";
  std::vector<std::string_view> names;
  if (usage.server_auth) names.push_back("serverAuth");
  if (usage.client_auth) names.push_back("clientAuth");
  if (usage.any) names.push_back("anyExtendedKeyUsage");
  if (usage.other) names.push_back("other");
  if (names.empty()) return "empty";
  std::string out;
  for (std::string_view name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

absl::StatusOr<CertificateSummary> ParseCertificate(std::string_view pem) {
  ErrorQueueScope errors;
  ASSIGN_OR_RETURN(X509Ptr cert, ParseCertificatePem(pem, "certificate"));
  return Summarize(cert.get());
}

absl::Status CheckServerOnlyUsage(std::string_view pem) {
  ASSIGN_OR_RETURN(CertificateSummary summary, ParseCertificate(pem));
  const ExtendedKeyUsage& usage = summary.extended_key_usage;
  if (usage.is_present && usage.server_auth && !usage.client_auth && !usage.any && !usage.other) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(
      absl::StrFormat("its extended key usage is %s; a server certificate must allow serverAuth "
                      "only",
                      DescribeExtendedKeyUsage(usage)));
}

absl::StatusOr<std::vector<CertificateSummary>> ParseCertificates(std::string_view pem) {
  ErrorQueueScope errors;
  ASSIGN_OR_RETURN(std::vector<X509Ptr> certs, ParseCertificateBundle(pem, "certificate"));
  std::vector<CertificateSummary> out;
  for (const X509Ptr& cert : certs) {
    ASSIGN_OR_RETURN(CertificateSummary summary, Summarize(cert.get()));
    out.push_back(std::move(summary));
  }
  return out;
}

absl::Status VerifyCertificateChain(std::string_view ca_pem, std::string_view cert_pem,
                                    absl::Time now) {
  ErrorQueueScope errors;
  ASSIGN_OR_RETURN(std::vector<X509Ptr> cas, ParseCaBundle(ca_pem));
  ASSIGN_OR_RETURN(X509Ptr cert, ParseCertificatePem(cert_pem, "certificate"));
  StorePtr store(X509_STORE_new());
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (store == nullptr || ctx == nullptr)
    return Internal("setting up certificate verification failed");
  for (const X509Ptr& ca : cas) {
    if (X509_STORE_add_cert(store.get(), ca.get()) != 1) {
      return Internal("setting up certificate verification failed");
    }
  }
  if (X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) != 1) {
    return Internal("setting up certificate verification failed");
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(absl::ToUnixSeconds(now)));
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
  if (X509_verify_cert(ctx.get()) == 1) return absl::OkStatus();

  int error = X509_STORE_CTX_get_error(ctx.get());
  X509* failed = X509_STORE_CTX_get_current_cert(ctx.get());
  bool failed_is_ca = false;
  for (const X509Ptr& ca : cas) {
    if (failed != nullptr && X509_cmp(failed, ca.get()) == 0) failed_is_ca = true;
  }
  std::string_view which = failed_is_ca ? "CA certificate" : "certificate";
  if (error == X509_V_ERR_CERT_HAS_EXPIRED && failed != nullptr) {
    ASSIGN_OR_RETURN(absl::Time not_after, GetTime(X509_get0_notAfter(failed)));
    return absl::FailedPreconditionError(
        absl::StrFormat("%s expired on %s; issue a new one", which, FormatDate(not_after)));
  }
  if (error == X509_V_ERR_CERT_NOT_YET_VALID && failed != nullptr) {
    ASSIGN_OR_RETURN(absl::Time not_before, GetTime(X509_get0_notBefore(failed)));
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s is not valid before %s; check the clock", which, FormatDate(not_before)));
  }
  return absl::UnauthenticatedError(
      absl::StrFormat("certificate was not issued by this deployment's CA (%s)",
                      X509_verify_cert_error_string(error)));
}

absl::Status CheckKeyMatchesCertificate(std::string_view private_key_pem,
                                        std::string_view cert_pem) {
  ErrorQueueScope errors;
  ASSIGN_OR_RETURN(PkeyPtr key, ParsePrivateKey(private_key_pem));
  ASSIGN_OR_RETURN(X509Ptr cert, ParseCertificatePem(cert_pem, "certificate"));
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return absl::InvalidArgumentError("private key does not match the certificate");
  }
  return absl::OkStatus();
}

}  // namespace fieldsync::crypto
