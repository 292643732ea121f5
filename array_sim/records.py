"""The group's objects as plain records, one per catalog row.

The field names are the catalog's column names, so a record loads from and
saves to its row without a mapping table.
"""

from __future__ import annotations

import sqlite3
from dataclasses import astuple, dataclass, fields
from typing import Any, TypeVar

__all__ = [
    "Volume",
    "Snapshot",
    "AccessRecord",
    "ChapUser",
    "SNAP_DEPLETION_POLICIES",
    "load_rows",
    "insert_row",
    "update_row",
]

#: Snapshot-reserve depletion policies (PS Series admin guide: "Delete the oldest
#: snapshots", "Set the volume (and snapshots) offline", "Borrow snapshot space").
SNAP_DEPLETION_POLICIES = ("delete-oldest", "volume-offline", "borrow")


@dataclass
class Volume:
    id: int
    name: str
    pool_id: int
    map_id: int
    size_bytes: int
    pages: int
    thin: bool
    thin_min_reserve: int
    thin_warn: int
    thin_max: int
    #: Volume reserve in pages: all pages when thick; grows with use when thin.
    reserve_pages: int
    snap_reserve: int
    snap_warn: int
    snap_depletion: str
    description: str
    #: The iSCSI alias (TargetAlias) initiators see; the volume name by default.
    alias: str
    online: bool
    #: Why the group itself set the volume offline ("" if it did not): it comes back
    #: online by itself when the cause goes (research/ps-cli.md 2.4, thin provisioning).
    offline_reason: str
    read_only: bool
    multihost: bool
    iqn: str
    snap_counter: int
    created: str
    #: The serial the IQN was made with (``naming.unit_identity``).
    serial: int = 0


@dataclass
class Snapshot:
    id: int
    volume_id: int
    name: str
    map_id: int
    size_bytes: int
    pages: int
    created: str
    online: bool
    read_only: bool
    description: str
    iqn: str
    #: "member-offline" while the group holds it offline because a member with its data is off-line.
    offline_reason: str = ""
    #: The serial the IQN was made with (``naming.unit_identity``).
    serial: int = 0


@dataclass
class AccessRecord:
    id: int
    volume_id: int
    #: The ID shown by ``access show`` (1, 2, ... per volume).
    number: int
    initiator: str
    ipaddress: str
    auth_method: str
    chap_user: str
    apply_to: str


@dataclass
class ChapUser:
    name: str
    password: str
    enabled: bool


_TABLES = {Volume: "volumes", Snapshot: "snapshots", AccessRecord: "access_records", ChapUser: "chap_users"}
R = TypeVar("R", Volume, Snapshot, AccessRecord, ChapUser)


def _convert(kind: type[R], row: tuple[Any, ...]) -> R:
    values = [bool(v) if f.type == "bool" else v for f, v in zip(fields(kind), row, strict=True)]
    return kind(*values)


def load_rows(db: sqlite3.Connection, kind: type[R]) -> list[R]:
    columns = ", ".join(f.name for f in fields(kind))
    return [_convert(kind, row) for row in db.execute(f"SELECT {columns} FROM {_TABLES[kind]}")]


def insert_row(db: sqlite3.Connection, record: Volume | Snapshot | AccessRecord | ChapUser) -> None:
    names = [f.name for f in fields(record)]
    values = astuple(record)
    if names[0] == "id" and not record.id:  # type: ignore[union-attr]
        names, values = names[1:], values[1:]
    table = _TABLES[type(record)]
    cursor = db.execute(
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", values
    )
    if names[0] != "id" and hasattr(record, "id"):
        record.id = int(cursor.lastrowid or 0)  # type: ignore[union-attr]


def update_row(db: sqlite3.Connection, record: Volume | Snapshot | AccessRecord, **changes: Any) -> None:
    """Set fields on the record and its row together."""
    table = _TABLES[type(record)]
    assignments = ", ".join(f"{name} = ?" for name in changes)
    db.execute(f"UPDATE {table} SET {assignments} WHERE id = ?", (*changes.values(), record.id))
    for name, value in changes.items():
        setattr(record, name, value)
