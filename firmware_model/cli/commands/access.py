"""``volume select <v> access ...``: access records (create, delete, show, select).

The ``access show`` table is what the Cinder driver parses to find an
initiator's record (research/ps-cli.md 1.6): columns 3/29/15/10/10/8, and a
long initiator wraps onto one continuation line indented two spaces.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from array_sim import AccessRecord, Volume
from array_sim.access_admin import APPLY_TO

from ..formatting import key_values, table
from ..words import CliError, Words
from .options import whole_number_argument

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["access", "access_table"]

_COLUMNS = [
    ("ID", 3), ("Initiator", 29), ("Ipaddress", 15), ("AuthMethod", 10), ("UserName", 10), ("Apply-To", 8),
]  # fmt: skip


def access_table(records: list[AccessRecord]) -> list[str]:
    rows = [(str(r.number), r.initiator, r.ipaddress, r.auth_method, r.chap_user, r.apply_to) for r in records]
    return table(_COLUMNS, rows)


def access(session: Session, words: Words, vol: Volume) -> list[str]:
    group = session.group
    action = words.keyword(["create", "delete", "select", "show"])
    if action == "show":
        words.end()
        return access_table(group.access_records(vol.name))
    if action == "create":
        return _create(session, words, vol)
    number = _record_number(words)
    record = _find(session, vol, number)
    if action == "delete":
        words.end()
        return session.confirm(
            f"Do you really want to delete the access control record {number}?",
            lambda: _delete(session, vol, number),
        )
    words.keyword(["show"])
    words.end()
    pairs = [
        ("ID", str(record.number)),
        ("Initiator", record.initiator),
        ("Ipaddress", record.ipaddress),
        ("AuthMethod", record.auth_method),
        ("UserName", record.chap_user),
        ("Apply-To", record.apply_to),
    ]
    return key_values(pairs, session.setting("formatoutput"))


def _delete(session: Session, vol: Volume, number: int) -> list[str]:
    session.group.delete_access(vol.name, number)
    return []


def _record_number(words: Words) -> int:
    return whole_number_argument(words, "access record ID")


def _find(session: Session, vol: Volume, number: int) -> AccessRecord:
    for record in session.group.access_records(vol.name):
        if record.number == number:
            return record
    raise CliError(f"Access record {number} does not exist.")


def _create(session: Session, words: Words, vol: Volume) -> list[str]:
    fields = {"initiator": "", "ipaddress": "", "chap_user": "", "auth_method": "none", "apply_to": "both"}
    while not words.at_end():
        key = words.keyword(["initiator", "ipaddress", "username", "authmethod", "apply-to"], "option")
        if key == "initiator":
            fields["initiator"] = words.take("initiator name")  # "*": any initiator
        elif key == "ipaddress":
            fields["ipaddress"] = words.take("IP address")
        elif key == "username":
            fields["chap_user"] = words.take("CHAP user name")
        elif key == "authmethod":
            fields["auth_method"] = words.keyword(["chap", "none"], "authentication method")
        else:
            fields["apply_to"] = words.keyword(APPLY_TO, "apply-to value")
    if not any(fields[k] for k in ("initiator", "ipaddress", "chap_user")) and fields["auth_method"] == "none":
        raise CliError("An access record needs an initiator, an IP address or a CHAP user name.")
    if fields["auth_method"] == "chap" and not (fields["initiator"] or fields["ipaddress"] or fields["chap_user"]):
        fields["ipaddress"] = "*.*.*.*"
    record = session.group.create_access(vol.name, **fields)
    return [f"Access control record created with ID {record.number}."]
