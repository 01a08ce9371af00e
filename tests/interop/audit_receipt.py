"""The device's own check of its audit receipts, written from docs/AUDIT.md,
RFC 9162 (Merkle tree hashing and proofs), c2sp.org/tlog-checkpoint and
c2sp.org/signed-note. Nothing here calls fieldsync's C++ code: SHA-256 is
hashlib's, Ed25519 is python3-cryptography's.

    verifier = ReceiptVerifier(open("DIR/audit-log.pub").read())
    verifier.verify(receipt, expected_entry)   # raises ReceiptError

A receipt (audit.proto AuditReceipt) is accepted only if the signed tree
head verifies with the auditor's key (name + key id + key from the verifier
key text, never from the server), its origin is the key's name, the entry
is the one the device expects, and the inclusion proof leads from that
entry's leaf hash to the signed root.

After a rotation of the log's signing key (docs/AUDIT.md §9) the receipt
carries the key transitions: each is followed from the key held only if its
head is signed by that key and by the new key, and the KeyRotated
("audit-signing") entry announcing the new key is in that head's tree.
"""

import base64
import hashlib
import struct
import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519


class ReceiptError(Exception):
    """A receipt, tree head or proof that does not verify."""


# --- RFC 9162 §2.1.1: leaf and node hashes --------------------------------

def leaf_hash(entry):
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


# --- RFC 9162 §2.1.3.2: verifying an inclusion proof ------------------------

def root_from_inclusion_proof(index, size, leaf, proof):
    """The root that `proof` gives for leaf hash `leaf` at `index` in a
    tree of `size` leaves; raises ReceiptError if the proof has the wrong
    shape."""
    if index >= size:
        raise ReceiptError("leaf index %d is not below the tree size %d" % (index, size))
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if len(p) != 32:
            raise ReceiptError("an inclusion proof hash is not 32 bytes")
        if sn == 0:
            raise ReceiptError("the inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ReceiptError("the inclusion proof is too short")
    return r


def verify_inclusion(index, size, leaf, proof, root):
    if len(leaf) != 32 or len(root) != 32:
        raise ReceiptError("a leaf hash or root is not 32 bytes")
    if root_from_inclusion_proof(index, size, leaf, proof) != root:
        raise ReceiptError("the inclusion proof does not lead to the signed root")


# --- RFC 9162 §2.1.4.2: verifying a consistency proof -----------------------

def verify_consistency(size1, size2, proof, root1, root2):
    """Raises ReceiptError unless `proof` shows that the tree of `size2`
    leaves with `root2` extends the tree of `size1` leaves with `root1`."""
    if size1 > size2:
        raise ReceiptError("the first tree (%d) is larger than the second (%d)" % (size1, size2))
    if size1 == 0:
        # RFC 9162 defines consistency proofs only for 0 < size1.
        raise ReceiptError("no consistency proof exists from the empty tree")
    if size1 == size2:
        if proof:
            raise ReceiptError("a consistency proof between equal sizes must be empty")
        if root1 != root2:
            raise ReceiptError("two heads of size %d have different roots (a fork)" % size1)
        return
    if not proof or any(len(p) != 32 for p in proof):
        raise ReceiptError("malformed consistency proof")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # an exact power of two
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ReceiptError("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ReceiptError("the consistency proof is too short")
    if fr != root1 or sr != root2:
        raise ReceiptError("the consistency proof does not lead to both roots")


# --- c2sp.org/signed-note and c2sp.org/tlog-checkpoint ----------------------

ED25519_TYPE = b"\x01"
SIGNATURE_PREFIX = "\u2014 "


def key_id(name, public_key):
    """SHA-256(name || 0x0A || 0x01 || key)[:4] as a big-endian integer."""
    digest = hashlib.sha256(name.encode() + b"\n" + ED25519_TYPE + public_key).digest()
    return struct.unpack(">I", digest[:4])[0]


def parse_verifier_key(text):
    """(name, key id, 32-byte public key) of "<name>+<hex id>+<base64(0x01||key)>"."""
    text = text.strip()
    # A key name never holds "+", base64 may: split at the first two.
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise ReceiptError("the verifier key is not name+id+key")
    name, hex_id, b64 = parts
    if not name or len(hex_id) != 8:
        raise ReceiptError("the verifier key's name or id is malformed")
    raw = base64.b64decode(b64, validate=True)
    if len(raw) != 33 or raw[:1] != ED25519_TYPE:
        raise ReceiptError("the verifier key is not an Ed25519 key")
    public_key = raw[1:]
    if int(hex_id, 16) != key_id(name, public_key):
        raise ReceiptError("the verifier key's id does not match its name and key")
    return name, int(hex_id, 16), public_key


class Checkpoint:
    def __init__(self, origin, size, root, extensions):
        self.origin, self.size, self.root, self.extensions = origin, size, root, extensions


def open_note(note, name, kid, public_key):
    """The text of signed note `note` after checking that a signature line
    by (name, kid) verifies; lines of other keys are ignored."""
    if not isinstance(note, str):
        note = note.decode("utf-8")
    split = note.rfind("\n\n")
    if split < 0:
        raise ReceiptError("the note has no signature block")
    text, block = note[:split + 1], note[split + 2:]
    if not block.endswith("\n"):
        raise ReceiptError("the note's signature block does not end in a newline")
    found = False
    for line in block[:-1].split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise ReceiptError("a signature line does not start with an em dash")
        fields = line[len(SIGNATURE_PREFIX):].split(" ")
        if len(fields) != 2:
            raise ReceiptError("a signature line is malformed")
        raw = base64.b64decode(fields[1], validate=True)
        if len(raw) < 5:
            raise ReceiptError("a signature is too short")
        if fields[0] != name or struct.unpack(">I", raw[:4])[0] != kid:
            continue
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(public_key).verify(raw[4:],
                                                                         text.encode())
        except InvalidSignature:
            raise ReceiptError("the tree head's signature does not verify") from None
        found = True
    if not found:
        raise ReceiptError("the tree head is not signed by the auditor's key")
    return text


def parse_checkpoint(text):
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise ReceiptError("the checkpoint has fewer than three lines")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise ReceiptError("the checkpoint's size is not canonical decimal")
    root = base64.b64decode(root_text, validate=True)
    if len(root) != 32 or base64.b64encode(root).decode() != root_text:
        raise ReceiptError("the checkpoint's root is not canonical base64 of 32 bytes")
    return Checkpoint(origin, int(size_text), root, lines[3:-1])


# --- docs/AUDIT.md §1: the BatchAccepted entry -------------------------------

EVENT_DOMAIN = b"fieldsync/audit-event/v1\x00"
KIND_BATCH_ACCEPTED = 4
# Offset of the U64 time in every entry (domain, then the U8 kind).
TIME_OFFSET = len(EVENT_DOMAIN) + 1


def _bytes(b):
    return struct.pack(">I", len(b)) + b


def batch_accepted_entry(time_micros, device_id, batch_id, sequence, sealing_key_id,
                         compression, payload_sha256, signature, first_position, last_position,
                         outcomes, case_ids):
    """The canonical BatchAccepted entry (kind 4). `outcomes` = (applied,
    converged, superseded, conflict, rejected); `case_ids` UUID strings."""
    return (EVENT_DOMAIN + bytes([KIND_BATCH_ACCEPTED]) + struct.pack(">Q", time_micros) +
            _bytes(device_id.encode()) + uuid.UUID(batch_id).bytes +
            struct.pack(">QIB", sequence, sealing_key_id, compression) + payload_sha256 +
            signature + struct.pack(">QQ", first_position, last_position) +
            struct.pack(">IIIII", *outcomes) + struct.pack(">I", len(case_ids)) +
            b"".join(uuid.UUID(c).bytes for c in case_ids))


class _EntryReader:
    """Reads an entry's fields in order (docs/AUDIT.md §1); strict: done()
    fails if bytes follow the last field. `what` names the entry in errors."""

    def __init__(self, entry, what):
        self.entry, self.what, self.pos = entry, what, 0

    def take(self, n):
        if self.pos + n > len(self.entry):
            raise ReceiptError("%s is truncated" % self.what)
        out = self.entry[self.pos:self.pos + n]
        self.pos += n
        return out

    def u(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def bytes_field(self):
        return self.take(self.u(">I"))

    def start(self, kind, kind_name):
        """The domain and kind; returns the U64 time."""
        if self.take(len(EVENT_DOMAIN)) != EVENT_DOMAIN or self.u(">B") != kind:
            raise ReceiptError("%s is not a %s event" % (self.what, kind_name))
        return self.u(">Q")

    def done(self):
        if self.pos != len(self.entry):
            raise ReceiptError("bytes follow the last field of %s" % self.what)


def parse_batch_accepted(entry):
    """The fields of a BatchAccepted entry, as a dict; strict (nothing may
    follow the last field)."""
    r = _EntryReader(entry, "the receipt's entry")
    f = {"time": r.start(KIND_BATCH_ACCEPTED, "BatchAccepted")}
    f["device_id"] = r.bytes_field().decode()
    f["batch_id"] = str(uuid.UUID(bytes=r.take(16)))
    f["sequence"], f["sealing_key_id"], f["compression"] = r.u(">Q"), r.u(">I"), r.u(">B")
    f["payload_sha256"], f["signature"] = r.take(32), r.take(64)
    f["first_position"], f["last_position"] = r.u(">Q"), r.u(">Q")
    f["outcomes"] = tuple(r.u(">I") for _ in range(5))
    f["case_ids"] = [str(uuid.UUID(bytes=r.take(16))) for _ in range(r.u(">I"))]
    r.done()
    return f


KIND_KEY_ROTATED = 7


def announced_key(entry):
    """The new public key of a KeyRotated ("audit-signing") entry (kind 7:
    Bytes actor, Bytes purpose, U32 old, U32 new, Bytes new key); raises
    ReceiptError for anything else."""
    r = _EntryReader(entry, "the key transition's entry")
    r.start(KIND_KEY_ROTATED, "KeyRotated")
    r.bytes_field()  # actor
    purpose = r.bytes_field()
    r.u(">I")  # old version
    r.u(">I")  # new version
    key = r.bytes_field()
    r.done()
    if purpose != b"audit-signing" or len(key) != 32:
        raise ReceiptError("the key transition is not of the audit signing key")
    return key


def entry_time(entry):
    """The U64 time of an entry (the one field a device cannot know)."""
    if len(entry) < TIME_OFFSET + 8 or not entry.startswith(EVENT_DOMAIN):
        raise ReceiptError("the receipt's entry is not an audit event")
    return struct.unpack(">Q", entry[TIME_OFFSET:TIME_OFFSET + 8])[0]


# --- the receipt ---------------------------------------------------------------

class ReceiptVerifier:
    """Verifies receipts under the auditor's verifier key text; remembers the
    newest head seen so that a later receipt's tree may never be smaller."""

    def __init__(self, verifier_key_text):
        self.name, self.key_id, self.public_key = parse_verifier_key(verifier_key_text)
        self.latest = None  # the newest verified Checkpoint

    def open_head(self, head, kid=None, public_key=None):
        """The verified Checkpoint of a SignedTreeHead message (with the key
        held, or the one given)."""
        if kid is None:
            kid, public_key = self.key_id, self.public_key
        cp = parse_checkpoint(open_note(head.note, self.name, kid, public_key))
        if cp.origin != self.name:
            raise ReceiptError("the tree head's origin is not the log the key names")
        # The message's size and root are conveniences: they must agree.
        if head.tree_size != cp.size or head.root_hash != cp.root:
            raise ReceiptError("the tree head's size or root field disagrees with its note")
        return cp

    def follow(self, receipt):
        """(key id, public key) after the key transitions of `receipt` that
        come after the key held; raises ReceiptError for one that does not
        verify. Changes nothing."""
        transitions = list(receipt.key_transitions)
        start = 0
        for i, t in enumerate(transitions):
            try:
                if announced_key(t.entry) == self.public_key:
                    start = i + 1
            except ReceiptError:
                pass
        kid, public_key = self.key_id, self.public_key
        for t in transitions[start:]:
            new_key = announced_key(t.entry)
            try:
                cp = self.open_head(t.head, kid, public_key)
            except ReceiptError as e:
                raise ReceiptError("the key transition at entry %d is not signed by the key "
                                   "held: %s" % (t.leaf_index, e)) from None
            new_kid = key_id(self.name, new_key)
            try:
                self.open_head(t.head, new_kid, new_key)
            except ReceiptError:
                raise ReceiptError("the key transition at entry %d is not signed by the key it "
                                   "announces" % t.leaf_index) from None
            verify_inclusion(t.leaf_index, cp.size, leaf_hash(t.entry), list(t.inclusion_proof),
                             cp.root)
            kid, public_key = new_kid, new_key
        return kid, public_key

    def verify(self, receipt, expected_entry):
        """Checks `receipt` (AuditReceipt) for the entry `expected_entry`
        (the bytes the device computed itself), following the key
        transitions it carries, and returns its Checkpoint. Does not update
        `latest` or the key held; call accept() for that."""
        kid, public_key = self.follow(receipt)
        cp = self.open_head(receipt.head, kid, public_key)
        cp.key = (kid, public_key)
        if receipt.entry != expected_entry:
            raise ReceiptError("the receipt's entry is not the device's batch event")
        verify_inclusion(receipt.leaf_index, cp.size, leaf_hash(expected_entry),
                         list(receipt.inclusion_proof), cp.root)
        if self.latest is not None and cp.size < self.latest.size:
            raise ReceiptError("the tree shrank: size %d after %d" % (cp.size, self.latest.size))
        if self.latest is not None and cp.size == self.latest.size and cp.root != self.latest.root:
            raise ReceiptError("two heads of size %d have different roots (a fork)" % cp.size)
        return cp

    def accept(self, cp):
        self.latest = cp
        if getattr(cp, "key", None) is not None:
            self.key_id, self.public_key = cp.key
