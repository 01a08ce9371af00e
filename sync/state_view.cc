#include "sync/state_view.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "storage/key_codec.h"

namespace fieldsync::sync {

absl::StatusOr<std::optional<std::string>> StateView::Get(storage::Cf cf, std::string_view key) {
  auto it = overlay_.find({cf, std::string(key)});
  if (it != overlay_.end()) return it->second;
  absl::StatusOr<std::string> v = store_->Get(cf, key);
  if (v.ok()) return std::optional<std::string>(std::move(*v));
  if (absl::IsNotFound(v.status())) return std::optional<std::string>();
  return v.status();
}

void StateView::Put(storage::Cf cf, std::string_view key, std::string_view value) {
  overlay_[{cf, std::string(key)}] = std::string(value);
  batch_->Put(cf, key, value);
}

void StateView::Delete(storage::Cf cf, std::string_view key) {
  overlay_[{cf, std::string(key)}] = std::nullopt;
  batch_->Delete(cf, key);
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
  for (auto o = overlay_.lower_bound({cf, std::string(prefix)});
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
  return absl::DataLossError(absl::StrFormat("value of %s key %s does not parse",
                                             storage::CfName(cf),
                                             absl::BytesToHexString(absl::string_view(
                                                 key.data(), key.size()))));
}

}  // namespace fieldsync::sync
