"""``targets.lio.plan``: access records and identity as LIO exports (its rules 1 to 4), no kernel needed."""

from __future__ import annotations

from array_sim.naming import unit_identity
from array_sim.records import AccessRecord, ChapUser
from targets.lio.plan import Acl, plan_export

IQN = "iqn.2001-05.com.equallogic:0-8a0906-000000abc-0000000000000007-vol1"
IDENTITY = unit_identity(0xABC, 7)
USERS = [ChapUser("alice", "alicesecret12", True), ChapUser("bob", "bobsecret1234", True)]
HOST = "iqn.1993-08.org.debian:01:host1"


def record(number: int = 1, initiator: str = "", ipaddress: str = "", chap_user: str = "", apply_to: str = "both",
           auth_method: str = "none") -> AccessRecord:  # fmt: skip
    return AccessRecord(0, 1, number, initiator, ipaddress, auth_method, chap_user, apply_to)


def plan(*records: AccessRecord, snapshot: bool = False, read_only: bool = False, credentials=None):  # noqa: ANN001, ANN201
    return plan_export(IQN, IDENTITY, 1 << 30, read_only, records, snapshot, USERS, credentials)


def test_the_export_is_named_by_the_serial_and_keeps_the_identity() -> None:
    export = plan(record(initiator=HOST))
    assert export.storage_object == "asim-000000abc0000000000000007"
    assert export.config == "arraysim/000000abc0000000000000007" and ":" not in export.config
    assert export.wwn == IDENTITY.serial and export.size == 1 << 30 and export.iqn == IQN


def test_named_initiators_become_acls_with_their_chap_and_mutual_chap() -> None:
    export = plan(record(initiator=HOST, chap_user="alice"), record(2, initiator=HOST.upper()),
                  credentials=("target", "targetsecret1"))  # fmt: skip
    assert export.acls == (Acl(HOST, ("alice", "alicesecret12"), ("target", "targetsecret1")),)  # one per name
    assert not export.any_initiator and not export.authentication  # record 2 needs no CHAP
    assert "CHAP is not enforced" in " ".join(export.warnings)


def test_records_for_anyone_turn_on_demo_mode() -> None:
    export = plan(record(ipaddress="*.*.*.*"))
    assert export.any_initiator and export.acls == () and not export.authentication and not export.warnings
    chap = plan(record(chap_user="bob"))
    assert chap.any_initiator and chap.demo_chap == ("bob", "bobsecret1234") and chap.authentication


def test_what_lio_cannot_express_is_warned() -> None:
    export = plan(record(ipaddress="10.0.0.*"), record(2, auth_method="chap", initiator=HOST))
    assert export.any_initiator  # an address-only record admits any initiator under LIO
    assert any("cannot check the address 10.0.0.*" in w for w in export.warnings)
    assert any("one CHAP account per initiator; alice" in w for w in export.warnings)
    assert any("ghost is not a local account" in w for w in plan(record(chap_user="ghost")).warnings)


def test_records_apply_to_the_volume_or_its_snapshots_and_snapshots_are_write_protected() -> None:
    records = (record(initiator=HOST, apply_to="volume"), record(2, initiator="iqn.backup", apply_to="snapshot"))
    assert [a.initiator for a in plan(*records).acls] == [HOST]
    snap = plan(*records, snapshot=True, read_only=True)
    assert [a.initiator for a in snap.acls] == ["iqn.backup"] and snap.write_protect
    assert plan().acls == () and not plan().any_initiator  # no record: nobody
