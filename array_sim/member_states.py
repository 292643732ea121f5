"""Members that go off-line and come back, and what that does to the volumes with data on them.

Rules of this module (research/next-capabilities.md 1.3 and 2: "member offline => every volume and
snapshot with data on it offline"):

1. A member is off-line while the simulator has it powered off (``simulate member select M power
   off``) or when its RAID has failed (more disks lost than its policy tolerates). An off-line
   member takes no new pages and its capacity leaves its pool's figures.
2. When a member goes off-line, every online volume and snapshot with a page on it (its own pages,
   or pages it reads through to) is set offline with ``offline_reason = member-offline``, and only
   those. While it lasts nothing with data on it can be set online, snapshot, cloned or restored
   (``held_offline``), whoever set it offline.
3. When a member comes back (powered on), every volume and snapshot held offline for that reason
   whose pages are all on on-line members comes back online. A member whose RAID failed never
   comes back, so its volumes stay offline: their data is lost.
4. A member's Ethernet ports (``member_ports``) go down and up with ``set_member_port``; a
   powered-off member's ports are down too while it is off (``ports_listened``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import InvalidRequest
from .member_admin import MEMBER_OFFLINE
from .member_ports import Port, ports, set_port_up
from .page_mover import PageMove
from .records import Snapshot, Volume, update_row

if TYPE_CHECKING:
    from .catalog import Catalog
    from .member_admin import MemberAdmin
    from .pages import PageTables
    from .pool import Placement

__all__ = ["MemberStates"]


class MemberStates:
    """The member-state half of ``Group`` (a mixin on the group's state)."""

    catalog: Catalog
    placement: Placement
    tables: PageTables
    member_admin: MemberAdmin
    volumes: dict[int, Volume]
    snapshots: dict[int, Snapshot]

    if TYPE_CHECKING:

        def snapshots_of(self, volume: Volume) -> list[Snapshot]: ...
        def log_event(self, level: str, message: str, member: str = "") -> None: ...

    def maps_on(self, member_ids: set[int]) -> set[int]:
        """Page tables with a page (or a page they read through to) on one of ``member_ids``."""
        found: set[int] = set()
        phys = self.tables.phys
        for map_id, table in self.tables.maps.items():
            for pid in table.values():
                page = phys[pid]
                while True:
                    if page.address[0] in member_ids:
                        found.add(map_id)
                        break
                    if page.backing is None:
                        break
                    page = phys[page.backing]
                if map_id in found:
                    break
        return found

    def offline_members(self) -> set[int]:
        return {m.id for m in self.placement.members.values() if not m.online}

    def _member_offline(self, member_id: int) -> None:
        """Rule 2, for a member whose RAID failed (``MemberAdmin.check_offline``)."""
        name = self.placement.members[member_id].name
        self.log_event("ERROR", f"Member {name} is offline: it lost more disks than its RAID policy tolerates.", name)
        self._take_offline(member_id)

    def _take_offline(self, member_id: int) -> None:
        name = self.placement.members[member_id].name
        for watcher in list(self.tables.watchers.values()):
            if isinstance(watcher, PageMove) and watcher.dest[0] == member_id:
                watcher.cancel()  # a copy onto it ends; the mover chooses again
        on_member = self.maps_on({member_id})
        with self.catalog.transaction() as db:
            for volume in self.volumes.values():
                snapshots = [s for s in self.snapshots_of(volume) if s.map_id in on_member and s.online]
                if volume.map_id in on_member and volume.online:
                    update_row(db, volume, online=False, offline_reason=MEMBER_OFFLINE)
                    self.log_event("ERROR", f"Volume {volume.name} set offline: its data is on member {name}.", name)
                for snapshot in snapshots:
                    update_row(db, snapshot, online=False, offline_reason=MEMBER_OFFLINE)

    def held_offline(self, map_id: int) -> bool:
        """True while the page table has data on an off-line member (rule 2: it cannot be served)."""
        offline = self.offline_members()
        return bool(offline) and map_id in self.maps_on(offline)

    def power_member(self, name: str, on: bool) -> None:
        """``simulate member select M power on|off`` (rules 1-3)."""
        member_id = self.member_admin.member_id(name)
        member = self.placement.members.get(member_id)
        if member is None:
            raise InvalidRequest(f"Member {name} has no RAID policy yet; it holds no data to take off-line.")
        if member.powered == on:
            raise InvalidRequest(f"Member {name} is already powered {'on' if on else 'off'}.")
        with self.catalog.transaction() as db:
            db.execute("UPDATE members SET powered = ? WHERE id = ?", (int(on), member_id))
            member.powered = on
            if not on:
                self.log_event("ERROR", f"Member {name} is offline: it was powered off.", name)
                self._take_offline(member_id)
                return
            self.log_event("INFO", f"Member {name} is online: it was powered on.", name)
            if member.online:
                self._bring_back()

    def _bring_back(self) -> None:
        """Rule 3: what no off-line member holds any more comes back online."""
        on_offline = self.maps_on(self.offline_members())
        with self.catalog.transaction() as db:
            for volume in self.volumes.values():
                if volume.offline_reason == MEMBER_OFFLINE and volume.map_id not in on_offline:
                    update_row(db, volume, online=True, offline_reason="")
                    self.log_event("INFO", f"Volume {volume.name} is back online: its members are online.")
            for snapshot in self.snapshots.values():
                if snapshot.offline_reason == MEMBER_OFFLINE and snapshot.map_id not in on_offline:
                    update_row(db, snapshot, online=True, offline_reason="")

    def member_ports(self, name: str | None = None) -> list[Port]:
        """Every port of the group, or of member ``name``."""
        return ports(self.catalog.db, self.member_admin.member_id(name) if name is not None else None)

    def ports_listened(self) -> list[Port]:
        """The ports initiators can reach now: up, on a powered-on member (rule 4)."""
        powered = {m.id for m in self.placement.members.values() if not m.powered}
        return [p for p in ports(self.catalog.db) if p.up and p.member_id not in powered]

    def set_member_port(self, name: str, eth: int, up: bool) -> None:
        """``simulate member select M eth N up|down`` (rule 4)."""
        member_id = self.member_admin.member_id(name)
        with self.catalog.transaction() as db:
            set_port_up(db, member_id, name, eth, up)
            state = "up" if up else "down: its connections are dropped"
            self.log_event("INFO" if up else "WARNING", f"Port eth{eth} of member {name} is {state}.", name)
