#!/usr/bin/python3
"""Merge-rule interop test: the independent Python device (fieldsync_device.py)
against the real fieldsyncd, checking docs/MERGE.md and PROTOCOL.md §5-§7.

  merge_test.py BUILD_DIR SOURCE_DIR

Every scenario runs on its own fresh deployment (`fieldsync init` into a new
data dir, `fieldsyncd --listen 127.0.0.1:0`), with devices enrolled for one
officer and a supervisor of the officer's region added by the administrator:

1. A device's two offline edits of one field, sent with the same base (one
   batch, and two consecutive batches): both APPLIED, no conflict, the
   second edit is the value (MERGE.md §3).
2. Pulled versions as bases: a pull holding CONVERGED and SUPERSEDED entries
   carries no version 0, and edits based on pulled versions are APPLIED
   (MERGE.md §2).
3. DELETE against a concurrent write, in both arrival orders on two
   deployments: the same final state, the write wins, a record-level
   conflict; the deleting device's own later write is RECORD_DELETED in both
   orders (MERGE.md §4).
4. ResolveConflict with a stale Conflict.version (ABORTED / STALE_BASE with
   the current version), base 0 (INVALID_ARGUMENT), the fresh version (OK),
   again (FAILED_PRECONDITION / ALREADY_RESOLVED); three losing values are
   one conflict (MERGE.md §6).

Reuses interop_test.py's stub generation and helpers. Ends with
"N passed, M failed".
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid

import interop_test as it  # generates the stubs; sys.argv = BUILD_DIR SOURCE_DIR

import grpc  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

import fieldsync_device as fd  # noqa: E402
from fieldsync.v1 import admin_pb2, admin_pb2_grpc, records_pb2, sync_pb2  # noqa: E402
from fieldsync.v1 import sync_pb2_grpc  # noqa: E402

check, text, enum = it.check, it.text, it.enum
BUILD = it.BUILD
R = records_pb2
APPLIED, CONVERGED = R.CHANGE_OUTCOME_APPLIED, R.CHANGE_OUTCOME_CONVERGED
SUPERSEDED, CONFLICT = R.CHANGE_OUTCOME_SUPERSEDED, R.CHANGE_OUTCOME_CONFLICT
REJECTED = R.CHANGE_OUTCOME_REJECTED
REGION = "northern"


def oname(o):
    return R.ChangeOutcome.Name(o).replace("CHANGE_OUTCOME_", "")


def date(y, m, d):
    return R.FieldValue(date_value=R.Date(year=y, month=m, day=d))


def show(value):
    """A FieldValue as short text for check details."""
    return value.WhichOneof("kind") and str(getattr(value, value.WhichOneof("kind"))).strip() \
        or "<unset>"


# --- a deployment ---------------------------------------------------------------


class Deployment:
    """A fresh data dir and fieldsyncd on a free loopback port, as
    interop_test.main() makes them."""

    def __init__(self, work, name):
        self.work = work
        self.data = os.path.join(work, name)
        subprocess.run([os.path.join(BUILD, "tools/fieldsync"), "init", "--data-dir", self.data],
                       check=True, stdout=subprocess.DEVNULL)
        self.log = open(os.path.join(work, name + ".server.log"), "w")
        self.server = subprocess.Popen(
            [os.path.join(BUILD, "server/fieldsyncd"), "--data-dir", self.data,
             "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.server.stdout.readline()
        if "serving deployment" not in line:
            raise RuntimeError("fieldsyncd did not start: %r (log %s)" % (line, self.log.name))
        self.address = line.strip().rsplit(" ", 1)[-1]
        self.ca = open(os.path.join(self.data, "tls/ca.crt"), "rb").read()
        creds = grpc.ssl_channel_credentials(
            root_certificates=self.ca,
            private_key=open(os.path.join(self.data, "admin/admin.key"), "rb").read(),
            certificate_chain=open(os.path.join(self.data, "admin/admin.crt"), "rb").read())
        self.admin_channel = grpc.secure_channel(self.address, creds)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.admin_channel)
        self.channels = [self.admin_channel]
        self.officers = set()

    def device(self, officer="officer1"):
        if officer not in self.officers:
            # Codes are issued for a registered officer.
            self.admin.AddOfficer(admin_pb2.AddOfficerRequest(id=officer, region=REGION),
                                  timeout=20)
            self.officers.add(officer)
        code = self.admin.CreateEnrolmentCode(admin_pb2.CreateEnrolmentCodeRequest(
            officer_id=officer, region=REGION), timeout=20).code
        d = fd.Device(self.address, self.ca)
        d.enroll(code)
        self.channels.append(d.channel)
        return d

    def supervisor(self, staff_id="sup1"):
        """A supervisor of REGION: a CaseService stub and a SyncService stub on
        its mutual-TLS channel."""
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, staff_id)]))
               .sign(key, hashes.SHA256()))
        added = self.admin.AddStaff(admin_pb2.AddStaffRequest(
            id=staff_id, role=admin_pb2.ROLE_SUPERVISOR, regions=[REGION],
            csr_pem=csr.public_bytes(serialization.Encoding.PEM).decode()), timeout=20)
        creds = grpc.ssl_channel_credentials(
            root_certificates=self.ca,
            private_key=key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()),
            certificate_chain=added.certificate_pem.encode())
        channel = grpc.secure_channel(self.address, creds)
        self.channels.append(channel)
        return sync_pb2_grpc.CaseServiceStub(channel)

    def close(self):
        for c in self.channels:
            c.close()
        self.server.terminate()
        try:
            self.server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()
        self.log.close()


# --- changes with explicit bases ----------------------------------------------


def upsert(dev, case_id, record_id, record_type, fields, record_base=0):
    """An UPSERT; `fields` maps name -> (FieldValue, base_version)."""
    return R.RecordChange(
        change_id=str(uuid.uuid4()), case_id=case_id, record_id=record_id,
        record_type=record_type, hlc=dev.hlc.now(), kind=R.CHANGE_KIND_UPSERT,
        fields=[R.FieldWrite(field=n, value=v, base_version=b) for n, (v, b) in fields.items()],
        base_version=record_base)


def delete(dev, case_id, record_id, record_type, base):
    return R.RecordChange(change_id=str(uuid.uuid4()), case_id=case_id, record_id=record_id,
                          record_type=record_type, hlc=dev.hlc.now(),
                          kind=R.CHANGE_KIND_DELETE, base_version=base)


def push(dev, changes):
    return dev.push(dev.seal_batch(changes))


def field(result, name):
    """The FieldResult of `name` in a ChangeResult (None when absent)."""
    return next((f for f in result.fields if f.field == name), None)


def new_case(dev, case_id, given="Amina"):
    fields = {k: (v, 0) for k, v in it.new_case_fields().items()}
    fields["given_name"] = (text(given), 0)
    return upsert(dev, case_id, case_id, "case_registration", fields)


def pull_all(dev):
    """Every change the device may see, from cursor 0 (PulledChange list)."""
    return [c for chunk in dev.pull(0) for c in chunk.changes]


def final_state(changes, record_id):
    """The record's final state as a device rebuilds it from a full pull:
    (exists, {field: value bytes}, {field: version}). A field's value is the
    value written by the entry at the field's last pulled version."""
    written, version, exists, seen = {}, {}, False, False
    for c in changes:
        if c.record_id != record_id:
            continue
        seen = True
        for f in c.fields:
            written[(c.position, f.field)] = f.value.SerializeToString()
            version[f.field] = f.version
        if c.kind == R.CHANGE_KIND_DELETE:
            if c.outcome in (APPLIED, CONVERGED):
                exists = False
        else:
            exists = True
    values = {name: written.get((v, name), "<no entry at %d>" % v) for name, v in version.items()}
    return (exists if seen else None), values, version


def conflicts_of(case_service, case_id):
    out, token = [], ""
    while True:
        page = case_service.ListConflicts(sync_pb2.ListConflictsRequest(
            region=REGION, page_size=1000, page_token=token), timeout=20)
        out += [c for c in page.conflicts if c.case_id == case_id]
        token = page.next_page_token
        if not token:
            return out


def call_error(fn):
    """(status code, SyncErrorDetail or None) of a refused call; (OK, response)
    when it was accepted."""
    try:
        return grpc.StatusCode.OK, fn()
    except grpc.RpcError as e:
        return e.code(), fd.error_detail(e)


def reason_name(detail):
    return sync_pb2.SyncErrorReason.Name(detail.reason) if detail is not None else "no detail"


# --- 1. two offline edits of one field by one device ---------------------------


def same_device_two_edits(work):
    dep = Deployment(work, "s1")
    try:
        a, sup = dep.device(), dep.supervisor()
        for mode in ("one batch", "two consecutive batches"):
            case_id = str(uuid.uuid4())
            r0 = push(a, [new_case(a, case_id)])
            base = field(r0.results[0], "given_name").version
            check("s1 %s: case created, given_name version %d" % (mode, base),
                  r0.results[0].outcome == APPLIED and base == r0.results[0].log_position,
                  r0.results[0])
            e1 = upsert(a, case_id, case_id, "case_registration",
                        {"given_name": (text("Edit one"), base)}, r0.results[0].record_version)
            e2 = upsert(a, case_id, case_id, "case_registration",
                        {"given_name": (text("Edit two"), base)}, r0.results[0].record_version)
            if mode == "one batch":
                results = list(push(a, [e1, e2]).results)
            else:
                results = list(push(a, [e1]).results) + list(push(a, [e2]).results)
            check("s1 %s: both edits (same base %d) APPLIED, change and field" % (mode, base),
                  [r.outcome for r in results] == [APPLIED, APPLIED] and
                  [field(r, "given_name").outcome for r in results] == [APPLIED, APPLIED],
                  [(oname(r.outcome), [(f.field, oname(f.outcome), f.version) for f in r.fields])
                   for r in results])
            check("s1 %s: each edit's field version is its own log position" % mode,
                  [field(r, "given_name").version for r in results] ==
                  [r.log_position for r in results],
                  [(field(r, "given_name").version, r.log_position) for r in results])
            listed = conflicts_of(sup, case_id)
            check("s1 %s: ListConflicts lists no conflict for the case" % mode, not listed,
                  listed)
            exists, values, versions = final_state(pull_all(dep.device()), case_id)
            check("s1 %s: pulled final given_name is the second edit, at its position" % mode,
                  exists and values.get("given_name") == text("Edit two").SerializeToString()
                  and versions.get("given_name") == results[1].log_position,
                  (exists, values.get("given_name"), versions.get("given_name")))
    finally:
        dep.close()


# --- 2. pulled versions as bases -------------------------------------------------


def pulled_versions_as_bases(work):
    dep = Deployment(work, "s2")
    try:
        a, b, c, sup = dep.device(), dep.device(), dep.device(), dep.supervisor()
        case_id = str(uuid.uuid4())
        r0 = push(a, [new_case(a, case_id)])
        v_given = field(r0.results[0], "given_name").version
        check("s2: A's new case APPLIED", r0.results[0].outcome == APPLIED, r0.results[0])
        pull_all(c)
        # Offline and concurrently: C first (lower HLCs), then A.
        c_given = upsert(c, case_id, case_id, "case_registration",
                         {"given_name": (text("Same"), c.versions[(case_id, "given_name")])})
        c_family = upsert(c, case_id, case_id, "case_registration",
                          {"family_name": (text("Family C"), 0)})
        time.sleep(0.002)
        a.hlc.observe(c_family.hlc)
        a_edit = upsert(a, case_id, case_id, "case_registration",
                        {"given_name": (text("Same"), v_given),
                         "family_name": (text("Family A"), 0)})
        ra = push(a, [a_edit]).results[0]
        check("s2: A's edit (given_name, family_name) APPLIED",
              ra.outcome == APPLIED and
              [f.outcome for f in ra.fields] == [APPLIED, APPLIED], ra)
        rc = push(c, [c_given, c_family]).results
        check("s2: C's equal given_name CONVERGED, C's earlier different family_name "
              "SUPERSEDED", [r.outcome for r in rc] == [CONVERGED, SUPERSEDED],
              [oname(r.outcome) for r in rc])

        pulled = pull_all(b)
        mine = [p for p in pulled if p.case_id == case_id]
        zero = [(p.position, oname(p.outcome), f.field) for p in mine for f in p.fields
                if f.version == 0]
        check("s2: B's pull has %d entries of the case, every PulledField.version non-zero"
              % len(mine), len(mine) == 4 and not zero, zero or [p.position for p in mine])
        by_id = {p.change_id: p for p in mine}
        conv, sup_entry = by_id.get(c_given.change_id), by_id.get(c_family.change_id)
        check("s2: the pull holds C's CONVERGED and SUPERSEDED entries",
              conv is not None and conv.outcome == CONVERGED and
              sup_entry is not None and sup_entry.outcome == SUPERSEDED,
              [(p.position, oname(p.outcome)) for p in mine])
        if conv is not None:
            # MERGE.md §2: the version is the position of the latest write of
            # the current value: C's converged write is that latest write.
            check("s2: CONVERGED entry's given_name version is its own position (latest "
                  "write of the current value, MERGE.md §2)",
                  conv.fields[0].version == conv.position,
                  (conv.fields[0].version, conv.position, ra.log_position))
        if sup_entry is not None:
            check("s2: SUPERSEDED entry's family_name version is A's write (the value kept)",
                  sup_entry.fields[0].version == ra.log_position,
                  (sup_entry.fields[0].version, ra.log_position))
        check("s2: CONVERGED/SUPERSEDED entries carry record_version = their position",
              all(p.record_version == p.position for p in (conv, sup_entry) if p is not None),
              [(p.position, p.record_version) for p in (conv, sup_entry) if p is not None])
        before = conflicts_of(sup, case_id)
        check("s2: before B's edit: one conflict, family_name, current 'Family A', "
              "losing ['Family C']",
              len(before) == 1 and before[0].field == "family_name" and
              before[0].current_value == text("Family A") and
              [lv.value for lv in before[0].losing_values] == [text("Family C")],
              [(x.field, show(x.current_value), [show(lv.value) for lv in x.losing_values])
               for x in before])

        # B edits with the pulled versions (B.versions holds the last pulled
        # version per field).
        vb = {f: b.versions[(case_id, f)] for f in ("given_name", "registration_date",
                                                    "family_name")}
        b1 = upsert(b, case_id, case_id, "case_registration",
                    {"given_name": (text("Bee"), vb["given_name"]),
                     "registration_date": (date(2026, 11, 3), vb["registration_date"])})
        b2 = upsert(b, case_id, case_id, "case_registration",
                    {"family_name": (text("Family B"), vb["family_name"])})
        rb = push(b, [b1, b2]).results
        check("s2: B's edit of given_name (base %d from the CONVERGED entry) and "
              "registration_date (base %d from the create) APPLIED"
              % (vb["given_name"], vb["registration_date"]),
              rb[0].outcome == APPLIED and [f.outcome for f in rb[0].fields] == [APPLIED, APPLIED],
              rb[0])
        # MERGE.md §2 rule 1: B's write sees A's value (its base names A's
        # write) and removes it; C's losing value stays ("a device's edit never
        # closes a conflict for a supervisor"). records.proto CONFLICT: "this
        # write's value becomes the field's value over a concurrent value it
        # did not see, which is kept in the field's conflict".
        check("s2: B's family_name edit (base %d from the SUPERSEDED entry) becomes current; "
              "outcome CONFLICT (C's losing value still stands)" % vb["family_name"],
              rb[1].outcome == CONFLICT and field(rb[1], "family_name").version ==
              rb[1].log_position, rb[1])
        after = conflicts_of(sup, case_id)
        check("s2: after B's edit: still one conflict (family_name), current 'Family B', "
              "losing exactly ['Family C'] (A's value was seen by B's base)",
              len(after) == 1 and after[0].field == "family_name" and
              after[0].current_value == text("Family B") and
              [lv.value for lv in after[0].losing_values] == [text("Family C")],
              [(x.field, show(x.current_value), [show(lv.value) for lv in x.losing_values])
               for x in after])
    finally:
        dep.close()


# --- 3. DELETE against a concurrent write, both orders ---------------------------


def delete_vs_write(work, order):
    """One deployment; `order` is "A then B" or "B then A". Returns the final
    state of the follow-up as pulled by a third device C."""
    dep = Deployment(work, "s3-" + order.replace(" ", "-"))
    tag = "s3 (%s)" % order
    try:
        a, b, c, sup = dep.device(), dep.device(), dep.device(), dep.supervisor()
        case_id, fu = str(uuid.uuid4()), str(uuid.uuid4())
        ra = push(a, [new_case(a, case_id),
                      upsert(a, case_id, fu, "follow_up",
                             {"follow_up_date": (date(2026, 12, 1), 0),
                              "notes": (text("first visit"), 0)})]).results
        check("%s: A's case and follow-up APPLIED" % tag,
              [r.outcome for r in ra] == [APPLIED, APPLIED], ra)
        fu_version = ra[1].record_version
        b_record = max(p.record_version for p in
                       (x for x in pull_all(b) if x.record_id == fu))
        # Offline: A deletes the follow-up, B records a visit on it.
        a_del = delete(a, case_id, fu, "follow_up", fu_version)
        time.sleep(0.002)
        b.hlc.observe(a_del.hlc)
        b_write = upsert(b, case_id, fu, "follow_up",
                         {"notes": (text("visit recorded by B"), b.versions[(fu, "notes")])},
                         b_record)
        if order == "A then B":
            rd = push(a, [a_del]).results[0]
            rw = push(b, [b_write]).results[0]
            check("%s: A's DELETE (base %d) APPLIED: it deletes the record" % (tag, fu_version),
                  rd.outcome == APPLIED, rd)
            check("%s: B's write revives the record (revived, outcome CONFLICT)" % tag,
                  rw.revived and rw.outcome == CONFLICT, rw)
        else:
            rw = push(b, [b_write]).results[0]
            rd = push(a, [a_del]).results[0]
            check("%s: B's write APPLIED, not revived" % tag,
                  rw.outcome == APPLIED and not rw.revived, rw)
            check("%s: A's DELETE (base %d) SUPERSEDED: a write it did not see keeps the "
                  "record" % (tag, fu_version), rd.outcome == SUPERSEDED, rd)
        listed = [x for x in conflicts_of(sup, case_id) if x.record_id == fu]
        check("%s: one record-level conflict listed: field '', losing_was_delete, one "
              "losing entry whose only write is A's DELETE" % tag,
              len(listed) == 1 and listed[0].field == "" and listed[0].losing_was_delete and
              len(listed[0].losing_values) == 1 and
              not listed[0].losing_values[0].HasField("value") and
              [(w.writer, w.position) for w in listed[0].losing_values[0].writes] ==
              [(a.device_id, rd.log_position)],
              listed)
        # MERGE.md §4: A's own write without having seen the record since its
        # DELETE (RecordChange.base_version 0) is refused, whatever else arrived.
        again = upsert(a, case_id, fu, "follow_up",
                       {"notes": (text("A writes again"), a.versions.get((fu, "notes"), 0))}, 0)
        rr = push(a, [again]).results[0]
        check("%s: A's write to the record it deleted (base_version 0) REJECTED "
              "RECORD_DELETED" % tag,
              rr.outcome == REJECTED and rr.reject_reason == R.REJECT_REASON_RECORD_DELETED,
              rr)
        state = final_state(pull_all(c), fu)
        exists, values, _ = state
        check("%s: C pulls the follow-up: it exists, follow_up_date kept, notes = B's visit"
              % tag, exists is True and values == {
                  "follow_up_date": date(2026, 12, 1).SerializeToString(),
                  "notes": text("visit recorded by B").SerializeToString()},
              state)
        return exists, values
    finally:
        dep.close()


# --- 4. stale keep-current resolution ----------------------------------------------


def stale_resolution(work):
    dep = Deployment(work, "s4")
    try:
        a, b, c, d, sup = (dep.device(), dep.device(), dep.device(), dep.device(),
                           dep.supervisor())
        case_id = str(uuid.uuid4())
        r0 = push(a, [new_case(a, case_id)]).results[0]
        base = field(r0, "given_name").version
        for x in (b, c, d):
            pull_all(x)
        # Offline, concurrently, all from the created value: C first (lowest
        # HLC), then A, then B; D last (highest HLC).
        writes = {}
        for name, dev in (("C", c), ("A", a), ("B", b), ("D", d)):
            for other in (a, b, c, d):
                dev.hlc.observe(other.hlc.now())
            writes[name] = upsert(dev, case_id, case_id, "case_registration",
                                  {"given_name": (text("Value " + name), base)})
            time.sleep(0.002)
        ra = push(a, [writes["A"]]).results[0]
        rb = push(b, [writes["B"]]).results[0]
        check("s4: A APPLIED, B's concurrent different value CONFLICT",
              (ra.outcome, rb.outcome) == (APPLIED, CONFLICT), (ra, rb))
        first = conflicts_of(sup, case_id)
        check("s4: one conflict, current 'Value B', losing ['Value A'], version = B's "
              "position", len(first) == 1 and first[0].field == "given_name" and
              first[0].current_value == text("Value B") and
              [lv.value for lv in first[0].losing_values] == [text("Value A")] and
              first[0].version == rb.log_position, first)
        if len(first) != 1:
            return
        old = first[0]
        # A third concurrent write that only adds a losing value.
        rc = push(c, [writes["C"]]).results[0]
        check("s4: C's concurrent earlier value SUPERSEDED", rc.outcome == SUPERSEDED, rc)
        second = conflicts_of(sup, case_id)
        check("s4: after C: still ONE conflict, same id, losing ['Value A', 'Value C'] "
              "(greatest write first), version = C's position",
              len(second) == 1 and second[0].id == old.id and
              [lv.value for lv in second[0].losing_values] == [text("Value A"), text("Value C")]
              and second[0].version == rc.log_position and second[0].version != old.version,
              second)

        def resolve(conflict_id, version, **choice):
            return call_error(lambda: sup.ResolveConflict(sync_pb2.ResolveConflictRequest(
                id=conflict_id, base_version=version, **choice), timeout=20))

        code, detail = resolve(old.id, old.version, keep_current=True)
        check("s4: keep_current with the old version %d after C: ABORTED STALE_BASE, "
              "current_version %d (fresh Conflict.version)" % (old.version, second[0].version),
              code == grpc.StatusCode.ABORTED and detail is not None and
              detail.reason == sync_pb2.SYNC_ERROR_REASON_STALE_BASE and
              detail.current_version == second[0].version,
              (code, reason_name(detail), detail))
        # A fourth concurrent write that is the new winner.
        rd = push(d, [writes["D"]]).results[0]
        check("s4: D's concurrent later value CONFLICT (new current)", rd.outcome == CONFLICT,
              rd)
        third = conflicts_of(sup, case_id)
        check("s4: three losing values are ONE conflict: current 'Value D', losing "
              "['Value B', 'Value A', 'Value C'], version = D's position",
              len(third) == 1 and third[0].id == old.id and
              third[0].current_value == text("Value D") and
              [lv.value for lv in third[0].losing_values] ==
              [text("Value B"), text("Value A"), text("Value C")] and
              [[w.position for w in lv.writes] for lv in third[0].losing_values] ==
              [[rb.log_position], [ra.log_position], [rc.log_position]] and
              third[0].version == rd.log_position and third[0].current_version == rd.log_position,
              third)
        if len(third) != 1:
            return
        fresh = third[0]
        code, detail = resolve(old.id, second[0].version, keep_current=True)
        check("s4: keep_current with the version listed before D: ABORTED STALE_BASE, "
              "current_version = %d" % fresh.version,
              code == grpc.StatusCode.ABORTED and detail is not None and
              detail.reason == sync_pb2.SYNC_ERROR_REASON_STALE_BASE and
              detail.current_version == fresh.version, (code, reason_name(detail), detail))
        code, detail = resolve(fresh.id, 0, keep_current=True)
        check("s4: keep_current with base_version 0: INVALID_ARGUMENT",
              code == grpc.StatusCode.INVALID_ARGUMENT, (code, reason_name(detail), detail))
        check("s4: the refused calls left the conflict as it was",
              conflicts_of(sup, case_id) == [fresh])
        code, resolved = resolve(fresh.id, fresh.version, keep_current=True)
        check("s4: keep_current with the fresh version %d: OK" % fresh.version,
              code == grpc.StatusCode.OK and resolved.result.log_position > fresh.version,
              (code, resolved))
        left = conflicts_of(sup, case_id)
        check("s4: no conflict listed for the case after the resolution", not left, left)
        exists, values, versions = final_state(pull_all(dep.device()), case_id)
        check("s4: pulled given_name is still 'Value D' at D's version (keep current)",
              values.get("given_name") == text("Value D").SerializeToString() and
              versions.get("given_name") == rd.log_position,
              (values.get("given_name"), versions.get("given_name"), rd.log_position))
        code, detail = resolve(fresh.id, fresh.version, keep_current=True)
        check("s4: resolving again: FAILED_PRECONDITION ALREADY_RESOLVED",
              code == grpc.StatusCode.FAILED_PRECONDITION and detail is not None and
              detail.reason == sync_pb2.SYNC_ERROR_REASON_ALREADY_RESOLVED,
              (code, reason_name(detail), detail))
    finally:
        dep.close()


def main():
    work = tempfile.mkdtemp(prefix="fieldsync-merge-")
    started = time.monotonic()
    scenarios = [
        ("1 two offline edits of one field", lambda: same_device_two_edits(work)),
        ("2 pulled versions as bases", lambda: pulled_versions_as_bases(work)),
        ("3 delete vs concurrent write", lambda: both_orders(work)),
        ("4 stale keep-current resolution", lambda: stale_resolution(work)),
    ]
    try:
        for name, run in scenarios:
            t = time.monotonic()
            try:
                run()
            except Exception:  # noqa: BLE001 - report, count, go on
                traceback.print_exc()
                check("scenario %s: no unexpected exception" % name, False)
            print("--   scenario %s: %.1f s" % (name, time.monotonic() - t))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("total %.1f s" % (time.monotonic() - started))
    print("%d passed, %d failed" % (it.passed, it.failed))
    return 1 if it.failed else 0


def both_orders(work):
    first = delete_vs_write(work, "A then B")
    second = delete_vs_write(work, "B then A")
    check("s3: the final state of the follow-up is the same in both arrival orders",
          first == second, (first, second))


if __name__ == "__main__":
    sys.exit(main())
