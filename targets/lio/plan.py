"""What LIO must hold for the group: one export per online volume and snapshot, as pure data.

``plan`` turns what the group serves (the same inventory the embedded target uses) into
``Export`` records; ``targets.lio.gateway`` applies them to the kernel with rtslib-fb. Keeping the
plan pure means every rule below is tested without a kernel.

Rules of this module (research/lio.md 1 and 2; research/next-capabilities.md 4.1):

1. Every export is named by the object's serial: storage object ``asim-<serial>`` (the prefix
   marks what array-sim made: nothing else in LIO is ever touched), handler config
   ``arraysim/<serial>`` (rtslib wants a ``/`` after the handler subtype and no ``:``), and WWN the
   unit serial of ``Group.unit_identity``, so the object has the same identity as under the
   embedded target.
2. Access records become LIO node ACLs where LIO can say the same thing: a record naming an
   initiator is an ACL for that name, with the CHAP account the record names (a record that takes
   any local CHAP account gets the first enabled one) and the group's target credentials as mutual
   CHAP. A record for any initiator turns on demo mode (``generate_node_acls``), with the CHAP
   account it names as the TPG's.
3. What LIO cannot express is said, in the export's ``warnings`` (the server logs them): LIO
   checks no initiator address, so a record's IP address criterion is ignored (an address-only
   record admits any initiator); LIO's authentication switch is per target, so CHAP is enforced
   only when every record of the target requires it. The multi-host rule cannot be kept either
   (LIO admits several initiators at once); the README says so.
4. A read-only object (a snapshot, a read-only volume) is mapped write-protected to every ACL and
   in demo mode; the handler answers WRITE PROTECTED too (lio.md rule 5).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from array_sim import AccessRecord, ChapUser, access_policy
from array_sim.naming import UnitIdentity

__all__ = ["Acl", "Export", "STORAGE_PREFIX", "HANDLER", "plan_export"]

#: Rule 1: the storage objects array-sim makes, and the TCMU handler subtype it serves.
STORAGE_PREFIX = "asim-"
HANDLER = "arraysim"


@dataclass(frozen=True)
class Acl:
    """A node ACL: an initiator name, its CHAP account (user, secret) and the mutual one, if any."""

    initiator: str
    chap: tuple[str, str] | None = None
    mutual: tuple[str, str] | None = None


@dataclass(frozen=True)
class Export:
    """One LIO target: storage object, target IQN, TPG 1 with the portal, LUN 0, its ACLs."""

    iqn: str
    storage_object: str
    config: str
    size: int
    wwn: str
    write_protect: bool
    acls: tuple[Acl, ...]
    #: Demo mode: any initiator name is admitted (rule 2).
    any_initiator: bool
    #: CHAP account for initiators admitted by demo mode.
    demo_chap: tuple[str, str] | None
    #: TPG attribute ``authentication``: CHAP required (rule 3).
    authentication: bool
    warnings: tuple[str, ...] = ()


def plan_export(
    iqn: str,
    identity: UnitIdentity,
    size: int,
    read_only: bool,
    records: Iterable[AccessRecord],
    snapshot: bool,
    chap_users: Iterable[ChapUser],
    credentials: tuple[str, str] | None,
) -> Export:
    """The export of one online volume or snapshot (rules 1 to 4)."""
    records = [r for r in records if access_policy.applies(r, snapshot)]
    secrets = {u.name: u.password for u in chap_users if u.enabled}
    warnings: list[str] = []

    def account(record: AccessRecord) -> tuple[str, str] | None:
        if not access_policy.needs_chap(record):
            return None
        if record.chap_user:
            if record.chap_user not in secrets:
                warnings.append(f"record {record.number}: CHAP user {record.chap_user} is not a local account")
                return None
            return record.chap_user, secrets[record.chap_user]
        if not secrets:
            return None
        first = sorted(secrets)[0]
        warnings.append(f"record {record.number}: LIO takes one CHAP account per initiator; {first} is used")
        return first, secrets[first]

    acls: dict[str, Acl] = {}
    any_initiator = False
    demo_chap: tuple[str, str] | None = None
    for record in records:
        if record.ipaddress and record.ipaddress != "*.*.*.*":
            warnings.append(f"record {record.number}: LIO cannot check the address {record.ipaddress}; ignored")
        if record.initiator in ("", "*"):
            any_initiator = True
            demo_chap = demo_chap or account(record)
        elif record.initiator.lower() not in acls:
            chap = account(record)
            acls[record.initiator.lower()] = Acl(record.initiator, chap, credentials if chap else None)
    authentication = bool(records) and all(access_policy.needs_chap(r) for r in records)
    if records and not authentication and any(access_policy.needs_chap(r) for r in records):
        warnings.append("CHAP is not enforced: LIO requires it for all initiators of a target or for none")
    return Export(
        iqn=iqn,
        storage_object=f"{STORAGE_PREFIX}{identity.serial}",
        config=f"{HANDLER}/{identity.serial}",
        size=size,
        wwn=identity.serial,
        write_protect=read_only,
        acls=tuple(acls.values()),
        any_initiator=any_initiator,
        demo_chap=demo_chap,
        authentication=authentication,
        warnings=tuple(dict.fromkeys(warnings)),
    )
