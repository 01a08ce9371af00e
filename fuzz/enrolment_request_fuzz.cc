// Fuzzes what an unauthenticated tablet sends to enrol (SyncService.Enroll):
// the EnrollRequest message, and in it the PKCS#10 CSR (crypto/x509.h
// VerifyCsr, PEM or DER) and the code (admin/enrolment.h), with the checks
// DeviceEnrolment::Enroll makes before it touches storage.
//
// Input: one mode byte, then
//   mode even: a serialized EnrollRequest;
//   mode odd:  CSR bytes alone (PEM or DER), to reach deeper into the
//              ASN.1 than a protobuf-wrapped input does.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "admin/enrolment.h"
#include "admin/principals.h"
#include "crypto/x509.h"
#include "fieldsync/v1/sync.pb.h"
#include "fuzz/fuzz_fixtures.h"

using namespace fieldsync;  // NOLINT: a fuzz target's one file

namespace {

void CheckCsr(std::string_view csr) {
  absl::StatusOr<crypto::VerifiedCsr> verified = crypto::VerifyCsr(csr);
  if (!verified.ok()) {
    fuzz::Check(verified.status().code() == absl::StatusCode::kInvalidArgument,
                "a bad CSR is kInvalidArgument");
    return;
  }
  fuzz::Check(verified->public_key_pem.starts_with("-----BEGIN PUBLIC KEY-----"),
              "a verified CSR's key is SubjectPublicKeyInfo PEM");
  for (const std::string& uri : verified->uris) (void)admin::ParsePrincipalUri(uri);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((mode & 1) != 0) {
    CheckCsr(rest);
    return 0;
  }
  v1::EnrollRequest request;
  if (!request.ParseFromArray(rest.data(), static_cast<int>(rest.size()))) return 0;
  (void)admin::NormalizeEnrolmentCode(request.enrolment_code());
  CheckCsr(request.csr_pem());
  return 0;
}
