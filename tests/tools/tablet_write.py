#!/usr/bin/python3
"""One field written by a tablet that comes back from the field, for the
supervisor's CLI test: a conflict that changes after the supervisor looked.

  tablet_write.py SOURCE_DIR GEN_DIR ADDRESS CA_FILE CODE CASE_ID RECORD_ID \
      RECORD_TYPE FIELD VALUE_JSON

Enrols a new tablet with the enrolment CODE (the independent Python device,
tests/interop/fieldsync_device.py, written from docs/PROTOCOL.md), pushes
one UPSERT of FIELD = VALUE_JSON (a FieldValue in protobuf JSON) with base
version 0 (the tablet saw no version of the field, as after a long time
offline), and prints the change's result as one JSON object: outcome,
log_position, reject_reason, detail. Python stubs are generated into
GEN_DIR with protoc when absent. Exits 1 when a call fails.
"""

import json
import os
import sys

(SOURCE, GEN, ADDRESS, CA_FILE, CODE, CASE_ID, RECORD_ID, RECORD_TYPE, FIELD,
 VALUE_JSON) = sys.argv[1:11]

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import python_stubs  # noqa: E402

python_stubs.use_stubs(SOURCE, GEN)

import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402

import fieldsync_device as fd  # noqa: E402
from fieldsync.v1 import records_pb2  # noqa: E402

try:
    device = fd.Device(ADDRESS, open(CA_FILE, "rb").read())
    device.enroll(CODE)
    value = json_format.Parse(VALUE_JSON, records_pb2.FieldValue())
    change = device.change(CASE_ID, RECORD_ID, RECORD_TYPE, {FIELD: value})
    response = device.push(device.seal_batch([change]))
except grpc.RpcError as e:
    print("tablet_write: %s: %s" % (e.code().name, e.details()), file=sys.stderr)
    sys.exit(1)
result = response.results[0]
print(json.dumps({
    "outcome": records_pb2.ChangeOutcome.Name(result.outcome),
    "log_position": result.log_position,
    "reject_reason": records_pb2.RejectReason.Name(result.reject_reason),
    "detail": result.detail,
}))
