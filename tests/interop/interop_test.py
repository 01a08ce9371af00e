#!/usr/bin/python3
"""Interop test: the independent Python device (fieldsync_device.py) against
the real fieldsyncd over mutual TLS.

  interop_test.py BUILD_DIR SOURCE_DIR

Generates the Python stubs into BUILD_DIR/tests/interop/gen with protoc and
/usr/bin/grpc_python_plugin, makes a deployment with `fieldsync init`, starts
`fieldsyncd --listen 127.0.0.1:0`, then: checks its HPKE against RFC 9180,
enrols two devices, pushes edits that conflict, retries a batch, reads the
outcomes and error reasons, pulls, interrupts a pull and resumes it. Every
push receipt is verified by the device's own RFC 9162 / C2SP code
(audit_receipt.py, itself checked against the shared Merkle vectors) with
the key in DIR/audit-log.pub, and tampered receipts must be rejected.
Ends with "N passed, M failed".
"""

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
import uuid

BUILD, SOURCE = sys.argv[1], sys.argv[2]
GEN = os.path.join(BUILD, "tests", "interop", "gen")

os.makedirs(GEN, exist_ok=True)
protos = sorted(os.path.join("fieldsync/v1", p)
                for p in os.listdir(os.path.join(SOURCE, "proto/fieldsync/v1"))
                if p.endswith(".proto"))
subprocess.run(["protoc", "-I", os.path.join(SOURCE, "proto"), "-I", "/usr/include",
                "--python_out", GEN, "--grpc_python_out", GEN,
                "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin"] + protos,
               check=True)
for d in ("fieldsync", "fieldsync/v1"):
    open(os.path.join(GEN, d, "__init__.py"), "a").close()
sys.path.insert(0, GEN)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import grpc  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, x25519  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

import audit_receipt as ar  # noqa: E402
import fieldsync_device as fd  # noqa: E402
from fieldsync.v1 import admin_pb2, admin_pb2_grpc, records_pb2, sync_pb2  # noqa: E402
from fieldsync.v1 import audit_pb2, audit_pb2_grpc, sync_pb2_grpc  # noqa: E402

passed, failed = 0, 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok   " + name)
    else:
        failed += 1
        print("FAIL " + name + (": " + str(detail) if detail else ""))


def hpke_matches_rfc9180():
    vectors = os.environ.get("FIELDSYNC_VECTORS_DIR") or os.path.join(SOURCE, "../shared/vectors")
    path = os.path.join(vectors, "hpke", "hpke_rfc9180_x25519_sha256_aes256gcm_base.json")
    if not os.path.exists(path):
        print("skip HPKE vector check: %s is absent" % path)
        return
    v = json.load(open(path))[0]
    sk_e = x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(v["skEm"]))
    e = v["encryptions"][0]
    enc, ct = fd.hpke_seal(bytes.fromhex(v["pkRm"]), bytes.fromhex(v["info"]),
                           bytes.fromhex(e["aad"]), bytes.fromhex(e["pt"]), ephemeral=sk_e)
    check("python HPKE seal matches RFC 9180 A.x (1 vector)",
          enc.hex() == v["enc"] and ct.hex() == e["ct"])
    sk_r = x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(v["skRm"]))
    check("python HPKE open matches RFC 9180",
          fd.hpke_open(sk_r, enc, bytes.fromhex(v["info"]), bytes.fromhex(e["aad"]), ct).hex()
          == e["pt"])


def merkle_matches_vectors():
    """The Python RFC 9162 verifiers against merkle_vectors.json: every
    tree proof accepted, every probe as expected (policy-dependent probes
    reported, not counted), every Rekor proof accepted."""
    vectors = os.environ.get("FIELDSYNC_VECTORS_DIR") or os.path.join(SOURCE, "../shared/vectors")
    path = os.path.join(vectors, "merkle_vectors.json")
    if not os.path.exists(path):
        print("skip Merkle vector check: %s is absent" % path)
        return
    v = json.load(open(path))
    h = bytes.fromhex
    bad, n = [], 0

    def outcome(fn):
        try:
            fn()
            return True
        except ar.ReceiptError:
            return False

    for tree in v["trees"]:
        leaves = [h(x) for x in tree["leaves"]]
        roots = {r["size"]: h(r["root"]) for r in tree["roots"]}
        for p in tree["inclusion_proofs"]:
            n += 1
            leaf = h(p["leaf_hash"]) if "leaf_hash" in p else ar.leaf_hash(leaves[p["index"]])
            root = h(p["root"]) if "root" in p else roots[p["size"]]
            if not outcome(lambda: ar.verify_inclusion(p["index"], p["size"], leaf,
                                                       [h(x) for x in p["path"]], root)):
                bad.append(("inclusion", tree["name"], p["index"], p["size"]))
        for p in tree["consistency_proofs"]:
            n += 1
            r1 = h(p["root1"]) if "root1" in p else roots[p["size1"]]
            r2 = h(p["root2"]) if "root2" in p else roots[p["size2"]]
            if not outcome(lambda: ar.verify_consistency(p["size1"], p["size2"],
                                                         [h(x) for x in p["path"]], r1, r2)):
                bad.append(("consistency", tree["name"], p["size1"], p["size2"]))
    policy = 0
    for p in v["inclusion_probes"] + v["consistency_probes"]:
        if "index" in p:
            got = outcome(lambda: ar.verify_inclusion(p["index"], p["size"], h(p["leaf_hash"]),
                                                      [h(x) for x in p["path"]], h(p["root"])))
        else:
            got = outcome(lambda: ar.verify_consistency(p["size1"], p["size2"],
                                                        [h(x) for x in p["path"]],
                                                        h(p["root1"]), h(p["root2"])))
        if p["policy_dependent"]:
            policy += 1
            continue
        n += 1
        if got != p["expect_valid"]:
            bad.append(("probe", p["desc"]))
    for p in v["external_inclusion_proofs"]:
        n += 1
        if not outcome(lambda: ar.verify_inclusion(p["index"], p["size"],
                                                   ar.leaf_hash(h(p["leaf"])),
                                                   [h(x) for x in p["path"]], h(p["root"]))):
            bad.append(("rekor", p["desc"]))
    check("python RFC 9162 verifiers match merkle_vectors.json (%d vectors; %d "
          "policy-dependent probes not counted)" % (n, policy), not bad, bad[:5])


# PROTOCOL.md §9, the worked example: fixed keys, so the bytes are exact.
EXAMPLE = {
    "payload": "0aa9010a2463303030303030302d303030302d343030302d383030302d303030303030303030303031122463613030303030302d303030302d343030302d383030302d3030303030303030303030311a2463613030303030302d303030302d343030302d383030302d3030303030303030303030312211636173655f726567697374726174696f6e2a090880c097d1edff960330013a150a0a676976656e5f6e616d6512070a05416d696e61",
    "header": "6669656c6473796e632f62617463682d6865616465722f76310011111111222243338444555555555555aaaaaaaabbbb4ccc8dddeeeeeeeeeeee000000000000000100000001",
    "enc": "5869aff450549732cbaaed5e5df9b30a6da31cb0e5742bad5ad4a1a768f1a67b",
    "ciphertext": "71afeefdd5f1f6390fad127d75c7260b248d3ed712390f633671b2f6a76c52fad591d9e5e7d0a87f73cadd6221910cc97f103da25ec37f7c9d1339acfc6702950e81df3348f856f7b55563742e53ac7bbbd9b4e251cf5d55eb9ab65d69e518e75eb54e3be5fe28db83027a92591880400d0473cee5df9d3aebbbdb99bc72d49f5cd94335755114c9afa4c192ebba9409362bb7c7b96a398b85bac0e10f83b1c8895c5a786e594f979c3c2b96a2fc8bb8f6ed0ea04d3927296a410ac3",
    "signed": "6669656c6473796e632f62617463682d7369676e61747572652f7631006669656c6473796e632f62617463682d6865616465722f76310011111111222243338444555555555555aaaaaaaabbbb4ccc8dddeeeeeeeeeeee00000000000000010000000100d1f362257a2de4519a1cb10467205fb99969124fb75fe3b7959a7e3ecad8aad0",
    "signature": "27132cd3e151999337c29bcb7f08e4a34fa301189f45e53b104d7aec7fe322db12559115edf83adcb39e31d1c7f8e495417c69e398fe786ce56c070cb95c8500",
    "pull_aad": "6669656c6473796e632f70756c6c2d6368756e6b2f763100111111112222433384445555555555550000000000000000000000000000000701",
}


def worked_example_matches():
    from cryptography.hazmat.primitives.asymmetric import ed25519
    server = x25519.X25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    ephemeral = x25519.X25519PrivateKey.from_private_bytes(bytes(range(33, 65)))
    device = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x42" * 32)
    header = sync_pb2.BatchHeader(device_id="11111111-2222-4333-8444-555555555555",
                                  batch_id="aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
                                  sequence=1, sealing_key_id=1)
    payload = records_pb2.BatchPayload(changes=[records_pb2.RecordChange(
        change_id="c0000000-0000-4000-8000-000000000001",
        case_id="ca000000-0000-4000-8000-000000000001",
        record_id="ca000000-0000-4000-8000-000000000001", record_type="case_registration",
        hlc=records_pb2.Hlc(wall_micros=1790000000000000), kind=records_pb2.CHANGE_KIND_UPSERT,
        fields=[records_pb2.FieldWrite(field="given_name", value=text("Amina"))])])
    plain = payload.SerializeToString()
    aad = fd.batch_header_encoding(header)
    enc, ct = fd.hpke_seal(fd._x25519_raw_public(server), fd.BATCH_SEAL_INFO, aad, plain,
                           ephemeral=ephemeral)
    signed = fd.batch_signed_message(header, 0, enc, ct)
    got = {"payload": plain, "header": aad, "enc": enc, "ciphertext": ct, "signed": signed,
           "signature": device.sign(signed),
           "pull_aad": fd.pull_chunk_header("11111111-2222-4333-8444-555555555555", 0, 7, True)}
    bad = [k for k, v in got.items() if v.hex() != EXAMPLE[k]]
    check("worked example of PROTOCOL.md reproduced byte for byte (7 strings)", not bad, bad)


def enum(s):
    return records_pb2.FieldValue(enum_value=s)


def text(s):
    return records_pb2.FieldValue(string_value=s)


def new_case_fields():
    return {"given_name": text("Amina"), "sex": enum("female"), "age_band": enum("10_14"),
            "region": enum("northern"),
            "registration_date": records_pb2.FieldValue(
                date_value=records_pb2.Date(year=2026, month=11, day=2))}


def flip(b, i=0):
    return b[:i] + bytes([b[i] ^ 1]) + b[i + 1:]


def rejected(verifier, receipt, entry):
    try:
        verifier.verify(receipt, entry)
        return False
    except ar.ReceiptError:
        return True


def tampered_receipts_rejected(key_text, other_key_text, response):
    """Each alteration of a good receipt is rejected by a fresh verifier."""
    good = response.audit_receipt
    entry = good.entry
    verifier = ar.ReceiptVerifier(key_text)
    check("tamper baseline: the untouched receipt verifies", not rejected(verifier, good, entry))
    cases = []

    def variant(name, mutate, entry_bytes=entry):
        r = audit_pb2.AuditReceipt()
        r.CopyFrom(good)
        mutate(r)
        cases.append((name, r, entry_bytes))

    def flip_proof(r):
        r.inclusion_proof[0] = flip(r.inclusion_proof[0], 7)

    def flip_note_root(r):
        lines = r.head.note.split("\n")
        root = base64.b64decode(lines[2])
        lines[2] = base64.b64encode(flip(root, 3)).decode()
        r.head.note = "\n".join(lines)

    def flip_root_field(r):
        r.head.root_hash = flip(r.head.root_hash, 0)

    def flip_signature(r):
        text, sig = r.head.note.rsplit("\n\n", 1)
        name, b64 = sig.rstrip("\n").rsplit(" ", 1)
        r.head.note = text + "\n\n" + name + " " + base64.b64encode(
            flip(base64.b64decode(b64), 40)).decode() + "\n"

    def next_index(r):
        r.leaf_index += 1

    def drop_proof_hash(r):
        del r.inclusion_proof[-1]

    def extra_proof_hash(r):
        r.inclusion_proof.append(b"\x00" * 32)

    def flip_entry(r):
        r.entry = flip(r.entry, len(r.entry) - 1)

    if good.inclusion_proof:
        variant("a flipped byte in the inclusion proof", flip_proof)
        variant("a proof hash dropped", drop_proof_hash)
    variant("a proof hash added", extra_proof_hash)
    variant("a flipped byte in the signed root", flip_note_root)
    variant("a root field that disagrees with the note", flip_root_field)
    variant("a flipped byte in the note signature", flip_signature)
    variant("another leaf index", next_index)
    variant("an entry that is not the device's", flip_entry, flip(entry, len(entry) - 1))
    for name, r, e in cases:
        check("tampered receipt rejected: " + name, rejected(ar.ReceiptVerifier(key_text), r, e))
    check("receipt rejected under another deployment's key",
          rejected(ar.ReceiptVerifier(other_key_text), good, entry))
    shrink = ar.ReceiptVerifier(key_text)
    shrink.accept(ar.Checkpoint(shrink.name, good.head.tree_size + 1, b"\x00" * 32, []))
    check("receipt rejected when a larger head was seen before (the tree shrank)",
          rejected(shrink, good, entry))


def other_verifier_key():
    """A well-formed verifier key of a log that is not this deployment's."""
    from cryptography.hazmat.primitives.asymmetric import ed25519
    pub = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    name = "fieldsync/other"
    return "%s+%08x+%s" % (name, ar.key_id(name, pub),
                           base64.b64encode(b"\x01" + pub).decode())


def export_and_verify(data, address, work, name):
    """`fieldsync audit export` then `fieldsync audit verify --json` with the
    deployment's audit-log.pub: the verify report (a dict)."""
    tool = os.path.join(BUILD, "tools/fieldsync")
    out = os.path.join(work, name + ".export")
    subprocess.run([tool, "audit", "export", "--data-dir", data, "--server", address,
                    "--out", out], check=True, stdout=subprocess.DEVNULL)
    verify = subprocess.run([tool, "audit", "verify", out, "--key",
                             os.path.join(data, "audit-log.pub"), "--json"],
                            stdout=subprocess.PIPE, text=True)
    return json.loads(verify.stdout)


def main():
    hpke_matches_rfc9180()
    merkle_matches_vectors()
    worked_example_matches()
    work = tempfile.mkdtemp(prefix="fieldsync-interop-")
    server = None
    try:
        data = os.path.join(work, "d")
        subprocess.run([os.path.join(BUILD, "tools/fieldsync"), "init", "--data-dir", data],
                       check=True, stdout=subprocess.DEVNULL)
        server = subprocess.Popen([os.path.join(BUILD, "server/fieldsyncd"), "--data-dir", data,
                                   "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                                  stderr=open(os.path.join(work, "server.log"), "w"), text=True)
        line = server.stdout.readline()
        check("fieldsyncd starts", "serving deployment" in line, line)
        address = line.strip().rsplit(" ", 1)[-1]
        ca = open(os.path.join(data, "tls/ca.crt"), "rb").read()
        admin_creds = grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=open(os.path.join(data, "admin/admin.key"), "rb").read(),
            certificate_chain=open(os.path.join(data, "admin/admin.crt"), "rb").read())
        admin_channel = grpc.secure_channel(address, admin_creds)
        admin = admin_pb2_grpc.AdminServiceStub(admin_channel)
        # The auditor's copy of the log key, as `fieldsync init` wrote it.
        key_text = open(os.path.join(data, "audit-log.pub")).read()
        receipts_a = ar.ReceiptVerifier(key_text)
        receipts_b = ar.ReceiptVerifier(key_text)
        heads = []  # every verified receipt head, in push order

        # --- a fresh deployment's log: init's first administrator ---
        report = export_and_verify(data, address, work, "fresh")
        check("fresh deployment: audit export + verify shows init's administrator (1 entry, "
              "staff-added)", report.get("ok") and report.get("entries") == 1 and
              report.get("events_by_kind") == {"staff-added": 1}, report)

        def verify_push(device, verifier, sealed, response, what):
            try:
                cp, differing = device.verify_receipt(verifier, sealed, response)
            except ar.ReceiptError as e:
                check("receipt of %s verifies" % what, False, e)
                return
            heads.append(cp)
            check("receipt of %s verifies (leaf %d in a tree of %d, %s)" % (
                what, response.audit_receipt.leaf_index, cp.size,
                "entry recomputed by the device" if not differing else "entry from the receipt"),
                True)
            check("receipt entry of %s is byte for byte the device's" % what, not differing,
                  differing)

        # Codes are issued for a registered officer (AdminService.AddOfficer).
        admin.AddOfficer(admin_pb2.AddOfficerRequest(id="officer1", region="northern"),
                         timeout=20)

        def code():
            return admin.CreateEnrolmentCode(admin_pb2.CreateEnrolmentCodeRequest(
                officer_id="officer1", region="northern"), timeout=20).code

        # --- enrolment ---
        a, b = fd.Device(address, ca), fd.Device(address, ca)
        code_a = code()
        ra = a.enroll(code_a)
        check("enrol device A", uuid.UUID(ra.device_id) is not None and
              len(ra.sealing_keys[0].public_key) == 32 and len(ra.audit_public_key) == 32)
        check("enrolment's audit key and origin are those of audit-log.pub",
              (ra.audit_origin, ra.audit_public_key) == (receipts_a.name, receipts_a.public_key))
        b.enroll(code())
        check("enrol device B", b.device_id != a.device_id)
        try:
            fd.Device(address, ca).enroll(code_a)
            check("reused code refused", False, "accepted")
        except grpc.RpcError as e:
            d = fd.error_detail(e)
            check("reused code refused with ENROLMENT_CODE_INVALID",
                  e.code() == grpc.StatusCode.INVALID_ARGUMENT and d is not None and
                  d.reason == sync_pb2.SYNC_ERROR_REASON_ENROLMENT_CODE_INVALID, e)

        # --- push: a new case, then concurrent edits of one field ---
        case_id = str(uuid.uuid4())
        first = a.seal_batch([a.change(case_id, case_id, "case_registration",
                                       new_case_fields())])
        r = a.push(first)
        check("A's new case applied", r.results[0].outcome == records_pb2.CHANGE_OUTCOME_APPLIED,
              r)
        verify_push(a, receipts_a, first, r, "A's first batch")
        tampered_receipts_rejected(key_text, other_verifier_key(), r)
        chunks = b.pull(0)
        check("B pulls A's case", any(c.case_id == case_id for ch in chunks for c in ch.changes))
        edit_a = a.seal_batch([a.change(case_id, case_id, "case_registration",
                                        {"given_name": text("Aminata")})])
        edit_b = b.seal_batch([b.change(case_id, case_id, "case_registration",
                                        {"given_name": text("Amina K.")})])
        ra2 = a.push(edit_a)
        rb2 = b.push(edit_b)
        check("A's edit applied", ra2.results[0].outcome == records_pb2.CHANGE_OUTCOME_APPLIED)
        check("B's concurrent edit conflicts (later HLC wins)",
              rb2.results[0].outcome == records_pb2.CHANGE_OUTCOME_CONFLICT, rb2.results[0])
        verify_push(a, receipts_a, edit_a, ra2, "A's edit")
        verify_push(b, receipts_b, edit_b, rb2, "B's conflicting edit")

        # --- retry: the same batch again gets the stored answer ---
        again = b.push(edit_b)
        check("retried batch gets the stored answer",
              again.is_retry_answer and list(again.results) == list(rb2.results))
        verify_push(b, receipts_b, edit_b, again, "B's retried batch")

        # --- errors with machine-readable reasons ---
        try:
            a.push(a.seal_batch([a.change(case_id, case_id, "case_registration",
                                          {"given_name": text("x")})], sequence=9))
            check("sequence gap refused", False, "accepted")
        except grpc.RpcError as e:
            d = fd.error_detail(e)
            check("sequence gap: OUT_OF_RANGE, resend from expected_sequence",
                  e.code() == grpc.StatusCode.OUT_OF_RANGE and d is not None and
                  d.reason == sync_pb2.SYNC_ERROR_REASON_SEQUENCE_GAP and
                  d.expected_sequence == a.next_sequence, e)
        bad = a.seal_batch([a.change(case_id, case_id, "case_registration",
                                     {"given_name": text("y")})])
        a.next_sequence -= 1  # never accepted: reuse the number
        bad.signature = bytes([bad.signature[0] ^ 1]) + bad.signature[1:]
        try:
            a.push(bad)
            check("bad signature refused", False, "accepted")
        except grpc.RpcError as e:
            d = fd.error_detail(e)
            check("bad signature: UNAUTHENTICATED BAD_SIGNATURE",
                  e.code() == grpc.StatusCode.UNAUTHENTICATED and d is not None and
                  d.reason == sync_pb2.SYNC_ERROR_REASON_BAD_SIGNATURE, e)
        unknown = a.change(case_id, case_id, "no_such_type", {"x": text("y")})
        r = a.push(a.seal_batch([unknown]))
        check("unknown record type rejected per change",
              r.results[0].outcome == records_pb2.CHANGE_OUTCOME_REJECTED and
              r.results[0].reject_reason == records_pb2.REJECT_REASON_UNKNOWN_RECORD_TYPE)
        try:
            a.push(a.seal_empty_batch(a.next_sequence))
            check("empty batch refused", False, "accepted")
        except grpc.RpcError as e:
            d = fd.error_detail(e)
            check("empty batch: INVALID_ARGUMENT MALFORMED, its sequence still the next",
                  e.code() == grpc.StatusCode.INVALID_ARGUMENT and d is not None and
                  d.reason == sync_pb2.SYNC_ERROR_REASON_MALFORMED and
                  d.expected_sequence == a.next_sequence, e)
        spoofed = a.change(case_id, case_id, "case_registration",
                           {"given_name": text("Amina\u202eanimA")})
        r = a.push(a.seal_batch([spoofed]))
        check("a right-to-left override in a name is REJECTED (TEXT_NOT_ALLOWED)",
              r.results[0].outcome == records_pb2.CHANGE_OUTCOME_REJECTED and
              r.results[0].reject_reason == records_pb2.REJECT_REASON_TEXT_NOT_ALLOWED and
              "U+202E" in r.results[0].detail and "animA" not in r.results[0].detail,
              r.results[0])

        # --- the case's region is the server's: a device creates cases only in
        # its own region and never moves one ---
        elsewhere_id = str(uuid.uuid4())
        elsewhere_fields = new_case_fields()
        elsewhere_fields["region"] = enum("eastern")
        moved = a.change(case_id, case_id, "case_registration", {"region": enum("western")})
        r = a.push(a.seal_batch([a.change(elsewhere_id, elsewhere_id, "case_registration",
                                          elsewhere_fields), moved]))
        check("a new case outside the device's region is REJECTED (REGION_NOT_DEVICE_REGION)",
              r.results[0].outcome == records_pb2.CHANGE_OUTCOME_REJECTED and
              r.results[0].reject_reason == records_pb2.REJECT_REASON_REGION_NOT_DEVICE_REGION,
              r.results[0])
        check("a device's region change is REJECTED (FIELD_NOT_WRITABLE)",
              r.results[1].outcome == records_pb2.CHANGE_OUTCOME_REJECTED and
              r.results[1].reject_reason == records_pb2.REJECT_REASON_FIELD_NOT_WRITABLE,
              r.results[1])

        # --- more cases, then an interrupted pull resumed from its cursor ---
        more = [a.change(c, c, "case_registration", new_case_fields())
                for c in (str(uuid.uuid4()) for _ in range(4))]
        more_batch = a.seal_batch(more)
        verify_push(a, receipts_a, more_batch, a.push(more_batch), "A's four new cases")
        check("receipt tree sizes never shrink",
              all(x.size <= y.size for x, y in zip(heads, heads[1:])), [h.size for h in heads])

        # --- consistency between the first and the last receipt head ---
        try:
            audit_pb2_grpc.AuditServiceStub(a.channel).GetConsistencyProof(
                audit_pb2.GetConsistencyProofRequest(first_size=heads[0].size,
                                                     second_size=heads[-1].size), timeout=20)
            device_proofs = a.channel
        except grpc.RpcError as e:
            check("AuditService refuses a device (PERMISSION_DENIED): device skips consistency",
                  e.code() == grpc.StatusCode.PERMISSION_DENIED, e)
            device_proofs = None
        # The administrator (an audit reader) fetches it; the Python code checks it.
        channel = device_proofs or admin_channel
        proof = audit_pb2_grpc.AuditServiceStub(channel).GetConsistencyProof(
            audit_pb2.GetConsistencyProofRequest(first_size=heads[0].size,
                                                 second_size=heads[-1].size), timeout=20)
        try:
            ar.verify_consistency(heads[0].size, heads[-1].size, list(proof.hashes),
                                  heads[0].root, heads[-1].root)
            check("first and last receipt heads are consistent (%d -> %d, %d hashes)" % (
                heads[0].size, heads[-1].size, len(proof.hashes)), True)
        except ar.ReceiptError as e:
            check("first and last receipt heads are consistent", False, e)
        if proof.hashes:
            bad_proof = [flip(proof.hashes[0], 5)] + list(proof.hashes[1:])
            try:
                ar.verify_consistency(heads[0].size, heads[-1].size, bad_proof,
                                      heads[0].root, heads[-1].root)
                check("tampered consistency proof rejected", False, "accepted")
            except ar.ReceiptError:
                check("tampered consistency proof rejected", True)
        full = [c.change_id for ch in b.pull(0) for c in ch.changes]
        part = b.pull(0, max_chunks=2, per_chunk=1)
        resumed = b.pull(part[-1].next_cursor, per_chunk=1)
        got = [c.change_id for ch in part + resumed for c in ch.changes]
        check("interrupted pull resumes without gaps or duplicates", got == full,
              (len(got), len(full)))
        check("resumed pull ends caught up", resumed[-1].caught_up)
        outcomes = {c.change_id: c.outcome for ch in b.pull(0) for c in ch.changes}
        check("pulled outcomes include the conflict",
              records_pb2.CHANGE_OUTCOME_CONFLICT in outcomes.values())
        check("pulled changes carry the field values",
              any(f.value.string_value == "Amina K." for ch in b.pull(0) for c in ch.changes
                  for f in c.fields))

        # --- the whole log, exported and verified offline ---
        report = export_and_verify(data, address, work, "full")
        check("audit export + verify of the full log", report.get("ok") and
              report.get("events_by_kind", {}).get("batch-accepted", 0) >= 4, report)
        check("every pull that carried cases is in the log as a case access",
              report.get("events_by_kind", {}).get("case-access", 0) >= 2, report)

        # --- the audit signing key rotated: a device enrolled under the first
        # key follows the transition its receipt carries (docs/AUDIT.md §9) ---
        rotated = admin.RotateAuditKey(admin_pb2.RotateAuditKeyRequest(), timeout=20)
        new_name, new_kid, new_key = ar.parse_verifier_key(rotated.verifier_key)
        check("RotateAuditKey: version 1 -> 2, the new key in DATA_DIR/audit-log.v2.pub",
              (rotated.old_version, rotated.new_version) == (1, 2) and
              open(os.path.join(data, "audit-log.v2.pub")).read().strip() ==
              rotated.verifier_key, rotated)
        after = a.seal_batch([a.change(case_id, case_id, "case_registration",
                                       {"given_name": text("Amina R.")})])
        r_after = a.push(after)
        check("the receipt after the rotation carries the key transition",
              len(r_after.audit_receipt.key_transitions) == 1)
        verify_push(a, receipts_a, after, r_after, "A's batch after the audit key rotation")
        check("the device now holds the announced key",
              (receipts_a.key_id, receipts_a.public_key) == (new_kid, new_key))
        forged = audit_pb2.AuditReceipt()
        forged.CopyFrom(r_after.audit_receipt)
        del forged.key_transitions[:]
        check("a receipt of the new key without its transition is rejected",
              rejected(ar.ReceiptVerifier(key_text), forged, r_after.audit_receipt.entry))
        forged.CopyFrom(r_after.audit_receipt)
        t = forged.key_transitions[0]
        t.entry = t.entry[:-1] + bytes([t.entry[-1] ^ 1])
        check("a receipt whose transition entry was altered is rejected",
              rejected(ar.ReceiptVerifier(key_text), forged, r_after.audit_receipt.entry))
        report = export_and_verify(data, address, work, "rotated")
        check("audit export + verify across the audit key rotation (first key)",
              report.get("ok") and len(report.get("key_transitions", [])) == 1 and
              report.get("key_in_force") == rotated.verifier_key, report)

        # --- revocation stops a device at once ---
        admin.RevokePrincipal(admin_pb2.RevokePrincipalRequest(
            kind=admin_pb2.PRINCIPAL_KIND_DEVICE, id=b.device_id), timeout=20)
        try:
            b.pull(0)
            check("revoked device refused", False, "accepted")
        except grpc.RpcError as e:
            d = fd.error_detail(e)
            check("revoked device: UNAUTHENTICATED DEVICE_REVOKED",
                  e.code() == grpc.StatusCode.UNAUTHENTICATED and d is not None and
                  d.reason == sync_pb2.SYNC_ERROR_REASON_DEVICE_REVOKED, e)
    except Exception:  # noqa: BLE001 - report, count, and still print the summary
        traceback.print_exc()
        check("no unexpected exception", False)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
