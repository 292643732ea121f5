"""Volume operations of the group: create, clone, resize, rename, settings, delete.

PS Series rules enforced here (research/ps-cli.md 2.4): a volume must be
offline to be deleted or shrunk; growing takes a snapshot first unless told
``no-snap``; the snapshot reserve of a volume with snapshots cannot drop to 0%
or below what they use; a clone is a full, independent volume in the source's pool
(sharing pages underneath until either side writes); every request is refused
whole, with nothing changed, when the pool lacks the space for its reserves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import AlreadyExists, InvalidRequest, NoSpace, NotFound
from .naming import check_text, target_iqn
from .records import SNAP_DEPLETION_POLICIES, Snapshot, Volume, insert_row, update_row
from .space import percent_of
from .units import PAGE_SIZE, format_size, pages_for

if TYPE_CHECKING:
    from datetime import datetime

    from .catalog import Catalog
    from .pages import PageTables
    from .space import SpaceAccounting
    from .spreads import Spreads

__all__ = ["VolumeAdmin", "VOLUME_SETTINGS", "VOLUME_DEFAULTS", "THIN_MAXIMUM"]

#: ``Volume.offline_reason`` when a write met the thin maximum in-use space.
THIN_MAXIMUM = "thin-max-grow-met"

#: Group-wide defaults for new volumes, as a new PS Series group has them.
VOLUME_DEFAULTS: dict[str, Any] = {
    "snap_reserve": 100,
    "snap_warn": 10,
    "snap_depletion": "delete-oldest",
    "thin_min_reserve": 10,
    "thin_warn": 60,
    "thin_max": 100,
}

#: How errors name each setting.
SETTING_NAMES = {
    "description": "description",
    "alias": "iSCSI alias",
    "multihost": "multi-host access",
    "snap_reserve": "snapshot reserve",
    "snap_warn": "snapshot reserve warning limit",
    "snap_depletion": "snapshot depletion policy",
    "thin_min_reserve": "thin minimum reserve",
    "thin_warn": "thin in-use warning limit",
    "thin_max": "thin maximum in-use space",
}

#: Settings ``configure_volume`` accepts, with their allowed values (text: the limits of ``naming.TEXT_LIMITS``).
VOLUME_SETTINGS: dict[str, Any] = {
    "description": str,
    "alias": str,
    "multihost": bool,
    "snap_reserve": range(0, 10001),
    "snap_warn": range(0, 101),
    "snap_depletion": SNAP_DEPLETION_POLICIES,
    "thin_min_reserve": range(0, 101),
    "thin_warn": range(1, 101),
    "thin_max": range(1, 101),
}


class VolumeAdmin:
    """Volume operations; mixed into ``Group``, whose state they use."""

    if TYPE_CHECKING:
        catalog: Catalog
        tables: PageTables
        space: SpaceAccounting
        volumes: dict[int, Volume]
        snapshots: dict[int, Snapshot]
        pools: dict[int, str]
        group_id: int
        spreads: Spreads

        def clock(self) -> datetime: ...
        def pool_id(self, name: str) -> int: ...
        def pool_free(self, pool_id: int) -> int: ...
        def log_event(self, level: str, message: str) -> None: ...
        def create_snapshot(self, volume: str, name: str | None = None, description: str = "") -> Snapshot: ...
        def _delete_snapshot(self, snapshot: Snapshot) -> None: ...
        def held_offline(self, map_id: int) -> bool: ...
        def _load_moves(self) -> None: ...
        def move_of_volume(self, volume_id: int) -> object | None: ...

    # ----------------------------------------------------------------- lookups

    def volume(self, name: str) -> Volume:
        for volume in self.volumes.values():
            if volume.name == name:
                return volume
        raise NotFound(f"Volume {name} does not exist.")

    def volume_list(self) -> list[Volume]:
        return sorted(self.volumes.values(), key=lambda v: v.name)

    def snapshots_of(self, volume: Volume) -> list[Snapshot]:
        """The volume's snapshots, oldest first."""
        return sorted((s for s in self.snapshots.values() if s.volume_id == volume.id), key=lambda s: s.id)

    def _check_new_name(self, name: str) -> None:
        check_text("volume_name", name)
        if any(v.name == name for v in self.volumes.values()):
            raise AlreadyExists(f"Volume {name} already exists.")

    # ---------------------------------------------------------------- creation

    def create_volume(
        self,
        name: str,
        size: int,
        pool: str = "default",
        thin: bool = False,
        description: str = "",
        online: bool = True,
        read_only: bool = False,
        **settings: Any,
    ) -> Volume:
        """Create a volume of ``size`` bytes (rounded up to whole 15 MiB pages)."""
        return self._new_volume(name, size, self.pool_id(pool), thin, description, online, read_only, None, settings)

    def clone_volume(
        self,
        source: str,
        name: str,
        snapshot: str | None = None,
        description: str = "",
        online: bool = True,
        read_only: bool = False,
        thin: bool | None = None,
        **settings: Any,
    ) -> Volume:
        """Clone a volume, or one of its snapshots, into a new volume of the same size: thin if the source
        is (research/ps-cli.md 2.4) or if ``thin``; ``settings`` as ``create_volume`` takes them."""
        volume = self.volume(source)
        origin: Volume | Snapshot = volume
        if snapshot is not None:
            origin = self._find_snapshot(volume, snapshot)
        if self.held_offline(origin.map_id):
            raise InvalidRequest(f"{origin.name} cannot be cloned: its data is on a member that is offline.")
        if self.move_of_volume(volume.id) is not None:
            raise InvalidRequest(f"Volume {source} is moving to another pool; clone it once the move is complete.")
        return self._new_volume(
            name, origin.size_bytes, volume.pool_id, volume.thin or bool(thin), description, online, read_only, origin,
            settings,
        )  # fmt: skip

    def _new_volume(
        self,
        name: str,
        size: int,
        pool_id: int,
        thin: bool,
        description: str,
        online: bool,
        read_only: bool,
        origin: Volume | Snapshot | None,
        settings: dict[str, Any],
    ) -> Volume:
        self._check_new_name(name)
        check_text("description", description)
        if size <= 0:
            raise InvalidRequest("The volume size must be greater than zero.")
        pages = pages_for(size)
        defaults = self.volume_defaults()
        volume = Volume(
            id=0, name=name, pool_id=pool_id, map_id=0, size_bytes=size, pages=pages, thin=thin,
            thin_min_reserve=defaults["thin_min_reserve"], thin_warn=defaults["thin_warn"],
            thin_max=defaults["thin_max"], reserve_pages=pages,
            snap_reserve=defaults["snap_reserve"], snap_warn=defaults["snap_warn"],
            snap_depletion=defaults["snap_depletion"],
            description=description, alias=name, online=online, offline_reason="", read_only=read_only, multihost=False,
            iqn="", snap_counter=0, created=self.clock().isoformat(timespec="seconds"),
        )  # fmt: skip
        self._validate_settings(settings, {**vars(volume), **settings})
        for key, value in settings.items():
            setattr(volume, key, value)
        used = len(self.tables.table(origin.map_id)) if origin is not None else 0
        if thin:
            volume.reserve_pages = max(self.space.thin_min_reserve(volume), used)
        needed = self.space.volume_reserve(volume) + self.space.snapshot_reserve(volume)
        if needed > self.pool_free(pool_id):
            raise NoSpace(f"Not enough free space in pool {self.pools[pool_id]} for volume {name}.")
        with self.catalog.transaction() as db:
            volume.serial = self.catalog.next_id("next_serial")
            volume.iqn = target_iqn(self.group_id, volume.serial, name)
            volume.map_id = self.tables.new_map()
            insert_row(db, volume)
            self.spreads.start(volume.id, pool_id)
            if origin is not None:
                self.tables.copy_map(origin.map_id, volume.map_id, pages)
        self.volumes[volume.id] = volume
        return volume

    # ---------------------------------------------------------------- settings

    def volume_defaults(self) -> dict[str, Any]:
        """The group's defaults for new volumes (``grpparams def-...``)."""
        defaults: dict[str, Any] = dict(VOLUME_DEFAULTS)
        for key, value in defaults.items():
            stored = self.catalog.param(f"def_{key}")
            if stored is not None:
                defaults[key] = stored if isinstance(value, str) else int(stored)
        return defaults

    def set_volume_default(self, key: str, value: Any) -> None:
        if key not in VOLUME_DEFAULTS:
            raise InvalidRequest(f"Unknown volume default '{key}'.")
        self._validate_settings({key: value}, self.volume_defaults())
        self.catalog.set_param(f"def_{key}", str(value))

    @staticmethod
    def _validate_settings(settings: dict[str, Any], current: Volume | dict[str, Any] | None = None) -> None:
        """Check values against ``VOLUME_SETTINGS``, and the in-use limits against each other."""
        for key, value in settings.items():
            allowed = VOLUME_SETTINGS.get(key)
            if allowed is None:
                raise InvalidRequest(f"Unknown volume setting '{key}'.")
            name = SETTING_NAMES[key]
            if isinstance(allowed, type):
                if not isinstance(value, allowed):
                    raise InvalidRequest(f"Invalid value for the {name}.")
                if allowed is str:
                    check_text(key, value)
            elif value not in allowed:
                raise InvalidRequest(f"Invalid value '{value}' for the {name}.")
        if current is not None:
            merged = dict(vars(current)) if isinstance(current, Volume) else dict(current)
            merged.update(settings)
            if merged["thin_max"] < merged["thin_warn"]:
                raise InvalidRequest("The maximum in-use space must not be below the in-use warning limit.")

    def configure_volume(self, name: str, **settings: Any) -> None:
        """Change settings (see ``VOLUME_SETTINGS``); a reserve change must fit the pool."""
        volume = self.volume(name)
        self._validate_settings(settings, volume)
        old = {key: getattr(volume, key) for key in (*settings, "reserve_pages")}
        for key, value in settings.items():
            setattr(volume, key, value)
        if volume.thin and "thin_min_reserve" in settings:
            volume.reserve_pages = max(volume.reserve_pages, self.space.thin_min_reserve(volume))
            settings["reserve_pages"] = volume.reserve_pages
        if self.pool_free(volume.pool_id) < 0:
            for key, value in old.items():
                setattr(volume, key, value)
            raise NoSpace(f"Not enough free space in pool {self.pools[volume.pool_id]} for that reserve.")
        with self.catalog.transaction() as db:
            update_row(db, volume, **settings)
        self._recheck_thin_limit(volume)

    def check_snapshot_reserve(self, name: str, percent: int) -> None:
        """Refuse a snapshot reserve below what the volume's snapshots use, or 0% while any exist.

        The Group Manager refuses a reserve smaller than the space snapshots use
        (a rule of the array; research/ps-cli.md 2.4 documents the reserve
        itself, not this refusal). The CLI asks this before ``configure_volume``,
        which the engine's own callers may still use to empty the reserve.
        """
        volume = self.volume(name)
        snapshots = self.snapshots_of(volume)
        if not snapshots:
            return
        if percent == 0:
            raise InvalidRequest(
                f"Volume {volume.name} has {len(snapshots)} snapshot(s); its snapshot reserve cannot be 0%. "
                "Delete the snapshots first."
            )
        held = self.space.snapshot_in_use(volume, snapshots)
        if percent_of(percent, self.space.volume_reserve(volume)) < held:
            raise InvalidRequest(
                f"The snapshot reserve of volume {volume.name} cannot be smaller than the "
                f"{format_size(held * PAGE_SIZE)} its snapshots use."
            )

    def rename_volume(self, name: str, new_name: str) -> None:
        """Rename; the iSCSI target name stays what it was at creation, as on the array."""
        volume = self.volume(name)
        self._check_new_name(new_name)
        with self.catalog.transaction() as db:
            update_row(db, volume, name=new_name)

    def set_volume_online(self, name: str, online: bool) -> None:
        """Set a volume online or offline; one held offline by a member that is off-line stays offline
        until the member is back (``member_states`` rule 2)."""
        volume = self.volume(name)
        if online and self.held_offline(volume.map_id):
            raise InvalidRequest(f"Volume {name} cannot be set online: its data is on a member that is offline.")
        with self.catalog.transaction() as db:
            update_row(db, volume, online=online, offline_reason="")

    def _recheck_thin_limit(self, volume: Volume) -> None:
        """Back online once the in-use space is within a raised maximum (or a larger size)."""
        limit = volume.pages if volume.thin_max >= 100 else percent_of(volume.thin_max, volume.pages)
        if volume.offline_reason == THIN_MAXIMUM and self.space.in_use(volume) <= limit:
            with self.catalog.transaction() as db:
                update_row(db, volume, online=True, offline_reason="")
            self.log_event("INFO", f"Volume {volume.name} is back online: its in-use space is within its maximum.")

    def set_volume_read_only(self, name: str, read_only: bool) -> None:
        volume = self.volume(name)
        with self.catalog.transaction() as db:
            update_row(db, volume, read_only=read_only)

    def set_thin(self, name: str, thin: bool) -> None:
        """Convert between thin and thick provisioning (thick needs the full reserve free)."""
        volume = self.volume(name)
        if volume.thin == thin:
            return
        old_reserve = volume.reserve_pages
        volume.thin = thin
        volume.reserve_pages = max(self.space.thin_min_reserve(volume), self.space.in_use(volume))
        if self.pool_free(volume.pool_id) < 0:
            volume.thin, volume.reserve_pages = not thin, old_reserve
            raise NoSpace(f"Not enough free space in pool {self.pools[volume.pool_id]} to make {name} thick.")
        with self.catalog.transaction() as db:
            update_row(db, volume, thin=thin, reserve_pages=volume.reserve_pages)

    # ------------------------------------------------------------ size, delete

    def resize_volume(self, name: str, size: int, snapshot: bool = True) -> Snapshot | None:
        """Grow (online; a snapshot first unless ``snapshot`` is False) or shrink (offline only)."""
        volume = self.volume(name)
        if size <= 0:
            raise InvalidRequest("The volume size must be greater than zero.")
        pages = pages_for(size)
        if pages < volume.pages and volume.online:
            raise InvalidRequest(f"Volume {name} must be offline to be shrunk.")
        old = (volume.size_bytes, volume.pages, volume.reserve_pages)
        volume.size_bytes, volume.pages = size, pages
        kept = sum(1 for index in self.tables.table(volume.map_id) if index < pages)
        reserve = (
            max(self.space.thin_min_reserve(volume), min(max(volume.reserve_pages, kept), pages))
            if volume.thin
            else pages
        )
        volume.reserve_pages = reserve
        short = self.pool_free(volume.pool_id) < 0
        volume.size_bytes, volume.pages, volume.reserve_pages = old
        if short:
            raise NoSpace(f"Not enough free space in pool {self.pools[volume.pool_id]} to resize {name}.")
        taken = self.create_snapshot(name) if snapshot and volume.snap_reserve > 0 else None
        with self.catalog.transaction() as db:
            update_row(db, volume, size_bytes=size, pages=pages, reserve_pages=reserve)
            self.tables.truncate(volume.map_id, pages)
        self.space.forget(volume)
        self._recheck_thin_limit(volume)
        return taken

    def check_delete_volume(self, name: str) -> Volume:
        """The volume, if ``delete_volume`` would accept it (for asking before acting)."""
        volume = self.volume(name)
        if volume.online:
            raise InvalidRequest(f"Volume {name} must be offline before it can be deleted.")
        return volume

    def delete_volume(self, name: str) -> None:
        """Delete an offline volume with its snapshots and access records."""
        volume = self.check_delete_volume(name)
        with self.catalog.transaction() as db:
            for snapshot in self.snapshots_of(volume):
                self._delete_snapshot(snapshot)
            db.execute("DELETE FROM access_records WHERE volume_id = ?", (volume.id,))
            db.execute("DELETE FROM moves WHERE volume_id = ?", (volume.id,))
            self.spreads.forget(volume.id)
            db.execute("DELETE FROM volumes WHERE id = ?", (volume.id,))
            self.tables.drop_map(volume.map_id)
        del self.volumes[volume.id]
        self.space.forget(volume)
        self._load_moves()  # a move of the volume ended with it

    def _find_snapshot(self, volume: Volume, name: str) -> Snapshot:
        for snapshot in self.snapshots_of(volume):
            if snapshot.name == name:
                return snapshot
        raise NotFound(f"Snapshot {name} does not exist.")
