#include "tests/testing/server_harness.h"

#include <utility>

#include "absl/time/time.h"
#include "common/file_io.h"
#include "common/uuid.h"
#include "crypto/bytes.h"
#include "crypto/x509.h"
#include "fieldsync/v1/admin.grpc.pb.h"
#include "fieldsync/v1/audit.grpc.pb.h"
#include "fieldsync/v1/rpc_status.pb.h"
#include "fieldsync/v1/sync.grpc.pb.h"
#include "gmock/gmock.h"
#include "protocol/batch_header.h"
#include "protocol/events.h"
#include "protocol/sealed_batch.h"
#include "server/config.h"
#include "server/sealed_batch.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::testing {

v1::SyncErrorDetail DetailOf(const grpc::Status& status) {
  v1::RpcStatus rich;
  v1::SyncErrorDetail detail;
  if (rich.ParseFromString(status.error_details()) && rich.details_size() == 1) {
    rich.details(0).UnpackTo(&detail);
  }
  return detail;
}

ServerHarness::ServerHarness(uint64_t seed, absl::Time start) : clock_(start), random_(seed) {
  config_.set_listen("127.0.0.1:0");
  config_.set_drain_timeout_seconds(2);
}

// The server goes first: it holds clock_ and random_.
ServerHarness::~ServerHarness() { server_.reset(); }

void ServerHarness::SetUp() {
  admin::InitOptions init;
  init.data_dir = dir_.Sub("deployment");
  init.clock = &clock_;
  init.random = &random_;
  ASSERT_THAT(admin::InitDeployment(init), IsOk());
  paths_ = std::make_unique<admin::DeploymentPaths>(init.data_dir);
  admin_.certificate_pem = *ReadFile(paths_->admin_cert);
  admin_.private_key_pem = *ReadFile(paths_->admin_key);
  ca_pem_ = *ReadFile(paths_->ca_cert);
}

server::ServerOptions ServerHarness::Options() {
  server::ServerOptions options;
  options.data_dir = paths_->root;
  options.config = config_;
  server::ApplyDefaults(options.data_dir, &options.config);
  options.clock = &clock_;
  options.random = &random_;
  return options;
}

void ServerHarness::StartServer() {
  absl::StatusOr<std::unique_ptr<server::FieldsyncServer>> started =
      server::FieldsyncServer::Start(Options());
  ASSERT_THAT(started, IsOk());
  server_ = *std::move(started);
}

void ServerHarness::StopServer() {
  ASSERT_THAT(server_->Shutdown(), IsOk());
  server_.reset();
}

void ServerHarness::RestartServer() {
  StopServer();
  StartServer();
}

std::shared_ptr<grpc::Channel> ServerHarness::Channel(const ClientCredentials* client) const {
  return Channel(client, *server_);
}

std::shared_ptr<grpc::Channel> ServerHarness::Channel(const ClientCredentials* client,
                                                      const server::FieldsyncServer& server) const {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ca_pem_;
  if (client != nullptr) {
    ssl.pem_cert_chain = client->certificate_pem;
    ssl.pem_private_key = client->private_key_pem;
  }
  return grpc::CreateChannel(server.address(), grpc::SslCredentials(ssl));
}

void ServerHarness::SetDeadline(grpc::ClientContext* context) const {
  context->set_deadline(absl::ToChronoTime(absl::Now() + call_timeout_));
}

grpc::Status ServerHarness::CallAddOfficer(const std::string& id, const std::string& region,
                                           const ClientCredentials* who, v1::Principal* principal) {
  v1::AddOfficerRequest request;
  request.set_id(id);
  request.set_region(region);
  v1::AddOfficerResponse response;
  grpc::ClientContext context;
  SetDeadline(&context);
  grpc::Status s = v1::AdminService::NewStub(Channel(who == nullptr ? &admin_ : who))
                       ->AddOfficer(&context, request, &response);
  if (s.ok() && principal != nullptr) *principal = response.principal();
  return s;
}

void ServerHarness::AddOfficer(const std::string& id, const std::string& region) {
  grpc::Status s = CallAddOfficer(id, region);
  EXPECT_TRUE(s.ok() || s.error_code() == grpc::StatusCode::ALREADY_EXISTS) << s.error_message();
}

grpc::Status ServerHarness::CallCreateEnrolmentCode(const std::string& officer,
                                                    const std::string& region,
                                                    v1::CreateEnrolmentCodeResponse* response) {
  v1::CreateEnrolmentCodeRequest request;
  request.set_officer_id(officer);
  request.set_region(region);
  grpc::ClientContext context;
  SetDeadline(&context);
  return v1::AdminService::NewStub(Channel(&admin_))
      ->CreateEnrolmentCode(&context, request, response);
}

std::string ServerHarness::EnrolmentCode(const std::string& officer, const std::string& region) {
  AddOfficer(officer, region);
  v1::CreateEnrolmentCodeResponse response;
  grpc::Status s = CallCreateEnrolmentCode(officer, region, &response);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return response.code();
}

grpc::Status ServerHarness::Enroll(const std::string& code, EnrolledDevice* device,
                                   const std::string& label) {
  absl::StatusOr<crypto::KeyPem> key = crypto::GenerateP256Key();
  EXPECT_THAT(key, IsOk());
  absl::StatusOr<std::string> csr =
      crypto::CreateCsr(key->private_key_pem, "fieldsync://device/new");
  EXPECT_THAT(csr, IsOk());
  device->signing = crypto::GenerateEd25519(random_);
  device->receiving = crypto::GenerateX25519(random_);
  v1::EnrollRequest request;
  request.set_enrolment_code(code);
  request.set_csr_pem(*csr);
  request.set_signing_public_key(crypto::ToString(device->signing.public_key));
  request.set_receiving_public_key(crypto::ToString(device->receiving.public_key));
  request.set_device_label(label);
  grpc::ClientContext context;
  SetDeadline(&context);
  grpc::Status s =
      v1::SyncService::NewStub(Channel(nullptr))->Enroll(&context, request, &device->enrolment);
  if (!s.ok()) return s;
  device->id = device->enrolment.device_id();
  device->tls = {device->enrolment.certificate_pem(), key->private_key_pem};
  absl::StatusOr<crypto::Ed25519Signer> signer =
      crypto::Ed25519Signer::Create(device->signing.seed.span());
  absl::StatusOr<crypto::X25519PrivateKey> receiving =
      crypto::X25519PrivateKey::Create(device->receiving.private_key.span());
  EXPECT_THAT(signer, IsOk());
  EXPECT_THAT(receiving, IsOk());
  absl::StatusOr<device::Tablet> tablet =
      device::Tablet::Create(device->enrolment, *std::move(signer), *std::move(receiving));
  EXPECT_THAT(tablet, IsOk());
  if (tablet.ok()) device->tablet.emplace(*std::move(tablet));
  return s;
}

EnrolledDevice ServerHarness::NewDevice(const std::string& officer, const std::string& region) {
  EnrolledDevice device;
  grpc::Status s = Enroll(EnrolmentCode(officer, region), &device);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return device;
}

grpc::Status ServerHarness::CallAddStaff(const std::string& id, v1::Role role,
                                         const std::vector<std::string>& regions,
                                         ClientCredentials* staff) {
  absl::StatusOr<crypto::KeyPem> key = crypto::GenerateP256Key();
  EXPECT_THAT(key, IsOk());
  absl::StatusOr<std::string> csr =
      crypto::CreateCsr(key->private_key_pem, "fieldsync://staff/" + id);
  EXPECT_THAT(csr, IsOk());
  v1::AddStaffRequest request;
  request.set_id(id);
  request.set_role(role);
  for (const std::string& region : regions) request.add_regions(region);
  request.set_csr_pem(*csr);
  v1::AddStaffResponse response;
  grpc::ClientContext context;
  SetDeadline(&context);
  grpc::Status s =
      v1::AdminService::NewStub(Channel(&admin_))->AddStaff(&context, request, &response);
  if (s.ok()) *staff = {response.certificate_pem(), key->private_key_pem};
  return s;
}

ClientCredentials ServerHarness::AddStaff(const std::string& id, v1::Role role,
                                          const std::vector<std::string>& regions) {
  ClientCredentials staff;
  grpc::Status s = CallAddStaff(id, role, regions, &staff);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return staff;
}

v1::SealedBatch ServerHarness::Seal(const EnrolledDevice& device,
                                    const std::vector<v1::RecordChange>& changes, uint64_t sequence,
                                    const std::string& batch_id, bool compress) {
  v1::BatchPayload payload;
  for (const v1::RecordChange& c : changes) *payload.add_changes() = c;
  absl::StatusOr<Uuid> id = ParseUuid(batch_id);
  EXPECT_THAT(id, IsOk());
  protocol::BatchSealParams params = device.tablet->SealParams(*id, sequence);
  params.compression = compress ? v1::PAYLOAD_COMPRESSION_ZSTD : v1::PAYLOAD_COMPRESSION_NONE;
  absl::StatusOr<v1::SealedBatch> sealed = protocol::SealBatch(payload, params, random_);
  EXPECT_THAT(sealed, IsOk());
  return sealed.ok() ? *std::move(sealed) : v1::SealedBatch();
}

void ServerHarness::Resign(const EnrolledDevice& device, v1::SealedBatch* sealed) const {
  absl::StatusOr<protocol::BatchHeader> header = server::ParseBatchHeader(sealed->header());
  ASSERT_THAT(header, IsOk());
  const std::string message = protocol::EncodeBatchSignedMessage(
      *header, sealed->compression(),
      protocol::SealedPayloadDigest(sealed->enc(), sealed->ciphertext()));
  absl::StatusOr<crypto::Ed25519Signature> signature =
      crypto::Ed25519Sign(device.signing.seed, crypto::AsBytes(message));
  ASSERT_THAT(signature, IsOk());
  sealed->set_signature(crypto::ToString(*signature));
}

grpc::Status ServerHarness::Push(const EnrolledDevice& device, const v1::SealedBatch& batch,
                                 v1::PushResponse* response) const {
  v1::PushRequest request;
  *request.mutable_batch() = batch;
  grpc::ClientContext context;
  SetDeadline(&context);
  return v1::SyncService::NewStub(Channel(&device.tls))->Push(&context, request, response);
}

grpc::Status ServerHarness::PushChanges(EnrolledDevice& device,
                                        const std::vector<v1::RecordChange>& changes,
                                        v1::PushResponse* response, Random* random) {
  Random& rng = random != nullptr ? *random : random_;
  device::Tablet& tablet = *device.tablet;
  for (const v1::RecordChange& c : changes) {
    std::vector<std::pair<std::string, v1::FieldValue>> fields;
    for (const v1::FieldWrite& w : c.fields()) fields.emplace_back(w.field(), w.value());
    tablet.Upsert(c.change_id(), c.case_id(), c.record_id(), c.record_type(), std::move(fields),
                  absl::FromUnixMicros(c.hlc().wall_micros()));
  }
  absl::StatusOr<v1::SealedBatch> sealed = tablet.SealNext(changes.size(), NewUuid(rng), rng);
  EXPECT_THAT(sealed, IsOk());
  if (!sealed.ok()) return grpc::Status(grpc::StatusCode::INTERNAL, "the tablet did not seal");
  grpc::Status s = Push(device, *sealed, response);
  if (s.ok()) {
    EXPECT_THAT(tablet.Acknowledge(*response), IsOk());
  }
  return s;
}

grpc::Status ServerHarness::PullToTablet(EnrolledDevice& device,
                                         std::vector<v1::PulledChanges>* out) {
  device::Tablet& tablet = *device.tablet;
  v1::PullRequest request;
  request.set_cursor(tablet.cursor());
  grpc::ClientContext context;
  SetDeadline(&context);
  auto reader = v1::SyncService::NewStub(Channel(&device.tls))->Pull(&context, request);
  v1::PullChunk chunk;
  while (reader->Read(&chunk)) {
    absl::StatusOr<v1::PulledChanges> changes = tablet.TakePullChunk(chunk);
    EXPECT_THAT(changes, IsOk());
    if (changes.ok()) out->push_back(*std::move(changes));
  }
  return reader->Finish();
}

grpc::Status ServerHarness::Pull(const EnrolledDevice& device, uint64_t cursor,
                                 std::vector<v1::PulledChanges>* out, int max_chunks,
                                 uint32_t per_chunk,
                                 const std::vector<std::string>& backfill_case_ids) {
  v1::PullRequest request;
  request.set_cursor(cursor);
  request.set_max_changes_per_chunk(per_chunk);
  for (const std::string& id : backfill_case_ids) request.add_backfill_case_ids(id);
  grpc::ClientContext context;
  SetDeadline(&context);
  auto reader = v1::SyncService::NewStub(Channel(&device.tls))->Pull(&context, request);
  absl::StatusOr<crypto::X25519PrivateKey> receiving =
      crypto::X25519PrivateKey::Create(device.receiving.private_key.span());
  EXPECT_THAT(receiving, IsOk());
  const Uuid device_id = device.tablet->device_id();
  v1::PullChunk chunk;
  int n = 0;
  while (n < max_chunks && reader->Read(&chunk)) {
    ++n;
    absl::StatusOr<v1::PulledChanges> changes =
        protocol::OpenPullChunk(chunk, device_id, *receiving);
    EXPECT_THAT(changes, IsOk());
    if (!changes.ok()) continue;
    EXPECT_EQ(changes->next_cursor(), chunk.next_cursor());
    out->push_back(*std::move(changes));
  }
  if (n == max_chunks) {
    context.TryCancel();
    reader->Finish().ok();
    return grpc::Status::OK;
  }
  return reader->Finish();
}

absl::StatusOr<protocol::Event> ServerHarness::AuditEntry(uint64_t index) {
  auto stub = v1::AuditService::NewStub(Channel(&admin_));
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::SignedTreeHead head;
    grpc::Status s = stub->GetSignedTreeHead(&context, v1::GetSignedTreeHeadRequest(), &head);
    if (!s.ok()) return absl::InternalError(s.error_message());
  }
  v1::GetEntriesRequest request;
  request.set_start(index);
  request.set_end(index + 1);
  grpc::ClientContext context;
  SetDeadline(&context);
  auto reader = stub->GetEntries(&context, request);
  v1::AuditEntries entries;
  std::string entry;
  while (reader->Read(&entries)) {
    if (entries.first_index() == index && entries.entries_size() > 0) entry = entries.entries(0);
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return absl::InternalError(s.error_message());
  if (entry.empty()) return absl::NotFoundError("no such entry");
  return protocol::DecodeEvent(entry);
}

}  // namespace fieldsync::testing
