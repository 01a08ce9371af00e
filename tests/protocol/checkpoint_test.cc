#include "protocol/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "crypto/bytes.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/seeded_random.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::protocol {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::IsOkAndHolds;
using ::fieldsync::testing::StatusIs;
using ::testing::Eq;

// golang.org/x/mod/sumdb/note's test keys and signed note (note_test.go).
constexpr std::string_view kPeterSignerKey =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
constexpr std::string_view kPeterVerifierKey =
    "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
constexpr std::string_view kEnochVerifierKey =
    "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
constexpr std::string_view kGoText =
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n";
constexpr std::string_view kPeterSig =
    "\xE2\x80\x94 PeterNeumann "
    "x08go/ZJkuBS9UG/"
    "SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
constexpr std::string_view kEnochSig =
    "\xE2\x80\x94 EnochRoot "
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/"
    "5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

// A clean rejection of a bad note: malformed or not authentic.
MATCHER(IsRejected, "is rejected as malformed or unauthenticated") {
  *result_listener << "status is " << arg.status().ToString();
  return arg.status().code() == absl::StatusCode::kInvalidArgument ||
         arg.status().code() == absl::StatusCode::kUnauthenticated;
}

// The C2SP tlog-checkpoint example body.
constexpr std::string_view kSpecCheckpoint =
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

std::string S(std::string_view v) { return std::string(v); }

std::string Unbase64(std::string_view text) {
  std::string out;
  EXPECT_TRUE(absl::Base64Unescape(absl::string_view(text.data(), text.size()), &out));
  return out;
}

// The Ed25519 seed inside a Go signer key ("PRIVATE+KEY+name+id+base64(0x01||seed)").
std::string GoSeed(std::string_view signer_key) {
  size_t start = 0;
  for (int plus = 0; plus < 4; ++plus) start = signer_key.find('+', start) + 1;
  const std::string raw = Unbase64(signer_key.substr(start));
  EXPECT_EQ(raw.size(), 33u);
  return raw.substr(1);
}

NoteSigner PeterSigner() {
  const std::string seed = GoSeed(kPeterSignerKey);
  absl::StatusOr<NoteSigner> signer = NoteSigner::Create("PeterNeumann", crypto::AsBytes(seed));
  EXPECT_THAT(signer, IsOk());
  return std::move(signer).value();
}

NoteVerifier Verifier(std::string_view key) {
  absl::StatusOr<NoteVerifier> verifier = NoteVerifier::FromVerifierKey(key);
  EXPECT_THAT(verifier, IsOk());
  return std::move(verifier).value();
}

NoteSigner RandomSigner(std::string_view name) {
  testing::SeededRandom random;
  uint8_t seed[32];
  random.Fill(seed);
  absl::StatusOr<NoteSigner> signer = NoteSigner::Create(name, seed);
  EXPECT_THAT(signer, IsOk());
  return std::move(signer).value();
}

Checkpoint SampleCheckpoint(std::string origin) {
  Checkpoint checkpoint;
  checkpoint.origin = std::move(origin);
  checkpoint.size = 1234567;
  checkpoint.root = LeafHash(std::string_view("root"));
  checkpoint.extensions = {TimestampExtension(absl::FromUnixNanos(1700000000123456789))};
  return checkpoint;
}

// --- Checkpoint bodies ---

TEST(CheckpointTest, SpecExampleRoundTripsByteForByte) {
  absl::StatusOr<Checkpoint> parsed = ParseCheckpoint(kSpecCheckpoint);

  ASSERT_THAT(parsed, IsOk());
  EXPECT_EQ(parsed->origin, "example.com/behind-the-sofa");
  EXPECT_EQ(parsed->size, 20852163u);
  EXPECT_TRUE(parsed->extensions.empty());
  EXPECT_THAT(FormatCheckpoint(*parsed), IsOkAndHolds(Eq(S(kSpecCheckpoint))));
}

TEST(CheckpointTest, FormatWritesTheLinesInOrder) {
  Checkpoint checkpoint;
  checkpoint.origin = "fieldsync.example/audit";
  checkpoint.size = 0;
  checkpoint.root = EmptyRoot();
  checkpoint.extensions = {TimestampExtension(absl::FromUnixNanos(42)), "other ext"};

  EXPECT_THAT(FormatCheckpoint(checkpoint),
              IsOkAndHolds(Eq(S("fieldsync.example/audit\n0\n"
                                "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
                                "Timestamp: 42\nother ext\n"))));
}

TEST(CheckpointTest, FormatRejectsBadLines) {
  Checkpoint checkpoint = SampleCheckpoint("log");
  checkpoint.origin = "";
  EXPECT_THAT(FormatCheckpoint(checkpoint), StatusIs(absl::StatusCode::kInvalidArgument));
  checkpoint.origin = "two\nlines";
  EXPECT_THAT(FormatCheckpoint(checkpoint), StatusIs(absl::StatusCode::kInvalidArgument));
  checkpoint.origin = "log";
  checkpoint.extensions = {""};
  EXPECT_THAT(FormatCheckpoint(checkpoint), StatusIs(absl::StatusCode::kInvalidArgument));
  checkpoint.extensions = {"tab\there"};
  EXPECT_THAT(FormatCheckpoint(checkpoint), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(CheckpointTest, ParseRejectsMalformedBodies) {
  const std::string root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
  for (const std::string& bad : {
           S(""),
           S("origin\n5\n") + root,                                         // no final newline
           S("origin\n5\n"),                                                // no root
           S("\n5\n") + root + "\n",                                        // empty origin
           S("origin\n05\n") + root + "\n",                                 // leading zero
           S("origin\n-5\n") + root + "\n",                                 // sign
           S("origin\n+5\n") + root + "\n",                                 // sign
           S("origin\n 5\n") + root + "\n",                                 // space
           S("origin\n\n") + root + "\n",                                   // empty size
           S("origin\n18446744073709551616\n") + root + "\n",               // 2^64
           S("origin\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n"),   // no padding
           S("origin\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n"),  // trailing bits
           S("origin\n5\nCsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I=\n"),  // URL alphabet
           S("origin\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jx\n"),      // 30 bytes
           S("origin\n5\n") + root + "\n\n",                                // empty extension line
           S("origin\n5\n") + root + "\next\n\n",                           // empty extension line
           S("ori\tgin\n5\n") + root + "\n",                                // control character
           S("ori\xC0\xAFgin\n5\n") + root + "\n",                          // overlong UTF-8
           S("origin\r\n5\n") + root + "\n",                                // CRLF
       }) {
    EXPECT_THAT(ParseCheckpoint(bad), StatusIs(absl::StatusCode::kInvalidArgument))
        << absl::CEscape(bad);
  }
  EXPECT_THAT(ParseCheckpoint(S("origin\n18446744073709551615\n") + root + "\n"), IsOk());
}

TEST(CheckpointTest, EveryTruncationOfABodyIsRejectedOrShorter) {
  const std::string text = *FormatCheckpoint(SampleCheckpoint("log.example/a"));
  for (size_t n = 0; n < text.size(); ++n) {
    absl::StatusOr<Checkpoint> parsed = ParseCheckpoint(text.substr(0, n));
    // A cut exactly after a line is a valid shorter checkpoint only if it
    // keeps the three mandatory lines.
    if (parsed.ok()) {
      EXPECT_EQ(text.substr(0, n), *FormatCheckpoint(*parsed));
      EXPECT_EQ(text[n - 1], '\n');
    } else {
      EXPECT_THAT(parsed, StatusIs(absl::StatusCode::kInvalidArgument));
    }
  }
}

TEST(CheckpointTest, TimestampRoundTrips) {
  const absl::Time t = absl::FromUnixNanos(1682468469199678948);
  Checkpoint checkpoint = SampleCheckpoint("log");
  checkpoint.extensions = {"other", TimestampExtension(t)};

  EXPECT_EQ(TimestampExtension(t), "Timestamp: 1682468469199678948");
  EXPECT_THAT(CheckpointTimestamp(checkpoint), IsOkAndHolds(Eq(t)));
}

TEST(CheckpointTest, TimestampMissingMalformedOrRepeatedIsAnError) {
  Checkpoint checkpoint = SampleCheckpoint("log");
  checkpoint.extensions = {};
  EXPECT_THAT(CheckpointTimestamp(checkpoint), StatusIs(absl::StatusCode::kNotFound));
  checkpoint.extensions = {"Timestamp: 01"};
  EXPECT_THAT(CheckpointTimestamp(checkpoint), StatusIs(absl::StatusCode::kInvalidArgument));
  checkpoint.extensions = {"Timestamp: 9223372036854775808"};
  EXPECT_THAT(CheckpointTimestamp(checkpoint), StatusIs(absl::StatusCode::kInvalidArgument));
  checkpoint.extensions = {"Timestamp: 1", "Timestamp: 1"};
  EXPECT_THAT(CheckpointTimestamp(checkpoint), StatusIs(absl::StatusCode::kInvalidArgument));
}

// --- Key names and verifier keys ---

TEST(NoteKeyTest, KeyNamesFollowTheSpec) {
  EXPECT_TRUE(IsValidKeyName("example.com/log42"));
  EXPECT_TRUE(IsValidKeyName("\xC3\xA9t\xC3\xA9"));  // été
  EXPECT_FALSE(IsValidKeyName(""));
  EXPECT_FALSE(IsValidKeyName("a b"));
  EXPECT_FALSE(IsValidKeyName("a+b"));
  EXPECT_FALSE(
      IsValidKeyName("a\xC2\xA0"
                     "b"));  // U+00A0
  EXPECT_FALSE(
      IsValidKeyName("a\xE3\x80\x80"
                     "b"));  // U+3000
  EXPECT_FALSE(IsValidKeyName("a\x7f\x01"));
  EXPECT_FALSE(IsValidKeyName("a\xFF"));
  EXPECT_FALSE(IsValidKeyName("a\xED\xA0\x80"));  // a surrogate
}

TEST(NoteKeyTest, GoSignerKeyGivesGoVerifierKey) {
  NoteSigner signer = PeterSigner();
  EXPECT_EQ(signer.verifier().key_id(), 0xc74f20a3u);
  EXPECT_EQ(signer.verifier().VerifierKey(), kPeterVerifierKey);
}

TEST(NoteKeyTest, VerifierKeyRoundTrips) {
  NoteVerifier verifier = Verifier(kEnochVerifierKey);
  EXPECT_EQ(verifier.key_name(), "EnochRoot");
  EXPECT_EQ(verifier.key_id(), 0xaf0cfe78u);
  EXPECT_EQ(verifier.VerifierKey(), kEnochVerifierKey);
}

// The key id's hex is read in either case (Go's note package parses it as
// a number) and written back lowercase.
TEST(NoteKeyTest, KeyIdInCapitalsIsTheSameKey) {
  std::string key(kPeterVerifierKey);
  const size_t id = key.find('+') + 1;
  for (size_t i = id; i < id + 8; ++i) key[i] = absl::ascii_toupper(key[i]);
  ASSERT_NE(key, kPeterVerifierKey);
  absl::StatusOr<NoteVerifier> verifier = NoteVerifier::FromVerifierKey(key);
  ASSERT_THAT(verifier, IsOk());
  EXPECT_EQ(verifier->VerifierKey(), kPeterVerifierKey);
  EXPECT_EQ(verifier->key_id(), Verifier(kPeterVerifierKey).key_id());
}

// As golang.org/x/mod/sumdb/note's TestNewVerifier: every proper substring
// and every byte incremented in turn must be rejected.
TEST(NoteKeyTest, ManglingsOfAVerifierKeyAreRejected) {
  const std::string key(kPeterVerifierKey);
  int checked = 0;
  for (size_t i = 0; i <= key.size(); ++i) {
    for (size_t j = i + 1; j <= key.size(); ++j) {
      if (i == 0 && j == key.size()) continue;
      EXPECT_THAT(NoteVerifier::FromVerifierKey(key.substr(i, j - i)),
                  StatusIs(absl::StatusCode::kInvalidArgument))
          << key.substr(i, j - i);
      ++checked;
    }
  }
  for (size_t i = 0; i < key.size(); ++i) {
    std::string mangled = key;
    ++mangled[i];
    EXPECT_THAT(NoteVerifier::FromVerifierKey(mangled),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << mangled;
    ++checked;
  }
  // Wrong key length and unknown algorithm, each with a matching key id.
  EXPECT_THAT(NoteVerifier::FromVerifierKey(
                  "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(NoteVerifier::FromVerifierKey(
                  "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  std::printf("checkpoint_test: %d mangled verifier keys rejected\n", checked + 2);
}

// --- Signed notes: known answers from golang.org/x/mod/sumdb/note ---

TEST(SignedNoteTest, SigningMatchesGoByteForByte) {
  EXPECT_THAT(PeterSigner().Sign(kGoText), IsOkAndHolds(Eq(S(kGoText) + "\n" + S(kPeterSig))));
}

TEST(SignedNoteTest, GoNoteWithTwoSignaturesOpensWithEitherKey) {
  const std::string note = S(kGoText) + "\n" + S(kPeterSig) + S(kEnochSig);

  EXPECT_THAT(Verifier(kPeterVerifierKey).Open(note), IsOkAndHolds(Eq(S(kGoText))));
  EXPECT_THAT(Verifier(kEnochVerifierKey).Open(note), IsOkAndHolds(Eq(S(kGoText))));
}

TEST(SignedNoteTest, ParseAndFormatRoundTrip) {
  const std::string note = S(kGoText) + "\n" + S(kPeterSig) + S(kEnochSig);
  absl::StatusOr<SignedNote> parsed = ParseSignedNote(note);

  ASSERT_THAT(parsed, IsOk());
  EXPECT_EQ(parsed->text, kGoText);
  ASSERT_EQ(parsed->signatures.size(), 2u);
  EXPECT_EQ(parsed->signatures[0].key_name, "PeterNeumann");
  EXPECT_EQ(parsed->signatures[0].key_id, 0xc74f20a3u);
  EXPECT_EQ(parsed->signatures[0].signature.size(), 64u);
  EXPECT_EQ(parsed->signatures[1].key_name, "EnochRoot");
  EXPECT_EQ(parsed->signatures[1].key_id, 0xaf0cfe78u);
  EXPECT_THAT(FormatSignedNote(*parsed), IsOkAndHolds(Eq(note)));
}

TEST(SignedNoteTest, GoMalformedNotesAreRejected) {
  const std::string text(kGoText), sig(kPeterSig);
  for (const std::string& bad : {
           text, text + "\n", text + "\n" + sig.substr(0, sig.size() - 1),
           "\x01" + text + "\n" + sig, "\xff" + text + "\n" + sig,
           text + "\n" +
               "\xE2\x80\x94 Bad Name "
               "x08go/ZJkuBS9UG/"
               "SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
           text + "\n" + sig + "Unexpected line.\n",
           text + "\n" +
               "- PeterNeumann "
               "x08go/ZJkuBS9UG/"
               "SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n",
           text + "\n" + "\xE2\x80\x94 PeterNeumann\n",
           text + "\n" + "\xE2\x80\x94 PeterNeumann AAAAAA==\n",  // 4 bytes: no signature
       }) {
    EXPECT_THAT(ParseSignedNote(bad), StatusIs(absl::StatusCode::kInvalidArgument))
        << absl::CEscape(bad);
    EXPECT_THAT(Verifier(kPeterVerifierKey).Open(bad), StatusIs(absl::StatusCode::kInvalidArgument))
        << absl::CEscape(bad);
  }
}

TEST(SignedNoteTest, TooManySignaturesAreRejected) {
  std::string note = S(kGoText) + "\n";
  for (size_t i = 0; i < kMaxNoteSignatures; ++i) note += kEnochSig;
  EXPECT_THAT(Verifier(kEnochVerifierKey).Open(note), IsOk());
  note += kEnochSig;
  EXPECT_THAT(Verifier(kEnochVerifierKey).Open(note), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(SignedNoteTest, ChangedSignatureIsUnauthenticated) {
  const std::string sig(kPeterSig);
  const std::string note = S(kGoText) + "\n" + sig.substr(0, 60) + "ABCD" + sig.substr(60);
  EXPECT_THAT(Verifier(kPeterVerifierKey).Open(note), StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST(SignedNoteTest, NoteWithoutOurKeyIsUnauthenticated) {
  const std::string note = S(kGoText) + "\n" + S(kEnochSig);
  EXPECT_THAT(Verifier(kPeterVerifierKey).Open(note), StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST(SignedNoteTest, SameNameDifferentKeyIsIgnoredThenUnauthenticated) {
  NoteSigner impostor = RandomSigner("PeterNeumann");
  absl::StatusOr<std::string> note = impostor.Sign(kGoText);
  ASSERT_THAT(note, IsOk());
  EXPECT_THAT(Verifier(kPeterVerifierKey).Open(*note),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST(SignedNoteTest, OneBadSignatureByOurKeyRejectsTheNote) {
  const std::string sig(kPeterSig);
  const std::string note = S(kGoText) + "\n" + sig + sig.substr(0, 60) + "ABCD" + sig.substr(60);
  EXPECT_THAT(Verifier(kPeterVerifierKey).Open(note), StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST(SignedNoteTest, SigningRejectsTextsThatCannotBeNotes) {
  NoteSigner signer = PeterSigner();
  EXPECT_THAT(signer.Sign("no newline"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(signer.Sign("bell\a\n"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(signer.Sign(""), StatusIs(absl::StatusCode::kInvalidArgument));
  uint8_t seed[32] = {};
  EXPECT_THAT(NoteSigner::Create("bad name", seed), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(NoteSigner::Create("ok", std::span<const uint8_t>(seed, 31)),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// --- Signed checkpoints ---

class SignedCheckpointTest : public ::testing::Test {
 protected:
  SignedCheckpointTest() : signer_(RandomSigner("fieldsync.example/audit")) {}
  NoteSigner signer_;
};

TEST_F(SignedCheckpointTest, SignedCheckpointOpensWithTheVerifierKeyText) {
  const Checkpoint checkpoint = SampleCheckpoint("fieldsync.example/audit");
  absl::StatusOr<std::string> note = SignCheckpoint(checkpoint, signer_);
  ASSERT_THAT(note, IsOk());
  // The auditor keeps only the verifier key text.
  NoteVerifier verifier = Verifier(signer_.verifier().VerifierKey());

  EXPECT_THAT(OpenCheckpoint(*note, verifier), IsOkAndHolds(Eq(checkpoint)));
}

TEST_F(SignedCheckpointTest, EveryFlippedByteIsRejected) {
  absl::StatusOr<std::string> note =
      SignCheckpoint(SampleCheckpoint("fieldsync.example/audit"), signer_);
  ASSERT_THAT(note, IsOk());
  for (size_t i = 0; i < note->size(); ++i) {
    for (uint8_t mask : {0x01, 0x20, 0x80}) {
      std::string tampered = *note;
      tampered[i] = static_cast<char>(tampered[i] ^ mask);
      EXPECT_THAT(OpenCheckpoint(tampered, signer_.verifier()), IsRejected())
          << "byte " << i << " mask " << int{mask};
    }
  }
}

TEST_F(SignedCheckpointTest, EveryTruncationIsRejected) {
  absl::StatusOr<std::string> note =
      SignCheckpoint(SampleCheckpoint("fieldsync.example/audit"), signer_);
  ASSERT_THAT(note, IsOk());
  for (size_t n = 0; n < note->size(); ++n) {
    EXPECT_THAT(OpenCheckpoint(note->substr(0, n), signer_.verifier()), IsRejected())
        << "length " << n;
  }
}

TEST_F(SignedCheckpointTest, CheckpointFromAnotherKeyIsUnauthenticated) {
  uint8_t other_seed[32];
  std::fill(std::begin(other_seed), std::end(other_seed), 0x42);
  absl::StatusOr<NoteSigner> other = NoteSigner::Create("fieldsync.example/audit", other_seed);
  ASSERT_THAT(other, IsOk());
  ASSERT_NE(other->verifier().public_key(), signer_.verifier().public_key());
  absl::StatusOr<std::string> note =
      SignCheckpoint(SampleCheckpoint("fieldsync.example/audit"), *other);
  ASSERT_THAT(note, IsOk());
  EXPECT_THAT(OpenCheckpoint(*note, signer_.verifier()),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST_F(SignedCheckpointTest, OriginOtherThanTheKeyNameIsRejected) {
  EXPECT_THAT(SignCheckpoint(SampleCheckpoint("other.example/log"), signer_),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // Signed as a plain note under our key, it still does not open as ours.
  absl::StatusOr<std::string> note =
      signer_.Sign(*FormatCheckpoint(SampleCheckpoint("other.example/log")));
  ASSERT_THAT(note, IsOk());
  EXPECT_THAT(OpenCheckpoint(*note, signer_.verifier()),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST_F(SignedCheckpointTest, SignedNonCheckpointTextIsInvalid) {
  absl::StatusOr<std::string> note = signer_.Sign("just a note\n");
  ASSERT_THAT(note, IsOk());
  EXPECT_THAT(OpenCheckpoint(*note, signer_.verifier()),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// --- Real checkpoints: Sigstore Rekor (ECDSA-signed; syntax only) ---

TEST(CheckpointVectorsTest, RekorCheckpointsParseAndMatchTheirProofs) {
  const std::string dir = testing::VectorsDir();
  if (dir.empty()) {
    std::printf("checkpoint_test: vectors folder not found (FIELDSYNC_VECTORS_DIR); skipping\n");
    GTEST_SKIP() << "vectors folder absent";
  }
  std::ifstream in(dir + "/merkle_vectors.json");
  ASSERT_TRUE(in.good()) << dir << "/merkle_vectors.json";
  const nlohmann::json vectors = nlohmann::json::parse(in);
  int checked = 0, timestamps = 0;
  for (const nlohmann::json& p : vectors["external_inclusion_proofs"]) {
    if (p["checkpoint_note"].is_null()) continue;
    const std::string note = p["checkpoint_note"];
    SCOPED_TRACE(note);
    absl::StatusOr<SignedNote> signed_note = ParseSignedNote(note);
    ASSERT_THAT(signed_note, IsOk());
    EXPECT_THAT(FormatSignedNote(*signed_note), IsOkAndHolds(Eq(note)));
    absl::StatusOr<Checkpoint> checkpoint = ParseCheckpoint(signed_note->text);
    ASSERT_THAT(checkpoint, IsOk());
    EXPECT_EQ(checkpoint->size, p["size"].get<uint64_t>());
    EXPECT_EQ(absl::BytesToHexString(
                  absl::string_view(reinterpret_cast<const char*>(checkpoint->root.data()), 32)),
              p["root"].get<std::string>());
    // Some Rekor checkpoints carry "Timestamp: <ns>", some nothing.
    absl::StatusOr<absl::Time> timestamp = CheckpointTimestamp(*checkpoint);
    if (checkpoint->extensions.empty()) {
      EXPECT_THAT(timestamp, StatusIs(absl::StatusCode::kNotFound));
    } else {
      EXPECT_THAT(timestamp, IsOk());
      ++timestamps;
    }
    EXPECT_THAT(FormatCheckpoint(*checkpoint), IsOkAndHolds(Eq(signed_note->text)));
    ++checked;
  }
  std::printf(
      "checkpoint_test: %d Rekor checkpoint notes parsed, re-formatted byte for byte "
      "and matched to their proofs (%d with a timestamp line)\n",
      checked, timestamps);
  EXPECT_EQ(checked, 8);
}

}  // namespace
}  // namespace fieldsync::protocol
