#include "admin/device_activity.h"

#include "common/logging.h"
#include "common/status_macros.h"
#include "storage/column_families.h"
#include "storage/key_codec.h"

namespace fieldsync::admin {

void DeviceActivity::Record(std::string_view device_id) {
  const absl::Time now = clock_->Now();
  const std::string id(device_id);
  absl::flat_hash_map<std::string, absl::Time> due;
  {
    absl::MutexLock lock(&mu_);
    last_[id] = now;
    unflushed_[id] = now;
    if (now - last_flush_ < flush_interval_) return;
    due = TakeUnflushedLocked();
  }
  // The commit runs without the lock, so that other devices' calls do not
  // wait for it.
  if (absl::Status s = Write(std::move(due)); !s.ok()) {
    log::Warn("device_activity.flush", {{"reason", s.message()}});
  }
}

absl::Status DeviceActivity::Flush() {
  absl::flat_hash_map<std::string, absl::Time> due;
  {
    absl::MutexLock lock(&mu_);
    due = TakeUnflushedLocked();
  }
  return Write(std::move(due));
}

absl::flat_hash_map<std::string, absl::Time> DeviceActivity::TakeUnflushedLocked() {
  // Even a failed flush waits a whole interval before the next try, so a
  // failing disk is not hit once per push.
  last_flush_ = clock_->Now();
  absl::flat_hash_map<std::string, absl::Time> due;
  due.swap(unflushed_);
  return due;
}

absl::Status DeviceActivity::Write(absl::flat_hash_map<std::string, absl::Time> due) {
  if (due.empty()) return absl::OkStatus();
  storage::WriteBatch batch;
  for (const auto& [id, t] : due) {
    // Value layout (persisted): I64 microseconds since the Unix epoch.
    batch.Put(storage::Cf::kPrincipals, storage::EncodeDeviceLastSyncKey(id),
              storage::KeyBuilder().I64(absl::ToUnixMicros(t)).Finish());
  }
  absl::Status s = store_->Commit(&batch);
  if (!s.ok()) {
    // Kept for the next flush, unless a newer time was noted meanwhile.
    absl::MutexLock lock(&mu_);
    for (auto& [id, t] : due) unflushed_.try_emplace(id, t);
  }
  return s;
}

int DeviceActivity::CountSince(absl::Time since) const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const auto& [id, t] : last_) n += t >= since ? 1 : 0;
  return n;
}

absl::StatusOr<absl::flat_hash_map<std::string, absl::Time>> DeviceActivity::LastSyncs() const {
  absl::flat_hash_map<std::string, absl::Time> out;
  const std::string lower = storage::DeviceLastSyncPrefix();
  std::unique_ptr<storage::Iterator> it =
      store_->NewIterator(storage::Cf::kPrincipals, lower, storage::PrefixUpperBound(lower));
  for (; it->Valid(); it->Next()) {
    ASSIGN_OR_RETURN(std::string id, storage::DecodeDeviceLastSyncKey(it->key()));
    storage::KeyReader value(it->value());
    absl::StatusOr<int64_t> micros = value.I64();
    if (!micros.ok() || !value.AtEnd()) {
      return absl::DataLossError("a stored device last-sync time is not 8 bytes");
    }
    out[id] = absl::FromUnixMicros(*micros);
  }
  RETURN_IF_ERROR(it->status());
  absl::MutexLock lock(&mu_);
  for (const auto& [id, t] : last_) {
    auto [pos, inserted] = out.emplace(id, t);
    if (!inserted && t > pos->second) pos->second = t;
  }
  return out;
}

}  // namespace fieldsync::admin
