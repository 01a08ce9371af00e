#include "storage/name_dictionary.h"

#include <memory>
#include <utility>

#include "absl/strings/str_format.h"
#include "storage/key_codec.h"
#include "storage/store.h"

namespace fieldsync::storage {

absl::Status NameDictionary::Load(Store* store) {
  const std::string prefix = NameKeyPrefix();
  std::unique_ptr<Iterator> it =
      store->NewIterator(Cf::kMetadata, prefix, PrefixUpperBound(prefix));
  absl::MutexLock lock(&mu_);
  for (Names& n : names_) n = Names();
  for (; it->Valid(); it->Next()) {
    absl::StatusOr<NameKey> key = DecodeNameKey(it->key());
    if (!key.ok()) return key.status();
    if (!Valid(key->kind)) {
      return absl::DataLossError(
          absl::StrFormat("the store's name dictionary has a kind %d this release does not know",
                          static_cast<int>(key->kind)));
    }
    Names& n = names_[Index(key->kind)];
    if (key->id != n.by_id.size() + 1) {
      return absl::DataLossError(
          absl::StrFormat("the store's name dictionary skips from id %d to %d (kind %d)",
                          n.by_id.size(), key->id, static_cast<int>(key->kind)));
    }
    n.by_id.emplace_back(it->value());
    n.durable.push_back(true);
    n.written.push_back(0);
    if (!n.ids.emplace(n.by_id.back(), key->id).second) {
      return absl::DataLossError(
          absl::StrFormat("the store's name dictionary gives one name two ids (kind %d, id %d)",
                          static_cast<int>(key->kind), key->id));
    }
  }
  return it->status();
}

uint32_t NameDictionary::Intern(NameKind kind, std::string_view name, WriteBatch* batch) {
  absl::MutexLock lock(&mu_);
  Names& n = names_[Index(kind)];
  uint32_t id = 0;
  if (auto it = n.ids.find(name); it != n.ids.end()) {
    id = it->second;
    if (n.durable[id - 1] || n.written[id - 1] == batch->serial()) return id;
  } else {
    n.by_id.emplace_back(name);
    n.durable.push_back(false);
    n.written.push_back(0);
    id = static_cast<uint32_t>(n.by_id.size());
    n.ids.emplace(n.by_id.back(), id);
  }
  n.written[id - 1] = batch->serial();
  batch->Put(Cf::kMetadata, EncodeNameKey(kind, id), name);
  batch->NoteName(this, kind, id);
  return id;
}

absl::StatusOr<std::string_view> NameDictionary::Name(NameKind kind, uint32_t id) const {
  absl::ReaderMutexLock lock(&mu_);
  const Names& n = names_[Index(kind)];
  if (id == 0 || id > n.by_id.size()) {
    return absl::DataLossError(absl::StrFormat(
        "name %d of kind %d is not in the store's dictionary (written by a newer release, or "
        "damaged)",
        id, static_cast<int>(kind)));
  }
  return std::string_view(n.by_id[id - 1]);
}

uint32_t NameDictionary::Find(NameKind kind, std::string_view name) const {
  absl::ReaderMutexLock lock(&mu_);
  const Names& n = names_[Index(kind)];
  auto it = n.ids.find(name);
  return it == n.ids.end() ? 0 : it->second;
}

absl::Status NameDictionary::Adopt(const NameDictionary& source, WriteBatch* batch) {
  if (&source == this) return absl::OkStatus();
  for (NameKind kind : {NameKind::kField, NameKind::kRecordType, NameKind::kWriter}) {
    std::vector<std::string> names;
    {
      absl::ReaderMutexLock lock(&source.mu_);
      const Names& s = source.names_[Index(kind)];
      names.assign(s.by_id.begin(), s.by_id.end());
    }
    for (size_t i = 0; i < names.size(); ++i) {
      const uint32_t want = static_cast<uint32_t>(i + 1);
      {
        absl::ReaderMutexLock lock(&mu_);
        const Names& n = names_[Index(kind)];
        if (i < n.by_id.size()) {
          if (n.by_id[i] != names[i]) {
            return absl::FailedPreconditionError(
                absl::StrFormat("the two stores' name dictionaries disagree on id %d of kind %d",
                                want, static_cast<int>(kind)));
          }
          continue;
        }
      }
      if (Intern(kind, names[i], batch) != want) {
        return absl::FailedPreconditionError("name dictionary ids out of step");
      }
    }
  }
  return absl::OkStatus();
}

void NameDictionary::MarkDurable(const std::vector<std::pair<NameKind, uint32_t>>& ids) {
  absl::MutexLock lock(&mu_);
  for (const auto& [kind, id] : ids) {
    Names& n = names_[Index(kind)];
    if (id >= 1 && id <= n.durable.size()) n.durable[id - 1] = true;
  }
}

uint32_t NameDictionary::Size(NameKind kind) const {
  absl::ReaderMutexLock lock(&mu_);
  return static_cast<uint32_t>(names_[Index(kind)].by_id.size());
}

}  // namespace fieldsync::storage
