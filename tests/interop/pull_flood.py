#!/usr/bin/python3
"""The pull flood of issue 14, from the independent Python device against a
real fieldsyncd over mutual TLS: one tablet re-pulling from cursor 0 with
max_changes_per_chunk = 1, as fast as it can, for --seconds; then the audit
log's growth, from `fieldsync audit export` + `audit verify --json`.

  pull_flood.py BUILD_DIR SOURCE_DIR [--seconds S] [--bin-dir DIR]
                [--max-access-entries N]

--bin-dir takes fieldsyncd and fieldsync from DIR instead of the build (to
measure another version, as docs/SECURITY.md §10 did). With
--max-access-entries the run fails ("1 failed") when the flood added more
CaseAccess entries, or when the entries do not name the cases read.
Prints one "figures:" line and "N passed, M failed".
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

parser = argparse.ArgumentParser()
parser.add_argument("build")
parser.add_argument("source")
parser.add_argument("--seconds", type=float, default=15)
parser.add_argument("--bin-dir", default="")
parser.add_argument("--cases", type=int, default=30)
parser.add_argument("--max-access-entries", type=int, default=-1)
# Raises the per-principal pull rate (limits.pulls_per_minute, pull_burst)
# to its maximum, so that the access ledger alone bounds the log (the pull
# rate limit has tests of its own). Not for --bin-dir servers older than
# the limits.
parser.add_argument("--unlimited-pulls", action="store_true")
args = parser.parse_args()

sys.path.insert(0, os.path.join(args.source, "tests", "tools"))
import python_stubs  # noqa: E402

python_stubs.use_stubs(args.source, os.path.join(args.build, "tests", "interop", "gen"))

import grpc  # noqa: E402

import fieldsync_device as fd  # noqa: E402
from fieldsync.v1 import admin_pb2, admin_pb2_grpc, audit_pb2, audit_pb2_grpc  # noqa: E402
from fieldsync.v1 import records_pb2  # noqa: E402

FIELDSYNCD = os.path.join(args.bin_dir, "fieldsyncd") if args.bin_dir else os.path.join(
    args.build, "server/fieldsyncd")
FIELDSYNC = os.path.join(args.bin_dir, "fieldsync") if args.bin_dir else os.path.join(
    args.build, "tools/fieldsync")
DOMAIN = b"fieldsync/audit-event/v1\x00"
CASE_ACCESS = 6

passed, failed = 0, 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok   " + name)
    else:
        failed += 1
        print("FAIL " + name + (": " + str(detail) if detail else ""))


def export(data, address, work, name):
    out = os.path.join(work, name + ".export")
    subprocess.run([FIELDSYNC, "audit", "export", "--data-dir", data, "--server", address,
                    "--out", out], check=True, stdout=subprocess.DEVNULL)
    verify = subprocess.run([FIELDSYNC, "audit", "verify", out, "--key",
                             os.path.join(data, "audit-log.pub"), "--json"],
                            stdout=subprocess.PIPE, text=True)
    return json.loads(verify.stdout), os.path.getsize(out)


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def case_access(entry):
    """(principal id, from, to, [case uuid]) of a CaseAccess entry, else None
    (docs/AUDIT.md §1)."""
    if not entry.startswith(DOMAIN) or entry[len(DOMAIN)] != CASE_ACCESS:
        return None
    i = len(DOMAIN) + 1 + 8 + 1
    n = int.from_bytes(entry[i:i + 4], "big")
    principal = entry[i + 4:i + 4 + n].decode()
    i += 4 + n + 1
    first, last = int.from_bytes(entry[i:i + 8], "big"), int.from_bytes(entry[i + 8:i + 16], "big")
    i += 16
    count = int.from_bytes(entry[i:i + 4], "big")
    i += 4
    cases = [str(uuid.UUID(bytes=entry[i + 16 * k:i + 16 * (k + 1)])) for k in range(count)]
    return principal, first, last, cases


def main():
    work = tempfile.mkdtemp(prefix="fieldsync-flood-")
    server = None
    try:
        data = os.path.join(work, "d")
        subprocess.run([FIELDSYNC, "init", "--data-dir", data], check=True,
                       stdout=subprocess.DEVNULL)
        if args.unlimited_pulls:
            with open(os.path.join(data, "fieldsyncd.conf"), "w") as conf:
                conf.write("limits { pulls_per_minute: 60000 pull_burst: 1000 }\n")
        server = subprocess.Popen([FIELDSYNCD, "--data-dir", data, "--listen", "127.0.0.1:0"],
                                  stdout=subprocess.PIPE,
                                  stderr=open(os.path.join(work, "server.log"), "w"), text=True)
        line = server.stdout.readline()
        check("fieldsyncd starts", "serving deployment" in line, line)
        address = line.strip().rsplit(" ", 1)[-1]
        ca = open(os.path.join(data, "tls/ca.crt"), "rb").read()
        admin_creds = grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=open(os.path.join(data, "admin/admin.key"), "rb").read(),
            certificate_chain=open(os.path.join(data, "admin/admin.crt"), "rb").read())
        admin_channel = grpc.secure_channel(address, admin_creds)
        admin = admin_pb2_grpc.AdminServiceStub(admin_channel)
        admin.AddOfficer(admin_pb2.AddOfficerRequest(id="officer1", region="northern"),
                         timeout=20)
        code = admin.CreateEnrolmentCode(admin_pb2.CreateEnrolmentCodeRequest(
            officer_id="officer1", region="northern"), timeout=20).code
        tablet = fd.Device(address, ca)
        tablet.enroll(code)
        case_ids = [str(uuid.uuid4()) for _ in range(args.cases)]
        fields = {"given_name": records_pb2.FieldValue(string_value="Amina"),
                  "sex": records_pb2.FieldValue(enum_value="female"),
                  "age_band": records_pb2.FieldValue(enum_value="10_14"),
                  "region": records_pb2.FieldValue(enum_value="northern"),
                  "registration_date": records_pb2.FieldValue(
                      date_value=records_pb2.Date(year=2026, month=11, day=2))}
        tablet.push(tablet.seal_batch([tablet.change(c, c, "case_registration", fields)
                                       for c in case_ids]))
        before, before_bytes = export(data, address, work, "before")
        db_before = dir_bytes(os.path.join(data, "db"))

        pulls = chunks = 0
        start = time.monotonic()
        while time.monotonic() - start < args.seconds:
            got = tablet.pull(0, per_chunk=1)
            pulls += 1
            chunks += len(got)
        elapsed = time.monotonic() - start

        after, after_bytes = export(data, address, work, "after")
        db_after = dir_bytes(os.path.join(data, "db"))
        check("audit export verifies", after.get("ok"), after)
        kinds_before = before.get("events_by_kind", {})
        kinds_after = after.get("events_by_kind", {})
        added = kinds_after.get("case-access", 0) - kinds_before.get("case-access", 0)
        print("figures: %.1f s, %d pulls, %d chunks, %d case-access entries added "
              "(%.1f/s), export +%d bytes, db +%d bytes" % (
                  elapsed, pulls, chunks, added, added / elapsed, after_bytes - before_bytes,
                  db_after - db_before))
        # What the tablet read, from the log itself (AuditService.GetEntries).
        audit = audit_pb2_grpc.AuditServiceStub(admin_channel)
        head = audit.GetSignedTreeHead(audit_pb2.GetSignedTreeHeadRequest(), timeout=20)
        read = set()
        for chunk in audit.GetEntries(audit_pb2.GetEntriesRequest(end=head.tree_size),
                                      timeout=60):
            for e in chunk.entries:
                a = case_access(e)
                if a is not None and a[0] == tablet.device_id:
                    read.update(a[3])
        check("the log names every case the tablet read", read == set(case_ids),
              (len(read), len(case_ids)))
        if args.max_access_entries >= 0:
            check("the flood added at most %d access entries" % args.max_access_entries,
                  0 < added <= args.max_access_entries, added)
    except Exception as e:  # noqa: BLE001 - report, count, and still print the summary
        check("no unexpected exception", False, repr(e))
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
