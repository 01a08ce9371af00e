// The shared fixture of the server tests (tests/server/): a real fieldsyncd
// (FieldsyncServer) on a fresh deployment in a per-test temp dir, served on
// an ephemeral loopback port over real mutual TLS, with a simulated clock,
// and the principals that call it: the deployment's administrator, staff
// added through AdminService, and enrolled tablets, each a device::Tablet.
#ifndef FIELDSYNC_TESTS_TESTING_SERVER_HARNESS_H_
#define FIELDSYNC_TESTS_TESTING_SERVER_HARNESS_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "admin/deployment.h"
#include "common/random.h"
#include "crypto/ed25519.h"
#include "crypto/x25519.h"
#include "device/tablet.h"
#include "fieldsync/v1/admin.pb.h"
#include "fieldsync/v1/config.pb.h"
#include "fieldsync/v1/sync.pb.h"
#include "gtest/gtest.h"
#include "protocol/events.h"
#include "server/server.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/simulated_clock.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::testing {

// A client principal's TLS certificate and private key, both PEM.
struct ClientCredentials {
  std::string certificate_pem;
  std::string private_key_pem;
};

// An enrolled tablet: the server's EnrollResponse, the TLS credentials it
// was issued, the keys whose public halves it enrolled (for tests that sign
// or open by hand), and its device::Tablet, which seals, signs and takes in
// pulls. Default-constructed it is not enrolled (`tablet` is empty).
struct EnrolledDevice {
  std::string id;  // the device id as the server answered it
  ClientCredentials tls;
  v1::EnrollResponse enrolment;
  crypto::Ed25519KeyPair signing;
  crypto::X25519KeyPair receiving;
  std::optional<device::Tablet> tablet;
};

// Reason and detail of a refused call (PROTOCOL.md §8); empty when the
// status carries none.
v1::SyncErrorDetail DetailOf(const grpc::Status& status);

// A gtest fixture to derive a suite's fixture from. Its SetUp initialises a
// deployment (`fieldsync init`) under a fresh temp dir; the test sets
// `config_` and calls StartServer. Helpers fail the test (EXPECT) when a
// call that should succeed does not. Members are for the test's thread;
// Channel, Seal, Push and PushChanges (given its own Random) may be called
// from several threads, one device per thread.
class ServerHarness : public ::testing::Test {
 protected:
  // `seed` seeds random_, which makes the deployment's and devices' keys;
  // clock_ starts at `start`. gRPC checks certificates against the real
  // clock, so a start far from it makes the deployment's unusable.
  explicit ServerHarness(uint64_t seed, absl::Time start = absl::Now());
  ~ServerHarness() override;

  void SetUp() override;

  // What StartServer starts fieldsyncd with: the deployment's data dir,
  // config_ with the defaults applied, clock_ and random_ (for tests of
  // Start itself).
  server::ServerOptions Options();
  // Starts fieldsyncd with Options(). Fails the test if it does not start.
  void StartServer();
  // Shuts the running server down (it drains and closes the store), so that
  // the test may open the store or start it again on the same data dir.
  void StopServer();
  // StopServer, then StartServer on the same data dir.
  void RestartServer();

  // A TLS channel to the running server trusting the deployment CA, with
  // `client`'s certificate, or none when it is null.
  std::shared_ptr<grpc::Channel> Channel(const ClientCredentials* client) const;
  // The same to another server of the deployment (a restored copy, say).
  std::shared_ptr<grpc::Channel> Channel(const ClientCredentials* client,
                                         const server::FieldsyncServer& server) const;
  // A deadline call_timeout_ from now, so that a hung call fails the test
  // instead of hanging it.
  void SetDeadline(grpc::ClientContext* context) const;

  // Registers officer `id` of `region` as `who` (the administrator when
  // null) and returns the call's status; on success the new principal in
  // *principal when given.
  grpc::Status CallAddOfficer(const std::string& id, const std::string& region,
                              const ClientCredentials* who = nullptr,
                              v1::Principal* principal = nullptr);
  // Registers officer `id` of `region`, unless it already is.
  void AddOfficer(const std::string& id, const std::string& region);
  // Asks the administrator's AdminService for an enrolment code for
  // `officer` of `region` and returns the call's status (the answer in
  // *response).
  grpc::Status CallCreateEnrolmentCode(const std::string& officer, const std::string& region,
                                       v1::CreateEnrolmentCodeResponse* response);
  // A fresh enrolment code for `officer` of `region` (registered first if
  // need be), as `fieldsync enrol` makes one.
  std::string EnrolmentCode(const std::string& officer = "officer1",
                            const std::string& region = "northern");
  // Enrols a new tablet with `code` over server-authenticated TLS: makes
  // its TLS key, signing and receiving keys, and on success fills `device`
  // and its Tablet. Returns the call's status.
  grpc::Status Enroll(const std::string& code, EnrolledDevice* device,
                      const std::string& label = "");
  // A tablet of `officer` of `region`, enrolled (the test fails if not).
  EnrolledDevice NewDevice(const std::string& officer = "officer1",
                           const std::string& region = "northern");
  // Adds staff member `id` with `role` over `regions` as the
  // administrator, as `fieldsync staff add` does (the key is made here and
  // only the certificate request goes to the server); returns the call's
  // status, and on success the staff member's credentials in *staff.
  grpc::Status CallAddStaff(const std::string& id, v1::Role role,
                            const std::vector<std::string>& regions, ClientCredentials* staff);
  // A staff principal with `role` over `regions`, added through
  // AdminService as `fieldsync staff add`: its key is made here and only
  // the certificate request goes to the server.
  ClientCredentials AddStaff(const std::string& id, v1::Role role,
                             const std::vector<std::string>& regions = {"northern"});

  // A batch of `changes` as they are, with the given header, sealed and
  // signed with the tablet's keys (PROTOCOL.md §5), outside its journal:
  // for tests of sequences, batch ids and refusals. The tablet's state does
  // not change.
  v1::SealedBatch Seal(const EnrolledDevice& device, const std::vector<v1::RecordChange>& changes,
                       uint64_t sequence, const std::string& batch_id, bool compress = false);
  // Signs `sealed` again with the device's key after a test changed it, so
  // that the server gets past the signature to what was changed.
  void Resign(const EnrolledDevice& device, v1::SealedBatch* sealed) const;
  // Pushes `batch` as `device` and returns the call's status.
  grpc::Status Push(const EnrolledDevice& device, const v1::SealedBatch& batch,
                    v1::PushResponse* response) const;
  // Journals `changes` in the device's Tablet (their ids, records, fields
  // and HLC times; the base versions the tablet last saw), seals them as its
  // next batch with a fresh batch id, pushes it and, if accepted, has the
  // tablet take the answer (versions, next sequence). A refused batch stays
  // in flight in the tablet, so later PushChanges fail too. `random` seals
  // and names the batch; by default random_, which only the test's thread
  // uses.
  grpc::Status PushChanges(EnrolledDevice& device, const std::vector<v1::RecordChange>& changes,
                           v1::PushResponse* response, Random* random = nullptr);
  // Pulls as `device` from its Tablet's cursor to the end of the log, the
  // tablet taking in each chunk (field versions, HLC, records, cursor), and
  // appends the opened chunks to `out`. Returns the stream's status.
  grpc::Status PullToTablet(EnrolledDevice& device, std::vector<v1::PulledChanges>* out);
  // Pulls as `device` from `cursor`, reading at most `max_chunks` chunks and
  // opening each with the device's receiving key into `out`; stops the
  // stream after `max_chunks`. The Tablet's cursor does not move.
  grpc::Status Pull(const EnrolledDevice& device, uint64_t cursor,
                    std::vector<v1::PulledChanges>* out, int max_chunks = 1000,
                    uint32_t per_chunk = 0, const std::vector<std::string>& backfill_case_ids = {});

  // The audit log's entry at `index`, decoded, read through AuditService
  // as the administrator. kInternal if a call fails (an index past the
  // log's end, say), kNotFound if no entry came back; DecodeEvent's errors.
  absl::StatusOr<protocol::Event> AuditEntry(uint64_t index);

  // Set before StartServer; "127.0.0.1:0" and a 2 s drain timeout to start
  // with, every unset number takes its default.
  v1::ServerConfig config_;
  absl::Duration call_timeout_ = absl::Seconds(20);
  ScopedTempDir dir_;
  SimulatedClock clock_;
  SeededRandom random_;
  std::unique_ptr<admin::DeploymentPaths> paths_;  // after SetUp
  ClientCredentials admin_;                        // the deployment's administrator
  std::string ca_pem_;
  std::unique_ptr<server::FieldsyncServer> server_;  // while running
};

}  // namespace fieldsync::testing

#endif  // FIELDSYNC_TESTS_TESTING_SERVER_HARNESS_H_
