#!/usr/bin/python3
"""Interop test: certificate renewal over the protocol (docs/PROTOCOL.md
"Certificate renewal") from the independent Python device
(fieldsync_device.py) against the real fieldsyncd over mutual TLS.

  renewal_test.py BUILD_DIR SOURCE_DIR

A device enrolled on a fresh deployment is refused a renewal a year before
its certificate expires (NO_CHANGE, saying from when); with
certificate_warning_days 365 (so that the renewal window covers a new
certificate) it renews for a new key, pushes and pulls with the new
certificate, and its earlier certificate keeps working until it expires.
Then the CA is rotated (`fieldsync certs rotate-ca`): the device keeps
working, is asked to renew on its next push, renews under the new CA and
keeps working after the rotation is finished and the server restarted
with a certificate of the new CA, while its old certificates are refused.
The server's log warns of every certificate within the warning period, ids
only. Ends with "N passed, M failed".
"""

import os
import subprocess
import sys
import tempfile
import time
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
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

import fieldsync_device as fd  # noqa: E402
from fieldsync.v1 import admin_pb2, admin_pb2_grpc, records_pb2, sync_pb2  # noqa: E402
from fieldsync.v1 import sync_pb2_grpc  # noqa: E402

passed, failed = 0, 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok   " + name)
    else:
        failed += 1
        print("FAIL " + name + (": " + str(detail) if detail else ""))


def start(data, log_path):
    server = subprocess.Popen([os.path.join(BUILD, "server/fieldsyncd"), "--data-dir", data,
                               "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                              stderr=open(log_path, "w"), text=True)
    line = server.stdout.readline()
    check("fieldsyncd starts", "serving deployment" in line, line)
    return server, line.strip().rsplit(" ", 1)[-1]


def stop(server):
    server.terminate()
    server.wait(timeout=30)


def new_case(device):
    case_id = str(uuid.uuid4())
    fields = {"given_name": records_pb2.FieldValue(string_value="Amina"),
              "sex": records_pb2.FieldValue(enum_value="female"),
              "age_band": records_pb2.FieldValue(enum_value="10_14"),
              "region": records_pb2.FieldValue(enum_value="northern"),
              "registration_date": records_pb2.FieldValue(
                  date_value=records_pb2.Date(year=2026, month=11, day=2))}
    return device.seal_batch([device.change(case_id, case_id, "case_registration", fields)])


def channel_with(device, key, certificate_pem):
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    creds = grpc.ssl_channel_credentials(root_certificates=device.ca_pem, private_key=key_pem,
                                         certificate_chain=certificate_pem)
    return grpc.secure_channel(device.address, creds)


def main():
    work = tempfile.mkdtemp(prefix="fieldsync-renewal-")
    server = None
    try:
        data = os.path.join(work, "d")
        subprocess.run([os.path.join(BUILD, "tools/fieldsync"), "init", "--data-dir", data],
                       check=True, stdout=subprocess.DEVNULL)
        server, address = start(data, os.path.join(work, "server1.log"))
        ca = open(os.path.join(data, "tls/ca.crt"), "rb").read()
        admin_creds = grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=open(os.path.join(data, "admin/admin.key"), "rb").read(),
            certificate_chain=open(os.path.join(data, "admin/admin.crt"), "rb").read())
        admin = admin_pb2_grpc.AdminServiceStub(grpc.secure_channel(address, admin_creds))
        admin.AddOfficer(admin_pb2.AddOfficerRequest(id="officer1", region="northern"),
                         timeout=20)
        code = admin.CreateEnrolmentCode(admin_pb2.CreateEnrolmentCodeRequest(
            officer_id="officer1"), timeout=20).code
        device = fd.Device(address, ca)
        device.enroll(code)
        first_cert = device.certificate_pem
        first_serial = x509.load_pem_x509_certificate(first_cert).serial_number

        # --- a year before expiry: not yet due ---
        try:
            device.renew_certificate()
            check("renewal a year before expiry is refused", False, "it was accepted")
        except grpc.RpcError as e:
            detail = fd.error_detail(e)
            check("renewal a year before expiry is refused with FAILED_PRECONDITION / NO_CHANGE",
                  e.code() == grpc.StatusCode.FAILED_PRECONDITION and detail is not None and
                  detail.reason == sync_pb2.SYNC_ERROR_REASON_NO_CHANGE, (e.code(), detail))
            check("the refusal says from when the device may renew",
                  "renew it from" in e.details(), e.details())
        check("the refused renewal left the certificate as it was",
              device.certificate_pem == first_cert)
        stop(server)

        # --- the renewal window covers the certificate: renew ---
        with open(os.path.join(data, "fieldsyncd.conf"), "a") as conf:
            conf.write("certificate_warning_days: 365\n")
        log_path = os.path.join(work, "server2.log")
        server, address = start(data, log_path)
        device.address = address
        device._connect()
        admin = admin_pb2_grpc.AdminServiceStub(grpc.secure_channel(address, admin_creds))
        # The warnings follow the "serving" line (a thread of their own).
        for _ in range(100):
            log = open(log_path).read()
            if device.device_id in log:
                break
            time.sleep(0.1)
        check("fieldsyncd warns of the device's certificate at start (its id, no key)",
              "event=certificate.expiring" in log and device.device_id in log and
              "BEGIN" not in log, log[-2000:])

        old_key = device.tls_key
        response = device.renew_certificate(new_key=True)
        new_cert = x509.load_pem_x509_certificate(device.certificate_pem)
        check("the renewed certificate names the same device",
              new_cert.extensions.get_extension_for_class(
                  x509.SubjectAlternativeName).value.get_values_for_type(
                      x509.UniformResourceIdentifier) ==
              ["fieldsync://device/" + device.device_id])
        check("the renewed certificate has another serial",
              new_cert.serial_number != first_serial)
        check("the answer advertises the new notAfter",
              response.not_after_unix_micros // 1000000 ==
              int(new_cert.not_valid_after.replace(tzinfo=__import__("datetime").timezone.utc)
                  .timestamp()), response.not_after_unix_micros)
        check("the answer carries the CA certificate", b"BEGIN CERTIFICATE" in device.ca_pem)

        r = device.push(new_case(device))
        check("a push with the renewed certificate (new key) is accepted",
              len(r.results) == 1, r)
        chunks = list(device.stub.Pull(sync_pb2.PullRequest(cursor=0), timeout=20))
        check("a pull with the renewed certificate works", len(chunks) >= 1)

        # The earlier certificate keeps working until it expires.
        old = channel_with(device, old_key, first_cert)
        schema = sync_pb2_grpc.SyncServiceStub(old).GetSchema(sync_pb2.GetSchemaRequest(),
                                                              timeout=20)
        check("the earlier certificate still works after the renewal", schema.digest != "")
        old.close()

        status = admin.GetCertificateStatus(admin_pb2.CertificateStatusRequest(), timeout=20)
        mine = [c for c in status.certificates if c.principal_id == device.device_id]
        check("certs status lists the device's new certificate and its earlier one",
              # Serials compared as numbers: the server's hex keeps a leading zero.
              sorted((int(c.serial, 16), c.is_previous) for c in mine) ==
              sorted([(new_cert.serial_number, False), (first_serial, True)]), mine)

        # A CSR that is not one is refused, and nothing changes.
        try:
            device.stub.RenewCertificate(sync_pb2.RenewCertificateRequest(csr_pem="garbage"),
                                         timeout=20)
            check("a malformed CSR is refused", False)
        except grpc.RpcError as e:
            detail = fd.error_detail(e)
            check("a malformed CSR is refused with INVALID_ARGUMENT / MALFORMED",
                  e.code() == grpc.StatusCode.INVALID_ARGUMENT and detail is not None and
                  detail.reason == sync_pb2.SYNC_ERROR_REASON_MALFORMED, (e.code(), detail))
        try:
            device.stub.RenewCertificate(
                sync_pb2.RenewCertificateRequest(csr_pem="x" * 100000), timeout=20)
            check("an oversized CSR is refused", False)
        except grpc.RpcError as e:
            check("an oversized CSR is refused with INVALID_ARGUMENT",
                  e.code() == grpc.StatusCode.INVALID_ARGUMENT, e.code())

        # --- a CA rotation, as the device sees it ---
        fs = os.path.join(BUILD, "tools/fieldsync")
        cli = [fs, "--data-dir", data, "--server", address]
        rotated = subprocess.run(cli + ["certs", "rotate-ca"], capture_output=True, text=True)
        check("certs rotate-ca starts a rotation", rotated.returncode == 0,
              rotated.stdout + rotated.stderr)
        before_rotation_cert = device.certificate_pem
        r = device.push(new_case(device))
        check("a push with the old CA's certificate still works during the rotation",
              len(r.results) == 1, r)
        check("the push asks the device to renew", r.certificate_renewal_requested, r)
        check("the device renewed at once, under the new CA",
              device.certificate_pem != before_rotation_cert)
        check("the renewal gave the device both CAs to trust",
              device.ca_pem.count(b"BEGIN CERTIFICATE") == 2, device.ca_pem)
        r = device.push(new_case(device))
        check("a push with the new CA's certificate is accepted and not asked again",
              len(r.results) == 1 and not r.certificate_renewal_requested, r)
        renewed = subprocess.run(cli + ["staff", "renew", "--id", "admin", "--out",
                                        os.path.join(data, "admin")],
                                 capture_output=True, text=True)
        check("the administrator renews its own certificate", renewed.returncode == 0,
              renewed.stdout + renewed.stderr)
        finished = subprocess.run(cli + ["certs", "rotate-ca", "--finish"], capture_output=True,
                                  text=True)
        check("certs rotate-ca --finish", finished.returncode == 0,
              finished.stdout + finished.stderr)
        try:
            stale = channel_with(device, old_key, first_cert)
            sync_pb2_grpc.SyncServiceStub(stale).GetSchema(sync_pb2.GetSchemaRequest(),
                                                           timeout=20)
            check("a certificate of the old CA is refused once the rotation is finished", False)
        except grpc.RpcError as e:
            check("a certificate of the old CA is refused once the rotation is finished",
                  e.code() == grpc.StatusCode.UNAUTHENTICATED, e.code())
        stop(server)
        server, address = start(data, os.path.join(work, "server3.log"))
        device.address = address
        device._connect()
        r = device.push(new_case(device))
        check("after the restart the device trusts the server's new certificate and pushes",
              len(r.results) == 1, r)
        stop(server)
        server = None
    except Exception:
        traceback.print_exc()
        check("no exception", False)
    finally:
        if server is not None:
            server.kill()
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
