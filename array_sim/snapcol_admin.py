"""Snapshot collections (the array's ``snapcol``): one snapshot of every volume of a collection.

A snapshot collection is the set of snapshots one request made (Storage Center Administrator's Guide,
PS Series callout 8: "Snapshot collections"); like its collection it lives in the catalog only
(``snapcols``, ``snapcol_snapshots``: ``collection_admin`` rule 1). The CLI syntax is not public
(research/ps-cli.md 2.2, 4.5).

Rules of this module (the snapshot-collection half of ``collection_admin``, whose rules say what a
collection is and what deleting one leaves):

1. Consistency. ``create_snapshot_collection`` takes the snapshot of every member volume inside one
   call of the group and one catalog transaction. In ``serve`` that call runs on the engine owner
   (``targets.engine_owner`` rule 1), the one thread that runs every SCSI command and every CLI
   command, one at a time: no write can run between two of the snapshots, so they are one point in
   the owner's order. A write is acknowledged only after the engine applied it (the iSCSI target
   sends a command's status from ``ScsiTasks._command_done``, once the owner returned its result,
   and a write runs inline on the loop only while it holds the owner's lock; the TCMU front end
   completes the ring entry after ``LogicalUnit.execute`` returned, on the owner too). Hence every
   write acknowledged before the snapshot collection was asked for is in all its snapshots; a write
   sent after it was taken is in none; a write in flight while it was taken (sent before,
   acknowledged after) is in all of them or in none. Writes that depend on one another (the second
   sent after the first was acknowledged) are never split: the set is write-order consistent across
   the volumes, as a crash of every volume at one instant would leave them.
2. A request is refused whole with nothing changed: every volume is checked first (a member
   holding its data off-line, no snapshot reserve), and the snapshots are taken in one transaction,
   which a failure rolls back (``catalog`` rule 1; the group reloads what it holds in memory).
3. A snapshot collection some of whose snapshots were deleted since (by hand, or by a volume's
   ``delete-oldest`` snapshot-reserve policy) is incomplete: set online, offline and deleted, it acts
   on the snapshots left; restored, it is refused (the volumes would no longer be of one point in
   time; restore them one by one). Inferred.
4. Restore as one follows the single-snapshot restore (``snapshot_admin``): every volume and every
   snapshot of the set offline, each volume restored from its snapshot, and the snapshots of the
   data they held taken together as a new snapshot collection of the same collection (the volumes
   are offline, so it is one point in time too), which is returned.
5. Default names follow the array's snapshot names: ``<collection>-<YYYY-MM-DD-hh:mm:ss>.<n>``,
   ``n`` counting the collection's snapshot collections; its snapshots get their volumes' default
   names at the same time (``self.clock()``, so a simulated clock drives both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import AlreadyExists, InvalidRequest, NoSpace, NotFound
from .naming import check_text, default_snapshot_name

if TYPE_CHECKING:
    from datetime import datetime

    from .catalog import Catalog
    from .collection_admin import VolumeCollection
    from .records import Snapshot, Volume

__all__ = ["SnapcolAdmin", "SnapshotCollection"]


@dataclass
class SnapshotCollection:
    """One row of ``snapcols``, with its snapshots."""

    id: int
    collection_id: int
    name: str
    description: str
    #: How many snapshots it was taken with (rule 3).
    made_with: int
    created: str
    #: The ids of its snapshots that still exist, in the order they were taken.
    snapshot_ids: list[int]

    @property
    def complete(self) -> bool:
        return len(self.snapshot_ids) == self.made_with


class SnapcolAdmin:
    """The snapshot-collection half of ``CollectionAdmin`` (a mixin on the group's state)."""

    if TYPE_CHECKING:
        catalog: Catalog
        volumes: dict[int, Volume]
        snapshots: dict[int, Snapshot]

        def clock(self) -> datetime: ...
        def collection(self, name: str) -> VolumeCollection: ...
        def collection_with_id(self, collection_id: int) -> VolumeCollection: ...
        def collection_volumes(self, collection: VolumeCollection) -> list[Volume]: ...
        def pool_free(self, pool_id: int) -> int: ...
        def held_offline(self, map_id: int) -> bool: ...
        def create_snapshot(
            self, volume: str, name: str | None = None, description: str = "", when: datetime | None = None
        ) -> Snapshot: ...
        def set_snapshot_online(self, volume: str, name: str, online: bool) -> None: ...
        def check_restore_volume(self, volume: str, name: str) -> tuple[Volume, Snapshot]: ...
        def restore_volume(self, volume: str, name: str) -> Snapshot: ...
        def _delete_snapshot(self, snapshot: Snapshot) -> None: ...
        def log_event(self, level: str, message: str, member: str = "") -> None: ...

    def create_snapshot_collection(
        self, collection: str, name: str | None = None, description: str = ""
    ) -> SnapshotCollection:
        """One snapshot of every volume of the collection at one point in time (rule 1), as a snapshot
        collection named ``name`` or by default (rule 5); each snapshot gets ``description`` too.

        Raises:
            NotFound: no such collection.
            AlreadyExists: the collection has a snapshot collection of that name.
            InvalidRequest: a volume cannot have a snapshot now (its data on an off-line member, no
                snapshot reserve), or the collection has no volume; nothing was taken (rule 2).
        """
        found = self.collection(collection)
        volumes = self.collection_volumes(found)
        if not volumes:
            raise InvalidRequest(f"Collection {collection} has no volumes; no snapshot was taken.")
        check_text("description", description)
        if name is not None:
            self._check_snapcol_name(found, name)
        for vol in volumes:
            if self.held_offline(vol.map_id):
                raise InvalidRequest(
                    f"Volume {vol.name} is offline: its data is on a member that is offline."
                    f" No snapshot of collection {collection} was taken."
                )
            if vol.snap_reserve == 0:
                raise InvalidRequest(
                    f"Volume {vol.name} has no snapshot reserve; set snap-reserve first."
                    f" No snapshot of collection {collection} was taken."
                )
        when = self.clock()
        with self.catalog.transaction() as db:
            number = found.snapcol_counter + 1
            db.execute("UPDATE collections SET snapcol_counter = ? WHERE id = ?", (number, found.id))
            name = name or default_snapshot_name(found.name, when, number)
            self._check_snapcol_name(found, name)
            snapcol_id = self._insert_snapcol(found, name, description, len(volumes), when)
            taken = [self.create_snapshot(vol.name, description=description, when=when) for vol in volumes]
            db.executemany("INSERT INTO snapcol_snapshots VALUES (?, ?)", [(s.id, snapcol_id) for s in taken])
            self.log_event(
                "INFO",
                f"Snapshot collection {name} of collection {found.name} created:"
                f" {', '.join(s.name for s in taken)}.",
            )
        return self._snapcol_with_id(snapcol_id)

    def snapshot_collections(self, collection: str) -> list[SnapshotCollection]:
        """The collection's snapshot collections, oldest first."""
        rows = self.catalog.db.execute(
            "SELECT id FROM snapcols WHERE collection_id = ? ORDER BY id", (self.collection(collection).id,)
        ).fetchall()
        return [self._snapcol_with_id(snapcol_id) for (snapcol_id,) in rows]

    def snapshot_collection(self, collection: str, name: str) -> SnapshotCollection:
        row = self.catalog.db.execute(
            "SELECT id FROM snapcols WHERE collection_id = ? AND name = ?", (self.collection(collection).id, name)
        ).fetchone()
        if row is None:
            raise NotFound(f"Snapshot collection {name} does not exist.")
        return self._snapcol_with_id(row[0])

    def snapshot_collection_of(self, snapshot: Snapshot) -> SnapshotCollection | None:
        """The snapshot collection the snapshot is in, if any."""
        row = self.catalog.db.execute(
            "SELECT snapcol_id FROM snapcol_snapshots WHERE snapshot_id = ?", (snapshot.id,)
        ).fetchone()
        return self._snapcol_with_id(row[0]) if row else None

    def snapcol_snapshots(self, snapcol: SnapshotCollection) -> list[Snapshot]:
        return [self.snapshots[snapshot_id] for snapshot_id in snapcol.snapshot_ids]

    def set_snapshot_collection_online(self, collection: str, name: str, online: bool) -> None:
        """Every snapshot of the set online (each one's data must be reachable) or offline, as one."""
        snapcol = self.snapshot_collection(collection, name)
        snaps = self.snapcol_snapshots(snapcol)
        if online:
            for snap in snaps:
                if self.held_offline(snap.map_id):
                    raise InvalidRequest(
                        f"Snapshot {snap.name} cannot be set online: its data is on a member that is offline."
                    )
        with self.catalog.transaction():
            for snap in snaps:
                self.set_snapshot_online(self.volumes[snap.volume_id].name, snap.name, online)

    def check_restore_snapshot_collection(self, collection: str, name: str) -> SnapshotCollection:
        """The snapshot collection, if ``restore_snapshot_collection`` would accept it (rules 3, 4)."""
        snapcol = self.snapshot_collection(collection, name)
        if not snapcol.complete:
            raise InvalidRequest(
                f"Snapshot collection {name} is incomplete: {snapcol.made_with - len(snapcol.snapshot_ids)} of its"
                f" {snapcol.made_with} snapshots were deleted; restore its volumes one by one from their snapshots."
            )
        for snap in self.snapcol_snapshots(snapcol):
            self.check_restore_volume(self.volumes[snap.volume_id].name, snap.name)
        return snapcol

    def restore_snapshot_collection(self, collection: str, name: str) -> SnapshotCollection:
        """Restore every volume of the set from its snapshot, as one (rule 4); returns the snapshot
        collection of the data they held before."""
        snapcol = self.check_restore_snapshot_collection(collection, name)
        pairs = [(self.volumes[s.volume_id], s) for s in self.snapcol_snapshots(snapcol)]
        self._check_restore_space(pairs)
        found = self.collection_with_id(snapcol.collection_id)
        when = self.clock()
        with self.catalog.transaction() as db:
            number = found.snapcol_counter + 1
            db.execute("UPDATE collections SET snapcol_counter = ? WHERE id = ?", (number, found.id))
            saved_name = default_snapshot_name(found.name, when, number)
            self._check_snapcol_name(found, saved_name)
            saved_id = self._insert_snapcol(found, saved_name, f"before restore from {name}"[:127], len(pairs), when)
            saved = [self.restore_volume(vol.name, snap.name) for vol, snap in pairs]
            db.executemany("INSERT INTO snapcol_snapshots VALUES (?, ?)", [(s.id, saved_id) for s in saved])
            self.log_event(
                "INFO",
                f"Volumes {', '.join(vol.name for vol, _ in pairs)} restored from snapshot collection {name};"
                f" snapshot collection {saved_name} holds the data they had.",
            )
        return self._snapcol_with_id(saved_id)

    def delete_snapshot_collection(self, collection: str, name: str) -> None:
        """Delete the set and every snapshot of it that is left."""
        self._delete_snapcol(self.snapshot_collection(collection, name))

    def _delete_snapcol(self, snapcol: SnapshotCollection) -> None:
        with self.catalog.transaction() as db:
            db.execute("DELETE FROM snapcols WHERE id = ?", (snapcol.id,))
            for snap in self.snapcol_snapshots(snapcol):
                self._delete_snapshot(snap)
            collection = self.collection_with_id(snapcol.collection_id)
            self.log_event("INFO", f"Snapshot collection {snapcol.name} of collection {collection.name} deleted.")

    # --------------------------------------------------------------- helpers

    def _snapcol_with_id(self, snapcol_id: int) -> SnapshotCollection:
        db = self.catalog.db
        row = db.execute(
            "SELECT id, collection_id, name, description, made_with, created FROM snapcols WHERE id = ?", (snapcol_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"Snapshot collection {snapcol_id} does not exist.")
        members = db.execute(
            "SELECT snapshot_id FROM snapcol_snapshots WHERE snapcol_id = ? ORDER BY snapshot_id", (snapcol_id,)
        ).fetchall()
        return SnapshotCollection(*row, snapshot_ids=[snapshot_id for (snapshot_id,) in members])

    def _check_snapcol_name(self, collection: VolumeCollection, name: str) -> None:
        check_text("snapcol_name", name)
        if self.catalog.db.execute(
            "SELECT 1 FROM snapcols WHERE collection_id = ? AND name = ?", (collection.id, name)
        ).fetchone():
            raise AlreadyExists(f"Snapshot collection {name} already exists.")

    def _insert_snapcol(
        self, collection: VolumeCollection, name: str, description: str, made_with: int, when: datetime
    ) -> int:
        cursor = self.catalog.db.execute(
            "INSERT INTO snapcols (collection_id, name, description, made_with, created) VALUES (?, ?, ?, ?, ?)",
            (collection.id, name, description, made_with, when.isoformat(timespec="seconds")),
        )
        return int(cursor.lastrowid or 0)

    def _check_restore_space(self, pairs: list[tuple[Volume, Snapshot]]) -> None:
        """Refuse before anything is restored if the thick volumes that grow back do not fit their
        pools together (``restore_volume`` checks each alone)."""
        grown = [(vol, vol.pages) for vol, snap in pairs if snap.pages > vol.pages and not vol.thin]
        try:
            for vol, _ in grown:
                vol.pages = next(snap.pages for v, snap in pairs if v is vol)
            short = sorted({vol.pool_id for vol, _ in grown if self.pool_free(vol.pool_id) < 0})
        finally:
            for vol, pages in grown:
                vol.pages = pages
        if short:
            raise NoSpace("Not enough free space in the pool to restore the volumes to their earlier sizes.")
