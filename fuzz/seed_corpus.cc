// fuzz_seed_corpus OUT_DIR: writes the seed corpus of every fuzz target
// (fuzz/*_fuzz.cc) to OUT_DIR/<target>/, each seed a valid input made with
// fieldsync's own encoders, sealers and signers and the fixed keys of
// fuzz_fixtures.h. The repository's fuzz/corpus/ is its output; run it
// again after changing an encoding:
//   build/fuzz/fuzz_seed_corpus fuzz/corpus
#include <zstd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "admin/default_schema.h"
#include "admin/enrolment.h"
#include "audit/export.h"
#include "crypto/bytes.h"
#include "crypto/x509.h"
#include "fieldsync/v1/sync.pb.h"
#include "fuzz/fuzz_fixtures.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "protocol/checkpoint.h"
#include "protocol/events.h"
#include "protocol/merkle.h"
#include "server/config.h"
#include "server/sealed_batch.h"
#include "sync/schema.h"
#include "tests/audit/audit_test_util.h"
#include "tests/sync/sync_test_util.h"

namespace fieldsync::fuzz {
namespace {

namespace fs = std::filesystem;

template <typename T>
T OrDie(absl::StatusOr<T> v, std::string_view what) {
  if (!v.ok()) {
    std::cerr << "fuzz_seed_corpus: " << what << ": " << v.status() << "\n";
    std::exit(1);
  }
  return *std::move(v);
}

class Writer {
 public:
  explicit Writer(fs::path root) : root_(std::move(root)) {}
  void Put(std::string_view target, std::string_view name, std::string_view bytes) {
    const fs::path dir = root_ / target;
    fs::create_directories(dir);
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      std::cerr << "fuzz_seed_corpus: cannot write " << (dir / name) << "\n";
      std::exit(1);
    }
    ++count_;
  }
  // A mode byte (see the target's header comment), then the bytes.
  void Put(std::string_view target, std::string_view name, uint8_t mode, std::string_view bytes) {
    Put(target, name, std::string(1, static_cast<char>(mode)) + std::string(bytes));
  }
  int count() const { return count_; }

 private:
  fs::path root_;
  int count_ = 0;
};

std::string Zstd(std::string_view plain) {
  std::string frame(ZSTD_compressBound(plain.size()), '\0');
  const size_t n = ZSTD_compress(frame.data(), frame.size(), plain.data(), plain.size(), 3);
  if (ZSTD_isError(n)) {
    std::cerr << "fuzz_seed_corpus: zstd failed\n";
    std::exit(1);
  }
  frame.resize(n);
  return frame;
}

// A few realistic batches: a new case with every required field, an update
// of it, a follow-up record, a delete.
std::vector<std::pair<std::string, v1::BatchPayload>> Payloads(const sync::Schema& schema) {
  using sync::testing::HlcAt;
  using sync::testing::Id;
  using sync::testing::Str;
  const std::string region = schema.regions().empty() ? "" : schema.regions()[0];
  const int64_t t = absl::ToUnixMicros(FixedNow()) - 60'000'000;
  std::vector<std::pair<std::string, v1::BatchPayload>> out;
  const std::string case_id = Id(0x100);

  v1::BatchPayload create;
  *create.add_changes() = sync::testing::NewCase(Id(1), case_id, region, HlcAt(t));
  out.emplace_back("new-case", create);

  v1::BatchPayload update;
  *update.add_changes() = sync::testing::Upsert(Id(2), case_id, case_id, "case_registration",
                                                {{"given_name", Str("Amina")}}, 1, HlcAt(t + 1));
  *update.add_changes() = sync::testing::Upsert(
      Id(3), case_id, case_id, "case_registration",
      {{"family_name", Str("Okello")}, {"village", Str("Lira")}}, 1, HlcAt(t + 2, 1));
  out.emplace_back("update-two-changes", update);

  v1::BatchPayload both = create;
  for (const v1::RecordChange& c : update.changes()) *both.add_changes() = c;
  out.emplace_back("create-then-update", both);

  v1::BatchPayload del;
  v1::RecordChange* d = del.add_changes();
  d->set_change_id(Id(4));
  d->set_case_id(case_id);
  d->set_record_id(case_id);
  d->set_record_type("case_registration");
  d->set_kind(v1::CHANGE_KIND_DELETE);
  d->set_base_version(1);
  *d->mutable_hlc() = HlcAt(t + 3);
  out.emplace_back("delete", del);
  return out;
}

void SealedBatches(Writer& w,
                   const std::vector<std::pair<std::string, v1::BatchPayload>>& payloads) {
  CounterRandom random(11);
  uint64_t sequence = 1;
  for (const auto& [name, payload] : payloads) {
    const std::string plain = payload.SerializeAsString();
    w.Put("sealed_batch", "sealed-" + name, 0,
          SealBatchPlaintext(plain, v1::PAYLOAD_COMPRESSION_NONE, sequence, random)
              .SerializeAsString());
    w.Put("sealed_batch", "sealed-zstd-" + name, 0,
          SealBatchPlaintext(Zstd(plain), v1::PAYLOAD_COMPRESSION_ZSTD, sequence, random)
              .SerializeAsString());
    w.Put("sealed_batch", "plaintext-" + name, 1, plain);
    w.Put("sealed_batch", "plaintext-zstd-" + name, 3, Zstd(plain));
    w.Put("batch_payload", name, payload.SerializeAsString());
    ++sequence;
  }
}

void PullChunks(Writer& w, const std::vector<std::pair<std::string, v1::BatchPayload>>& payloads) {
  CounterRandom random(12);
  const Uuid device = OrDie(ParseUuid(kDeviceId), "device id");
  v1::PulledChanges changes;
  uint64_t position = 0;
  for (const auto& [name, payload] : payloads) {
    for (const v1::RecordChange& c : payload.changes()) {
      v1::PulledChange* p = changes.add_changes();
      p->set_position(++position);
      p->set_change_id(c.change_id());
      p->set_case_id(c.case_id());
      p->set_record_id(c.record_id());
      p->set_record_type(c.record_type());
      p->set_kind(c.kind());
      *p->mutable_hlc() = c.hlc();
      p->set_writer(std::string(kDeviceId));
      for (const v1::FieldWrite& f : c.fields()) {
        v1::PulledField* pf = p->add_fields();
        pf->set_field(f.field());
        *pf->mutable_value() = f.value();
      }
    }
  }
  changes.set_next_cursor(position + 2);
  changes.set_caught_up(true);
  v1::PulledChanges empty;
  empty.set_next_cursor(9);
  for (const auto& [name, c] : std::vector<std::pair<std::string, v1::PulledChanges>>{
           {"changes", changes}, {"empty", empty}}) {
    const v1::PullChunk chunk = OrDie(
        protocol::SealPullChunk(c, device, /*cursor=*/0,
                                crypto::AsStringView(DeviceReceivingKey().public_key()), random),
        "seal pull chunk");
    w.Put("pull_chunk", "sealed-" + name, 0, chunk.SerializeAsString());
    w.Put("pull_chunk", "plaintext-" + name, 1, c.SerializeAsString());
  }
}

std::string SignedHead(const std::vector<std::string>& entries, uint64_t size);

void Canonical(Writer& w) {
  std::vector<bool> seen(256, false);
  for (const protocol::Event& e : audit::testing::MixedEvents(12)) {
    const auto kind = static_cast<uint8_t>(protocol::KindOf(e));
    if (seen[kind]) continue;
    seen[kind] = true;
    w.Put("canonical", "event-" + std::string(protocol::KindName(protocol::KindOf(e))), 0,
          OrDie(protocol::EncodeEvent(e), "encode event"));
  }
  // The kinds MixedEvents does not make.
  const absl::Time t = FixedNow();
  const std::string admin = "fieldsync://staff/admin1";
  std::vector<protocol::Event> more = {
      {t, protocol::StaffAdded{"sup1", 2, {"northern", "eastern"}, "0a1b2c", admin}},
      {t,
       protocol::PrincipalRevoked{protocol::PrincipalKind::kDevice, std::string(kDeviceId), admin}},
      {t, protocol::KeyRotated{admin, std::string(protocol::kAuditSigningPurpose), 1, 2,
                               std::string(32, '\x5a')}},
      {t, protocol::CaseErased{admin, Uuid{0xca, 0, 0, 0, 0, 0, 0x40, 0, 0x80}}},
      {t, protocol::AdminAction{admin, "enrolment-code.issue", {"officer-1", "northern"}}},
  };
  protocol::RollbackAccepted rollback;
  rollback.actor = admin;
  rollback.continued_size = 3;
  rollback.continued_root.fill(0x33);
  rollback.abandoned_heads.push_back(SignedHead({"a", "b", "c", "d"}, 4));
  more.push_back({t, rollback});
  for (const protocol::Event& e : more) {
    w.Put("canonical", "event-" + std::string(protocol::KindName(protocol::KindOf(e))), 0,
          OrDie(protocol::EncodeEvent(e), "encode event"));
  }
  w.Put("canonical", "uuid", 1, std::string(kDeviceId));
  w.Put("canonical", "uuid-upper", 1, "AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE");
}

void Enrolment(Writer& w) {
  const crypto::KeyPem key = OrDie(crypto::GenerateP256Key(), "P-256 key");
  const std::string csr =
      OrDie(crypto::CreateCsr(key.private_key_pem, "fieldsync://device/pending"), "CSR");
  v1::EnrollRequest request;
  request.set_enrolment_code("7KQ2-M9XD-4HJP-0RTV-B8WN");
  request.set_csr_pem(csr);
  request.set_signing_public_key(crypto::ToString(DeviceSigner().public_key()));
  request.set_receiving_public_key(crypto::ToString(DeviceReceivingKey().public_key()));
  request.set_device_label("tablet 12, Gulu office");
  w.Put("enrolment_request", "request", 0, request.SerializeAsString());
  w.Put("enrolment_request", "csr-pem", 1, csr);

  w.Put("enrolment_code", "printed", "7KQ2-M9XD-4HJP-0RTV-B8WN");
  w.Put("enrolment_code", "typed-lower-spaces", "7kq2 m9xd 4hjp ortv b8wn");
  w.Put("enrolment_code", "aliases", "7KQ2M9XD4HJPORTVB8WL");
}

void Config(Writer& w) {
  v1::ServerConfig config;
  server::ApplyDefaults("/var/lib/fieldsync", &config);
  std::string text;
  google::protobuf::TextFormat::PrintToString(config, &text);
  w.Put("config", "defaults.conf", text);
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(config, &json).ok()) {
    std::cerr << "fuzz_seed_corpus: config to JSON failed\n";
    std::exit(1);
  }
  w.Put("config", "defaults.json", json);
  w.Put("config", "small.conf", "listen: \"0.0.0.0:9000\"\nstorage { block_cache_mib: 128 }\n");
}

void Schema(Writer& w) {
  w.Put("schema", "child_protection.textproto", admin::DefaultSchemaText());
  const v1::Schema schema = OrDie(sync::ParseSchema(admin::DefaultSchemaText()), "schema");
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(schema, &json).ok()) {
    std::cerr << "fuzz_seed_corpus: schema to JSON failed\n";
    std::exit(1);
  }
  w.Put("schema", "child_protection.json", json);
}

std::string SignedHead(const std::vector<std::string>& entries, uint64_t size) {
  protocol::MemoryNodeSource mem;
  for (uint64_t i = 0; i < size; ++i) mem.AppendLeaf(protocol::LeafHash(entries[i]));
  protocol::Checkpoint cp{
      std::string(kAuditOrigin), size, mem.Root(), {protocol::TimestampExtension(FixedNow())}};
  return OrDie(protocol::SignCheckpoint(cp, AuditSigner()), "sign checkpoint");
}

void Audit(Writer& w) {
  std::vector<std::string> entries;
  for (const protocol::Event& e : audit::testing::MixedEvents(16, 2)) {
    entries.push_back(OrDie(protocol::EncodeEvent(e), "encode event"));
  }
  const std::string head8 = SignedHead(entries, 8);
  const std::string head16 = SignedHead(entries, entries.size());
  std::string file(audit::kExportMagic);
  file += audit::ExportHeadRecord(head8);
  file += audit::ExportHeadRecord(head16);
  for (size_t i = 0; i < entries.size(); ++i) file += audit::ExportEntryRecord(i, entries[i]);
  file += audit::ExportEndRecord(entries.size(), 2);
  w.Put("audit_export", "export-16-entries", file);
  std::string empty(audit::kExportMagic);
  empty += audit::ExportHeadRecord(SignedHead(entries, 0));
  empty += audit::ExportEndRecord(0, 1);
  w.Put("audit_export", "export-empty", empty);

  const protocol::Checkpoint cp = OrDie(protocol::ParseCheckpointNote(head16), "checkpoint note");
  w.Put("checkpoint", "signed-note", 0, head16);
  w.Put("checkpoint", "checkpoint-body", 1,
        OrDie(protocol::FormatCheckpoint(cp), "format checkpoint"));
  w.Put("checkpoint", "verifier-key", 2, AuditSigner().verifier().VerifierKey());
  w.Put("checkpoint", "trusted-head-note", 3, head16);
  w.Put("checkpoint", "trusted-head-line", 3, audit::FormatHeadLine(cp) + "\n");
}

}  // namespace
}  // namespace fieldsync::fuzz

int main(int argc, char** argv) {
  using namespace fieldsync;  // NOLINT
  if (argc != 2) {
    std::cerr << "usage: fuzz_seed_corpus OUT_DIR\n"
                 "Writes every fuzz target's seed corpus to OUT_DIR/<target>/.\n";
    return 2;
  }
  fuzz::Writer w(argv[1]);
  const v1::Schema proto = fuzz::OrDie(sync::ParseSchema(admin::DefaultSchemaText()), "schema");
  const std::unique_ptr<sync::Schema> schema = fuzz::OrDie(sync::Schema::Create(proto), "schema");
  const auto payloads = fuzz::Payloads(*schema);
  fuzz::SealedBatches(w, payloads);
  fuzz::PullChunks(w, payloads);
  fuzz::Canonical(w);
  fuzz::Enrolment(w);
  fuzz::Config(w);
  fuzz::Schema(w);
  fuzz::Audit(w);
  std::cout << "fuzz_seed_corpus: wrote " << w.count() << " seeds to " << argv[1] << "\n";
  return 0;
}
