// AuditService over gRPC's callback API: signed tree heads, proofs and
// entries of the audit log for auditors and administrators (no case
// content). A thin adapter over audit/log.h.
#ifndef FIELDSYNC_SERVER_AUDIT_SERVICE_H_
#define FIELDSYNC_SERVER_AUDIT_SERVICE_H_

#include "audit/log.h"
#include "fieldsync/v1/audit.grpc.pb.h"
#include "server/auth.h"
#include "server/work_pool.h"

namespace fieldsync::server {

// The wire forms of a head and of a receipt (SyncService puts the receipt
// in PushResponse.audit_receipt).
void ToProto(const audit::SignedTreeHead& head, v1::SignedTreeHead* out);
void ToProto(const audit::Receipt& receipt, v1::AuditReceipt* out);
void ToProto(const audit::KeyTransition& transition, v1::AuditKeyTransition* out);

// Thread-safe. Pointers are not owned and must outlive the service.
class AuditServiceImpl final : public v1::AuditService::CallbackService {
 public:
  // Entries per GetEntries message.
  static constexpr uint64_t kEntriesPerChunk = 512;

  AuditServiceImpl(Authenticator* auth, audit::AuditLog* log) : auth_(auth), log_(log) {}

  // Where the calls that may sign a tree head (a signature and an fsync)
  // run: GetSignedTreeHead and the proofs at the latest size. Not owned;
  // null: inline on gRPC's threads. REQUIRES: set before serving.
  void set_pool(WorkPool* pool) { pool_ = pool; }

  grpc::ServerUnaryReactor* GetSignedTreeHead(grpc::CallbackServerContext* context,
                                              const v1::GetSignedTreeHeadRequest* request,
                                              v1::SignedTreeHead* response) override;
  grpc::ServerUnaryReactor* GetInclusionProof(grpc::CallbackServerContext* context,
                                              const v1::GetInclusionProofRequest* request,
                                              v1::InclusionProof* response) override;
  grpc::ServerUnaryReactor* GetConsistencyProof(grpc::CallbackServerContext* context,
                                                const v1::GetConsistencyProofRequest* request,
                                                v1::ConsistencyProof* response) override;
  // Every rotation of the log's signing key, oldest first.
  grpc::ServerUnaryReactor* GetKeyTransitions(grpc::CallbackServerContext* context,
                                              const v1::GetKeyTransitionsRequest* request,
                                              v1::KeyTransitions* response) override;
  grpc::ServerWriteReactor<v1::AuditEntries>* GetEntries(
      grpc::CallbackServerContext* context, const v1::GetEntriesRequest* request) override;

 private:
  // `size`, or the latest signed head's size (signing one if due) for 0.
  absl::StatusOr<uint64_t> ResolveSize(uint64_t size);

  Authenticator* auth_;
  audit::AuditLog* log_;
  WorkPool* pool_ = nullptr;
};

}  // namespace fieldsync::server

#endif  // FIELDSYNC_SERVER_AUDIT_SERVICE_H_
