"""The members' Ethernet ports: the addresses the group IP redirects initiators to.

Rules of this module (research/next-capabilities.md 3: "127.0.0.x aliases, no setup, no root"):

1. Every member, from the moment it joins the group, has ``PORTS_PER_MEMBER`` ports, eth0 and up,
   each with an address of its own in 127.0.0.0/8 (every such address reaches this host's loopback
   interface on Linux, with no set-up): the lowest free ones from 127.0.0.11, never the group IP.
   The addresses are kept in the catalog (``member_ports``) and stay the member's until it leaves.
2. A port is up or down; only the simulator takes one down (``simulate member select M eth N
   down``: the cable pulled). Down, it is not listened on and its connections are dropped.
3. Pure catalog work: which ports are listened on, and who is redirected where, is the front end's
   business (``targets.portal``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from .errors import InvalidRequest

__all__ = ["Port", "PORTS_PER_MEMBER", "assign_ports", "ports", "set_port_up"]

#: Ports each member has (a PS4100 controller has two 1GbE iSCSI ports).
PORTS_PER_MEMBER = 2
#: Rule 1: member ports take 127.0.0.11 and up.
FIRST_HOST = 11


@dataclass(frozen=True)
class Port:
    member_id: int
    member: str
    #: 0 for eth0.
    eth: int
    address: str
    up: bool


def assign_ports(db: sqlite3.Connection, member_id: int, group_ip: str) -> None:
    """Give a new member its ports (rule 1), inside the transaction that adds it."""
    taken = {address for (address,) in db.execute("SELECT address FROM member_ports")} | {group_ip}
    free = (f"127.0.0.{n}" for n in range(FIRST_HOST, 255) if f"127.0.0.{n}" not in taken)
    for eth in range(PORTS_PER_MEMBER):
        address = next(free, None)
        if address is None:
            raise InvalidRequest("No loopback address is left for the new member's ports.")
        db.execute("INSERT INTO member_ports (member_id, eth, address, up) VALUES (?, ?, ?, 1)", (member_id, eth, address))


def ports(db: sqlite3.Connection, member_id: int | None = None) -> list[Port]:
    """Every port of the group (or of one member), by member and eth."""
    rows = db.execute(
        "SELECT p.member_id, m.name, p.eth, p.address, p.up FROM member_ports p JOIN members m ON m.id = p.member_id"
        + (" WHERE p.member_id = ?" if member_id is not None else "")
        + " ORDER BY p.member_id, p.eth",
        (member_id,) if member_id is not None else (),
    )
    return [Port(mid, name, eth, address, bool(up)) for mid, name, eth, address, up in rows]


def set_port_up(db: sqlite3.Connection, member_id: int, member: str, eth: int, up: bool) -> None:
    """Rule 2."""
    row = db.execute("SELECT up FROM member_ports WHERE member_id = ? AND eth = ?", (member_id, eth)).fetchone()
    if row is None:
        raise InvalidRequest(f"Invalid port eth{eth}; member {member} has eth0 to eth{PORTS_PER_MEMBER - 1}.")
    if bool(row[0]) == up:
        raise InvalidRequest(f"Port eth{eth} of member {member} is already {'up' if up else 'down'}.")
    db.execute("UPDATE member_ports SET up = ? WHERE member_id = ? AND eth = ?", (int(up), member_id, eth))
