#include "tools/device_simulate.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "admin/deployment.h"
#include "admin/principals.h"
#include "common/clock.h"
#include "common/file_io.h"
#include "common/status_macros.h"
#include "common/uuid.h"
#include "crypto/system_random.h"
#include "crypto/x509.h"
#include "device/tablet.h"
#include "fieldsync/v1/admin.grpc.pb.h"
#include "fieldsync/v1/sync.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "sync/schema.h"
#include "tools/case_format.h"
#include "tools/client.h"
#include "tools/enrol_device.h"
#include "tools/seen_conflicts.h"

namespace fieldsync::tools {
namespace {

using Fields = std::vector<std::pair<std::string, v1::FieldValue>>;

constexpr int kMaxDevices = 200;
constexpr int kMaxCases = 200;
constexpr int kMaxEdits = 500;
constexpr int kDevicesPerOfficer = 3;
constexpr size_t kChangesPerBatch = 100;

// The content generator: SplitMix64, so that a seed gives the same values
// with every compiler and standard library. Content only: keys, nonces and
// ids come from the system CSPRNG.
class ContentRandom {
 public:
  explicit ContentRandom(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n). REQUIRES: n > 0.
  size_t Uniform(size_t n) { return static_cast<size_t>(Next() % n); }
  bool Percent(int p) { return Uniform(100) < static_cast<size_t>(p); }
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[Uniform(v.size())];
  }

 private:
  uint64_t state_;
};

// Synthetic values: common given and family names combined at random, no
// real person. Narratives say they are synthetic.
const std::vector<std::string> kGirlNames = {"Amina", "Grace",  "Fatima",  "Esther", "Mary",
                                             "Aisha", "Ruth",   "Sarah",   "Halima", "Joy",
                                             "Mercy", "Zainab", "Achieng", "Nadia"};
const std::vector<std::string> kBoyNames = {"Joseph", "David", "Samuel", "Ibrahim", "Peter",
                                            "John",   "Moses", "Ali",    "Daniel",  "Emmanuel",
                                            "Yusuf",  "Isaac", "Otieno", "Omar"};
const std::vector<std::string> kFamilyNames = {"Okello", "Mensah", "Njoroge", "Hassan", "Banda",
                                               "Phiri",  "Otieno", "Kamara",  "Diallo", "Mwangi",
                                               "Abdi",   "Nakato", "Mutua",   "Sesay"};
const std::vector<std::string> kLanguages = {"English", "French",  "Swahili", "Arabic",
                                             "Somali",  "Luganda", "Amharic", "Tigrinya"};
const std::vector<std::string> kPlaces = {"Hill", "Market", "River",    "Junction",
                                          "Camp", "Valley", "Crossing", "Well"};
const std::vector<std::string> kProviders = {
    "health centre", "legal aid clinic", "psychosocial support team",
    "safe house",    "primary school",   "probation office"};

v1::FieldValue Str(std::string s) {
  v1::FieldValue v;
  v.set_string_value(std::move(s));
  return v;
}
v1::FieldValue Enum(std::string s) {
  v1::FieldValue v;
  v.set_enum_value(std::move(s));
  return v;
}
v1::FieldValue Bool(bool b) {
  v1::FieldValue v;
  v.set_bool_value(b);
  return v;
}
v1::FieldValue Int(int64_t i) {
  v1::FieldValue v;
  v.set_int_value(i);
  return v;
}
v1::FieldValue DateOf(absl::CivilDay d) {
  v1::FieldValue v;
  v.mutable_date_value()->set_year(static_cast<int32_t>(d.year()));
  v.mutable_date_value()->set_month(d.month());
  v.mutable_date_value()->set_day(d.day());
  return v;
}

// A case as the simulation made it (its officer's tablets learn it by
// pulling).
struct CaseRef {
  std::string case_id;
  std::string region;
  std::vector<std::string> referrals;  // record ids
  std::vector<std::string> concerns;
};

struct SimTablet {
  int index = 0;
  int officer = 0;
  std::unique_ptr<device::Tablet> tablet;
  std::shared_ptr<grpc::Channel> channel;
};

class Simulation {
 public:
  Simulation(const SimulateOptions& options, const sync::Schema& schema, Connection admin,
             std::string ca_pem)
      : options_(options),
        schema_(schema),
        admin_(std::move(admin)),
        ca_pem_(std::move(ca_pem)),
        content_(options.seed),
        ids_(*crypto::SystemRandom::Get()) {}

  absl::StatusOr<SimulateReport> Run();

 private:
  // Registers the run's officers (enrolment codes are issued only for
  // registered officers).
  absl::Status AddOfficers();
  absl::Status Enrol(int index);
  void RegisterCases(SimTablet& t);
  void EditOffline(SimTablet& t);
  absl::Status PushAll(SimTablet& t);
  absl::Status PullAll(SimTablet& t);
  bool ReplicasAgree() const;
  absl::Status CountConflicts();

  // Adds `field` = `value` when the schema has the field (so that a
  // deployment's own schema with fewer fields still works).
  void Put(Fields& f, std::string_view type, std::string_view field, v1::FieldValue value);
  // A random allowed value of an ENUM field ("unknown" only if it is the
  // only one); nullopt when the schema lacks the field.
  std::optional<std::string> PickEnum(std::string_view type, std::string_view field);
  void PutEnum(Fields& f, std::string_view type, std::string_view field);
  std::string NewId() { return FormatUuid(NewUuid(ids_)); }
  // The physical time of a tablet's n-th change of a phase: distinct per
  // tablet, so that concurrent writes never tie on the HLC and the winner
  // does not depend on the server-made device ids.
  absl::Time When(const SimTablet& t, int phase, int n) const {
    return start_ - absl::Hours(3) + absl::Hours(phase) + absl::Seconds(skew_[t.index] + n) +
           absl::Microseconds(t.index);
  }
  absl::CivilDay DaysAgo(int days) const { return today_ - days; }
  void Upsert(SimTablet& t, int phase, const std::string& case_id, const std::string& record_id,
              const std::string& type, Fields fields) {
    t.tablet->Upsert(NewId(), case_id, record_id, type, std::move(fields),
                     When(t, phase, step_[t.index]++));
  }

  const SimulateOptions options_;
  const sync::Schema& schema_;
  const Connection admin_;
  const std::string ca_pem_;
  ContentRandom content_;
  Random& ids_;
  absl::Time start_;
  absl::CivilDay today_;
  std::string tag_;
  std::vector<std::string> regions_;
  std::vector<SimTablet> tablets_;
  std::vector<int> step_;
  std::vector<int> skew_;  // seconds: tablets work at different times of the day
  std::vector<std::vector<CaseRef>> officer_cases_;
  SimulateReport report_;
};

void Simulation::Put(Fields& f, std::string_view type, std::string_view field,
                     v1::FieldValue value) {
  if (schema_.FindField(type, field) != nullptr)
    f.emplace_back(std::string(field), std::move(value));
}

std::optional<std::string> Simulation::PickEnum(std::string_view type, std::string_view field) {
  const v1::FieldDef* def = schema_.FindField(type, field);
  if (def == nullptr || def->enum_values().empty()) return std::nullopt;
  std::vector<std::string> values;
  for (const std::string& v : def->enum_values()) {
    if (v != "unknown") values.push_back(v);
  }
  if (values.empty()) values.push_back(def->enum_values(0));
  return content_.Pick(values);
}

void Simulation::PutEnum(Fields& f, std::string_view type, std::string_view field) {
  if (std::optional<std::string> v = PickEnum(type, field)) Put(f, type, field, Enum(*v));
}

absl::Status Simulation::AddOfficers() {
  auto stub = v1::AdminService::NewStub(admin_.channel);
  for (int officer = 0; officer < report_.officers; ++officer) {
    v1::AddOfficerRequest request;
    request.set_id(absl::StrFormat("sim-%s-officer-%d", tag_, officer + 1));
    request.set_region(regions_[officer % regions_.size()]);
    v1::AddOfficerResponse response;
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    grpc::Status s = stub->AddOfficer(&context, request, &response);
    if (!s.ok()) {
      return absl::UnavailableError(absl::StrFormat("registering officer %s: %s", request.id(),
                                                    DescribeRpcError(s, admin_.server)));
    }
  }
  return absl::OkStatus();
}

absl::Status Simulation::Enrol(int index) {
  SimTablet t;
  t.index = index;
  t.officer = index % report_.officers;
  EnrolDeviceRequest request;
  request.officer_id = absl::StrFormat("sim-%s-officer-%d", tag_, t.officer + 1);
  request.region = regions_[t.officer % regions_.size()];
  request.label = absl::StrFormat("simulated tablet %d (%s)", index + 1, tag_);
  ASSIGN_OR_RETURN(EnrolledDevice enrolled, EnrolDevice(admin_, ca_pem_, request, ids_));
  t.tablet = std::move(enrolled.tablet);
  t.channel = std::move(enrolled.channel);
  tablets_.push_back(std::move(t));
  ++report_.devices_enrolled;
  return absl::OkStatus();
}

// Offline work, first phase: each tablet registers its cases, each with a
// protection concern and, at random, an incident, a risk assessment and a
// referral.
void Simulation::RegisterCases(SimTablet& t) {
  const std::string& region = regions_[t.officer % regions_.size()];
  std::vector<std::string> districts;
  if (const v1::FieldDef* d = schema_.FindField("case_registration", "district")) {
    for (const std::string& v : d->enum_values()) {
      if (v.starts_with(region + "_")) districts.push_back(v);
    }
  }
  for (int i = 0; i < options_.cases; ++i) {
    CaseRef c;
    c.case_id = NewId();
    c.region = region;
    const std::string reg = "case_registration";
    Fields f;
    const bool girl = content_.Percent(50);
    Put(f, reg, "given_name", Str(content_.Pick(girl ? kGirlNames : kBoyNames)));
    Put(f, reg, "family_name", Str(content_.Pick(kFamilyNames)));
    Put(f, reg, "sex", Enum(girl ? "female" : "male"));
    const int age = static_cast<int>(content_.Uniform(18));
    if (content_.Percent(70)) {
      Put(f, reg, "date_of_birth",
          DateOf(DaysAgo(age * 365 + static_cast<int>(content_.Uniform(365)))));
    } else {
      Put(f, reg, "estimated_age_years", Int(age));
    }
    Put(f, reg, "age_band",
        Enum(age < 5    ? "0_4"
             : age < 10 ? "5_9"
             : age < 15 ? "10_14"
                        : "15_17"));
    PutEnum(f, reg, "nationality");
    v1::FieldValue languages;
    languages.mutable_string_list_value()->add_values(content_.Pick(kLanguages));
    if (content_.Percent(40))
      languages.mutable_string_list_value()->add_values(content_.Pick(kLanguages));
    Put(f, reg, "languages", languages);
    const bool disability = content_.Percent(12);
    Put(f, reg, "has_disability", Bool(disability));
    if (disability) Put(f, reg, "disability_details", Str("SYNTHETIC: uses a walking aid"));
    Put(f, reg, "caregiver_name",
        Str(content_.Pick(content_.Percent(50) ? kGirlNames : kBoyNames) + " " +
            content_.Pick(kFamilyNames)));
    PutEnum(f, reg, "caregiver_relationship");
    Put(f, reg, "caregiver_phone",
        Str(absl::StrFormat("+999 7%02d %03d %03d", content_.Uniform(100), content_.Uniform(1000),
                            content_.Uniform(1000))));
    PutEnum(f, reg, "care_arrangement");
    Put(f, reg, "region", Enum(region));
    if (!districts.empty()) Put(f, reg, "district", Enum(content_.Pick(districts)));
    Put(f, reg, "village", Str(content_.Pick(kFamilyNames) + " " + content_.Pick(kPlaces)));
    v1::FieldValue gps;
    gps.mutable_geopoint_value()->set_latitude(-1.0 + static_cast<double>(content_.Uniform(40000)) /
                                                          10000.0);
    gps.mutable_geopoint_value()->set_longitude(
        30.0 + static_cast<double>(content_.Uniform(40000)) / 10000.0);
    gps.mutable_geopoint_value()->set_accuracy_m(static_cast<double>(5 + content_.Uniform(30)));
    Put(f, reg, "gps_location", gps);
    Put(f, reg, "registration_date", DateOf(DaysAgo(static_cast<int>(content_.Uniform(30)))));
    PutEnum(f, reg, "priority");
    Upsert(t, 0, c.case_id, c.case_id, reg, std::move(f));

    const std::optional<std::string> category = PickEnum("protection_concern", "concern_category");
    if (category.has_value()) {
      Fields concern;
      Put(concern, "protection_concern", "concern_category", Enum(*category));
      Put(concern, "protection_concern", "identified_date",
          DateOf(DaysAgo(static_cast<int>(content_.Uniform(30)))));
      Put(concern, "protection_concern", "description",
          Str(absl::StrFormat("SYNTHETIC test record: %s concern reported by a %s", *category,
                              content_.Percent(50) ? "teacher" : "neighbour")));
      Put(concern, "protection_concern", "is_ongoing", Bool(content_.Percent(60)));
      c.concerns.push_back(NewId());
      Upsert(t, 0, c.case_id, c.concerns.back(), "protection_concern", std::move(concern));
    }
    if (content_.Percent(30) && schema_.FindRecordType("incident") != nullptr) {
      Fields incident;
      Put(incident, "incident", "incident_date",
          DateOf(DaysAgo(30 + static_cast<int>(content_.Uniform(60)))));
      if (category.has_value()) Put(incident, "incident", "concern_category", Enum(*category));
      PutEnum(incident, "incident", "place_type");
      PutEnum(incident, "incident", "perpetrator_relationship");
      Put(incident, "incident", "narrative",
          Str("SYNTHETIC narrative for testing; no real person or event is described."));
      Upsert(t, 0, c.case_id, NewId(), "incident", std::move(incident));
    }
    if (content_.Percent(50) && schema_.FindRecordType("risk_assessment") != nullptr) {
      Fields risk;
      Put(risk, "risk_assessment", "assessment_date",
          DateOf(DaysAgo(static_cast<int>(content_.Uniform(10)))));
      PutEnum(risk, "risk_assessment", "risk_level");
      Put(risk, "risk_assessment", "immediate_safety_concern", Bool(content_.Percent(20)));
      Upsert(t, 0, c.case_id, NewId(), "risk_assessment", std::move(risk));
    }
    if (content_.Percent(60) && schema_.FindRecordType("referral") != nullptr) {
      Fields referral;
      Put(referral, "referral", "referral_date",
          DateOf(DaysAgo(static_cast<int>(content_.Uniform(10)))));
      PutEnum(referral, "referral", "service_type");
      Put(referral, "referral", "referred_to",
          Str(absl::StrFormat("%s %s", content_.Pick(kFamilyNames), content_.Pick(kProviders))));
      Put(referral, "referral", "referral_status", Enum("pending"));
      Put(referral, "referral", "consent_obtained", Bool(true));
      c.referrals.push_back(NewId());
      Upsert(t, 0, c.case_id, c.referrals.back(), "referral", std::move(referral));
    }
    officer_cases_[t.officer].push_back(std::move(c));
  }
}

// Offline work, second phase: the tablets of one officer edit the same
// fields of the same cases from the versions they pulled, so concurrent
// writes meet on the server: equal values converge, different ones leave a
// conflict for a supervisor. The first edit of every tablet sets the
// priority of its officer's first case; later ones are drawn at random, and
// a few use an out-of-date form (a district the schema does not allow) and
// are rejected.
void Simulation::EditOffline(SimTablet& t) {
  std::vector<const CaseRef*> known;
  for (const CaseRef& c : officer_cases_[t.officer]) {
    if (t.tablet->Knows(c.case_id)) known.push_back(&c);
  }
  if (known.empty()) return;
  const std::string reg = "case_registration";
  for (int e = 0; e < options_.edits; ++e) {
    // The first few cases are the busy ones every tablet touches.
    const CaseRef& c = *known[e == 0 ? 0 : content_.Uniform(std::min<size_t>(known.size(), 3))];
    const size_t kind = e == 0 ? 0 : content_.Uniform(100);
    Fields f;
    if (kind < 40) {
      static const std::vector<std::string> kHot = {"priority", "care_arrangement",
                                                    "caregiver_phone", "village", "has_disability"};
      const std::string& field = e == 0 ? kHot[0] : content_.Pick(kHot);
      if (field == "caregiver_phone") {
        Put(f, reg, field,
            Str(absl::StrFormat("+999 70%d 000 00%d", content_.Uniform(3), content_.Uniform(3))));
      } else if (field == "village") {
        Put(f, reg, field, Str(std::string("Okello ") + kPlaces[content_.Uniform(3)]));
      } else if (field == "has_disability") {
        Put(f, reg, field, Bool(content_.Percent(50)));
      } else {
        PutEnum(f, reg, field);
      }
      if (!f.empty()) Upsert(t, 1, c.case_id, c.case_id, reg, std::move(f));
    } else if (kind < 60) {
      std::vector<std::string> referrals;
      for (const std::string& r : c.referrals) {
        if (t.tablet->Knows(r)) referrals.push_back(r);
      }
      if (referrals.empty()) continue;
      static const std::vector<std::string> kStatus = {"accepted", "service_provided", "declined"};
      Put(f, "referral", "referral_status", Enum(content_.Pick(kStatus)));
      Upsert(t, 1, c.case_id, content_.Pick(referrals), "referral", std::move(f));
    } else if (kind < 72) {
      Put(f, "referral", "referral_date", DateOf(DaysAgo(0)));
      PutEnum(f, "referral", "service_type");
      Put(f, "referral", "referred_to",
          Str(absl::StrFormat("%s %s", content_.Pick(kFamilyNames), content_.Pick(kProviders))));
      Put(f, "referral", "referral_status", Enum("pending"));
      Put(f, "referral", "consent_obtained", Bool(true));
      if (schema_.FindRecordType("referral") != nullptr) {
        Upsert(t, 1, c.case_id, NewId(), "referral", std::move(f));
      }
    } else if (kind < 86) {
      Put(f, "follow_up", "follow_up_date", DateOf(DaysAgo(0)));
      PutEnum(f, "follow_up", "follow_up_type");
      Put(f, "follow_up", "child_seen", Bool(content_.Percent(80)));
      PutEnum(f, "follow_up", "wellbeing");
      Put(f, "follow_up", "notes", Str("SYNTHETIC follow-up note"));
      if (schema_.FindRecordType("follow_up") != nullptr) {
        Upsert(t, 1, c.case_id, NewId(), "follow_up", std::move(f));
      }
    } else if (kind < 93) {
      std::vector<std::string> concerns;
      for (const std::string& r : c.concerns) {
        if (t.tablet->Knows(r)) concerns.push_back(r);
      }
      if (concerns.empty()) continue;
      Put(f, "protection_concern", "is_ongoing", Bool(content_.Percent(50)));
      Upsert(t, 1, c.case_id, content_.Pick(concerns), "protection_concern", std::move(f));
    } else {
      // An out-of-date form: a district value the deployment retired.
      if (schema_.FindField(reg, "district") == nullptr) continue;
      f.emplace_back("district", Enum(c.region + "_retired"));
      Upsert(t, 1, c.case_id, c.case_id, reg, std::move(f));
    }
  }
}

absl::Status Simulation::PushAll(SimTablet& t) {
  auto stub = v1::SyncService::NewStub(t.channel);
  while (t.tablet->pending() > 0) {
    ASSIGN_OR_RETURN(v1::SealedBatch batch,
                     t.tablet->SealNext(kChangesPerBatch, NewUuid(ids_), ids_));
    v1::PushRequest request;
    *request.mutable_batch() = std::move(batch);
    v1::PushResponse response;
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    grpc::Status s = stub->Push(&context, request, &response);
    if (!s.ok()) {
      return absl::UnavailableError(
          absl::StrFormat("tablet %d push: %s", t.index + 1, DescribeRpcError(s, admin_.server)));
    }
    ++report_.batches_pushed;
    report_.changes_sent += response.results_size();
    for (const v1::ChangeResult& r : response.results()) {
      switch (r.outcome()) {
        case v1::CHANGE_OUTCOME_APPLIED:
          ++report_.applied;
          break;
        case v1::CHANGE_OUTCOME_CONVERGED:
          ++report_.converged;
          break;
        case v1::CHANGE_OUTCOME_SUPERSEDED:
          ++report_.superseded;
          break;
        case v1::CHANGE_OUTCOME_CONFLICT:
          ++report_.conflict;
          break;
        case v1::CHANGE_OUTCOME_REJECTED: {
          ++report_.rejected;
          std::string reason = v1::RejectReason_Name(r.reject_reason());
          if (reason.starts_with("REJECT_REASON_")) reason = reason.substr(14);
          ++report_.rejected_reasons[reason];
          break;
        }
        default:
          break;
      }
    }
    if (response.has_audit_receipt()) {
      // As a tablet does: the receipt against the audit key it holds,
      // following any key rotation the receipt carries.
      absl::StatusOr<protocol::Checkpoint> head = t.tablet->VerifyReceipt(response);
      if (!head.ok()) {
        return absl::DataLossError(
            absl::StrFormat("the push receipt does not verify: %s", head.status().message()));
      }
    }
    RETURN_IF_ERROR(t.tablet->Acknowledge(response));
  }
  return absl::OkStatus();
}

absl::Status Simulation::PullAll(SimTablet& t) {
  auto stub = v1::SyncService::NewStub(t.channel);
  // One stream normally ends caught up; the bound only stops a server that
  // never does.
  for (int attempt = 0; attempt < 100; ++attempt) {
    v1::PullRequest request;
    request.set_cursor(t.tablet->cursor());
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    std::unique_ptr<grpc::ClientReader<v1::PullChunk>> reader = stub->Pull(&context, request);
    v1::PullChunk chunk;
    bool caught_up = false;
    absl::Status taken = absl::OkStatus();
    while (reader->Read(&chunk)) {
      absl::StatusOr<v1::PulledChanges> changes = t.tablet->TakePullChunk(chunk);
      if (!changes.ok()) {
        taken = changes.status();
        context.TryCancel();
        break;
      }
      report_.changes_pulled += changes->changes_size();
      caught_up = changes->caught_up();
    }
    grpc::Status s = reader->Finish();
    if (!taken.ok()) {
      return absl::DataLossError(
          absl::StrFormat("tablet %d pull: %s", t.index + 1, taken.message()));
    }
    if (!s.ok()) {
      return absl::UnavailableError(
          absl::StrFormat("tablet %d pull: %s", t.index + 1, DescribeRpcError(s, admin_.server)));
    }
    ++report_.pulls;
    if (caught_up) return absl::OkStatus();
  }
  return absl::DeadlineExceededError(
      absl::StrFormat("tablet %d pull never caught up", t.index + 1));
}

bool Simulation::ReplicasAgree() const {
  for (size_t i = 0; i < tablets_.size(); ++i) {
    for (size_t j = i + 1; j < tablets_.size(); ++j) {
      if (tablets_[i].officer == tablets_[j].officer &&
          tablets_[i].tablet->versions() != tablets_[j].tablet->versions()) {
        return false;
      }
    }
  }
  return true;
}

absl::StatusOr<SimulateReport> Simulation::Run() {
  start_ = RealClock::Get()->Now();
  today_ = absl::ToCivilDay(start_, absl::UTCTimeZone());
  uint8_t tag[3];
  ids_.Fill(tag);
  tag_ = absl::StrFormat("%02x%02x%02x", tag[0], tag[1], tag[2]);
  report_.run = "sim-" + tag_;
  report_.seed = options_.seed;
  const v1::FieldDef* region =
      schema_.FindField(schema_.registration_type().name(), schema_.region_field());
  if (region == nullptr || region->enum_values().empty()) {
    return absl::FailedPreconditionError(
        "the schema's region field lists no regions: the simulator needs them");
  }
  if (schema_.registration_type().name() != "case_registration") {
    return absl::FailedPreconditionError(
        "the simulator writes the default child-protection schema (case_registration); this "
        "deployment's schema differs");
  }
  regions_.assign(region->enum_values().begin(), region->enum_values().end());
  report_.officers = (options_.devices + kDevicesPerOfficer - 1) / kDevicesPerOfficer;
  officer_cases_.resize(report_.officers);
  step_.assign(options_.devices, 0);
  for (int i = 0; i < options_.devices; ++i) {
    skew_.push_back(static_cast<int>(content_.Uniform(1200)));
  }

  for (int o = 0; o < report_.officers && o < static_cast<int>(regions_.size()); ++o) {
    report_.regions.push_back(regions_[o]);
  }
  RETURN_IF_ERROR(AddOfficers());
  for (int i = 0; i < options_.devices; ++i) RETURN_IF_ERROR(Enrol(i));
  for (SimTablet& t : tablets_) RegisterCases(t);
  for (SimTablet& t : tablets_) RETURN_IF_ERROR(PushAll(t));
  for (SimTablet& t : tablets_) RETURN_IF_ERROR(PullAll(t));
  for (SimTablet& t : tablets_) EditOffline(t);
  for (SimTablet& t : tablets_) RETURN_IF_ERROR(PushAll(t));
  for (SimTablet& t : tablets_) RETURN_IF_ERROR(PullAll(t));
  report_.replicas_agree = ReplicasAgree();
  RETURN_IF_ERROR(CountConflicts());
  report_.elapsed = RealClock::Get()->Now() - start_;
  return report_;
}

// Looks at the run's conflicts as a supervisor of the officers' regions
// would: a supervisor registered for this run only (revoked when done, its
// key never leaves memory) lists each region's open conflicts. A conflict
// in which one writer stands on two sides (the current value and a losing
// one, or two losing ones) is a device conflicting with itself, which the
// merge rules exclude (docs/MERGE.md §2).
absl::Status Simulation::CountConflicts() {
  absl::flat_hash_set<std::string> cases, regions;
  for (const std::vector<CaseRef>& officer : officer_cases_) {
    for (const CaseRef& c : officer) {
      cases.insert(c.case_id);
      regions.insert(c.region);
    }
  }
  report_.conflicts_open = 0;
  report_.self_conflicts = 0;
  if (cases.empty()) return absl::OkStatus();
  const std::string id = absl::StrFormat("sim-%s-supervisor", tag_);
  ASSIGN_OR_RETURN(crypto::KeyPem key, crypto::GenerateP256Key());
  ASSIGN_OR_RETURN(
      std::string csr,
      crypto::CreateCsr(key.private_key_pem, admin::PrincipalUri({v1::PRINCIPAL_KIND_STAFF, id})));
  auto admin = v1::AdminService::NewStub(admin_.channel);
  v1::AddStaffRequest add;
  add.set_id(id);
  add.set_role(v1::ROLE_SUPERVISOR);
  for (const std::string& r : regions) add.add_regions(r);
  add.set_csr_pem(csr);
  v1::AddStaffResponse added;
  {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    grpc::Status s = admin->AddStaff(&context, add, &added);
    if (!s.ok()) {
      return absl::UnavailableError(absl::StrFormat("registering the run's supervisor: %s",
                                                    DescribeRpcError(s, admin_.server)));
    }
  }
  auto cases_stub = v1::CaseService::NewStub(
      DeviceChannel(admin_.server, ca_pem_, added.certificate_pem(), key.private_key_pem));
  absl::Status listed = absl::OkStatus();
  for (const std::string& region : regions) {
    std::string token;
    do {
      v1::ListConflictsRequest request;
      request.set_region(region);
      request.set_page_size(1000);
      request.set_page_token(token);
      v1::ListConflictsResponse page;
      grpc::ClientContext context;
      context.set_deadline(Deadline());
      grpc::Status s = cases_stub->ListConflicts(&context, request, &page);
      if (!s.ok()) {
        listed = absl::UnavailableError(absl::StrFormat("listing conflicts of %s: %s", region,
                                                        DescribeRpcError(s, admin_.server)));
        break;
      }
      for (const v1::Conflict& c : page.conflicts()) {
        if (!cases.contains(c.case_id())) continue;
        ++report_.conflicts_open;
        if (report_.example_conflict.empty()) report_.example_conflict = FormatConflictId(c.id());
        absl::flat_hash_set<std::string> writers;
        bool twice = false;
        if (!c.field().empty()) writers.insert(c.current_writer());
        for (const v1::LosingValue& v : c.losing_values()) {
          for (const v1::ConflictWrite& w : v.writes()) twice |= !writers.insert(w.writer()).second;
        }
        report_.self_conflicts += twice;
      }
      token = page.next_page_token();
    } while (!token.empty());
    if (!listed.ok()) break;
  }
  v1::RevokePrincipalRequest revoke;
  revoke.set_kind(v1::PRINCIPAL_KIND_STAFF);
  revoke.set_id(id);
  v1::RevokePrincipalResponse revoked;
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  grpc::Status s = admin->RevokePrincipal(&context, revoke, &revoked);
  RETURN_IF_ERROR(listed);
  if (!s.ok()) {
    return absl::UnavailableError(absl::StrFormat("revoking the run's supervisor %s: %s", id,
                                                  DescribeRpcError(s, admin_.server)));
  }
  return absl::OkStatus();
}

absl::Status ParseBounded(const Args& args, const std::string& name, int lo, int hi, int* out) {
  if (!args.Has(name)) return absl::OkStatus();
  int v = 0;
  if (!absl::SimpleAtoi(args.Get(name), &v) || v < lo || v > hi) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s must be a whole number from %d to %d", name, lo, hi));
  }
  *out = v;
  return absl::OkStatus();
}

}  // namespace

std::vector<std::string> SupervisorNextSteps(const SimulateReport& r,
                                             const std::string& admin_prefix,
                                             const std::string& server) {
  if (r.regions.empty()) return {};
  // A new id per run: staff ids are never reused.
  const std::string id = r.run + "-reviewer";
  std::string add = absl::StrFormat("%s staff add --id %s --role supervisor", admin_prefix, id);
  for (const std::string& region : r.regions) absl::StrAppend(&add, " --region ", region);
  absl::StrAppend(&add, " --out ", id);
  const std::string as = absl::StrFormat(
      "fieldsync --server %s --cert %s/%s.crt --key %s/%s.key "
      "--ca %s/ca.crt",
      ShellQuote(server), id, id, id, id, id);
  std::vector<std::string> out = {add};
  for (const std::string& region : r.regions) {
    out.push_back(absl::StrFormat("%s conflict list --region %s", as, region));
  }
  const std::string conflict = r.example_conflict.empty() ? "ID" : r.example_conflict;
  out.push_back(absl::StrFormat("%s conflict show %s", as, conflict));
  out.push_back(absl::StrFormat("%s conflict resolve %s --keep-current", as, conflict));
  if (r.example_conflict.find('/') != std::string::npos || r.example_conflict.empty()) {
    out.push_back(absl::StrFormat("%s conflict resolve %s --take 1", as, conflict));
    out.push_back(absl::StrFormat("%s conflict resolve %s --value VALUE", as, conflict));
  }
  return out;
}

std::string FormatSimulateReport(const SimulateReport& r) {
  std::string out = absl::StrFormat(
      "simulated %d tablets of %d officers (run %s, seed %d)\n"
      "  batches pushed   %d\n"
      "  changes          %d sent: %d applied, %d converged, %d superseded, %d conflict, "
      "%d rejected\n",
      r.devices_enrolled, r.officers, r.run, r.seed, r.batches_pushed, r.changes_sent, r.applied,
      r.converged, r.superseded, r.conflict, r.rejected);
  for (const auto& [reason, n] : r.rejected_reasons) {
    absl::StrAppendFormat(&out, "  rejected         %d %s\n", n, reason);
  }
  absl::StrAppendFormat(&out,
                        "  conflicts open   %d (for a supervisor of the officers' regions); "
                        "%d set a tablet against itself\n"
                        "  pulled           %d changes in %d pulls; tablets of an officer %s\n"
                        "  time             %.2f s\n",
                        r.conflicts_open, r.self_conflicts, r.changes_pulled, r.pulls,
                        r.replicas_agree ? "agree" : "DISAGREE", absl::ToDoubleSeconds(r.elapsed));
  if (!r.next_steps.empty()) {
    absl::StrAppend(&out,
                    "\nnext, as a supervisor of the run's regions (the first command, with the "
                    "administrator's\ncredentials, registers one; the others list, show and "
                    "resolve the conflicts;\nresolve takes one of --keep-current, --take N or "
                    "--value V):\n");
    for (const std::string& step : r.next_steps) absl::StrAppend(&out, "  ", step, "\n");
  }
  return out;
}

std::string SimulateReportJson(const SimulateReport& r) {
  nlohmann::json j;
  j["run"] = r.run;
  j["seed"] = r.seed;
  j["devices_enrolled"] = r.devices_enrolled;
  j["officers"] = r.officers;
  j["batches_pushed"] = r.batches_pushed;
  j["changes_sent"] = r.changes_sent;
  j["applied"] = r.applied;
  j["converged"] = r.converged;
  j["superseded"] = r.superseded;
  j["conflict"] = r.conflict;
  j["rejected"] = r.rejected;
  j["rejected_reasons"] = nlohmann::json::object();
  for (const auto& [reason, n] : r.rejected_reasons) j["rejected_reasons"][reason] = n;
  j["conflicts_open"] = r.conflicts_open;
  j["self_conflicts"] = r.self_conflicts;
  j["pulls"] = r.pulls;
  j["changes_pulled"] = r.changes_pulled;
  j["replicas_agree"] = r.replicas_agree;
  j["seconds"] = absl::ToDoubleSeconds(r.elapsed);
  j["next_steps"] = r.next_steps;
  return j.dump();
}

int DeviceSimulate(const Args& args, std::string* error) {
  if (args.help) {
    std::cout
        << "usage: fieldsync --data-dir DIR [--server HOST:PORT] device simulate --devices N\n"
           "                 [--seed S] [--cases C] [--edits E] [--schema FILE] [--json]\n\n"
           "Enrols N simulated tablets (1-200) with the administrator's credentials, three\n"
           "to an officer, then lets them work offline on the deployment's schema\n"
           "(DIR/schema.textproto, or --schema FILE) with SYNTHETIC values: each registers\n"
           "C cases (default 3) with concerns, incidents, assessments and referrals, pushes\n"
           "them and pulls its officer's cases, then makes E edits (default 6) to the same\n"
           "fields of shared cases, so that concurrent edits converge or conflict, and\n"
           "syncs again. Prints the outcomes the server gave (applied, converged,\n"
           "superseded, conflict, rejected with reasons), the conflicts left open as a\n"
           "supervisor of the officers' regions lists them, how many of those set a\n"
           "tablet against itself (always 0), and the time taken; --json prints one\n"
           "JSON object. Values and choices follow --seed (default 1); keys and ids are\n"
           "random. Each run registers new officers (sim-<run>-officer-N) and leaves them\n"
           "and its devices enrolled, labelled \"simulated tablet N (<run>)\" (fieldsync\n"
           "staff list --include-simulated shows them); the supervisor it registers to\n"
           "list conflicts (sim-<run>-supervisor) is revoked before it ends. Last, it\n"
           "prints the commands a supervisor runs next (staff add --role supervisor,\n"
           "conflict list, show and resolve); --json has them as next_steps.\n";
    return 0;
  }
  if (absl::Status s =
          CheckOptions(args, {"--data-dir", "--server", "--cert", "--key", "--ca", "--devices",
                              "--seed", "--cases", "--edits", "--schema", "--json"});
      !s.ok()) {
    *error = std::string(s.message());
    return 2;
  }
  SimulateOptions options;
  if (!args.Has("--devices")) {
    *error = "device simulate needs --devices N (1-200)";
    return 2;
  }
  for (absl::Status s : {ParseBounded(args, "--devices", 1, kMaxDevices, &options.devices),
                         ParseBounded(args, "--cases", 1, kMaxCases, &options.cases),
                         ParseBounded(args, "--edits", 0, kMaxEdits, &options.edits)}) {
    if (!s.ok()) {
      *error = std::string(s.message());
      return 2;
    }
  }
  if (args.Has("--seed") && !absl::SimpleAtoi(args.Get("--seed"), &options.seed)) {
    *error = "--seed must be a whole number";
    return 2;
  }
  const std::string data_dir = args.Get("--data-dir");
  if (data_dir.empty() && !args.Has("--schema")) {
    *error = "device simulate needs --data-dir DIR (or --schema FILE with the connection options)";
    return 2;
  }
  admin::DeploymentPaths paths(data_dir);
  absl::StatusOr<v1::Schema> schema_proto =
      sync::LoadSchemaFile(args.Get("--schema", paths.schema));
  if (!schema_proto.ok()) {
    *error = std::string(schema_proto.status().message());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<sync::Schema>> schema =
      sync::Schema::Create(*std::move(schema_proto));
  if (!schema.ok()) {
    *error = std::string(schema.status().message());
    return 1;
  }
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) {
    *error = std::string(conn.status().message());
    return 1;
  }
  absl::StatusOr<std::string> ca_pem = ReadFile(args.Get("--ca", paths.admin_ca_cert));
  if (!ca_pem.ok()) {
    *error = std::string(ca_pem.status().message());
    return 1;
  }
  const std::string server = conn->server;
  Simulation simulation(options, **schema, *std::move(conn), *std::move(ca_pem));
  absl::StatusOr<SimulateReport> report = simulation.Run();
  if (!report.ok()) {
    *error = std::string(report.status().message());
    return 1;
  }
  report->next_steps = SupervisorNextSteps(*report, CommandPrefix(args), server);
  std::cout << (args.Has("--json") ? SimulateReportJson(*report) + "\n"
                                   : FormatSimulateReport(*report));
  return 0;
}

}  // namespace fieldsync::tools
