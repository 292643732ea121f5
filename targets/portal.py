"""The group seen from the iSCSI portal: which targets exist, who may log in, who is logged in.

Every online volume, and every online snapshot, is a target named with its
PS IQN and one LUN 0. ``refresh()`` brings the targets in line with the
group after any change (a volume created or set online appears at once; one
set offline or deleted loses its sessions and disappears from discovery).

Access control follows the volume's access records by the rules of
``array_sim.access_policy`` (shared with every front end), and a logical
unit's serial and NAA come from ``Group.unit_identity``, so an object has
the same identity whichever front end serves it.

Login redirection (RFC 7143 11.13.5; research/next-capabilities.md 3): the group IP answers a
normal session's login with "target moved temporarily" and the ``TargetAddress`` of a member port
(``array_sim.member_ports``), chosen as the array's network load balancer does: among the
listened ports of the members holding the target's data, the one with the fewest sessions, then
the member holding the most of it. Discovery sessions are answered at the group IP, and
SendTargets there lists the group IP as every target's address, as the array does; at a member
port it lists that port. With ``redirecting`` off (``serve --no-redirect``) every session stays
on the address the initiator connected to.

A target's home members are the members its sessions belong on: those of its volume's spread that
hold its data and are not being vacated (else any member holding its data; with no data, its spread
but for members being vacated). A
login at a member port of a member that is not home is redirected too, and when data moves (a
vacate starts, a volume moves to another pool) a session left on a member that is no longer home
is asked to log out and in again (``misplaced``; the server sends Async Message event 1), so it
comes back through the group IP to a home member, as the array does when a volume's lead moves
(research/next-capabilities.md 3, libiscsi#140).

Threads (``targets.engine_owner``): ``inventory()`` reads the group and
creates and updates the logical units, so it runs on the engine owner;
``apply()`` updates the targets and drops connections, so it runs on the
event loop. Login and discovery run on the loop and read only what the last
``apply()`` stored (targets, access records, CHAP accounts, target
credentials): lists replaced whole, never the group, so they never race the
worker. What touches a logical unit (``nexus_gone``) goes through
``engine_call``: at once when one thread does everything (the tests), or
submitted to the owner. ``connections()`` is asked by the CLI on the worker;
it copies one list of the loop's, and a snapshot a moment old is a fine
answer to ``show connections``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from array_sim import AccessRecord, ChapUser, Group, Snapshot, Volume, access_policy
from array_sim.member_ports import Port

from .iscsi.login import Access
from .scsi import LogicalUnit, ScsiTarget

if TYPE_CHECKING:
    from .iscsi.connection import Connection

__all__ = ["GroupPortal", "Inventory", "TargetEntry"]

log = logging.getLogger("array_sim.portal")


@dataclass
class TargetEntry:
    """One target: a volume or a snapshot, its logical unit, and its logged-in connections."""

    volume: Volume
    snapshot: Snapshot | None
    unit: LogicalUnit
    scsi: ScsiTarget
    connections: list[Connection] = field(default_factory=list)

    @property
    def iqn(self) -> str:
        return (self.snapshot or self.volume).iqn

    @property
    def alias(self) -> str:
        return self.snapshot.name if self.snapshot else self.volume.alias


@dataclass(frozen=True)
class Inventory:
    """What the group serves, read on the engine owner and applied on the loop (header)."""

    #: IQN -> (volume, snapshot or None, its logical unit), for every online volume and snapshot.
    targets: dict[str, tuple[Volume, Snapshot | None, LogicalUnit]]
    #: Volume name -> its access records.
    records: dict[str, list[AccessRecord]]
    chap_users: list[ChapUser]
    #: (user, secret) the target answers mutual CHAP with, None if not set.
    credentials: tuple[str, str] | None
    #: Member ports initiators can reach (up, on a powered-on member).
    ports: list[Port] = field(default_factory=list)
    #: IQN -> {member id: pages of the target's own on it} (its spread's members with 0 if it has none).
    holders: dict[str, dict[int, int]] = field(default_factory=dict)
    #: IQN -> the members its sessions belong on (header).
    homes: dict[str, frozenset[int]] = field(default_factory=dict)
    #: Every member port's address, listened on or not (a port of a member that left is not here).
    addresses: frozenset[str] = frozenset()
    #: Where initiators reach the group IP now (``grpparams group-ipaddress``); None: unchanged.
    group_ip: str | None = None


class GroupPortal:
    """The group behind one portal address (the group IP)."""

    def __init__(
        self,
        group: Group,
        address: str,
        tpgt: int = 1,
        redirecting: bool = True,
        public: Callable[[str], str] | None = None,
    ) -> None:
        self.group = group
        self.address = address
        self.host, _, port = address.rpartition(":")
        self.port = int(port) if port.isdigit() else 3260
        self.tpgt = tpgt
        #: Logins at the group IP are redirected to member ports (header).
        self.redirecting = redirecting
        #: Member port addresses the server listens on now (set by the server).
        self.listening: set[str] = set()
        #: Where initiators reach a catalog address (``targets.port_network`` rule 1): every
        #: address the portal keeps, compares and sends is one of these.
        self.public: Callable[[str], str] = public or (lambda address: address)
        self.targets: dict[str, TargetEntry] = {}
        #: How work on a logical unit is run: at once, or submitted to the engine owner (header).
        self.engine_call: Callable[[Callable[[], object]], object] = lambda call: call()
        self._units: dict[tuple[str, int], LogicalUnit] = {}
        #: (blocks, thin) as last reported: a change is a CAPACITY DATA HAS CHANGED unit attention.
        self._shapes: dict[tuple[str, int], tuple[int, bool]] = {}
        self._inventory = Inventory({}, {}, [], None)
        self._next_tsih = 0
        self.refresh()

    # ------------------------------------------------------------ targets

    def refresh(self) -> None:
        """Match targets to the group, in one thread (``inventory`` then ``apply``)."""
        self.apply(self.inventory())

    def inventory(self) -> Inventory:
        """Read what the group serves and bring the logical units in line (on the engine owner)."""
        wanted: dict[str, tuple[Volume, Snapshot | None, LogicalUnit]] = {}
        for volume in self.group.volumes.values():
            served = [snapshot for snapshot in self.group.snapshots_of(volume) if snapshot.online]
            for snapshot in ([None] if volume.online else []) + served:
                wanted[(snapshot or volume).iqn] = (volume, snapshot, self._unit(volume, snapshot))
        live = {("snapshot", s.id) if s else ("volume", v.id) for v, s, _ in wanted.values()}
        for key in [key for key in self._units if key not in live]:
            del self._units[key]
            del self._shapes[key]
        records = {volume.name: self.group.access_records(volume.name) for volume in self.group.volumes.values()}
        holders = {iqn: self._holders(v, s) for iqn, (v, s, _) in wanted.items()}
        return Inventory(
            wanted, records, self.group.chap_users(), self.group.target_credentials(),
            [replace(port, address=self.public(port.address)) for port in self.group.ports_listened()], holders,
            {iqn: self._homes(v, holders[iqn]) for iqn, (v, _, _) in wanted.items()},
            frozenset(self.public(port.address) for port in self.group.member_ports()),
            self.public(self.group.group_ip),
        )  # fmt: skip

    def _holders(self, volume: Volume, snapshot: Snapshot | None) -> dict[int, int]:
        tables = self.group.tables
        held = Counter(tables.phys[pid].address[0] for pid in tables.table((snapshot or volume).map_id).values())
        return dict(held) or dict.fromkeys(self.group.spreads.of(volume.id).members, 0)

    def _homes(self, volume: Volume, holders: dict[int, int]) -> frozenset[int]:
        """The members a target's sessions belong on (header), first choice that is not empty."""
        members = self.group.placement.members
        leaving = {m for m, member in members.items() if member.vacating}
        held = {m for m, pages in holders.items() if pages}
        spread = set(self.group.spreads.of(volume.id).members)
        choices = (held & spread - leaving, held - leaving, held, spread - leaving, spread)
        return frozenset(next((c for c in choices if c), set()))

    def move_group_ip(self, host: str) -> None:
        """The group IP is ``host`` from now on: SendTargets and redirects name it (on the loop)."""
        self.host = host
        self.address = f"{host}:{self.port}"

    def member_hosts(self) -> set[str]:
        """The member port addresses to listen on."""
        return {port.address for port in self._inventory.ports}

    def port_addresses(self) -> set[str]:
        """Every member port's address, up or down."""
        return set(self._inventory.addresses)

    def port_address(self, catalog_address: str) -> str:
        """Where initiators reach the member port the catalog names ``catalog_address`` (the CLI)."""
        return self.public(catalog_address)

    def member_left(self, address: str) -> bool:
        """The member port at ``address`` went because its member left the group (not a cable pulled)."""
        return address not in self._inventory.addresses

    def redirect(self, target: str, local_ip: str) -> str | None:
        """Where a login for ``target`` at ``local_ip`` goes instead (header), or None to serve it here:
        a login at the group IP, or at a port of a member that is not one of the target's homes."""
        if not self.redirecting:
            return None
        homes = self._inventory.homes.get(target, frozenset())
        if local_ip != self.host:
            member = next((p.member_id for p in self._inventory.ports if p.address == local_ip), None)
            if member is None or member in homes:
                return None
        pages = self._inventory.holders.get(target, {})
        ports = [p for p in self._inventory.ports if p.member_id in homes and p.address in self.listening]
        if not ports:
            return None
        load = Counter(c.local_ip for entry in self.targets.values() for c in entry.connections)
        best = min(ports, key=lambda p: (load[p.address], -pages[p.member_id], p.member_id, p.eth))
        return f"{best.address}:{self.port},{self.tpgt}"

    def misplaced(self) -> list[tuple[Connection, str]]:
        """Sessions on a port of a member that is no longer one of their target's homes, with a
        home port to go to (header); each with the member's name, for the log."""
        names = {p.address: p.member for p in self._inventory.ports}
        return [
            (c, names.get(c.local_ip, c.local_ip))
            for iqn, entry in self.targets.items()
            for c in entry.connections
            if c.local_ip != self.host and self.redirect(iqn, c.local_ip) is not None
        ]

    def port_sessions(self, address: str) -> int:
        """Sessions logged in through the member port the catalog names ``address`` (``member select M
        show``)."""
        public = self.public(address)
        return sum(1 for entry in self.targets.values() for c in entry.connections if c.local_ip == public)

    def apply(self, inventory: Inventory) -> None:
        """Targets as ``inventory`` says (on the loop); a target that went away drops its connections."""
        self._inventory = inventory
        for iqn in list(self.targets):
            entry = self.targets[iqn]
            if iqn not in inventory.targets:
                for connection in entry.connections:
                    connection.drop(f"target {iqn} went offline")
                del self.targets[iqn]
                log.info("target %s is no longer served", iqn)
        for iqn, (volume, snapshot, unit) in inventory.targets.items():
            entry = self.targets.get(iqn)
            if entry is None or entry.unit is not unit:
                self.targets[iqn] = TargetEntry(volume, snapshot, unit, ScsiTarget({0: unit}))
                log.info("target %s is served", iqn)
            else:
                entry.volume, entry.snapshot = volume, snapshot

    def _unit(self, volume: Volume, snapshot: Snapshot | None) -> LogicalUnit:
        key = ("snapshot", snapshot.id) if snapshot else ("volume", volume.id)
        unit = self._units.get(key)
        if unit is None:
            device = self.group.device(volume.name, snapshot.name if snapshot else None)
            identity = self.group.unit_identity(snapshot or volume)
            unit = LogicalUnit(device, serial=identity.serial, naa=identity.naa, target_name=(snapshot or volume).iqn)
            self._units[key] = unit
        shape = (unit.device.num_blocks, unit.device.thin)
        if self._shapes.setdefault(key, shape) != shape:
            # READ CAPACITY changes with the size, and LBPME with thin provisioning.
            self._shapes[key] = shape
            unit.capacity_changed()
        return unit

    # ------------------------------------------------- Host (login) interface

    def target_alias(self, target: str) -> str | None:
        entry = self.targets.get(target)
        return entry.alias if entry else None

    def _policy(self, target: str) -> tuple[list[AccessRecord], bool] | None:
        """The target's access records and whether it is a snapshot's, for ``array_sim.access_policy``."""
        entry = self.targets.get(target)
        if entry is None:
            return None
        return self._inventory.records.get(entry.volume.name, []), entry.snapshot is not None

    def access(self, target: str, initiator: str, ip: str) -> Access:
        policy = self._policy(target)
        return Access.DENIED if policy is None else Access(access_policy.admission(*policy, initiator, ip).value)

    def access_summary(self, target: str) -> str:
        """What the target's access records admit, for the log line of a refused login."""
        policy = self._policy(target)
        return "no such target" if policy is None else access_policy.summary(*policy)

    def chap_access(self, target: str, initiator: str, ip: str, user: str) -> bool:
        policy = self._policy(target)
        return policy is not None and access_policy.chap_user_allowed(*policy, initiator, ip, user)

    def admits(self, target: str, initiator: str) -> bool:
        entry = self.targets.get(target)
        if entry is None:
            return True
        logged_in = [c.session.initiator for c in entry.connections if c.session is not None]
        return access_policy.admits_another(entry.volume.multihost, logged_in, initiator)

    def chap_secret(self, user: str) -> str | None:
        for account in self._inventory.chap_users:
            if account.name == user and account.enabled:
                return account.password
        return None

    def target_credentials(self) -> tuple[str, str] | None:
        return self._inventory.credentials

    # ------------------------------------------------ Host (session) interface

    def new_tsih(self) -> int:
        self._next_tsih = self._next_tsih % 0xFFFF + 1
        return self._next_tsih

    def scsi_target(self, name: str) -> ScsiTarget | None:
        entry = self.targets.get(name)
        return entry.scsi if entry else None

    def send_targets(
        self, initiator: str, ip: str, scope: str, current: str | None, local_ip: str = ""
    ) -> list[tuple[str, str]]:
        """SendTargets (RFC 7143 section 12.3): All, one named target, or (empty) the current one; the
        address listed is the group IP's, or the member port's the initiator asked at (header)."""
        names = sorted(self.targets) if scope == "All" else [scope or current or ""]
        address = f"{local_ip}:{self.port}" if local_ip in self.member_hosts() else self.address
        return [
            (name, f"{address},{self.tpgt}")
            for name in names
            if name in self.targets and self.access(name, initiator, ip) is not Access.DENIED
        ]

    def session_started(self, connection: Connection) -> None:
        """Register a new session; an older one from the same initiator port is reinstated (RFC 7143 6.3.5)."""
        session = connection.session
        assert session is not None
        log.info(
            "login: %s (%s) to %s at %s", session.initiator, connection.peer_ip,
            session.target or "discovery session", connection.local_ip or self.host,
        )  # fmt: skip
        if session.target is None:
            return
        entry = self.targets[session.target]
        replaced = [
            c
            for c in entry.connections
            if c.session is not None and c.nexus == connection.nexus and c is not connection
        ]
        for old in replaced:
            entry.connections.remove(old)
            old.drop("session reinstated by a new login", warn_initiator=False)
        entry.connections.append(connection)

    def session_ended(self, connection: Connection) -> None:
        session = connection.session
        if session is None or session.target is None:
            return
        entry = self.targets.get(session.target)
        if entry is not None and connection in entry.connections:
            entry.connections.remove(connection)
        nexus = connection.nexus
        if entry is not None and nexus is not None:
            unit = entry.unit
            self.engine_call(lambda: unit.nexus_gone(nexus))

    def connections(self, volume: Volume, snapshot: Snapshot | None = None) -> list[tuple[str, str]]:
        """(initiator address, initiator name) of each session on the volume's or snapshot's target."""
        entry = self.targets.get((snapshot or volume).iqn)
        if entry is None:
            return []
        return [(c.peer_ip, c.session.initiator) for c in entry.connections if c.session is not None]
