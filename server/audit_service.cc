#include "server/audit_service.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "server/grpc_status.h"
#include "server/rpc.h"

namespace fieldsync::server {
namespace {

constexpr std::string_view kGetEntries = "/fieldsync.v1.AuditService/GetEntries";

std::string Bytes(const protocol::Hash& h) { return std::string(protocol::HashBytes(h)); }

// Streams [next, end) in chunks, reading each chunk when the previous one
// has been written. Deletes itself when done.
class EntriesWriter final : public grpc::ServerWriteReactor<v1::AuditEntries> {
 public:
  EntriesWriter(audit::AuditLog* log, std::string principal, uint64_t start, uint64_t end)
      : log_(log), principal_(std::move(principal)), next_(start), end_(end) {
    WriteNext();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) return Done(absl::CancelledError("the client went away"));
    WriteNext();
  }
  void OnDone() override { delete this; }

 private:
  void WriteNext() {
    if (next_ >= end_) return Done(absl::OkStatus());
    const uint64_t stop = std::min(end_, next_ + AuditServiceImpl::kEntriesPerChunk);
    chunk_.Clear();
    chunk_.set_first_index(next_);
    absl::Status s = log_->ReadEntries(next_, stop, [&](uint64_t, std::string_view entry) {
      chunk_.add_entries(std::string(entry));
      return absl::OkStatus();
    });
    if (!s.ok()) return Done(s);
    next_ = stop;
    StartWrite(&chunk_);
  }
  void Done(const absl::Status& status) {
    LogRpc(kGetEntries, principal_, status, absl::Now() - start_);
    Finish(ToGrpcStatus(status));
  }

  audit::AuditLog* log_;
  std::string principal_;
  uint64_t next_;
  uint64_t end_;
  absl::Time start_ = absl::Now();
  v1::AuditEntries chunk_;
};

class FailedWriter final : public grpc::ServerWriteReactor<v1::AuditEntries> {
 public:
  explicit FailedWriter(const absl::Status& status) { Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

void ToProto(const audit::SignedTreeHead& head, v1::SignedTreeHead* out) {
  out->set_note(head.note);
  out->set_tree_size(head.checkpoint.size);
  out->set_root_hash(Bytes(head.checkpoint.root));
}

void ToProto(const audit::KeyTransition& transition, v1::AuditKeyTransition* out) {
  out->set_leaf_index(transition.leaf_index);
  out->set_entry(transition.entry);
  ToProto(transition.head, out->mutable_head());
  for (const protocol::Hash& h : transition.inclusion_proof) out->add_inclusion_proof(Bytes(h));
}

void ToProto(const audit::Receipt& receipt, v1::AuditReceipt* out) {
  ToProto(receipt.head, out->mutable_head());
  out->set_leaf_index(receipt.leaf_index);
  out->set_entry(receipt.entry);
  for (const protocol::Hash& h : receipt.inclusion_proof) out->add_inclusion_proof(Bytes(h));
  for (const audit::KeyTransition& t : receipt.key_transitions) {
    ToProto(t, out->add_key_transitions());
  }
}

grpc::ServerUnaryReactor* AuditServiceImpl::GetKeyTransitions(
    grpc::CallbackServerContext* context, const v1::GetKeyTransitionsRequest* /*request*/,
    v1::KeyTransitions* response) {
  return RunUnary(context, "/fieldsync.v1.AuditService/GetKeyTransitions", auth_,
                  [&](const Caller&) -> absl::Status {
                    for (const audit::KeyTransition& t : log_->KeyTransitions()) {
                      ToProto(t, response->add_transitions());
                    }
                    return absl::OkStatus();
                  });
}

absl::StatusOr<uint64_t> AuditServiceImpl::ResolveSize(uint64_t size) {
  if (size != 0) return size;
  ASSIGN_OR_RETURN(audit::SignedTreeHead head, log_->MaybeSignTreeHead());
  return head.checkpoint.size;
}

grpc::ServerUnaryReactor* AuditServiceImpl::GetSignedTreeHead(
    grpc::CallbackServerContext* context, const v1::GetSignedTreeHeadRequest* request,
    v1::SignedTreeHead* response) {
  return RunUnaryBlocking(context, "/fieldsync.v1.AuditService/GetSignedTreeHead", auth_, pool_,
                          [this, response](const Caller&) -> absl::Status {
                            ASSIGN_OR_RETURN(audit::SignedTreeHead head, log_->MaybeSignTreeHead());
                            ToProto(head, response);
                            return absl::OkStatus();
                          });
}

grpc::ServerUnaryReactor* AuditServiceImpl::GetInclusionProof(
    grpc::CallbackServerContext* context, const v1::GetInclusionProofRequest* request,
    v1::InclusionProof* response) {
  return RunUnaryBlocking(
      context, "/fieldsync.v1.AuditService/GetInclusionProof", auth_, pool_,
      [this, request, response](const Caller&) -> absl::Status {
        uint64_t index = request->leaf_index();
        if (request->leaf_case() == v1::GetInclusionProofRequest::kLeafHash) {
          absl::StatusOr<protocol::Hash> hash = protocol::HashFromBytes(request->leaf_hash());
          if (!hash.ok()) return absl::InvalidArgumentError("leaf_hash must be 32 bytes");
          ASSIGN_OR_RETURN(index, log_->IndexOfLeafHash(*hash));
        } else if (request->leaf_case() != v1::GetInclusionProofRequest::kLeafIndex) {
          return absl::InvalidArgumentError("give leaf_index or leaf_hash");
        }
        ASSIGN_OR_RETURN(uint64_t size, ResolveSize(request->tree_size()));
        if (index >= size) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "leaf %d is not in a tree of size %d: ask for a larger tree_size", index, size));
        }
        ASSIGN_OR_RETURN(std::vector<protocol::Hash> proof, log_->InclusionProof(index, size));
        response->set_leaf_index(index);
        response->set_tree_size(size);
        for (const protocol::Hash& h : proof) response->add_hashes(Bytes(h));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AuditServiceImpl::GetConsistencyProof(
    grpc::CallbackServerContext* context, const v1::GetConsistencyProofRequest* request,
    v1::ConsistencyProof* response) {
  return RunUnaryBlocking(context, "/fieldsync.v1.AuditService/GetConsistencyProof", auth_, pool_,
                          [this, request, response](const Caller&) -> absl::Status {
                            ASSIGN_OR_RETURN(uint64_t second, ResolveSize(request->second_size()));
                            ASSIGN_OR_RETURN(std::vector<protocol::Hash> proof,
                                             log_->ConsistencyProof(request->first_size(), second));
                            response->set_first_size(request->first_size());
                            response->set_second_size(second);
                            for (const protocol::Hash& h : proof) response->add_hashes(Bytes(h));
                            return absl::OkStatus();
                          });
}

grpc::ServerWriteReactor<v1::AuditEntries>* AuditServiceImpl::GetEntries(
    grpc::CallbackServerContext* context, const v1::GetEntriesRequest* request) {
  std::string who;
  absl::StatusOr<Caller> caller = auth_->Authorize(*context, kGetEntries, &who);
  if (!caller.ok()) {
    LogRpc(kGetEntries, who, caller.status(), absl::ZeroDuration());
    return new FailedWriter(caller.status());
  }
  absl::StatusOr<uint64_t> end = ResolveSize(request->end());
  absl::Status s = end.status();
  if (s.ok() && request->start() > *end) {
    s = absl::InvalidArgumentError("start is after end");
  }
  if (s.ok() && *end > log_->size()) {
    s = absl::OutOfRangeError(
        absl::StrFormat("end %d is beyond the log's size %d", *end, log_->size()));
  }
  if (!s.ok()) {
    LogRpc(kGetEntries, caller->uri, s, absl::ZeroDuration());
    return new FailedWriter(s);
  }
  return new EntriesWriter(log_, caller->uri, request->start(), *end);
}

}  // namespace fieldsync::server
