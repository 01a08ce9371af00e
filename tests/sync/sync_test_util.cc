#include "tests/sync/sync_test_util.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "crypto/aead.h"
#include "crypto/bytes.h"
#include "crypto/hmac.h"
#include "storage/key_codec.h"
#include "storage/keyed_sums.h"
#include "sync/rebuild.h"
#include "sync/record_codec.h"

namespace fieldsync::sync::testing {
namespace {

constexpr std::string_view kTestKey = "fieldsync sync tests: not a key!";

crypto::HmacSha256Tag CaseKey(std::string_view case_id) {
  return crypto::HmacSha256(crypto::AsBytes(kTestKey), crypto::AsBytes(case_id));
}

std::string Aad(const FieldAddress& at) {
  std::string aad(at.case_id);
  aad.push_back('\0');
  aad.append(at.record_id);
  aad.push_back('\0');
  aad.append(at.field);
  return aad;
}

}  // namespace

absl::StatusOr<std::string> TestFieldSealer::Seal(const FieldAddress& at,
                                                  std::string_view plaintext,
                                                  std::vector<KeyWrite>* /*key_writes*/) {
  if (fail_) return absl::UnavailableError("test sealer told to fail");
  {
    absl::MutexLock lock(&order_mu_);
    const std::string case_id(at.case_id);
    if (std::find(sealed_cases_.begin(), sealed_cases_.end(), case_id) == sealed_cases_.end()) {
      sealed_cases_.push_back(case_id);
    }
  }
  if (gate_ != nullptr) gate_->WaitForNotification();
  if (delay_ > absl::ZeroDuration()) {
    const int now = ++at_once_;
    int most = most_at_once_.load();
    while (now > most && !most_at_once_.compare_exchange_weak(most, now)) {
    }
    absl::SleepFor(delay_);
    --at_once_;
  }
  crypto::HmacSha256Tag key = CaseKey(at.case_id);
  uint8_t nonce[crypto::kAesGcmNonceSize];
  random_->Fill(nonce);
  const std::string aad = Aad(at);
  absl::StatusOr<std::string> ct =
      crypto::AesGcmSeal(key, nonce, crypto::AsBytes(aad), crypto::AsBytes(plaintext));
  if (!ct.ok()) return ct.status();
  return std::string(reinterpret_cast<const char*>(nonce), sizeof(nonce)) + *ct;
}

absl::StatusOr<std::string> TestFieldSealer::Open(const FieldAddress& at,
                                                  std::string_view sealed) const {
  if (sealed.size() < crypto::kAesGcmNonceSize) return absl::DataLossError("sealed too short");
  crypto::HmacSha256Tag key = CaseKey(at.case_id);
  const std::string aad = Aad(at);
  absl::StatusOr<std::string> pt = crypto::AesGcmOpen(
      key, crypto::AsBytes(sealed.substr(0, crypto::kAesGcmNonceSize)), crypto::AsBytes(aad),
      crypto::AsBytes(sealed.substr(crypto::kAesGcmNonceSize)));
  if (!pt.ok()) return absl::DataLossError("sealed value does not open here");
  return pt;
}

absl::StatusOr<std::string> TestFieldSealer::Digest(std::string_view case_id,
                                                    std::string_view field,
                                                    std::string_view plaintext,
                                                    std::vector<KeyWrite>* /*key_writes*/) {
  crypto::HmacSha256Tag key = CaseKey(case_id);
  crypto::HmacSha256Tag digest_key = crypto::HmacSha256(key, crypto::AsBytes("digest"));
  std::string data(field);
  data.push_back('\0');
  data.append(plaintext);
  crypto::HmacSha256Tag tag = crypto::HmacSha256(digest_key, crypto::AsBytes(data));
  return std::string(tag.begin(), tag.end());
}

std::unique_ptr<Schema> LoadDefaultSchemaOrDie() {
  const char* src = std::getenv("FIELDSYNC_SOURCE_DIR");
  const std::string path =
      std::string(src != nullptr ? src : ".") + "/deploy/schema/child_protection.textproto";
  absl::StatusOr<v1::Schema> proto = LoadSchemaFile(path);
  if (!proto.ok()) {
    std::cerr << "default schema does not load: " << proto.status() << "\n";
    std::abort();
  }
  absl::StatusOr<std::unique_ptr<Schema>> schema = Schema::Create(*std::move(proto));
  if (!schema.ok()) std::abort();
  return *std::move(schema);
}

std::string Id(int n) { return absl::StrFormat("00000000-0000-4000-8000-%012x", n); }

v1::FieldValue Str(std::string_view s) {
  v1::FieldValue v;
  v.set_string_value(std::string(s));
  return v;
}

v1::FieldValue Enum(std::string_view s) {
  v1::FieldValue v;
  v.set_enum_value(std::string(s));
  return v;
}

v1::FieldValue DateValue(int y, int m, int d) {
  v1::FieldValue v;
  v.mutable_date_value()->set_year(y);
  v.mutable_date_value()->set_month(m);
  v.mutable_date_value()->set_day(d);
  return v;
}

v1::FieldValue Cleared() { return v1::FieldValue(); }

v1::Hlc HlcAt(int64_t wall_micros, uint32_t logical) {
  v1::Hlc h;
  h.set_wall_micros(wall_micros);
  h.set_logical(logical);
  return h;
}

v1::RecordChange Upsert(const std::string& change_id, const std::string& case_id,
                        const std::string& record_id, std::string_view record_type,
                        const std::vector<std::pair<std::string, v1::FieldValue>>& fields,
                        uint64_t base_version, v1::Hlc hlc) {
  v1::RecordChange c;
  c.set_change_id(change_id);
  c.set_case_id(case_id);
  c.set_record_id(record_id);
  c.set_record_type(std::string(record_type));
  c.set_kind(v1::CHANGE_KIND_UPSERT);
  *c.mutable_hlc() = hlc;
  for (const auto& [name, value] : fields) {
    v1::FieldWrite* w = c.add_fields();
    w->set_field(name);
    *w->mutable_value() = value;
    w->set_base_version(base_version);
  }
  return c;
}

v1::RecordChange NewCase(const std::string& change_id, const std::string& case_id,
                         std::string_view region, v1::Hlc hlc) {
  return Upsert(change_id, case_id, case_id, "case_registration",
                {{"given_name", Str("Amina")},
                 {"sex", Enum("female")},
                 {"age_band", Enum("10_14")},
                 {"region", Enum(region)},
                 {"registration_date", DateValue(2026, 11, 2)}},
                0, hlc);
}

SyncNode OpenSyncNode(const std::string& path, const Schema* schema, FieldSealer* sealer,
                      const Clock* clock, bool sync_writes) {
  storage::StoreOptions o;
  o.path = path;
  o.create_if_missing = true;
  o.sync_writes = sync_writes;
  SyncNode n;
  n.store = *storage::Store::Open(o);
  Ingest::Options io;
  io.store = n.store.get();
  io.schema = schema;
  io.sealer = sealer;
  io.clock = clock;
  n.ingest = std::make_unique<Ingest>(io);
  n.feed = std::make_unique<ChangeFeed>(n.store.get(), schema, sealer);
  return n;
}

ReadScope AllCases() {
  ReadScope scope;
  scope.all_cases = true;
  scope.readable = ReadScope::AllClasses();
  return scope;
}

std::vector<std::pair<std::string, std::string>> DumpCf(storage::Store* store, storage::Cf cf) {
  std::vector<std::pair<std::string, std::string>> out;
  std::unique_ptr<storage::Iterator> it = store->NewIterator(cf, "", "");
  for (; it->Valid(); it->Next()) out.emplace_back(it->key(), it->value());
  return out;
}

namespace {

// The cases of each scope list of `store`: (region, officer, case id).
std::vector<std::tuple<std::string, std::string, Uuid>> ListedCases(storage::Store* store) {
  std::vector<std::tuple<std::string, std::string, Uuid>> out;
  for (const auto& [key, value] : DumpCf(store, storage::Cf::kCaseIndex)) {
    absl::StatusOr<storage::CaseScopeListKey> list = storage::DecodeCaseScopeListKey(key);
    if (!list.ok()) continue;
    absl::Status s = storage::ForEachKeyedSum(value, [&](std::string_view member, int64_t) {
      Uuid id;
      if (member.size() != id.size()) return absl::DataLossError("not a case id");
      std::memcpy(id.data(), member.data(), id.size());
      out.emplace_back(list->region, list->officer_id, id);
      return absl::OkStatus();
    });
    if (!s.ok()) return {};
  }
  return out;
}

int RewriteCaseIndexAs(storage::Store* store, int rules) {
  storage::WriteBatch old;
  const std::vector<std::tuple<std::string, std::string, Uuid>> listed = ListedCases(store);
  for (const auto& [key, value] : DumpCf(store, storage::Cf::kCaseIndex)) {
    if (storage::DecodeCaseScopeListKey(key).ok()) old.Delete(storage::Cf::kCaseIndex, key);
  }
  for (const auto& [region, officer, case_id] : listed) {
    if (rules == 4) {
      old.Put(storage::Cf::kCaseIndex,
              storage::KeyBuilder()
                  .U8(storage::kRetiredCaseScopeTag)
                  .String(region)
                  .String(officer)
                  .Uuid(case_id)
                  .Finish(),
              "");
      continue;
    }
    if (!region.empty()) {
      old.Put(storage::Cf::kCaseIndex,
              storage::KeyBuilder().U8(1).String(region).Uuid(case_id).Finish(), "");
    }
    if (!officer.empty()) {
      old.Put(storage::Cf::kCaseIndex,
              storage::KeyBuilder().U8(2).String(officer).Uuid(case_id).Finish(), "");
    }
  }
  if (rules == 3) {
    for (const auto& [key, value] : DumpCf(store, storage::Cf::kRecords)) {
      absl::StatusOr<storage::RecordsKey> k = storage::DecodeRecordsKey(key);
      if (!k.ok() || !k->is_state) continue;
      absl::StatusOr<uint64_t> created = DecodeRecordCreatedPosition(value);
      if (!created.ok()) continue;
      old.Put(storage::Cf::kCaseIndex, storage::EncodeCaseEntryKey(k->case_id, *created), "");
    }
  }
  old.Put(storage::Cf::kMetadata, storage::EncodeMetadataKey(kMergeRulesName),
          std::to_string(rules));
  if (!store->Commit(&old).ok()) return -1;
  return static_cast<int>(listed.size());
}

}  // namespace

int RewriteCaseIndexAsMergeRules3(storage::Store* store) { return RewriteCaseIndexAs(store, 3); }

int RewriteCaseIndexAsMergeRules4(storage::Store* store) { return RewriteCaseIndexAs(store, 4); }

}  // namespace fieldsync::sync::testing
