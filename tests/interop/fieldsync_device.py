"""An independent fieldsync device, written from docs/PROTOCOL.md only.

Uses Debian's python3-grpcio, python3-protobuf and python3-cryptography.
HPKE (RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
AES-256-GCM) is built here from the primitives; nothing wraps fieldsync's
C++ code. The generated stubs (fieldsync/v1/*_pb2*.py) must be importable.
"""

import hashlib
import hmac
import struct
import time
import uuid

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

import audit_receipt
from fieldsync.v1 import records_pb2, rpc_status_pb2, sync_pb2, sync_pb2_grpc

# --- PROTOCOL.md §3: HPKE -------------------------------------------------

KEM_ID, KDF_ID, AEAD_ID = 0x0020, 0x0001, 0x0002
KEM_SUITE = b"KEM" + struct.pack(">H", KEM_ID)
HPKE_SUITE = b"HPKE" + struct.pack(">HHH", KEM_ID, KDF_ID, AEAD_ID)
BATCH_SEAL_INFO = b"fieldsync/batch-seal/v1"
PULL_SEAL_INFO = b"fieldsync/pull-seal/v1"


def _extract(salt, ikm):
    return hmac.new(salt if salt else b"\x00" * 32, ikm, hashlib.sha256).digest()


def _expand(prk, info, length):
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:length]


def _labeled_extract(suite, salt, label, ikm):
    return _extract(salt, b"HPKE-v1" + suite + label + ikm)


def _labeled_expand(suite, prk, label, info, length):
    return _expand(prk, struct.pack(">H", length) + b"HPKE-v1" + suite + label + info, length)


def _x25519_raw_public(private):
    return private.public_key().public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw)


def _shared_secret(dh, enc, pk_r):
    eae_prk = _labeled_extract(KEM_SUITE, b"", b"eae_prk", dh)
    return _labeled_expand(KEM_SUITE, eae_prk, b"shared_secret", enc + pk_r, 32)


def _key_schedule(shared_secret, info):
    psk_id_hash = _labeled_extract(HPKE_SUITE, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(HPKE_SUITE, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash
    secret = _labeled_extract(HPKE_SUITE, shared_secret, b"secret", b"")
    key = _labeled_expand(HPKE_SUITE, secret, b"key", context, 32)
    nonce = _labeled_expand(HPKE_SUITE, secret, b"base_nonce", context, 12)
    return key, nonce


def hpke_seal(pk_r, info, aad, plaintext, ephemeral=None):
    """Single-shot seal (sequence 0). Returns (enc, ciphertext)."""
    sk_e = ephemeral or x25519.X25519PrivateKey.generate()
    enc = _x25519_raw_public(sk_e)
    dh = sk_e.exchange(x25519.X25519PublicKey.from_public_bytes(pk_r))
    key, nonce = _key_schedule(_shared_secret(dh, enc, pk_r), info)
    return enc, AESGCM(key).encrypt(nonce, plaintext, aad)


def hpke_open(sk_r, enc, info, aad, ciphertext):
    dh = sk_r.exchange(x25519.X25519PublicKey.from_public_bytes(enc))
    key, nonce = _key_schedule(_shared_secret(dh, enc, _x25519_raw_public(sk_r)), info)
    return AESGCM(key).decrypt(nonce, ciphertext, aad)


# --- PROTOCOL.md §4: canonical encodings ------------------------------------

def batch_header_encoding(header):
    return (b"fieldsync/batch-header/v1\x00" + uuid.UUID(header.device_id).bytes +
            uuid.UUID(header.batch_id).bytes + struct.pack(">QI", header.sequence,
                                                           header.sealing_key_id))


def batch_signed_message(header, compression, enc, ciphertext):
    return (b"fieldsync/batch-signature/v1\x00" + batch_header_encoding(header) +
            bytes([compression]) + hashlib.sha256(enc + ciphertext).digest())


def pull_chunk_header(device_id, cursor, next_cursor, caught_up):
    return (b"fieldsync/pull-chunk/v1\x00" + uuid.UUID(device_id).bytes +
            struct.pack(">QQB", cursor, next_cursor, 1 if caught_up else 0))


# --- PROTOCOL.md §8: errors --------------------------------------------------

def error_detail(error):
    """The SyncErrorDetail of a refused call (an grpc.RpcError), or None."""
    for key, value in (error.trailing_metadata() or ()):
        if key == "grpc-status-details-bin":
            status = rpc_status_pb2.RpcStatus.FromString(value)
            for any_detail in status.details:
                detail = sync_pb2.SyncErrorDetail()
                if any_detail.Unpack(detail):
                    return detail
    return None


# --- The device ---------------------------------------------------------------

class Hlc:
    """The device's hybrid logical clock (PROTOCOL.md §7)."""

    def __init__(self):
        self.wall, self.logical = 0, 0

    def now(self):
        physical = int(time.time() * 1_000_000)
        if physical > self.wall:
            self.wall, self.logical = physical, 0
        else:
            self.logical += 1
        return records_pb2.Hlc(wall_micros=self.wall, logical=self.logical)

    def observe(self, hlc):
        if (hlc.wall_micros, hlc.logical) > (self.wall, self.logical):
            self.wall, self.logical = hlc.wall_micros, hlc.logical


class Device:
    def __init__(self, address, ca_pem):
        self.address = address
        self.ca_pem = ca_pem
        self.tls_key = ec.generate_private_key(ec.SECP256R1())
        self.signing_key = ed25519.Ed25519PrivateKey.generate()
        self.receiving_key = x25519.X25519PrivateKey.generate()
        self.hlc = Hlc()
        self.device_id = None
        self.next_sequence = 1
        self.versions = {}  # (record_id, field) -> server version last seen

    def _csr_pem(self, key=None):
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device")]))
               .sign(key or self.tls_key, hashes.SHA256()))
        return csr.public_bytes(serialization.Encoding.PEM).decode()

    def _connect(self):
        key_pem = self.tls_key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption())
        creds = grpc.ssl_channel_credentials(root_certificates=self.ca_pem,
                                             private_key=key_pem,
                                             certificate_chain=self.certificate_pem)
        self.channel = grpc.secure_channel(self.address, creds)
        self.stub = sync_pb2_grpc.SyncServiceStub(self.channel)

    def certificate_not_after(self):
        """PROTOCOL.md "Certificate renewal": the notAfter of the current certificate."""
        return x509.load_pem_x509_certificate(self.certificate_pem).not_valid_after

    def renew_certificate(self, new_key=True):
        """PROTOCOL.md "Certificate renewal": a new certificate, over the current one.

        With new_key, a new TLS key is made and sent in the CSR. The new
        certificate, key and CA certificate(s) replace the stored ones only
        once the answer is in (the current certificate keeps working until
        it expires, so an answer lost on the way is simply asked again)."""
        key = ec.generate_private_key(ec.SECP256R1()) if new_key else self.tls_key
        response = self.stub.RenewCertificate(
            sync_pb2.RenewCertificateRequest(csr_pem=self._csr_pem(key)), timeout=20)
        self.previous_credentials = (self.tls_key, self.certificate_pem)
        self.tls_key = key
        self.certificate_pem = response.certificate_pem.encode()
        self.ca_pem = response.ca_certificate_pem.encode()
        self.channel.close()
        self._connect()
        return response

    def enroll(self, code):
        channel = grpc.secure_channel(self.address, grpc.ssl_channel_credentials(self.ca_pem))
        request = sync_pb2.EnrollRequest(
            enrolment_code=code, csr_pem=self._csr_pem(),
            signing_public_key=self.signing_key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw),
            receiving_public_key=_x25519_raw_public(self.receiving_key),
            device_label="python interop device")
        response = sync_pb2_grpc.SyncServiceStub(channel).Enroll(request, timeout=20)
        channel.close()
        self.device_id = response.device_id
        self.certificate_pem = response.certificate_pem.encode()
        self.sealing_key = max(response.sealing_keys, key=lambda k: k.key_id)
        self.next_sequence = response.next_sequence
        self.enrolment = response
        self._connect()
        return response

    def refresh_sealing_keys(self):
        """PROTOCOL.md "Sealing key rotation": the keys the server accepts
        now; later batches are sealed to the one with the highest key_id."""
        response = self.stub.GetSealingKeys(sync_pb2.GetSealingKeysRequest(), timeout=20)
        self.sealing_key = max(response.sealing_keys, key=lambda k: k.key_id)
        return response

    def reseal(self, sealed):
        """The same batch (batch_id, sequence, changes) sealed to the current
        sealing key: what a device sends after SEALING_KEY_RETIRED or
        UNKNOWN_SEALING_KEY and refresh_sealing_keys()."""
        return self.seal_batch(self._batch_changes[sealed.header.batch_id],
                               sequence=sealed.header.sequence,
                               batch_id=sealed.header.batch_id)

    def seal_batch(self, changes, sequence=None, batch_id=None):
        """A new sealed, signed batch; consumes a sequence number. A tablet
        never sends a batch without changes (the server refuses one as
        MALFORMED, PROTOCOL.md §5); `seal_empty_batch` makes one for tests."""
        if not changes:
            raise ValueError("a batch needs at least one change")
        return self._seal(changes, sequence, batch_id)

    def seal_empty_batch(self, sequence):
        """A batch without changes at `sequence`, which a real tablet never
        sends: only to test the server's refusal."""
        return self._seal([], sequence, None)

    def _seal(self, changes, sequence, batch_id):
        if sequence is None:
            sequence = self.next_sequence
            self.next_sequence += 1
        header = sync_pb2.BatchHeader(device_id=self.device_id,
                                      batch_id=batch_id or str(uuid.uuid4()),
                                      sequence=sequence,
                                      sealing_key_id=self.sealing_key.key_id)
        payload = records_pb2.BatchPayload(changes=changes).SerializeToString()
        enc, ct = hpke_seal(self.sealing_key.public_key, BATCH_SEAL_INFO,
                            batch_header_encoding(header), payload)
        signature = self.signing_key.sign(
            batch_signed_message(header, sync_pb2.PAYLOAD_COMPRESSION_NONE, enc, ct))
        sealed = sync_pb2.SealedBatch(header=header, enc=enc, ciphertext=ct,
                                      compression=sync_pb2.PAYLOAD_COMPRESSION_NONE,
                                      signature=signature)
        self._batch_changes[header.batch_id] = list(changes)
        return sealed

    # --- audit receipts (docs/AUDIT.md §1, §7) ---

    def batch_entry_fields(self, sealed, response):
        """What the device itself knows of its batch's BatchAccepted entry
        (every field but the server's time)."""
        changes = self._batch_changes[sealed.header.batch_id]
        counts = {o: 0 for o in (records_pb2.CHANGE_OUTCOME_APPLIED,
                                 records_pb2.CHANGE_OUTCOME_CONVERGED,
                                 records_pb2.CHANGE_OUTCOME_SUPERSEDED,
                                 records_pb2.CHANGE_OUTCOME_CONFLICT,
                                 records_pb2.CHANGE_OUTCOME_REJECTED)}
        case_ids = []
        for change, result in zip(changes, response.results):
            counts[result.outcome] += 1
            # Cases with at least one logged change, in first-touch order.
            if result.log_position != 0 and change.case_id not in case_ids:
                case_ids.append(change.case_id)
        return {"device_id": self.device_id, "batch_id": sealed.header.batch_id,
                "sequence": sealed.header.sequence,
                "sealing_key_id": sealed.header.sealing_key_id,
                "compression": sealed.compression,
                "payload_sha256": hashlib.sha256(sealed.enc + sealed.ciphertext).digest(),
                "signature": sealed.signature,
                "first_position": response.first_position,
                "last_position": response.last_position,
                "outcomes": tuple(counts.values()), "case_ids": case_ids}

    def verify_receipt(self, verifier, sealed, response):
        """Verifies the push answer's receipt with `verifier`
        (audit_receipt.ReceiptVerifier). Returns (checkpoint, differing):
        `differing` names the entry fields where the server's entry is not
        what the device computed. The entry is the device's own bytes when
        nothing differs; otherwise the receipt's bytes are used, but only if
        they still name this device's batch, sequence, batch hash and
        signature, positions, outcomes and cases. Raises ReceiptError."""
        if not response.HasField("audit_receipt"):
            raise audit_receipt.ReceiptError("the push answer has no receipt")
        receipt = response.audit_receipt
        mine = self.batch_entry_fields(sealed, response)
        mine["time"] = audit_receipt.entry_time(receipt.entry)
        expected = audit_receipt.batch_accepted_entry(
            mine["time"], mine["device_id"], mine["batch_id"], mine["sequence"],
            mine["sealing_key_id"], mine["compression"], mine["payload_sha256"],
            mine["signature"], mine["first_position"], mine["last_position"],
            mine["outcomes"], mine["case_ids"])
        differing = []
        if receipt.entry != expected:
            theirs = audit_receipt.parse_batch_accepted(receipt.entry)
            differing = sorted(k for k in mine if mine[k] != theirs[k])
            essential = set(differing) - {"sealing_key_id", "compression"}
            if essential:
                raise audit_receipt.ReceiptError(
                    "the receipt's entry does not record this batch: " + ", ".join(sorted(essential)))
            expected = receipt.entry
        checkpoint = verifier.verify(receipt, expected)
        verifier.accept(checkpoint)
        return checkpoint, differing

    def push(self, sealed):
        response = self.stub.Push(sync_pb2.PushRequest(batch=sealed), timeout=20)
        for result in response.results:
            for f in result.fields:
                self.versions[(self._record_of(sealed, result.change_id), f.field)] = f.version
        if response.certificate_renewal_requested:
            # PROTOCOL.md "Certificate renewal": the deployment's CA is being
            # rotated and this certificate is from the CA being retired.
            self.renew_certificate()
        return response

    def _record_of(self, sealed, change_id):
        return self._changes_by_id.get(change_id, "")

    _changes_by_id = {}
    _batch_changes = {}  # batch_id -> the changes sealed in it

    def change(self, case_id, record_id, record_type, fields, kind=records_pb2.CHANGE_KIND_UPSERT):
        """An UPSERT of `fields` (name -> FieldValue) with the base versions
        the device last saw."""
        change_id = str(uuid.uuid4())
        Device._changes_by_id[change_id] = record_id
        writes = [records_pb2.FieldWrite(field=name, value=value,
                                         base_version=self.versions.get((record_id, name), 0))
                  for name, value in fields.items()]
        return records_pb2.RecordChange(change_id=change_id, case_id=case_id,
                                        record_id=record_id, record_type=record_type,
                                        hlc=self.hlc.now(), kind=kind, fields=writes)

    def open_chunk(self, chunk):
        aad = pull_chunk_header(self.device_id, chunk.cursor, chunk.next_cursor, chunk.caught_up)
        plain = hpke_open(self.receiving_key, chunk.enc, PULL_SEAL_INFO, aad, chunk.ciphertext)
        changes = sync_pb2.PulledChanges.FromString(plain)
        for c in changes.changes:
            self.hlc.observe(c.hlc)
            for f in c.fields:
                self.versions[(c.record_id, f.field)] = f.version
        return changes

    def pull(self, cursor, max_chunks=None, per_chunk=0):
        """Opened PulledChanges chunks from `cursor`; stops (cancelling the
        stream) after max_chunks chunks when given."""
        call = self.stub.Pull(sync_pb2.PullRequest(cursor=cursor, max_changes_per_chunk=per_chunk),
                              timeout=30)
        out = []
        for chunk in call:
            out.append(self.open_chunk(chunk))
            if max_chunks is not None and len(out) >= max_chunks:
                call.cancel()
                break
        return out
