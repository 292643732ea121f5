"""``array_sim.access_policy``: the access records' rules every front end follows (its rules 1-4)."""

from __future__ import annotations

import pytest

from array_sim.access_policy import Admission, admission, admits_another, chap_user_allowed, summary
from array_sim.records import AccessRecord


def record(number: int = 1, initiator: str = "", ipaddress: str = "", chap_user: str = "", apply_to: str = "both",
           auth_method: str = "none") -> AccessRecord:  # fmt: skip
    return AccessRecord(0, 1, number, initiator, ipaddress, auth_method, chap_user, apply_to)


HOST = "iqn.1993-08.org.debian:01:host1"


@pytest.mark.parametrize(
    ("records", "snapshot", "initiator", "ip", "expected"),
    [
        ([], False, HOST, "10.0.0.1", Admission.DENIED),  # no record admits nobody
        ([record(initiator=HOST)], False, HOST.upper(), "10.0.0.1", Admission.OPEN),  # names compared case-folded
        ([record(initiator=HOST)], False, "iqn.other", "10.0.0.1", Admission.DENIED),
        ([record(initiator="*")], False, "iqn.other", "10.0.0.1", Admission.OPEN),
        ([record(ipaddress="10.0.*.*")], False, "iqn.any", "10.0.7.9", Admission.OPEN),
        ([record(ipaddress="10.0.*.*")], False, "iqn.any", "10.1.7.9", Admission.DENIED),
        ([record(initiator=HOST, ipaddress="10.0.0.1")], False, HOST, "10.0.0.2", Admission.DENIED),  # every criterion
        ([record(chap_user="alice")], False, "iqn.any", "10.0.0.1", Admission.CHAP),
        ([record(chap_user="alice"), record(2, initiator=HOST)], False, HOST, "1.2.3.4", Admission.OPEN),  # either
        ([record(apply_to="snapshot")], False, HOST, "1.2.3.4", Admission.DENIED),  # rule 1
        ([record(apply_to="snapshot")], True, HOST, "1.2.3.4", Admission.OPEN),
        ([record(apply_to="volume")], True, HOST, "1.2.3.4", Admission.DENIED),
    ],
)
def test_admission(records, snapshot, initiator, ip, expected) -> None:  # noqa: ANN001
    assert admission(records, snapshot, initiator, ip) is expected


def test_chap_user_must_be_one_a_matching_record_names() -> None:
    records = [record(chap_user="alice"), record(2, auth_method="chap", initiator=HOST)]
    assert chap_user_allowed(records, False, "iqn.any", "1.2.3.4", "alice")
    assert not chap_user_allowed(records, False, "iqn.any", "1.2.3.4", "bob")
    assert chap_user_allowed(records, False, HOST, "1.2.3.4", "bob")  # record 2 names no user: any local one


def test_a_second_initiator_needs_multihost() -> None:
    assert admits_another(False, [], HOST)
    assert admits_another(False, [HOST.upper()], HOST)  # the same initiator again
    assert not admits_another(False, [HOST], "iqn.other")
    assert admits_another(True, [HOST], "iqn.other")


def test_summary_names_what_each_record_admits() -> None:
    records = [record(initiator=HOST, chap_user="alice"), record(2), record(3, apply_to="snapshot")]
    assert summary(records, False) == f"record 1: initiator {HOST}, chap user alice; record 2: anyone"
    assert summary([], False) == "it has no access record"
