"""``volume select <v> access ...``: access records (create, delete, show, select).

The ``access show`` table is what the Cinder driver parses to find an
initiator's record (research/ps-cli.md 1.6): columns 3/29/15/10/10/8, and a
long initiator wraps onto one continuation line indented two spaces.
A record named by its ID must exist before anything is asked or done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from array_sim import AccessRecord
from array_sim.access_admin import APPLY_TO

from ..formatting import key_values, table
from ..grammar import Arg, Node, Option, choice_arg
from ..words import CliError
from .options import whole_number

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["NODE", "access_table"]

_COLUMNS = [
    ("ID", 3), ("Initiator", 29), ("Ipaddress", 15), ("AuthMethod", 10), ("UserName", 10), ("Apply-To", 8),
]  # fmt: skip


def access_table(records: list[AccessRecord]) -> list[str]:
    rows = [(str(r.number), r.initiator, r.ipaddress, r.auth_method, r.chap_user, r.apply_to) for r in records]
    return table(_COLUMNS, rows)


def _show(session: Session, args: dict[str, Any]) -> list[str]:
    return access_table(session.group.access_records(args["volume"]))


def _find(session: Session, args: dict[str, Any]) -> AccessRecord:
    number = args["record"]
    for record in session.group.access_records(args["volume"]):
        if record.number == number:
            return record
    raise CliError(f"Access record {number} does not exist.")


def _ask_delete(session: Session, args: dict[str, Any]) -> list[str]:
    volume, number = args["volume"], _find(session, args).number

    def delete() -> list[str]:
        session.group.delete_access(volume, number)
        return []

    return session.confirm(f"Do you really want to delete the access control record {number}?", delete)


def _details(session: Session, args: dict[str, Any]) -> list[str]:
    record = _find(session, args)
    pairs = [
        ("ID", str(record.number)),
        ("Initiator", record.initiator),
        ("Ipaddress", record.ipaddress),
        ("AuthMethod", record.auth_method),
        ("UserName", record.chap_user),
        ("Apply-To", record.apply_to),
    ]
    return key_values(pairs, session.setting("formatoutput"))


def _create(session: Session, args: dict[str, Any]) -> list[str]:
    fields = {"initiator": "", "ipaddress": "", "chap_user": "", "auth_method": "none", "apply_to": "both"}
    fields.update((key, args[key]) for key in fields if key in args)
    if not any(fields[k] for k in ("initiator", "ipaddress", "chap_user")) and fields["auth_method"] == "none":
        raise CliError("An access record needs an initiator, an IP address or a CHAP user name.")
    if fields["auth_method"] == "chap" and not (fields["initiator"] or fields["ipaddress"] or fields["chap_user"]):
        fields["ipaddress"] = "*.*.*.*"
    record = session.group.create_access(args["volume"], **fields)
    return [f"Access control record created with ID {record.number}."]


def _numbers(session: Session, args: dict[str, Any]) -> list[str]:
    return [str(r.number) for r in session.group.access_records(args["volume"])]


_RECORD = Arg("record", "access record ID", whole_number("access record ID"), choices=_numbers)

NODE = Node("access", "its access records: who may log in to it", children=(
    Node("create", "add an access record (the criteria of one record all apply)", options=(
        Option("initiator", "the initiator's iSCSI name (* for any)", "initiator",
               Arg("initiator", "initiator name")),
        Option("ipaddress", "the initiator's address (wildcards: 10.0.0.*, *.*.*.*)", "ipaddress",
               Arg("ipaddress", "IP address")),
        Option("username", "a CHAP user the initiator logs in as", "chap_user", Arg("chap_user", "CHAP user name")),
        Option("authmethod", "chap or none", "auth_method",
               choice_arg("auth_method", "authentication method", ["chap", "none"], "authentication method")),
        Option("apply-to", "the volume, its snapshots, or both (the default)", "apply_to",
               choice_arg("apply_to", "apply-to value", APPLY_TO, "apply-to value")),
    ), run=_create),
    Node("delete", "delete an access record", args=(_RECORD,), run=_ask_delete),
    Node("select", "work on an access record", args=(_RECORD,), children=(
        Node("show", "show it", run=_details),
    )),
    Node("show", "list the access records", run=_show),
))  # fmt: skip
