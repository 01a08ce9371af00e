// Shared pieces of the sync tests: a real AES-GCM FieldSealer with per-case
// keys derived from a fixed test key, change builders over the default
// schema, and a dump of column families for byte-for-byte comparisons.
#ifndef FIELDSYNC_TESTS_SYNC_SYNC_TEST_UTIL_H_
#define FIELDSYNC_TESTS_SYNC_SYNC_TEST_UTIL_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/random.h"
#include "fieldsync/v1/records.pb.h"
#include "storage/store.h"
#include "sync/change_feed.h"
#include "sync/field_sealer.h"
#include "sync/ingest.h"
#include "sync/schema.h"

namespace fieldsync::sync::testing {

// AES-256-GCM under HMAC-SHA256(test key, case id); AAD binds case, record
// and field; output nonce || ciphertext || tag. Digest: HMAC under
// HMAC(case key, "digest") over field || 0 || plaintext. Thread-safe.
class TestFieldSealer final : public FieldSealer {
 public:
  explicit TestFieldSealer(Random* random) : random_(random) {}
  absl::StatusOr<std::string> Seal(const FieldAddress& at, std::string_view plaintext,
                                   std::vector<KeyWrite>* key_writes) override;
  absl::StatusOr<std::string> Open(const FieldAddress& at, std::string_view sealed) const override;
  absl::StatusOr<std::string> Digest(std::string_view case_id, std::string_view field,
                                     std::string_view plaintext,
                                     std::vector<KeyWrite>* key_writes) override;
  // Makes Seal fail with kUnavailable while set.
  void set_fail(bool fail) { fail_ = fail; }
  // Makes each Seal take at least `delay` (so that concurrent ones
  // overlap), and the most Seal calls that were running at once.
  void set_seal_delay(absl::Duration delay) { delay_ = delay; }
  int most_seals_at_once() const { return most_at_once_.load(); }
  void ResetSealsAtOnce() { most_at_once_ = 0; }
  // While `gate` is set and not notified, each Seal waits for it. Not
  // owned; set before the calls it holds.
  void set_seal_gate(absl::Notification* gate) { gate_ = gate; }
  // The cases Seal was called for, each once, in the order of their first
  // call.
  std::vector<std::string> sealed_cases() const {
    absl::MutexLock lock(&order_mu_);
    return sealed_cases_;
  }

 private:
  Random* random_;
  absl::Notification* gate_ = nullptr;
  mutable absl::Mutex order_mu_;
  std::vector<std::string> sealed_cases_ ABSL_GUARDED_BY(order_mu_);
  bool fail_ = false;
  absl::Duration delay_ = absl::ZeroDuration();
  std::atomic<int> at_once_{0};
  std::atomic<int> most_at_once_{0};
};

// The default schema from deploy/schema/child_protection.textproto (read
// via FIELDSYNC_SOURCE_DIR); aborts the test binary if it does not load.
std::unique_ptr<Schema> LoadDefaultSchemaOrDie();

// Canonical UUID text made from a small number (for readable tests).
std::string Id(int n);

v1::FieldValue Str(std::string_view s);
v1::FieldValue Enum(std::string_view s);
v1::FieldValue DateValue(int y, int m, int d);
v1::FieldValue Cleared();

v1::Hlc HlcAt(int64_t wall_micros, uint32_t logical = 0);

// A registration UPSERT with every required field (region given) and
// `extra` fields.
v1::RecordChange NewCase(const std::string& change_id, const std::string& case_id,
                         std::string_view region, v1::Hlc hlc);
// An UPSERT of `fields` (name -> value) with one base version for all.
v1::RecordChange Upsert(const std::string& change_id, const std::string& case_id,
                        const std::string& record_id, std::string_view record_type,
                        const std::vector<std::pair<std::string, v1::FieldValue>>& fields,
                        uint64_t base_version, v1::Hlc hlc);

// A store with the Ingest and ChangeFeed of one server, without observers.
struct SyncNode {
  std::unique_ptr<storage::Store> store;
  std::unique_ptr<Ingest> ingest;
  std::unique_ptr<ChangeFeed> feed;
};

// Creates a store at `path` and its ingest and feed; aborts the test binary
// if the store does not open. Not owned: schema, sealer and clock, which
// must outlive the node.
SyncNode OpenSyncNode(const std::string& path, const Schema* schema, FieldSealer* sealer,
                      const Clock* clock, bool sync_writes = true);

// A scope reaching every case and every sensitivity class.
ReadScope AllCases();

// Every key and value of `cf`, in order.
std::vector<std::pair<std::string, std::string>> DumpCf(storage::Store* store, storage::Cf cf);

// Rewrites `store`'s case index, written under today's merge rules, into
// the form merge rules 3 gave it (a case listed under its region and its
// officer by two keys, tags 1 and 2, and an entry key for every entry,
// also the ones that created records) and records rules 3: the state of a
// store written by the release before. Returns how many scope keys it
// rewrote.
int RewriteCaseIndexAsMergeRules3(storage::Store* store);
// The same for merge rules 4: each listed case under one key of its region
// and officer (tag 5), entry keys as today.
int RewriteCaseIndexAsMergeRules4(storage::Store* store);

}  // namespace fieldsync::sync::testing

#endif  // FIELDSYNC_TESTS_SYNC_SYNC_TEST_UTIL_H_
