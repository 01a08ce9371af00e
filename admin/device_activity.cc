#include "admin/device_activity.h"

#include "common/logging.h"
#include "common/status_macros.h"
#include "storage/column_families.h"
#include "storage/key_codec.h"

namespace fieldsync::admin {

void DeviceActivity::Record(std::string_view device_id) {
  const absl::Time now = clock_->Now();
  const std::string id(device_id);
  absl::MutexLock lock(&mu_);
  last_[id] = now;
  unflushed_[id] = now;
  if (now - last_flush_ < flush_interval_) return;
  if (absl::Status s = FlushLocked(); !s.ok()) {
    log::Warn("device_activity.flush", {{"devices", unflushed_.size()}, {"reason", s.message()}});
  }
}

absl::Status DeviceActivity::Flush() {
  absl::MutexLock lock(&mu_);
  return FlushLocked();
}

absl::Status DeviceActivity::FlushLocked() {
  // Even a failed flush waits a whole interval before the next try, so a
  // failing disk is not hit once per push.
  last_flush_ = clock_->Now();
  if (unflushed_.empty()) return absl::OkStatus();
  storage::WriteBatch batch;
  for (const auto& [id, t] : unflushed_) {
    // Value layout (persisted): I64 microseconds since the Unix epoch.
    batch.Put(storage::Cf::kPrincipals, storage::EncodeDeviceLastSyncKey(id),
              storage::KeyBuilder().I64(absl::ToUnixMicros(t)).Finish());
  }
  RETURN_IF_ERROR(store_->Commit(&batch));
  unflushed_.clear();
  return absl::OkStatus();
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
