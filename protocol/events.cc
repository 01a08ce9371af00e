#include "protocol/events.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "crypto/canonical.h"
#include "crypto/ed25519.h"
#include "crypto/hash.h"
#include "protocol/batch_header.h"

namespace fieldsync::protocol {
namespace {

using crypto::CanonicalWriter;

// Reads a canonical encoding field by field. Every accessor fails with
// kInvalidArgument naming the field when the bytes run out.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  absl::Status Domain(std::string_view domain) {
    if (in_.size() < domain.size() + 1 || in_.substr(0, domain.size()) != domain ||
        in_[domain.size()] != '\0') {
      return absl::InvalidArgumentError(
          absl::StrFormat("not a %s encoding (wrong domain prefix)", std::string(domain)));
    }
    pos_ = domain.size() + 1;
    return absl::OkStatus();
  }
  absl::StatusOr<uint64_t> Int(size_t bytes, std::string_view what) {
    ASSIGN_OR_RETURN(std::string_view b, Take(bytes, what));
    uint64_t v = 0;
    for (char c : b) v = (v << 8) | static_cast<uint8_t>(c);
    return v;
  }
  absl::StatusOr<uint8_t> U8(std::string_view what) {
    ASSIGN_OR_RETURN(uint64_t v, Int(1, what));
    return static_cast<uint8_t>(v);
  }
  absl::StatusOr<uint32_t> U32(std::string_view what) {
    ASSIGN_OR_RETURN(uint64_t v, Int(4, what));
    return static_cast<uint32_t>(v);
  }
  absl::StatusOr<uint64_t> U64(std::string_view what) { return Int(8, what); }
  template <size_t N>
  absl::Status Fixed(std::array<uint8_t, N>* out, std::string_view what) {
    ASSIGN_OR_RETURN(std::string_view b, Take(N, what));
    std::copy(b.begin(), b.end(), out->begin());
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> Bytes(std::string_view what) {
    ASSIGN_OR_RETURN(uint32_t n, U32(what));
    ASSIGN_OR_RETURN(std::string_view b, Take(n, what));
    return std::string(b);
  }
  // A list count, bounded by the bytes left (each item takes >= min_item).
  absl::StatusOr<uint32_t> Count(size_t min_item, std::string_view what) {
    ASSIGN_OR_RETURN(uint32_t n, U32(what));
    if (uint64_t{n} * min_item > in_.size() - pos_) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: count %d exceeds the bytes left", std::string(what), n));
    }
    return n;
  }
  absl::Status End() const {
    if (pos_ != in_.size()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%d trailing bytes after the last field", in_.size() - pos_));
    }
    return absl::OkStatus();
  }

 private:
  absl::StatusOr<std::string_view> Take(size_t n, std::string_view what) {
    if (in_.size() - pos_ < n) {
      return absl::InvalidArgumentError(
          absl::StrFormat("truncated at %s (offset %d)", std::string(what), pos_));
    }
    std::string_view out = in_.substr(pos_, n);
    pos_ += n;
    return out;
  }

  std::string_view in_;
  size_t pos_ = 0;
};

constexpr uint64_t kMaxField = std::numeric_limits<uint32_t>::max();

bool TooLong(std::string_view s) { return s.size() > kMaxField; }

void WriteOutcomes(const Outcomes& o, CanonicalWriter& w) {
  w.U32(o.applied).U32(o.converged).U32(o.superseded).U32(o.conflict).U32(o.rejected);
}

absl::Status ReadOutcomes(Reader& r, Outcomes* o) {
  ASSIGN_OR_RETURN(o->applied, r.U32("outcomes.applied"));
  ASSIGN_OR_RETURN(o->converged, r.U32("outcomes.converged"));
  ASSIGN_OR_RETURN(o->superseded, r.U32("outcomes.superseded"));
  ASSIGN_OR_RETURN(o->conflict, r.U32("outcomes.conflict"));
  ASSIGN_OR_RETURN(o->rejected, r.U32("outcomes.rejected"));
  return absl::OkStatus();
}

void WriteUuids(const std::vector<Uuid>& ids, CanonicalWriter& w) {
  w.U32(static_cast<uint32_t>(ids.size()));
  for (const Uuid& id : ids) w.Uuid(id);
}

absl::Status ReadUuids(Reader& r, std::vector<Uuid>* ids) {
  ASSIGN_OR_RETURN(uint32_t n, r.Count(16, "case_ids"));
  ids->resize(n);
  for (Uuid& id : *ids) RETURN_IF_ERROR(r.Fixed(&id, "case_id"));
  return absl::OkStatus();
}

void WriteStrings(const std::vector<std::string>& v, CanonicalWriter& w) {
  w.U32(static_cast<uint32_t>(v.size()));
  for (const std::string& s : v) w.Bytes(s);
}

absl::Status ReadStrings(Reader& r, std::string_view what, std::vector<std::string>* v) {
  ASSIGN_OR_RETURN(uint32_t n, r.Count(4, what));
  v->resize(n);
  for (std::string& s : *v) {
    ASSIGN_OR_RETURN(s, r.Bytes(what));
  }
  return absl::OkStatus();
}

absl::StatusOr<PrincipalKind> ReadPrincipalKind(Reader& r) {
  ASSIGN_OR_RETURN(uint8_t k, r.U8("principal_kind"));
  if (k != 1 && k != 2) return absl::InvalidArgumentError("unknown principal_kind");
  return static_cast<PrincipalKind>(k);
}

// Writes the body; returns false if a field cannot be encoded.
struct BodyWriter {
  CanonicalWriter& w;
  bool operator()(const DeviceEnrolled& e) {
    w.Bytes(e.device_id).Bytes(e.officer_id).Bytes(e.region);
    w.Fixed(e.signing_public_key).Fixed(e.receiving_public_key).Bytes(e.certificate_serial);
    return true;
  }
  bool operator()(const StaffAdded& e) {
    w.Bytes(e.staff_id).U8(e.role);
    WriteStrings(e.regions, w);
    w.Bytes(e.certificate_serial).Bytes(e.actor);
    return true;
  }
  bool operator()(const PrincipalRevoked& e) {
    if (e.principal_kind != PrincipalKind::kDevice && e.principal_kind != PrincipalKind::kStaff) {
      return false;
    }
    w.U8(static_cast<uint8_t>(e.principal_kind)).Bytes(e.principal_id).Bytes(e.actor);
    return true;
  }
  bool operator()(const BatchAccepted& e) {
    w.Bytes(e.device_id).Uuid(e.batch_id).U64(e.sequence).U32(e.sealing_key_id);
    w.U8(e.compression)
        .Fixed(e.payload_sha256)
        .Fixed(e.signature)
        .U64(e.first_position)
        .U64(e.last_position);
    WriteOutcomes(e.outcomes, w);
    WriteUuids(e.case_ids, w);
    return true;
  }
  bool operator()(const CaseChange& e) {
    w.Bytes(e.actor).U8(e.change_kind).U64(e.first_position).U64(e.last_position);
    WriteOutcomes(e.outcomes, w);
    WriteUuids(e.case_ids, w);
    return true;
  }
  bool operator()(const CaseAccess& e) {
    if (e.principal_kind != PrincipalKind::kDevice && e.principal_kind != PrincipalKind::kStaff) {
      return false;
    }
    uint8_t access = static_cast<uint8_t>(e.access);
    if (access < 1 || access > 6) return false;
    w.U8(static_cast<uint8_t>(e.principal_kind)).Bytes(e.principal_id).U8(access);
    w.U64(e.from_position).U64(e.to_position);
    WriteUuids(e.case_ids, w);
    return true;
  }
  bool operator()(const KeyRotated& e) {
    w.Bytes(e.actor).Bytes(e.purpose).U32(e.old_version).U32(e.new_version);
    w.Bytes(e.new_public_key);
    return true;
  }
  bool operator()(const CaseErased& e) {
    w.Bytes(e.actor).Uuid(e.case_id);
    return true;
  }
  bool operator()(const AdminAction& e) {
    w.Bytes(e.actor).Bytes(e.action);
    WriteStrings(e.subject_ids, w);
    return true;
  }
  bool operator()(const RollbackAccepted& e) {
    w.Bytes(e.actor).U64(e.continued_size).Fixed(e.continued_root);
    WriteStrings(e.abandoned_heads, w);
    return true;
  }
  bool operator()(const EnrolmentFailures& e) {
    if (e.window_start < absl::UnixEpoch() || e.window_end < e.window_start) return false;
    w.U64(static_cast<uint64_t>(absl::ToUnixMicros(e.window_start)));
    w.U64(static_cast<uint64_t>(absl::ToUnixMicros(e.window_end)));
    w.U64(e.failed).U64(e.distinct_addresses).U64(e.lockouts).U64(e.refused);
    return true;
  }
};

// Every string of an event, to check lengths before encoding.
bool HasOverlongString(const Event& event) {
  bool overlong = false;
  auto check = [&](std::string_view s) { overlong = overlong || TooLong(s); };
  std::visit(
      [&](const auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, DeviceEnrolled>) {
          check(e.device_id), check(e.officer_id), check(e.region), check(e.certificate_serial);
        } else if constexpr (std::is_same_v<T, StaffAdded>) {
          check(e.staff_id), check(e.certificate_serial), check(e.actor);
          for (const auto& r : e.regions) check(r);
        } else if constexpr (std::is_same_v<T, PrincipalRevoked>) {
          check(e.principal_id), check(e.actor);
        } else if constexpr (std::is_same_v<T, BatchAccepted>) {
          check(e.device_id);
        } else if constexpr (std::is_same_v<T, CaseChange>) {
          check(e.actor);
        } else if constexpr (std::is_same_v<T, CaseAccess>) {
          check(e.principal_id);
        } else if constexpr (std::is_same_v<T, KeyRotated>) {
          check(e.actor), check(e.purpose), check(e.new_public_key);
        } else if constexpr (std::is_same_v<T, CaseErased>) {
          check(e.actor);
        } else if constexpr (std::is_same_v<T, RollbackAccepted>) {
          check(e.actor);
          for (const auto& h : e.abandoned_heads) check(h);
        } else if constexpr (std::is_same_v<T, EnrolmentFailures>) {
          // counts only
        } else {
          check(e.actor), check(e.action);
          for (const auto& s : e.subject_ids) check(s);
        }
      },
      event.body);
  return overlong;
}

absl::StatusOr<EventBody> ReadBody(EventKind kind, Reader& r) {
  switch (kind) {
    case EventKind::kDeviceEnrolled: {
      DeviceEnrolled e;
      ASSIGN_OR_RETURN(e.device_id, r.Bytes("device_id"));
      ASSIGN_OR_RETURN(e.officer_id, r.Bytes("officer_id"));
      ASSIGN_OR_RETURN(e.region, r.Bytes("region"));
      RETURN_IF_ERROR(r.Fixed(&e.signing_public_key, "signing_public_key"));
      RETURN_IF_ERROR(r.Fixed(&e.receiving_public_key, "receiving_public_key"));
      ASSIGN_OR_RETURN(e.certificate_serial, r.Bytes("certificate_serial"));
      return e;
    }
    case EventKind::kStaffAdded: {
      StaffAdded e;
      ASSIGN_OR_RETURN(e.staff_id, r.Bytes("staff_id"));
      ASSIGN_OR_RETURN(e.role, r.U8("role"));
      RETURN_IF_ERROR(ReadStrings(r, "regions", &e.regions));
      ASSIGN_OR_RETURN(e.certificate_serial, r.Bytes("certificate_serial"));
      ASSIGN_OR_RETURN(e.actor, r.Bytes("actor"));
      return e;
    }
    case EventKind::kPrincipalRevoked: {
      PrincipalRevoked e;
      ASSIGN_OR_RETURN(e.principal_kind, ReadPrincipalKind(r));
      ASSIGN_OR_RETURN(e.principal_id, r.Bytes("principal_id"));
      ASSIGN_OR_RETURN(e.actor, r.Bytes("actor"));
      return e;
    }
    case EventKind::kBatchAccepted: {
      BatchAccepted e;
      ASSIGN_OR_RETURN(e.device_id, r.Bytes("device_id"));
      RETURN_IF_ERROR(r.Fixed(&e.batch_id, "batch_id"));
      ASSIGN_OR_RETURN(e.sequence, r.U64("sequence"));
      ASSIGN_OR_RETURN(e.sealing_key_id, r.U32("sealing_key_id"));
      ASSIGN_OR_RETURN(e.compression, r.U8("compression"));
      RETURN_IF_ERROR(r.Fixed(&e.payload_sha256, "payload_sha256"));
      RETURN_IF_ERROR(r.Fixed(&e.signature, "signature"));
      ASSIGN_OR_RETURN(e.first_position, r.U64("first_position"));
      ASSIGN_OR_RETURN(e.last_position, r.U64("last_position"));
      RETURN_IF_ERROR(ReadOutcomes(r, &e.outcomes));
      RETURN_IF_ERROR(ReadUuids(r, &e.case_ids));
      return e;
    }
    case EventKind::kCaseChange: {
      CaseChange e;
      ASSIGN_OR_RETURN(e.actor, r.Bytes("actor"));
      ASSIGN_OR_RETURN(e.change_kind, r.U8("change_kind"));
      ASSIGN_OR_RETURN(e.first_position, r.U64("first_position"));
      ASSIGN_OR_RETURN(e.last_position, r.U64("last_position"));
      RETURN_IF_ERROR(ReadOutcomes(r, &e.outcomes));
      RETURN_IF_ERROR(ReadUuids(r, &e.case_ids));
      return e;
    }
    case EventKind::kCaseAccess: {
      CaseAccess e;
      ASSIGN_OR_RETURN(e.principal_kind, ReadPrincipalKind(r));
      ASSIGN_OR_RETURN(e.principal_id, r.Bytes("principal_id"));
      ASSIGN_OR_RETURN(uint8_t access, r.U8("access"));
      if (access < 1 || access > 6) return absl::InvalidArgumentError("unknown access kind");
      e.access = static_cast<AccessKind>(access);
      ASSIGN_OR_RETURN(e.from_position, r.U64("from_position"));
      ASSIGN_OR_RETURN(e.to_position, r.U64("to_position"));
      RETURN_IF_ERROR(ReadUuids(r, &e.case_ids));
      return e;
    }
    case EventKind::kKeyRotated: {
      KeyRotated e;
      ASSIGN_OR_RETURN(e.actor, r.Bytes("actor"));
      ASSIGN_OR_RETURN(e.purpose, r.Bytes("purpose"));
      ASSIGN_OR_RETURN(e.old_version, r.U32("old_version"));
      ASSIGN_OR_RETURN(e.new_version, r.U32("new_version"));
      ASSIGN_OR_RETURN(e.new_public_key, r.Bytes("new_public_key"));
      return e;
    }
    case EventKind::kCaseErased: {
      CaseErased e;
      ASSIGN_OR_RETURN(e.actor, r.Bytes("actor"));
      RETURN_IF_ERROR(r.Fixed(&e.case_id, "case_id"));
      return e;
    }
    case EventKind::kAdminAction: {
      AdminAction e;
      ASSIGN_OR_RETURN(e.actor, r.Bytes("actor"));
      ASSIGN_OR_RETURN(e.action, r.Bytes("action"));
      RETURN_IF_ERROR(ReadStrings(r, "subject_ids", &e.subject_ids));
      return e;
    }
    case EventKind::kRollbackAccepted: {
      RollbackAccepted e;
      ASSIGN_OR_RETURN(e.actor, r.Bytes("actor"));
      ASSIGN_OR_RETURN(e.continued_size, r.U64("continued_size"));
      RETURN_IF_ERROR(r.Fixed(&e.continued_root, "continued_root"));
      RETURN_IF_ERROR(ReadStrings(r, "abandoned_heads", &e.abandoned_heads));
      return e;
    }
    case EventKind::kEnrolmentFailures: {
      EnrolmentFailures e;
      ASSIGN_OR_RETURN(uint64_t start, r.U64("window_start"));
      ASSIGN_OR_RETURN(uint64_t end, r.U64("window_end"));
      if (end > uint64_t{INT64_MAX} || end < start) {
        return absl::InvalidArgumentError("enrolment failures window ends before it starts");
      }
      e.window_start = absl::FromUnixMicros(static_cast<int64_t>(start));
      e.window_end = absl::FromUnixMicros(static_cast<int64_t>(end));
      ASSIGN_OR_RETURN(e.failed, r.U64("failed"));
      ASSIGN_OR_RETURN(e.distinct_addresses, r.U64("distinct_addresses"));
      ASSIGN_OR_RETURN(e.lockouts, r.U64("lockouts"));
      ASSIGN_OR_RETURN(e.refused, r.U64("refused"));
      return e;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("unknown event kind %d", int{static_cast<uint8_t>(kind)}));
}

}  // namespace

EventKind KindOf(const Event& event) { return static_cast<EventKind>(event.body.index() + 1); }

std::string_view KindName(EventKind kind) {
  switch (kind) {
    case EventKind::kDeviceEnrolled:
      return "device-enrolled";
    case EventKind::kStaffAdded:
      return "staff-added";
    case EventKind::kPrincipalRevoked:
      return "principal-revoked";
    case EventKind::kBatchAccepted:
      return "batch-accepted";
    case EventKind::kCaseChange:
      return "case-change";
    case EventKind::kCaseAccess:
      return "case-access";
    case EventKind::kKeyRotated:
      return "key-rotated";
    case EventKind::kCaseErased:
      return "case-erased";
    case EventKind::kAdminAction:
      return "admin-action";
    case EventKind::kRollbackAccepted:
      return "rollback-accepted";
    case EventKind::kEnrolmentFailures:
      return "enrolment-failures";
  }
  return "unknown";
}

absl::StatusOr<std::string> EncodeEvent(const Event& event) {
  if (event.time < absl::UnixEpoch()) {
    return absl::InvalidArgumentError("audit event time is before 1970");
  }
  if (HasOverlongString(event)) {
    return absl::InvalidArgumentError("audit event field is 4 GiB or longer");
  }
  CanonicalWriter w(kEventDomain);
  w.U8(static_cast<uint8_t>(KindOf(event)));
  w.U64(static_cast<uint64_t>(absl::ToUnixMicros(event.time)));
  if (!std::visit(BodyWriter{w}, event.body)) {
    return absl::InvalidArgumentError(
        "audit event holds an unknown principal or access kind, or a window that ends before "
        "it starts");
  }
  return std::move(w).Finish();
}

absl::StatusOr<Event> DecodeEvent(std::string_view entry) {
  Reader r(entry);
  RETURN_IF_ERROR(r.Domain(kEventDomain));
  ASSIGN_OR_RETURN(uint8_t kind, r.U8("kind"));
  if (kind < 1 || kind > 11) {
    return absl::InvalidArgumentError(absl::StrFormat("unknown event kind %d", kind));
  }
  ASSIGN_OR_RETURN(uint64_t micros, r.U64("time"));
  if (micros > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return absl::InvalidArgumentError("event time out of range");
  }
  Event event;
  event.time = absl::FromUnixMicros(static_cast<int64_t>(micros));
  ASSIGN_OR_RETURN(event.body, ReadBody(static_cast<EventKind>(kind), r));
  RETURN_IF_ERROR(r.End());
  return event;
}

std::string BatchSignedMessage(std::string_view batch_header_encoding, uint8_t compression,
                               const std::array<uint8_t, 32>& payload_sha256) {
  return CanonicalWriter(kBatchSignatureDomain)
      .Fixed(
          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(batch_header_encoding.data()),
                                   batch_header_encoding.size()))
      .U8(compression)
      .Fixed(payload_sha256)
      .Finish();
}

std::array<uint8_t, 32> SealedPayloadDigest(std::string_view enc, std::string_view ciphertext) {
  crypto::Sha256Hasher hasher;
  hasher.Update(enc);
  hasher.Update(ciphertext);
  return hasher.Finish();
}

absl::StatusOr<std::string> BatchSignedMessageOf(const BatchAccepted& batch) {
  absl::StatusOr<Uuid> device = ParseUuid(batch.device_id);
  if (!device.ok()) return absl::InvalidArgumentError("device id is not a UUID");
  protocol::BatchHeader header;
  header.device_id = *device;
  header.batch_id = batch.batch_id;
  header.sequence = batch.sequence;
  header.sealing_key_id = batch.sealing_key_id;
  return BatchSignedMessage(protocol::EncodeBatchHeader(header), batch.compression,
                            batch.payload_sha256);
}

absl::Status VerifyBatchSignature(const BatchAccepted& batch,
                                  const std::array<uint8_t, 32>& signing_public_key) {
  ASSIGN_OR_RETURN(std::string message, BatchSignedMessageOf(batch));
  return crypto::Ed25519Verify(
      signing_public_key,
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(message.data()), message.size()),
      batch.signature);
}

}  // namespace fieldsync::protocol
