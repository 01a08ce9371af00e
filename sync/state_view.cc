#include "sync/state_view.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "storage/key_codec.h"

namespace fieldsync::sync {

absl::StatusOr<const std::optional<std::string>*> StateView::Find(storage::Cf cf,
                                                                  std::string_view key) {
  auto it = overlay_.find(std::pair<storage::Cf, std::string_view>(cf, key));
  if (it != overlay_.end()) return &it->second;
  absl::StatusOr<std::string> v = store_->Get(cf, key);
  std::optional<std::string> found;
  if (v.ok()) {
    found = std::move(*v);
  } else if (!absl::IsNotFound(v.status())) {
    return v.status();
  }
  it = overlay_.emplace(std::pair<storage::Cf, std::string>(cf, std::string(key)), std::move(found))
           .first;
  return &it->second;
}

absl::StatusOr<std::optional<std::string>> StateView::Get(storage::Cf cf, std::string_view key) {
  absl::StatusOr<const std::optional<std::string>*> v = Find(cf, key);
  if (!v.ok()) return v.status();
  return **v;
}

absl::Status StateView::Prefetch(storage::Cf cf, std::span<const std::string> keys) {
  std::vector<std::string_view> missing;
  missing.reserve(keys.size());
  for (const std::string& key : keys) {
    if (!overlay_.contains(std::pair<storage::Cf, std::string_view>(cf, key))) {
      missing.push_back(key);
    }
  }
  if (missing.empty()) return absl::OkStatus();
  std::vector<absl::StatusOr<std::string>> values = store_->MultiGet(cf, missing);
  for (const absl::StatusOr<std::string>& v : values) {
    if (!v.ok() && !absl::IsNotFound(v.status())) return v.status();
  }
  for (size_t i = 0; i < missing.size(); ++i) {
    std::optional<std::string> found;
    if (values[i].ok()) found = *std::move(values[i]);
    // emplace keeps the first of a repeated key.
    overlay_.emplace(std::pair<storage::Cf, std::string>(cf, std::string(missing[i])),
                     std::move(found));
  }
  return absl::OkStatus();
}

void StateView::Put(storage::Cf cf, std::string_view key, std::string value) {
  batch_->Put(cf, key, value);
  overlay_.insert_or_assign(std::pair<storage::Cf, std::string>(cf, std::string(key)),
                            std::optional<std::string>(std::move(value)));
}

void StateView::Delete(storage::Cf cf, std::string_view key) {
  overlay_.insert_or_assign(std::pair<storage::Cf, std::string>(cf, std::string(key)),
                            std::optional<std::string>());
  batch_->Delete(cf, key);
}

void StateView::AddToSum(storage::Cf cf, std::string_view key, std::string_view member,
                         int64_t delta) {
  auto it = sums_.find(std::pair<storage::Cf, std::string_view>(cf, key));
  if (it == sums_.end()) {
    it = sums_
             .emplace(std::pair<storage::Cf, std::string>(cf, std::string(key)),
                      storage::KeyedSums())
             .first;
  }
  storage::AddToSum(&it->second, member, delta);
}

void StateView::FlushSums() {
  for (const auto& [at, sums] : sums_) {
    batch_->Merge(at.first, at.second, storage::EncodeKeyedSums(sums));
  }
  sums_.clear();
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> StateView::Scan(
    storage::Cf cf, std::string_view prefix) {
  std::map<std::string, std::string> merged;
  std::unique_ptr<storage::Iterator> it =
      store_->NewIterator(cf, prefix, storage::PrefixUpperBound(prefix));
  for (; it->Valid(); it->Next()) {
    merged.emplace(std::string(it->key()), std::string(it->value()));
  }
  if (absl::Status s = it->status(); !s.ok()) return s;
  for (auto o = overlay_.lower_bound(std::pair<storage::Cf, std::string_view>(cf, prefix));
       o != overlay_.end() && o->first.first == cf &&
       std::string_view(o->first.second).substr(0, prefix.size()) == prefix;
       ++o) {
    if (o->second.has_value()) {
      merged[o->first.second] = *o->second;
    } else {
      merged.erase(o->first.second);
    }
  }
  return std::vector<std::pair<std::string, std::string>>(merged.begin(), merged.end());
}

absl::Status StateView::CorruptValue(storage::Cf cf, std::string_view key) {
  return absl::DataLossError(
      absl::StrFormat("value of %s key %s does not parse", storage::CfName(cf),
                      absl::BytesToHexString(absl::string_view(key.data(), key.size()))));
}

}  // namespace fieldsync::sync
