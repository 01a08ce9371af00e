#!/usr/bin/python3
"""Callers without a certificate flooding Enroll, for the limits test.

  enroll_flood.py SOURCE_DIR GEN_DIR ADDRESS CA_FILE CALLS BYTES [CODE]

Sends CALLS concurrent Enroll calls over TLS without a client certificate,
each carrying an enrolment code and a CSR field of BYTES bytes (CODE, else
a wrong code), spread over 16 connections, and prints one JSON object:
the count of answers per status code, and the reasons (SyncErrorDetail
reason and retry_after_millis) of the RESOURCE_EXHAUSTED ones. Never
exits 1 for refused calls: the caller judges the counts.
"""

import collections
import concurrent.futures
import json
import os
import sys

SOURCE, GEN, ADDRESS, CA_FILE, CALLS, BYTES = sys.argv[1:7]
CODE = sys.argv[7] if len(sys.argv) > 7 else "WRONG-CODE-0000"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import python_stubs  # noqa: E402

python_stubs.use_stubs(SOURCE, GEN)

import grpc  # noqa: E402

import fieldsync_device as fd  # noqa: E402
from fieldsync.v1 import sync_pb2, sync_pb2_grpc  # noqa: E402


def reason_of(error):
    """The SyncErrorDetail reason name and retry-after of a refused call."""
    detail = fd.error_detail(error)
    if detail is None:
        return None, 0
    return sync_pb2.SyncErrorReason.Name(detail.reason), detail.retry_after_millis


ca = open(CA_FILE, "rb").read()
channels = []
for i in range(16):
    # A distinct option per channel: each gets its own connection.
    channels.append(grpc.secure_channel(ADDRESS, grpc.ssl_channel_credentials(ca),
                                        options=[("fieldsync.flood", i)]))
request = sync_pb2.EnrollRequest(enrolment_code=CODE, csr_pem="x" * int(BYTES),
                                 device_label="flood")


def call(i):
    stub = sync_pb2_grpc.SyncServiceStub(channels[i % len(channels)])
    try:
        stub.Enroll(request, timeout=120)
        return "OK", None, 0
    except grpc.RpcError as e:
        reason, retry = reason_of(e)
        messages[e.code().name + " " + (reason or "")] = e.details()
        return e.code().name, reason, retry


messages = {}  # one message per code and reason
codes = collections.Counter()
reasons = collections.Counter()
retry_max = 0
with concurrent.futures.ThreadPoolExecutor(max_workers=int(CALLS)) as pool:
    for code, reason, retry in pool.map(call, range(int(CALLS))):
        codes[code] += 1
        if reason:
            reasons[reason] += 1
        retry_max = max(retry_max, retry)
print(json.dumps({"codes": codes, "reasons": reasons, "retry_after_millis_max": retry_max,
                  "messages": messages}))
