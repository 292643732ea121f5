"""Who may log in to a volume or snapshot: the access records' rules, in one place for every front end.

research/ps-cli.md 2.4: a volume's access records are its "basic access points". Rules of this module
(pure functions over ``AccessRecord`` lists; the caller decides where the records come from):

1. A record applies to the volume, its snapshots or both (``apply_to``).
2. A record matches an initiator when every criterion it names matches: the initiator name (case
   does not matter, RFC 3722 names are compared case-folded; empty or ``*`` is any name), the IP
   address (``*`` octets are wildcards), and, once the initiator has authenticated, the CHAP user.
3. Records are alternatives: a matching record without CHAP admits the initiator at once
   (``Admission.OPEN``); if only records requiring CHAP match, it must authenticate
   (``Admission.CHAP``) as a user one of them names (or any local CHAP user when the record names
   none); no matching record admits nobody (``Admission.DENIED``). A volume with no record admits
   nobody.
4. With multi-host access disabled (the default), a second initiator is refused while another is
   logged in; the same initiator may log in again (a second session, or a reinstatement).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from enum import Enum

from .records import AccessRecord

__all__ = ["Admission", "admission", "admits_another", "applies", "chap_user_allowed", "needs_chap", "summary"]


class Admission(Enum):
    """What the access records say of an initiator before authentication (rule 3)."""

    OPEN = "open"
    CHAP = "chap"
    DENIED = "denied"


def applies(record: AccessRecord, snapshot: bool) -> bool:
    """Rule 1: the record covers a snapshot's target (``snapshot``) or the volume's."""
    return record.apply_to == "both" or record.apply_to == ("snapshot" if snapshot else "volume")


def needs_chap(record: AccessRecord) -> bool:
    return record.auth_method == "chap" or bool(record.chap_user)


def _matching(records: Iterable[AccessRecord], snapshot: bool, initiator: str, ip: str) -> list[AccessRecord]:
    """Rule 2 before authentication: the records whose initiator and address criteria match."""
    return [
        r
        for r in records
        if applies(r, snapshot)
        and (r.initiator in ("", "*") or r.initiator.lower() == initiator.lower())
        and (not r.ipaddress or fnmatch.fnmatchcase(ip, r.ipaddress))
    ]


def admission(records: Iterable[AccessRecord], snapshot: bool, initiator: str, ip: str) -> Admission:
    """Rule 3."""
    matching = _matching(records, snapshot, initiator, ip)
    if any(not needs_chap(r) for r in matching):
        return Admission.OPEN
    return Admission.CHAP if matching else Admission.DENIED


def chap_user_allowed(records: Iterable[AccessRecord], snapshot: bool, initiator: str, ip: str, user: str) -> bool:
    """Rule 3 after CHAP: a matching record admits ``user``."""
    return any(
        not needs_chap(r) or not r.chap_user or r.chap_user == user for r in _matching(records, snapshot, initiator, ip)
    )


def admits_another(multihost: bool, logged_in: Sequence[str], initiator: str) -> bool:
    """Rule 4: whether ``initiator`` may log in while ``logged_in`` initiators are."""
    return multihost or all(name.lower() == initiator.lower() for name in logged_in)


def summary(records: Iterable[AccessRecord], snapshot: bool) -> str:
    """What the records admit, in a line (the log of a refused login)."""
    allowed = []
    for record in records:
        if not applies(record, snapshot):
            continue
        criteria = [
            f"initiator {record.initiator}" if record.initiator else "",
            f"ipaddress {record.ipaddress}" if record.ipaddress else "",
            f"chap user {record.chap_user}" if record.chap_user else "",
        ]
        allowed.append(f"record {record.number}: " + (", ".join(c for c in criteria if c) or "anyone"))
    return "; ".join(allowed) or "it has no access record"
