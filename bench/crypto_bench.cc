// Benchmarks of crypto/ (issue #3) and the bare OpenSSL baselines its
// targets are stated against:
//   field encrypt of 32 bytes   <= 1.5 x one bare EVP AES-256-GCM
//                                  encryption of 32 bytes, reused context;
//   HPKE open of 40 KiB         <= 1.2 x the sum of its bare parts: one
//                                  X25519, the key schedule's HMAC calls,
//                                  one AES-256-GCM decryption of 40 KiB.
// This file includes <openssl/...> for the baselines only; everything
// measured as "ours" goes through crypto/'s public API.
//
// Run: crypto_bench --benchmark_repetitions=5
//        --benchmark_report_aggregates_only=true
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdlib.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "common/uuid.h"
#include "crypto/aead.h"
#include "crypto/blind_index.h"
#include "crypto/bytes.h"
#include "crypto/ed25519.h"
#include "crypto/field_cipher.h"
#include "crypto/hmac.h"
#include "crypto/hpke.h"
#include "crypto/master_key.h"
#include "crypto/system_random.h"
#include "crypto/x25519.h"
#include "keys/case_keys.h"
#include "storage/store.h"

namespace fieldsync::crypto {
namespace {
using keys::CaseKeyStore;
using keys::CaseKeyStoreOptions;
using keys::kCaseDekVersion;

constexpr size_t kBatchSize = 40 * 1024;

void Die(const char* what) {
  std::fprintf(stderr, "crypto_bench: %s failed\n", what);
  std::abort();
}

template <typename T>
T Ok(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) Die(what);
  return *std::move(v);
}

std::vector<uint8_t> RandomBytes(size_t n) {
  std::vector<uint8_t> v(n);
  SystemRandom::Get()->Fill(v);
  return v;
}

SecretBytes RandomKey() {
  SecretBytes k(32);
  SystemRandom::Get()->Fill(k.mutable_span());
  return k;
}

FieldAddress Address() {
  FieldAddress a;
  a.case_id = NewUuid(*SystemRandom::Get());
  a.record_id = NewUuid(*SystemRandom::Get());
  a.field_name = "given_name";
  a.key_version = kCaseDekVersion;
  return a;
}

// --- Field cipher -----------------------------------------------------------

void BM_FieldEncrypt(benchmark::State& state) {
  const SecretBytes dek = RandomKey();
  const FieldCipher cipher = Ok(FieldCipher::Create(dek.span()), "FieldCipher::Create");
  const FieldAddress address = Address();
  const std::vector<uint8_t> value = RandomBytes(state.range(0));
  for (auto _ : state) {
    absl::StatusOr<std::string> c = cipher.Encrypt(address, value, *SystemRandom::Get());
    benchmark::DoNotOptimize(c);
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_FieldEncrypt)->Arg(32)->Arg(256);

void BM_FieldDecrypt(benchmark::State& state) {
  const SecretBytes dek = RandomKey();
  const FieldCipher cipher = Ok(FieldCipher::Create(dek.span()), "FieldCipher::Create");
  const FieldAddress address = Address();
  const std::string sealed =
      Ok(cipher.Encrypt(address, RandomBytes(state.range(0)), *SystemRandom::Get()), "Encrypt");
  for (auto _ : state) {
    absl::StatusOr<std::string> p = cipher.Decrypt(address, sealed);
    benchmark::DoNotOptimize(p);
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_FieldDecrypt)->Arg(32)->Arg(256);

// The one-shot form: an AES key setup per call (what the kept cipher saves).
void BM_FieldEncryptOneShot(benchmark::State& state) {
  const SecretBytes dek = RandomKey();
  const FieldAddress address = Address();
  const std::vector<uint8_t> value = RandomBytes(state.range(0));
  for (auto _ : state) {
    absl::StatusOr<std::string> c = EncryptField(dek, address, value, *SystemRandom::Get());
    benchmark::DoNotOptimize(c);
  }
}
BENCHMARK(BM_FieldEncryptOneShot)->Arg(32);

// Baseline: one bare AES-256-GCM encryption of 32 bytes on a context whose
// key is set once; per call only the nonce is set (a fixed one: no
// randomness, no associated data, no allocation).
void BM_BareAesGcmEncrypt32(benchmark::State& state) {
  const SecretBytes key = RandomKey();
  EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (EVP_EncryptInit_ex2(ctx, cipher, key.data(), nullptr, nullptr) != 1) Die("init");
  std::array<uint8_t, 12> nonce{};
  std::array<uint8_t, 32> in{};
  std::array<uint8_t, 32 + 16> out;
  for (auto _ : state) {
    int len = 0;
    if (EVP_EncryptInit_ex2(ctx, nullptr, nullptr, nonce.data(), nullptr) != 1 ||
        EVP_EncryptUpdate(ctx, out.data(), &len, in.data(), in.size()) != 1 ||
        EVP_EncryptFinal_ex(ctx, out.data() + len, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out.data() + 32) != 1) {
      Die("bare AES-GCM");
    }
    benchmark::DoNotOptimize(out);
  }
  EVP_CIPHER_CTX_free(ctx);
  EVP_CIPHER_free(cipher);
}
BENCHMARK(BM_BareAesGcmEncrypt32);

// For reference only (the target is against the one above): the same with
// 69 bytes of associated data, the size of a field's AAD for "given_name".
void BM_BareAesGcmEncrypt32Aad69(benchmark::State& state) {
  const SecretBytes key = RandomKey();
  EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (EVP_EncryptInit_ex2(ctx, cipher, key.data(), nullptr, nullptr) != 1) Die("init");
  std::array<uint8_t, 12> nonce{};
  std::array<uint8_t, 69> aad{};
  std::array<uint8_t, 32> in{};
  std::array<uint8_t, 32 + 16> out;
  for (auto _ : state) {
    int len = 0;
    if (EVP_EncryptInit_ex2(ctx, nullptr, nullptr, nonce.data(), nullptr) != 1 ||
        EVP_EncryptUpdate(ctx, nullptr, &len, aad.data(), aad.size()) != 1 ||
        EVP_EncryptUpdate(ctx, out.data(), &len, in.data(), in.size()) != 1 ||
        EVP_EncryptFinal_ex(ctx, out.data() + len, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out.data() + 32) != 1) {
      Die("bare AES-GCM");
    }
    benchmark::DoNotOptimize(out);
  }
  EVP_CIPHER_CTX_free(ctx);
  EVP_CIPHER_free(cipher);
}
BENCHMARK(BM_BareAesGcmEncrypt32Aad69);

// --- HPKE -------------------------------------------------------------------

struct HpkeFixture {
  X25519KeyPair recipient = GenerateX25519(*SystemRandom::Get());
  X25519PrivateKey prepared =
      Ok(X25519PrivateKey::Create(recipient.private_key.span()), "X25519PrivateKey::Create");
  std::vector<uint8_t> info = {'f', 's'};
  std::vector<uint8_t> aad = RandomBytes(70);
  std::vector<uint8_t> batch = RandomBytes(kBatchSize);
};

void BM_HpkeSeal40K(benchmark::State& state) {
  HpkeFixture f;
  for (auto _ : state) {
    absl::StatusOr<HpkeCiphertext> c =
        HpkeSeal(f.recipient.public_key, f.info, f.aad, f.batch, *SystemRandom::Get());
    benchmark::DoNotOptimize(c);
  }
  state.SetBytesProcessed(state.iterations() * kBatchSize);
}
BENCHMARK(BM_HpkeSeal40K);

void BM_HpkeOpen40K(benchmark::State& state) {
  HpkeFixture f;
  const HpkeCiphertext sealed =
      Ok(HpkeSeal(f.recipient.public_key, f.info, f.aad, f.batch, *SystemRandom::Get()), "seal");
  for (auto _ : state) {
    absl::StatusOr<std::string> p =
        HpkeOpen(f.prepared, AsBytes(sealed.enc), f.info, f.aad, AsBytes(sealed.ciphertext));
    if (!p.ok()) Die("HpkeOpen");
    benchmark::DoNotOptimize(p);
  }
  state.SetBytesProcessed(state.iterations() * kBatchSize);
}
BENCHMARK(BM_HpkeOpen40K);

// --- Bare parts of one HPKE open -------------------------------------------

// One X25519 on OpenSSL's cheapest public path: the recipient key and a
// derive context prepared once; per call, the peer's public key is
// imported and set, and the secret derived.
struct BareX25519 {
  EVP_PKEY* priv = nullptr;
  EVP_PKEY_CTX* ctx = nullptr;
  std::array<uint8_t, 32> peer;

  BareX25519() {
    std::array<uint8_t, 32> sk;
    SystemRandom::Get()->Fill(sk);
    priv = EVP_PKEY_new_raw_private_key_ex(nullptr, "X25519", nullptr, sk.data(), sk.size());
    ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, priv, nullptr);
    if (priv == nullptr || ctx == nullptr || EVP_PKEY_derive_init(ctx) != 1) Die("x25519 init");
    peer = GenerateX25519(*SystemRandom::Get()).public_key;
  }
  ~BareX25519() {
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(priv);
  }
  void Run(uint8_t out[32]) {
    EVP_PKEY* p = EVP_PKEY_new_raw_public_key_ex(nullptr, "X25519", nullptr, peer.data(), 32);
    size_t len = 32;
    if (p == nullptr || EVP_PKEY_derive_set_peer_ex(ctx, p, 0) != 1 ||
        EVP_PKEY_derive(ctx, out, &len) != 1) {
      Die("bare X25519");
    }
    EVP_PKEY_free(p);
  }
};

// The HMAC-SHA256 computations of the RFC 9180 key schedule for our suite
// (DHKEM ExtractAndExpand: 1 extract + 1 expand; KeySchedule: psk_id_hash,
// info_hash and secret extracts, key/base_nonce/exp expands) = 8 HMACs over
// inputs of the RFC's sizes, on one reused EVP_MAC context.
struct BareHkdf {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* ctx = nullptr;
  BareHkdf() {
    ctx = EVP_MAC_CTX_new(mac);
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    if (ctx == nullptr || EVP_MAC_CTX_set_params(ctx, params) != 1) Die("hmac init");
  }
  ~BareHkdf() {
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
  }
  void Hmac(const uint8_t* key, size_t key_len, const uint8_t* msg, size_t msg_len,
            uint8_t out[32]) {
    size_t n = 0;
    if (EVP_MAC_init(ctx, key, key_len, nullptr) != 1 || EVP_MAC_update(ctx, msg, msg_len) != 1 ||
        EVP_MAC_final(ctx, out, &n, 32) != 1) {
      Die("bare HMAC");
    }
  }
  void Run(const uint8_t dh[32], uint8_t out[32]) {
    static const uint8_t kZeros[32] = {};
    uint8_t buf[128] = {};
    uint8_t prk[32];
    // Message sizes: "HPKE-v1" (7) + suite id (5 or 10) + label + input,
    // expands + 2-byte length + 1-byte counter.
    Hmac(kZeros, 32, buf, 7 + 5 + 7 + 32, prk);  // eae_prk
    std::memcpy(buf, dh, 32);
    Hmac(prk, 32, buf, 2 + 7 + 5 + 13 + 64 + 1, out);   // shared_secret
    Hmac(kZeros, 32, buf, 7 + 10 + 11, prk);            // psk_id_hash
    Hmac(kZeros, 32, buf, 7 + 10 + 9 + 2, prk);         // info_hash
    Hmac(out, 32, buf, 7 + 10 + 6, prk);                // secret
    Hmac(prk, 32, buf, 2 + 7 + 10 + 3 + 65 + 1, out);   // key
    Hmac(prk, 32, buf, 2 + 7 + 10 + 10 + 65 + 1, buf);  // base_nonce
    Hmac(prk, 32, buf, 2 + 7 + 10 + 3 + 65 + 1, buf);   // exp
  }
};

// One AES-256-GCM decryption of 40 KiB under a fresh key (each HPKE context
// has its own): key and nonce set on a reused context, into a buffer
// allocated once.
struct BareAesGcmOpen {
  EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  SecretBytes key = RandomKey();
  std::array<uint8_t, 12> nonce{};
  std::vector<uint8_t> aad = RandomBytes(70);
  std::vector<uint8_t> sealed;
  std::vector<uint8_t> out = std::vector<uint8_t>(kBatchSize);
  BareAesGcmOpen() {
    std::string s = Ok(AesGcmSeal(key.span(), nonce, aad, RandomBytes(kBatchSize)), "seal");
    sealed.assign(s.begin(), s.end());
  }
  ~BareAesGcmOpen() {
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(cipher);
  }
  void Run() {
    int len = 0;
    uint8_t tag[16];
    std::memcpy(tag, sealed.data() + kBatchSize, 16);
    if (EVP_DecryptInit_ex2(ctx, cipher, key.data(), nonce.data(), nullptr) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag) != 1 ||
        EVP_DecryptUpdate(ctx, nullptr, &len, aad.data(), aad.size()) != 1 ||
        EVP_DecryptUpdate(ctx, out.data(), &len, sealed.data(), kBatchSize) != 1 ||
        EVP_DecryptFinal_ex(ctx, out.data() + len, &len) != 1) {
      Die("bare AES-GCM open");
    }
  }
};

void BM_BareX25519(benchmark::State& state) {
  BareX25519 x;
  uint8_t out[32];
  for (auto _ : state) {
    x.Run(out);
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_BareX25519);

void BM_BareHpkeHkdfCalls(benchmark::State& state) {
  BareHkdf h;
  uint8_t dh[32] = {1};
  uint8_t out[32];
  for (auto _ : state) {
    h.Run(dh, out);
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_BareHpkeHkdfCalls);

void BM_BareAesGcmDecrypt40K(benchmark::State& state) {
  BareAesGcmOpen a;
  for (auto _ : state) {
    a.Run();
    benchmark::DoNotOptimize(a.out.data());
  }
  state.SetBytesProcessed(state.iterations() * kBatchSize);
}
BENCHMARK(BM_BareAesGcmDecrypt40K);

// The three bare parts back to back: the HPKE open baseline.
void BM_BareHpkeOpenParts40K(benchmark::State& state) {
  BareX25519 x;
  BareHkdf h;
  BareAesGcmOpen a;
  uint8_t dh[32];
  uint8_t out[32];
  for (auto _ : state) {
    x.Run(dh);
    h.Run(dh, out);
    a.Run();
    benchmark::DoNotOptimize(a.out.data());
  }
  state.SetBytesProcessed(state.iterations() * kBatchSize);
}
BENCHMARK(BM_BareHpkeOpenParts40K);

// --- Ed25519 ----------------------------------------------------------------

void BM_Ed25519Sign(benchmark::State& state) {
  Ed25519KeyPair kp = GenerateEd25519(*SystemRandom::Get());
  Ed25519Signer signer = Ok(Ed25519Signer::Create(kp.seed.span()), "signer");
  const std::vector<uint8_t> message = RandomBytes(state.range(0));
  for (auto _ : state) {
    Ed25519Signature sig = signer.Sign(message);
    benchmark::DoNotOptimize(sig);
  }
}
BENCHMARK(BM_Ed25519Sign)->Arg(70)->Arg(kBatchSize);

void BM_Ed25519Verify(benchmark::State& state) {
  Ed25519KeyPair kp = GenerateEd25519(*SystemRandom::Get());
  Ed25519Signer signer = Ok(Ed25519Signer::Create(kp.seed.span()), "signer");
  const std::vector<uint8_t> message = RandomBytes(state.range(0));
  const Ed25519Signature sig = signer.Sign(message);
  for (auto _ : state) {
    absl::Status s = Ed25519Verify(kp.public_key, message, sig);
    if (!s.ok()) Die("verify");
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_Ed25519Verify)->Arg(70)->Arg(kBatchSize);

// --- HMAC-SHA256: key set up per tag, or once ------------------------------
// A field digest tags ~40 bytes under its case's digest key; a batch's
// fields of one case share the key (sync/case_key_sealer.cc).

void BM_HmacSha256KeyPerTag(benchmark::State& state) {
  const SecretBytes key = RandomKey();
  const std::string input(static_cast<size_t>(state.range(0)), 'v');
  for (auto _ : state) {
    HmacSha256Tag t = HmacSha256(key.span(), AsBytes(input));
    benchmark::DoNotOptimize(t);
  }
}
BENCHMARK(BM_HmacSha256KeyPerTag)->Arg(40);

void BM_HmacSha256KeyOnce(benchmark::State& state) {
  const SecretBytes key = RandomKey();
  HmacSha256Key keyed(key.span());
  const std::string input(static_cast<size_t>(state.range(0)), 'v');
  for (auto _ : state) {
    HmacSha256Tag t = keyed.Tag(AsBytes(input));
    benchmark::DoNotOptimize(t);
  }
}
BENCHMARK(BM_HmacSha256KeyOnce)->Arg(40);

// --- Blind index, DEK unwrap, case key cache --------------------------------

void BM_BlindIndexName(benchmark::State& state) {
  BlindIndex index = Ok(BlindIndex::FromKey(RandomKey()), "blind index");
  for (auto _ : state) {
    absl::StatusOr<uint32_t> t = index.Tag("José Ñúñez García");
    benchmark::DoNotOptimize(t);
  }
}
BENCHMARK(BM_BlindIndexName);

void BM_DekUnwrap(benchmark::State& state) {
  MasterKeyRing ring = MasterKeyRing::Generate(*SystemRandom::Get());
  const SecretBytes dek = RandomKey();
  const std::string purpose = CaseKeyStore::WrapPurpose(NewUuid(*SystemRandom::Get()));
  const std::string wrapped = Ok(ring.Wrap(purpose, dek.span(), *SystemRandom::Get()), "wrap");
  for (auto _ : state) {
    absl::StatusOr<SecretBytes> k = ring.Unwrap(purpose, wrapped);
    if (!k.ok()) Die("unwrap");
    benchmark::DoNotOptimize(k);
  }
}
BENCHMARK(BM_DekUnwrap);

// A CaseKeyStore over a RocksDB in a temporary directory.
struct CaseKeyFixture {
  std::string dir;
  std::unique_ptr<storage::Store> store;
  MasterKeyRing ring = MasterKeyRing::Generate(*SystemRandom::Get());
  std::unique_ptr<CaseKeyStore> keys;
  std::vector<Uuid> cases;

  explicit CaseKeyFixture(size_t n, size_t cache_capacity) {
    char tmpl[] = "/tmp/fieldsync-crypto-bench-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) Die("mkdtemp");
    dir = tmpl;
    storage::StoreOptions o;
    o.path = dir + "/db";
    o.create_if_missing = true;
    o.sync_writes = false;
    store = Ok(storage::Store::Open(o), "open store");
    keys = std::make_unique<CaseKeyStore>(store.get(), &ring,
                                          CaseKeyStoreOptions{.cache_capacity = cache_capacity});
    storage::WriteBatch batch;
    for (size_t i = 0; i < n; ++i) {
      cases.push_back(NewUuid(*SystemRandom::Get()));
      Ok(keys->CreateDek(cases.back(), *SystemRandom::Get(), &batch), "CreateDek");
    }
    if (!store->Commit(&batch).ok()) Die("commit");
  }
  ~CaseKeyFixture() {
    keys.reset();
    (void)store->Close();
    store.reset();
    std::filesystem::remove_all(dir);
  }
};

// Cache hit: a lock, a hash lookup and an LRU splice.
void BM_CaseKeyCacheHit(benchmark::State& state) {
  CaseKeyFixture f(64, 4096);
  size_t i = 0;
  for (auto _ : state) {
    auto c = f.keys->GetFieldCipher(f.cases[i++ % f.cases.size()]);
    if (!c.ok()) Die("GetFieldCipher");
    benchmark::DoNotOptimize(c);
  }
}
BENCHMARK(BM_CaseKeyCacheHit);

// Cache disabled: a RocksDB read (block cache), an unwrap and a cipher setup.
void BM_CaseKeyCacheMiss(benchmark::State& state) {
  CaseKeyFixture f(64, 0);
  size_t i = 0;
  for (auto _ : state) {
    auto c = f.keys->GetFieldCipher(f.cases[i++ % f.cases.size()]);
    if (!c.ok()) Die("GetFieldCipher");
    benchmark::DoNotOptimize(c);
  }
}
BENCHMARK(BM_CaseKeyCacheMiss);

}  // namespace
}  // namespace fieldsync::crypto

BENCHMARK_MAIN();
