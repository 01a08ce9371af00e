#!/usr/bin/python3
"""A tablet across a batch-sealing key rotation, for the sealing key CLI test
(docs/OPERATIONS.md "Rotating the batch-sealing key"):

  tablet_reseal.py SOURCE_DIR GEN_DIR ADDRESS CA_FILE CODE CASE_ID -- ROTATE...

Enrols with the enrolment CODE (the independent Python device,
tests/interop/fieldsync_device.py, written from docs/PROTOCOL.md), pushes a
new case sealed to the key it enrolled with, runs the command ROTATE...
(the operator's `fieldsync keys rotate-sealing`), pushes a second change
still sealed to that key, then, refused, fetches the keys (GetSealingKeys),
reseals the same batch to the highest key id and pushes it again. Prints
one JSON object with what happened at each step. Python stubs are generated
into GEN_DIR with protoc when absent. Exits 1 when an unexpected call fails.
"""

import json
import os
import subprocess
import sys

SOURCE, GEN, ADDRESS, CA_FILE, CODE, CASE_ID = sys.argv[1:7]
assert sys.argv[7] == "--"
ROTATE = sys.argv[8:]

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import python_stubs  # noqa: E402

python_stubs.use_stubs(SOURCE, GEN)

import grpc  # noqa: E402

import fieldsync_device as fd  # noqa: E402
from fieldsync.v1 import records_pb2, sync_pb2  # noqa: E402


def enum(v):
    return records_pb2.FieldValue(enum_value=v)


out = {}
try:
    device = fd.Device(ADDRESS, open(CA_FILE, "rb").read())
    enrolment = device.enroll(CODE)
    out["enrolled_keys"] = [k.key_id for k in enrolment.sealing_keys]
    registration = {
        "given_name": records_pb2.FieldValue(string_value="Amina"),
        "sex": enum("female"), "age_band": enum("10_14"), "region": enum("northern"),
        "registration_date": records_pb2.FieldValue(
            date_value=records_pb2.Date(year=2026, month=11, day=2)),
    }
    first = device.seal_batch([device.change(CASE_ID, CASE_ID, "case_registration", registration)])
    out["first_key"] = first.header.sealing_key_id
    out["first"] = records_pb2.ChangeOutcome.Name(device.push(first).results[0].outcome)

    rotated = subprocess.run(ROTATE, capture_output=True, text=True)
    out["rotate_status"] = rotated.returncode
    if rotated.returncode != 0:
        print(rotated.stdout + rotated.stderr, file=sys.stderr)

    second = device.seal_batch([device.change(CASE_ID, CASE_ID, "case_registration",
                                              {"sex": enum("male")})])
    out["second_key"] = second.header.sealing_key_id
    try:
        device.push(second)
        out["second"] = "accepted"
    except grpc.RpcError as e:
        detail = fd.error_detail(e)
        out["second"] = e.code().name
        out["second_reason"] = sync_pb2.SyncErrorReason.Name(detail.reason) if detail else ""
        out["second_key_echoed"] = detail.sealing_key_id if detail else 0
        out["second_message"] = e.details()
        keys = device.refresh_sealing_keys()
        out["fetched_keys"] = [k.key_id for k in keys.sealing_keys]
        resealed = device.reseal(second)
        out["resealed_key"] = resealed.header.sealing_key_id
        out["resealed_sequence_kept"] = resealed.header.sequence == second.header.sequence
        out["resealed"] = records_pb2.ChangeOutcome.Name(device.push(resealed).results[0].outcome)
except grpc.RpcError as e:
    print("tablet_reseal: %s: %s" % (e.code().name, e.details()), file=sys.stderr)
    print(json.dumps(out))
    sys.exit(1)
print(json.dumps(out))
