#!/usr/bin/python3
"""Attacks on Enroll by callers without a certificate, and a valid
enrolment, for the limits test (tests/tools/limits_cli_test.sh).

  enroll_attack.py SOURCE_DIR GEN_DIR ADDRESS CA_FILE flood CALLS BYTES
  enroll_attack.py SOURCE_DIR GEN_DIR ADDRESS CA_FILE guess SECONDS
  enroll_attack.py SOURCE_DIR GEN_DIR ADDRESS CA_FILE enrol CODE

flood: CALLS concurrent Enroll calls over TLS without a client
certificate, each with a wrong code and a CSR field of BYTES bytes, spread
over 16 connections; prints one JSON object: the count of answers per
status code, of the SyncErrorDetail reasons, the largest
retry_after_millis, and one message per code and reason.

guess: well-formed Enroll calls with wrong codes, one after the other, as
fast as answers come, for SECONDS, never waiting for retry advice; prints
one JSON object: attempts, checked (answered ENROLMENT_CODE_INVALID: the
server looked at the code), refused (RESOURCE_EXHAUSTED, by reason), the
seconds until the first refusal, the largest retry_after_millis, and
checked per second.

enrol: enrols the independent Python device (tests/interop) with CODE and
prints {"device_id": ...}; exits 1 with the status on failure.

Refused calls never make it exit 1: the caller judges the counts.
"""

import collections
import concurrent.futures
import json
import os
import sys
import time

SOURCE, GEN, ADDRESS, CA_FILE, MODE = sys.argv[1:6]
ARGS = sys.argv[6:]

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


def flood(calls, size):
    channels = []
    for i in range(16):
        # A distinct option per channel: each gets its own connection.
        channels.append(grpc.secure_channel(ADDRESS, grpc.ssl_channel_credentials(ca),
                                            options=[("fieldsync.flood", i)]))
    request = sync_pb2.EnrollRequest(enrolment_code="WRONG-CODE-0000", csr_pem="x" * size,
                                     device_label="flood")
    messages = {}  # one message per code and reason

    def call(i):
        stub = sync_pb2_grpc.SyncServiceStub(channels[i % len(channels)])
        try:
            stub.Enroll(request, timeout=120)
            return "OK", None, 0
        except grpc.RpcError as e:
            reason, retry = reason_of(e)
            messages[e.code().name + " " + (reason or "")] = e.details()
            return e.code().name, reason, retry

    codes = collections.Counter()
    reasons = collections.Counter()
    retry_max = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=calls) as pool:
        for code, reason, retry in pool.map(call, range(calls)):
            codes[code] += 1
            if reason:
                reasons[reason] += 1
            retry_max = max(retry_max, retry)
    print(json.dumps({"codes": codes, "reasons": reasons, "retry_after_millis_max": retry_max,
                      "messages": messages}))


def enrol(code):
    try:
        device = fd.Device(ADDRESS, ca)
        device.enroll(code)
    except grpc.RpcError as e:
        print("enroll_attack: %s: %s" % (e.code().name, e.details()), file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"device_id": device.device_id}))


def guess(seconds):
    # A well-formed request with a code of the right shape that was never issued.
    template = fd.Device(ADDRESS, ca)
    csr = template._csr_pem()
    signing = template.signing_key.public_key().public_bytes(fd.serialization.Encoding.Raw,
                                                            fd.serialization.PublicFormat.Raw)
    receiving = fd._x25519_raw_public(template.receiving_key)
    channel = grpc.secure_channel(ADDRESS, grpc.ssl_channel_credentials(ca))
    stub = sync_pb2_grpc.SyncServiceStub(channel)
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    attempts = checked = 0
    refused = collections.Counter()
    other = collections.Counter()
    first_refusal = None
    retry_max = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        n = attempts
        code = "".join(alphabet[(n >> (5 * i)) & 31] for i in range(20))
        request = sync_pb2.EnrollRequest(enrolment_code=code, csr_pem=csr,
                                         signing_public_key=signing,
                                         receiving_public_key=receiving, device_label="guess")
        attempts += 1
        try:
            stub.Enroll(request, timeout=20)
            other["OK"] += 1
        except grpc.RpcError as e:
            reason, retry = reason_of(e)
            if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                refused[reason or "none"] += 1
                retry_max = max(retry_max, retry)
                if first_refusal is None:
                    first_refusal = time.monotonic() - start
            elif reason == "SYNC_ERROR_REASON_ENROLMENT_CODE_INVALID":
                checked += 1
            else:
                other["%s %s" % (e.code().name, reason)] += 1
    elapsed = time.monotonic() - start
    print(json.dumps({"attempts": attempts, "checked": checked, "refused": refused, "other": other,
                      "first_refusal_s": first_refusal, "retry_after_millis_max": retry_max,
                      "seconds": round(elapsed, 2),
                      "checked_per_second": round(checked / elapsed, 3)}))


if MODE == "flood":
    flood(int(ARGS[0]), int(ARGS[1]))
elif MODE == "guess":
    guess(float(ARGS[0]))
else:
    enrol(ARGS[0])
