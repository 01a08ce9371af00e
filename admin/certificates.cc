#include "admin/certificates.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/file_io.h"
#include "common/status_macros.h"
#include "sync/errors.h"

namespace fieldsync::admin {
namespace {

constexpr std::string_view kLoopbackNames[] = {"localhost", "127.0.0.1", "::1"};

absl::Status Malformed(std::string_view what) {
  return sync::SyncError(absl::StatusCode::kInvalidArgument, v1::SYNC_ERROR_REASON_MALFORMED, what);
}

// Storage failures keep their code; they get the UNAVAILABLE reason so that
// the device retries.
absl::Status WithReason(absl::Status s) {
  if (s.ok() || sync::GetSyncErrorDetail(s).has_value()) return s;
  return sync::SyncError(s.code(), v1::SYNC_ERROR_REASON_UNAVAILABLE, std::string(s.message()));
}

bool IsCertified(const v1::Principal& p) {
  return p.kind() == v1::PRINCIPAL_KIND_STAFF || p.kind() == v1::PRINCIPAL_KIND_DEVICE;
}

// The active staff ids, for a message about an unknown one (at most 20).
std::string ActiveStaffList(const PrincipalRegistry& registry) {
  absl::StatusOr<std::vector<v1::Principal>> staff = registry.List(v1::PRINCIPAL_KIND_STAFF);
  if (!staff.ok()) return "(the registry cannot be read)";
  std::vector<std::string> ids;
  for (const v1::Principal& p : *staff) {
    if (p.status() == v1::PRINCIPAL_STATUS_ACTIVE) ids.push_back(p.id());
  }
  if (ids.size() > 20) {
    size_t more = ids.size() - 20;
    ids.resize(20);
    ids.push_back(absl::StrFormat("and %d more", more));
  }
  return ids.empty() ? std::string("none") : absl::StrJoin(ids, ", ");
}

// Writes `path` afresh (replacing what an interrupted earlier write left).
absl::Status WriteStaged(const std::string& path, std::string_view content, mode_t mode) {
  std::error_code ec;
  std::filesystem::remove(path, ec);
  return WriteNewFile(path, content, mode);
}

// Renames `from` over `to` and fsyncs the directory.
absl::Status RenameOver(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("cannot replace %s: %s", to, std::strerror(errno)));
  }
  std::string dir = std::filesystem::path(to).parent_path().string();
  return SyncDirectory(dir.empty() ? "." : dir);
}

}  // namespace

void CertificateAuthorities::Set(const ServerKeys& keys) {
  auto state = std::make_shared<State>();
  state->issuer = keys.ca;
  state->previous = keys.previous_ca;
  state->generation = keys.ca_generation;
  state->trust_bundle_pem = keys.ca.certificate_pem;
  if (keys.previous_ca.has_value()) {
    if (!state->trust_bundle_pem.empty() && state->trust_bundle_pem.back() != '\n') {
      state->trust_bundle_pem += '\n';
    }
    state->trust_bundle_pem += keys.previous_ca->certificate_pem;
  }
  absl::MutexLock lock(&mu_);
  state->version = ++versions_;
  state_ = std::move(state);
}

uint32_t CaGenerationOf(const v1::Principal& p) {
  return p.ca_generation() == 0 ? 1 : p.ca_generation();
}

bool CertificateAuthorities::State::MustRenew(const v1::Principal& p) const {
  return previous.has_value() && CaGenerationOf(p) < generation;
}

std::string_view CertificateKindName(v1::CertificateKind kind) {
  switch (kind) {
    case v1::CERTIFICATE_KIND_CA:
      return "ca";
    case v1::CERTIFICATE_KIND_SERVER:
      return "server";
    case v1::CERTIFICATE_KIND_STAFF:
      return "staff";
    case v1::CERTIFICATE_KIND_DEVICE:
      return "device";
    default:
      return "unspecified";
  }
}

int64_t DaysLeft(absl::Time not_after, absl::Time now) {
  return static_cast<int64_t>(std::floor(absl::FDivDuration(not_after - now, absl::Hours(24))));
}

absl::Time ClientCertificateNotAfter(absl::Time issued_at, absl::Time ca_not_after) {
  // The certificate holds whole seconds of issued_at + validity.
  absl::Time not_after =
      absl::FromUnixSeconds(absl::ToUnixSeconds(issued_at + crypto::kClientValidity));
  return std::min(not_after, ca_not_after);
}

absl::StatusOr<std::vector<CertificateExpiry>> ListCertificateExpiries(
    const PrincipalRegistry& registry, std::string_view ca_pem,
    std::string_view server_certificate_pem, absl::Time now) {
  std::vector<CertificateExpiry> out;
  ASSIGN_OR_RETURN(std::vector<crypto::CertificateSummary> cas, crypto::ParseCertificates(ca_pem));
  for (size_t i = 0; i < cas.size(); ++i) {
    out.push_back({v1::CERTIFICATE_KIND_CA, "", cas[i].serial_hex, cas[i].not_after, i > 0});
  }
  if (!server_certificate_pem.empty()) {
    ASSIGN_OR_RETURN(crypto::CertificateSummary server,
                     crypto::ParseCertificate(server_certificate_pem));
    out.push_back({v1::CERTIFICATE_KIND_SERVER, "", server.serial_hex, server.not_after, false});
  }
  ASSIGN_OR_RETURN(std::vector<v1::Principal> principals,
                   registry.List(v1::PRINCIPAL_KIND_UNSPECIFIED));
  for (const v1::Principal& p : principals) {
    if (!IsCertified(p) || p.status() != v1::PRINCIPAL_STATUS_ACTIVE) continue;
    // Registered without a recorded certificate (not by fieldsync's own
    // verbs, whose entries RecordMissingCertificateExpiries completes).
    if (p.certificate_not_after_unix_micros() == 0) continue;
    const v1::CertificateKind kind = p.kind() == v1::PRINCIPAL_KIND_STAFF
                                         ? v1::CERTIFICATE_KIND_STAFF
                                         : v1::CERTIFICATE_KIND_DEVICE;
    out.push_back({kind, p.id(), p.certificate_serial(),
                   absl::FromUnixMicros(p.certificate_not_after_unix_micros()), false});
    for (const v1::CertificateRecord& r : p.previous_certificates()) {
      absl::Time not_after = absl::FromUnixMicros(r.not_after_unix_micros());
      if (not_after <= now) continue;
      out.push_back({kind, p.id(), r.serial(), not_after, true});
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const CertificateExpiry& a, const CertificateExpiry& b) {
                     if (a.not_after != b.not_after) return a.not_after < b.not_after;
                     if (a.kind != b.kind) return a.kind < b.kind;
                     return a.principal_id < b.principal_id;
                   });
  return out;
}

absl::StatusOr<int> RecordMissingCertificateExpiries(storage::Store* store,
                                                     PrincipalRegistry* registry,
                                                     std::string_view ca_pem) {
  ASSIGN_OR_RETURN(crypto::CertificateSummary ca, crypto::ParseCertificate(ca_pem));
  absl::MutexLock lock(&registry->write_mutex());
  ASSIGN_OR_RETURN(std::vector<v1::Principal> principals,
                   registry->List(v1::PRINCIPAL_KIND_UNSPECIFIED));
  storage::WriteBatch batch;
  int filled = 0;
  for (v1::Principal& p : principals) {
    if (!IsCertified(p) || p.certificate_serial().empty() ||
        p.certificate_not_after_unix_micros() != 0) {
      continue;
    }
    absl::Time not_after =
        ClientCertificateNotAfter(absl::FromUnixMicros(p.created_unix_micros()), ca.not_after);
    p.set_certificate_not_after_unix_micros(absl::ToUnixMicros(not_after));
    RETURN_IF_ERROR(registry->Put(p, &batch));
    ++filled;
  }
  if (filled > 0) RETURN_IF_ERROR(store->Commit(&batch));
  return filled;
}

bool AcceptsCertificate(const v1::Principal& principal, std::string_view serial, absl::Time now) {
  if (principal.certificate_serial().empty() || principal.certificate_serial() == serial) {
    return true;
  }
  for (const v1::CertificateRecord& r : principal.previous_certificates()) {
    if (r.serial() == serial && absl::FromUnixMicros(r.not_after_unix_micros()) > now) return true;
  }
  return false;
}

absl::StatusOr<RenewedCertificate> CertificateRenewal::Renew(
    v1::Principal p, const PrincipalName& name, std::string_view public_key_pem, bool revoke_old,
    std::string_view action, const std::string& actor) {
  const absl::Time now = options_.clock->Now();
  std::shared_ptr<const CertificateAuthorities::State> cas = options_.cas->Get();
  absl::StatusOr<crypto::IssuedCertificate> cert = crypto::IssueClientCertificate(
      cas->issuer, public_key_pem, PrincipalUri(name), now, crypto::kClientValidity);
  if (!cert.ok()) {
    return Malformed(absl::StrFormat("CSR refused: %s", std::string(cert.status().message())));
  }
  RenewedCertificate out;
  // The earlier certificates still accepted, the current one first.
  std::vector<v1::CertificateRecord> previous;
  if (!p.certificate_serial().empty()) {
    v1::CertificateRecord current;
    current.set_serial(p.certificate_serial());
    current.set_not_after_unix_micros(p.certificate_not_after_unix_micros());
    previous.push_back(std::move(current));
  }
  for (const v1::CertificateRecord& r : p.previous_certificates()) previous.push_back(r);
  p.clear_previous_certificates();
  for (v1::CertificateRecord& r : previous) {
    const bool expired = absl::FromUnixMicros(r.not_after_unix_micros()) <= now;
    if (expired) continue;
    if (revoke_old || p.previous_certificates_size() >= kMaxPreviousCertificates) {
      out.revoked_serials.push_back(r.serial());
      continue;
    }
    *p.add_previous_certificates() = std::move(r);
  }
  p.set_certificate_serial(cert->serial_hex);
  p.set_certificate_not_after_unix_micros(absl::ToUnixMicros(cert->not_after));
  p.set_ca_generation(cas->generation);
  p.set_changed_by(actor);

  storage::WriteBatch batch;
  RETURN_IF_ERROR(options_.registry->Put(p, &batch));
  audit::AuditSession session(options_.audit, &batch);
  if (options_.audit != nullptr) {
    protocol::AdminAction event;
    event.actor = actor;
    event.action = std::string(action);
    event.subject_ids = {name.id, cert->serial_hex};
    for (const std::string& s : out.revoked_serials) event.subject_ids.push_back(s);
    RETURN_IF_ERROR(WithReason(session.Append(protocol::Event{now, std::move(event)}).status()));
  }
  RETURN_IF_ERROR(WithReason(options_.store->Commit(&batch)));
  session.Committed();
  out.principal = std::move(p);
  out.certificate_pem = std::move(cert->certificate_pem);
  out.not_after = cert->not_after;
  return out;
}

absl::StatusOr<RenewedCertificate> CertificateRenewal::RenewStaff(std::string_view id,
                                                                  std::string_view csr_pem,
                                                                  bool revoke_old,
                                                                  const std::string& actor) {
  RETURN_IF_ERROR(ValidateStaffId(id));
  absl::StatusOr<crypto::VerifiedCsr> csr = crypto::VerifyCsr(csr_pem);
  if (!csr.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("CSR refused: %s", std::string(csr.status().message())));
  }
  PrincipalName name{v1::PRINCIPAL_KIND_STAFF, std::string(id)};
  absl::MutexLock lock(&options_.registry->write_mutex());
  absl::StatusOr<v1::Principal> p = options_.registry->Get(name);
  if (absl::IsNotFound(p.status())) {
    return absl::NotFoundError(absl::StrFormat("no staff member %s; active staff: %s",
                                               std::string(id),
                                               ActiveStaffList(*options_.registry)));
  }
  RETURN_IF_ERROR(p.status());
  if (p->status() != v1::PRINCIPAL_STATUS_ACTIVE) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "staff member %s is revoked: a revoked principal gets no new certificate (add a new "
        "staff id instead)",
        std::string(id)));
  }
  absl::StatusOr<RenewedCertificate> renewed =
      Renew(*std::move(p), name, csr->public_key_pem, revoke_old, kRenewStaffAction, actor);
  if (!renewed.ok()) {
    // Staff renewals go to an administrator's terminal: plain statuses.
    return absl::Status(renewed.status().code(), renewed.status().message());
  }
  return renewed;
}

absl::StatusOr<RenewedCertificate> CertificateRenewal::RenewDevice(std::string_view id,
                                                                   std::string_view csr_pem) {
  absl::StatusOr<crypto::VerifiedCsr> csr = crypto::VerifyCsr(csr_pem);
  if (!csr.ok()) {
    return Malformed(absl::StrFormat("CSR refused: %s", std::string(csr.status().message())));
  }
  PrincipalName name{v1::PRINCIPAL_KIND_DEVICE, std::string(id)};
  absl::MutexLock lock(&options_.registry->write_mutex());
  absl::StatusOr<v1::Principal> p = options_.registry->Get(name);
  RETURN_IF_ERROR(WithReason(p.status()));
  if (p->status() != v1::PRINCIPAL_STATUS_ACTIVE) {
    return sync::SyncError(absl::StatusCode::kUnauthenticated, v1::SYNC_ERROR_REASON_DEVICE_REVOKED,
                           "the device is revoked: re-enrol it");
  }
  const absl::Time now = options_.clock->Now();
  const absl::Time not_after = absl::FromUnixMicros(p->certificate_not_after_unix_micros());
  // During a CA rotation a certificate of the previous CA is renewed at
  // once, whatever its expiry.
  if (p->certificate_not_after_unix_micros() != 0 && !options_.cas->Get()->MustRenew(*p) &&
      not_after - now > options_.device_renewal_window) {
    return sync::SyncError(
        absl::StatusCode::kFailedPrecondition, v1::SYNC_ERROR_REASON_NO_CHANGE,
        absl::StrFormat("the device's certificate is valid until %s: renew it from %s on",
                        absl::FormatTime("%Y-%m-%d", not_after, absl::UTCTimeZone()),
                        absl::FormatTime("%Y-%m-%d", not_after - options_.device_renewal_window,
                                         absl::UTCTimeZone())));
  }
  std::string actor = PrincipalUri(name);
  return Renew(*std::move(p), name, csr->public_key_pem, /*revoke_old=*/false, kRenewDeviceAction,
               actor);
}

absl::StatusOr<CertificateRenewal::NewServerCertificate> CertificateRenewal::IssueServer(
    const crypto::CertificateAuthority& ca, const std::vector<std::string>& add_hosts,
    const std::vector<std::string>& drop_hosts) {
  for (const std::string& host : drop_hosts) {
    if (std::find(std::begin(kLoopbackNames), std::end(kLoopbackNames), host) !=
        std::end(kLoopbackNames)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s always stays in the server certificate (local tools use it): do not drop it", host));
    }
  }
  absl::StatusOr<std::string> current_pem = ReadFile(options_.server_certificate_file);
  if (!current_pem.ok()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("the current server certificate: %s", current_pem.status().message()));
  }
  ASSIGN_OR_RETURN(crypto::CertificateSummary current, crypto::ParseCertificate(*current_pem));
  std::vector<std::string> names = current.dns_names;
  names.insert(names.end(), current.ip_addresses.begin(), current.ip_addresses.end());
  for (const std::string& host : drop_hosts) {
    auto it = std::find(names.begin(), names.end(), host);
    if (it == names.end()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("the server certificate does not name %s; it names %s", host,
                          absl::StrJoin(names, ", ")));
    }
    names.erase(it);
  }
  names.insert(names.end(), add_hosts.begin(), add_hosts.end());

  NewServerCertificate out;
  ASSIGN_OR_RETURN(out.key, crypto::GenerateP256Key());
  crypto::ServerCertificateRequest request =
      crypto::MakeServerCertificateRequest(out.key.public_key_pem, names);
  request.common_name = "fieldsyncd";
  absl::StatusOr<crypto::IssuedCertificate> cert =
      crypto::IssueServerCertificate(ca, request, options_.clock->Now(), crypto::kServerValidity);
  if (!cert.ok()) {
    if (absl::IsInvalidArgument(cert.status())) {
      return absl::InvalidArgumentError(
          absl::StrFormat("--host: %s", std::string(cert.status().message())));
    }
    return cert.status();
  }
  out.certificate = *std::move(cert);
  out.dns_names = std::move(request.dns_names);
  out.ip_addresses = std::move(request.ip_addresses);
  return out;
}

absl::Status CertificateRenewal::InstallServer(const NewServerCertificate& issued) {
  // Both new files are written beside the old ones before either replaces
  // its old one, the key first; CompleteServerCertificateRenewal finishes
  // a renewal that stopped between the two renames.
  const std::string& key_file = options_.server_key_file;
  const std::string& cert_file = options_.server_certificate_file;
  RETURN_IF_ERROR(WriteStaged(key_file + ".new", issued.key.private_key_pem, 0600));
  RETURN_IF_ERROR(WriteStaged(cert_file + ".new", issued.certificate.certificate_pem, 0644));
  RETURN_IF_ERROR(RenameOver(key_file + ".new", key_file));
  return RenameOver(cert_file + ".new", cert_file);
}

absl::StatusOr<RenewedServerCertificate> CertificateRenewal::RenewServer(
    const std::vector<std::string>& add_hosts, const std::vector<std::string>& drop_hosts,
    const std::string& actor) {
  ASSIGN_OR_RETURN(NewServerCertificate issued,
                   IssueServer(options_.cas->Get()->server_issuer(), add_hosts, drop_hosts));
  RenewedServerCertificate out;
  out.dns_names = issued.dns_names;
  out.ip_addresses = issued.ip_addresses;

  // Recorded before the files change: an event without new files is a
  // failed renewal the log shows; new files without an event would be an
  // unrecorded one.
  storage::WriteBatch batch;
  audit::AuditSession session(options_.audit, &batch);
  if (options_.audit != nullptr) {
    protocol::AdminAction event;
    event.actor = actor;
    event.action = std::string(kRenewServerAction);
    event.subject_ids = {issued.certificate.serial_hex};
    ASSIGN_OR_RETURN(out.audit_leaf_index,
                     session.Append(protocol::Event{options_.clock->Now(), std::move(event)}));
    RETURN_IF_ERROR(options_.store->Commit(&batch));
  }
  session.Committed();
  RETURN_IF_ERROR(InstallServer(issued));
  out.certificate = std::move(issued.certificate);
  return out;
}

absl::StatusOr<std::vector<PrincipalName>> CertificateRenewal::PendingRenewals(
    uint32_t generation) const {
  ASSIGN_OR_RETURN(std::vector<v1::Principal> principals,
                   options_.registry->List(v1::PRINCIPAL_KIND_UNSPECIFIED));
  std::vector<PrincipalName> pending;
  for (const v1::Principal& p : principals) {
    if (!IsCertified(p) || p.status() != v1::PRINCIPAL_STATUS_ACTIVE) continue;
    if (CaGenerationOf(p) < generation) pending.push_back({p.kind(), p.id()});
  }
  return pending;
}

absl::StatusOr<CaRotationStep> CertificateRenewal::StartCaRotation(const std::string& actor) {
  if (options_.master == nullptr || options_.random == nullptr) {
    return absl::FailedPreconditionError("this server cannot rotate its CA (no master key)");
  }
  absl::MutexLock rotation(&rotation_mu_);
  std::shared_ptr<const CertificateAuthorities::State> current = options_.cas->Get();
  if (current->previous.has_value()) {
    return absl::FailedPreconditionError(
        "a CA rotation is already running: renew the remaining certificates, then finish it "
        "with `fieldsync certs rotate-ca --finish`");
  }
  const absl::Time now = options_.clock->Now();
  const uint32_t generation = current->generation + 1;
  ASSIGN_OR_RETURN(
      crypto::CertificateAuthority ca,
      crypto::CreateCertificateAuthority(absl::StrFormat("fieldsync deployment CA %d", generation),
                                         now, crypto::kCaValidity));
  ASSIGN_OR_RETURN(crypto::CertificateSummary new_summary,
                   crypto::ParseCertificate(ca.certificate_pem));
  ASSIGN_OR_RETURN(crypto::CertificateSummary old_summary,
                   crypto::ParseCertificate(current->issuer.certificate_pem));
  ServerKeys keys;
  keys.ca = ca;
  keys.previous_ca = current->issuer;
  keys.ca_generation = generation;

  CaRotationStep out;
  {
    absl::MutexLock lock(&options_.registry->write_mutex());
    ASSIGN_OR_RETURN(out.pending, PendingRenewals(generation));
    storage::WriteBatch batch;
    RETURN_IF_ERROR(WriteCertificateAuthorities(keys, *options_.master, *options_.random, &batch));
    audit::AuditSession session(options_.audit, &batch);
    if (options_.audit != nullptr) {
      protocol::AdminAction event;
      event.actor = actor;
      event.action = std::string(kRotateCaAction);
      event.subject_ids = {new_summary.serial_hex, old_summary.serial_hex};
      ASSIGN_OR_RETURN(out.audit_leaf_index,
                       session.Append(protocol::Event{now, std::move(event)}));
    }
    RETURN_IF_ERROR(options_.store->Commit(&batch));
    session.Committed();
    options_.cas->Set(keys);
  }
  std::shared_ptr<const CertificateAuthorities::State> next = options_.cas->Get();
  if (!options_.ca_certificate_file.empty()) {
    RETURN_IF_ERROR(ReplaceFile(options_.ca_certificate_file, next->trust_bundle_pem, 0644));
  }
  out.ca_certificate_pem = ca.certificate_pem;
  out.ca_not_after = new_summary.not_after;
  out.generation = generation;
  out.trust_bundle_pem = next->trust_bundle_pem;
  return out;
}

absl::StatusOr<CaRotationStep> CertificateRenewal::FinishCaRotation(bool force,
                                                                    const std::string& actor) {
  if (options_.master == nullptr || options_.random == nullptr) {
    return absl::FailedPreconditionError("this server cannot rotate its CA (no master key)");
  }
  absl::MutexLock rotation(&rotation_mu_);
  std::shared_ptr<const CertificateAuthorities::State> current = options_.cas->Get();
  if (!current->previous.has_value()) {
    return absl::FailedPreconditionError(
        "no CA rotation is running: start one with `fieldsync certs rotate-ca`");
  }
  CaRotationStep out;
  {
    // Held to the commit, so that no certificate of the previous CA is
    // issued in between (none is: the issuer is the new CA).
    absl::MutexLock lock(&options_.registry->write_mutex());
    ASSIGN_OR_RETURN(out.pending, PendingRenewals(current->generation));
  }
  if (!out.pending.empty() && !force) {
    std::vector<std::string> uris;
    for (const PrincipalName& name : out.pending) {
      if (uris.size() == 20) {
        uris.push_back(absl::StrFormat("and %d more", out.pending.size() - 20));
        break;
      }
      uris.push_back(PrincipalUri(name));
    }
    return absl::FailedPreconditionError(absl::StrFormat(
        "%d active principal(s) still hold only a certificate of the previous CA and would be "
        "cut off: %s. Renew staff with `fieldsync staff renew --id ID --out DIR`; tablets renew "
        "on their next push (see `fieldsync certs status`); or finish anyway with --force (they "
        "must then re-enrol or be given a new certificate)",
        out.pending.size(), absl::StrJoin(uris, ", ")));
  }
  for (const PrincipalName& name : out.pending) {
    if (PrincipalUri(name) == actor) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "your own certificate is from the previous CA, which finishing would stop trusting: "
          "renew it first (fieldsync staff renew --id %s --out DIR/admin)",
          name.id));
    }
  }
  ASSIGN_OR_RETURN(NewServerCertificate issued, IssueServer(current->issuer, {}, {}));
  ASSIGN_OR_RETURN(crypto::CertificateSummary retired,
                   crypto::ParseCertificate(current->previous->certificate_pem));
  ServerKeys keys;
  keys.ca = current->issuer;
  keys.ca_generation = current->generation;
  const absl::Time now = options_.clock->Now();
  storage::WriteBatch batch;
  RETURN_IF_ERROR(WriteCertificateAuthorities(keys, *options_.master, *options_.random, &batch));
  audit::AuditSession session(options_.audit, &batch);
  if (options_.audit != nullptr) {
    protocol::AdminAction event;
    event.actor = actor;
    event.action = std::string(kFinishCaRotationAction);
    event.subject_ids = {retired.serial_hex, issued.certificate.serial_hex};
    for (const PrincipalName& name : out.pending) event.subject_ids.push_back(PrincipalUri(name));
    ASSIGN_OR_RETURN(out.audit_leaf_index, session.Append(protocol::Event{now, std::move(event)}));
  }
  // The CA file names both CAs while the server's files change (it is what
  // fieldsyncd checks its certificate against at start).
  if (!options_.ca_certificate_file.empty()) {
    RETURN_IF_ERROR(ReplaceFile(options_.ca_certificate_file, current->trust_bundle_pem, 0644));
  }
  // The server's files first, then the commit: a failure in between
  // leaves the rotation running with the server's certificate already from
  // the new CA, which every principal that renewed trusts, and the CA file
  // still naming both; --finish runs again.
  RETURN_IF_ERROR(InstallServer(issued));
  RETURN_IF_ERROR(options_.store->Commit(&batch));
  session.Committed();
  options_.cas->Set(keys);
  if (!options_.ca_certificate_file.empty()) {
    RETURN_IF_ERROR(
        ReplaceFile(options_.ca_certificate_file, current->issuer.certificate_pem, 0644));
  }
  ASSIGN_OR_RETURN(crypto::CertificateSummary summary,
                   crypto::ParseCertificate(current->issuer.certificate_pem));
  out.ca_certificate_pem = current->issuer.certificate_pem;
  out.ca_not_after = summary.not_after;
  out.generation = current->generation;
  out.trust_bundle_pem = current->issuer.certificate_pem;
  out.server_certificate = std::move(issued.certificate);
  return out;
}

absl::Status CompleteServerCertificateRenewal(const std::string& certificate_file,
                                              const std::string& key_file) {
  const std::string cert_new = certificate_file + ".new";
  const std::string key_new = key_file + ".new";
  absl::StatusOr<std::string> staged_cert = ReadFile(cert_new);
  if (absl::IsNotFound(staged_cert.status())) {
    std::error_code ec;
    std::filesystem::remove(key_new, ec);  // a renewal that wrote nothing else
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(staged_cert.status());
  absl::StatusOr<std::string> staged_key = ReadFile(key_new);
  if (staged_key.ok() && crypto::CheckKeyMatchesCertificate(*staged_key, *staged_cert).ok()) {
    // Stopped before either rename.
    RETURN_IF_ERROR(RenameOver(key_new, key_file));
    return RenameOver(cert_new, certificate_file);
  }
  absl::StatusOr<std::string> key = ReadFile(key_file);
  if (key.ok() && crypto::CheckKeyMatchesCertificate(*key, *staged_cert).ok()) {
    // Stopped between the renames: the key is already the new one.
    return RenameOver(cert_new, certificate_file);
  }
  // A staged certificate that belongs to no key at hand: not ours to use.
  std::error_code ec;
  std::filesystem::remove(cert_new, ec);
  std::filesystem::remove(key_new, ec);
  return absl::OkStatus();
}

absl::Status ReplaceFile(const std::string& path, std::string_view content, mode_t mode) {
  const std::string temp = path + ".new";
  RETURN_IF_ERROR(WriteStaged(temp, content, mode));
  absl::Status renamed = RenameOver(temp, path);
  if (!renamed.ok()) {
    std::error_code ec;
    std::filesystem::remove(temp, ec);
  }
  return renamed;
}

}  // namespace fieldsync::admin
