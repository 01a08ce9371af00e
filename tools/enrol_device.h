// Enrolling a tablet the way a real one does (DESIGN §3, PROTOCOL.md §3):
// the administrator issues a one-time code bound to an officer and region;
// the tablet makes its own TLS, signing and receiving keys, sends a CSR and
// its public keys to SyncService.Enroll over server-authenticated TLS, and
// then talks over mutual TLS with the certificate it was given. Used by
// `fieldsync device simulate` and the sync load generator (bench/).
#ifndef FIELDSYNC_TOOLS_ENROL_DEVICE_H_
#define FIELDSYNC_TOOLS_ENROL_DEVICE_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/random.h"
#include "device/tablet.h"
#include "tools/client.h"

namespace fieldsync::tools {

struct EnrolDeviceRequest {
  std::string officer_id;
  std::string region;
  std::string label;  // the device label the registry shows
};

struct EnrolledDevice {
  std::unique_ptr<device::Tablet> tablet;
  // Mutual TLS with the device's certificate, retries off, its own
  // connection (no subchannel shared with other devices of this process).
  std::shared_ptr<grpc::Channel> channel;
  std::string certificate_pem;
  std::string tls_private_key_pem;
};

// Issues a code through `admin`, enrols a new device with keys from the
// system CSPRNG (`random` draws the signing and receiving keys), and opens
// its channel. kUnavailable naming the step and the server's reason when a
// call fails; Tablet::Create's errors.
absl::StatusOr<EnrolledDevice> EnrolDevice(const Connection& admin, const std::string& ca_pem,
                                           const EnrolDeviceRequest& request, Random& random);

// A mutual-TLS channel to `server` with a device's certificate, retries
// off, on its own connection.
std::shared_ptr<grpc::Channel> DeviceChannel(const std::string& server, const std::string& ca_pem,
                                             const std::string& certificate_pem,
                                             const std::string& private_key_pem);

}  // namespace fieldsync::tools

#endif  // FIELDSYNC_TOOLS_ENROL_DEVICE_H_
