"""Volume collections of the group: sets of volumes that take their snapshots together.

On the array a collection is "a set of volumes", and "snapshots can be taken on a single volume or on
a collection" (Group Manager Administrator's Guide, PS6210, storage overview). The CLI syntax is not
public (research/ps-cli.md 2.2, 4.5). The snapshot collections a collection takes (one point in
time, refused whole, incomplete sets, restore as one, default names) are ``snapcol_admin``, the
mixin ``CollectionAdmin`` is built on.

Rules of this module:

1. Collections and snapshot collections live in the catalog only (``collections``,
   ``collection_volumes``, ``snapcols``, ``snapcol_snapshots``: ``migrations`` step 8) and are read
   when asked: nothing is held in memory, so nothing can fall out of step with a rolled-back
   transaction.
2. A collection has 1 to ``COLLECTION_VOLUMES_MOST`` volumes, a group at most ``COLLECTIONS_MOST``
   collections; a volume may be in several. A volume deleted leaves its collections, and its
   snapshots leave their snapshot collections (the catalog's cascades); a snapshot collection left
   with no snapshot goes (a trigger). Deleting a collection keeps every snapshot, as an ordinary
   snapshot of its volume, and deletes its snapshot collections (the grouping) and its schedules.
   (Inferred: the array's behaviour in these cases is not public.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import AlreadyExists, InvalidRequest, NotFound
from .naming import check_text
from .snapcol_admin import SnapcolAdmin, SnapshotCollection

if TYPE_CHECKING:
    from .records import Volume

__all__ = ["CollectionAdmin", "VolumeCollection", "SnapshotCollection", "COLLECTION_VOLUMES_MOST", "COLLECTIONS_MOST"]

#: Volumes in a collection, and collections in a group: the PS Series firmware's configuration limits
#: as recalled from its release notes ("Volumes in a collection: 8", "Collections: 100"); the research
#: notes record no figure, so both are marked inferred in the README.
COLLECTION_VOLUMES_MOST = 8
COLLECTIONS_MOST = 100


@dataclass
class VolumeCollection:
    """One row of ``collections``, with its volumes."""

    id: int
    name: str
    description: str
    #: Numbers the default names of its snapshot collections (``snapcol_admin`` rule 5).
    snapcol_counter: int
    created: str
    #: Its volumes' ids, in the order they joined.
    volume_ids: list[int]


class CollectionAdmin(SnapcolAdmin):
    """Volume collections, and (``SnapcolAdmin``) their snapshot collections; mixed into ``Group``,
    whose state they use."""

    if TYPE_CHECKING:

        def volume(self, name: str) -> Volume: ...

    # ------------------------------------------------------------- lookups

    def collections(self) -> list[VolumeCollection]:
        """Every collection, by name."""
        rows = self.catalog.db.execute("SELECT id FROM collections ORDER BY name").fetchall()
        return [self.collection_with_id(collection_id) for (collection_id,) in rows]

    def collection(self, name: str) -> VolumeCollection:
        row = self.catalog.db.execute("SELECT id FROM collections WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"Collection {name} does not exist.")
        return self.collection_with_id(row[0])

    def collection_with_id(self, collection_id: int) -> VolumeCollection:
        db = self.catalog.db
        row = db.execute(
            "SELECT id, name, description, snapcol_counter, created FROM collections WHERE id = ?", (collection_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"Collection {collection_id} does not exist.")
        members = db.execute(
            "SELECT volume_id FROM collection_volumes WHERE collection_id = ? ORDER BY position", (collection_id,)
        ).fetchall()
        return VolumeCollection(*row, volume_ids=[volume_id for (volume_id,) in members])

    def collection_volumes(self, collection: VolumeCollection) -> list[Volume]:
        return [self.volumes[volume_id] for volume_id in collection.volume_ids]

    def collections_of(self, volume: Volume) -> list[VolumeCollection]:
        """The collections the volume is in, by name."""
        rows = self.catalog.db.execute(
            "SELECT c.id FROM collections c JOIN collection_volumes m ON m.collection_id = c.id"
            " WHERE m.volume_id = ? ORDER BY c.name",
            (volume.id,),
        ).fetchall()
        return [self.collection_with_id(collection_id) for (collection_id,) in rows]

    # ----------------------------------------------------------- collections

    def create_collection(self, name: str, volumes: Sequence[str], description: str = "") -> VolumeCollection:
        """A collection of ``volumes`` (1 to ``COLLECTION_VOLUMES_MOST``, each named once).

        Raises:
            AlreadyExists: a collection of that name exists.
            NotFound: a volume does not exist.
            InvalidRequest: no volume, too many, one named twice, the group's limit, a bad name.
        """
        check_text("collection_name", name)
        check_text("description", description)
        db = self.catalog.db
        if db.execute("SELECT 1 FROM collections WHERE name = ?", (name,)).fetchone():
            raise AlreadyExists(f"Collection {name} already exists.")
        (count,) = db.execute("SELECT count(*) FROM collections").fetchone()
        if count >= COLLECTIONS_MOST:
            raise InvalidRequest(f"The group already has {COLLECTIONS_MOST} collections, the most it may have.")
        if not volumes:
            raise InvalidRequest("A collection needs at least one volume.")
        members = [self.volume(volume) for volume in volumes]
        twice = next((v.name for i, v in enumerate(members) if v in members[:i]), None)
        if twice is not None:
            raise InvalidRequest(f"Volume {twice} is named more than once.")
        if len(members) > COLLECTION_VOLUMES_MOST:
            raise InvalidRequest(f"A collection may have at most {COLLECTION_VOLUMES_MOST} volumes.")
        with self.catalog.transaction() as db:
            cursor = db.execute(
                "INSERT INTO collections (name, description, snapcol_counter, created) VALUES (?, ?, 0, ?)",
                (name, description, self.clock().isoformat(timespec="seconds")),
            )
            collection_id = int(cursor.lastrowid or 0)
            db.executemany(
                "INSERT INTO collection_volumes VALUES (?, ?, ?)",
                [(collection_id, v.id, position) for position, v in enumerate(members)],
            )
        return self.collection_with_id(collection_id)

    def delete_collection(self, name: str) -> None:
        """Delete the collection: its volumes and their snapshots stay (rule 2)."""
        collection = self.collection(name)
        with self.catalog.transaction() as db:
            # Schedules name their collection by id only (migrations step 9): they go with it.
            db.execute("DELETE FROM schedules WHERE collection_id = ?", (collection.id,))
            db.execute("DELETE FROM collections WHERE id = ?", (collection.id,))

    def rename_collection(self, name: str, new_name: str) -> None:
        collection = self.collection(name)
        check_text("collection_name", new_name)
        if self.catalog.db.execute("SELECT 1 FROM collections WHERE name = ?", (new_name,)).fetchone():
            raise AlreadyExists(f"Collection {new_name} already exists.")
        with self.catalog.transaction() as db:
            db.execute("UPDATE collections SET name = ? WHERE id = ?", (new_name, collection.id))

    def set_collection_description(self, name: str, description: str) -> None:
        collection = self.collection(name)
        check_text("description", description)
        with self.catalog.transaction() as db:
            db.execute("UPDATE collections SET description = ? WHERE id = ?", (description, collection.id))

    def add_to_collection(self, name: str, volume: str) -> None:
        collection, vol = self.collection(name), self.volume(volume)
        if vol.id in collection.volume_ids:
            raise AlreadyExists(f"Volume {volume} is already in collection {name}.")
        if len(collection.volume_ids) >= COLLECTION_VOLUMES_MOST:
            raise InvalidRequest(
                f"Collection {name} already has {COLLECTION_VOLUMES_MOST} volumes, the most a collection may have."
            )
        with self.catalog.transaction() as db:
            (last,) = db.execute(
                "SELECT ifnull(max(position), -1) FROM collection_volumes WHERE collection_id = ?", (collection.id,)
            ).fetchone()
            db.execute("INSERT INTO collection_volumes VALUES (?, ?, ?)", (collection.id, vol.id, last + 1))

    def remove_from_collection(self, name: str, volume: str) -> None:
        """Take a volume out of the collection; its snapshots stay in their snapshot collections."""
        collection, vol = self.collection(name), self.volume(volume)
        if vol.id not in collection.volume_ids:
            raise NotFound(f"Volume {volume} is not in collection {name}.")
        if len(collection.volume_ids) == 1:
            raise InvalidRequest(f"Volume {volume} is the only volume of collection {name}; delete the collection.")
        with self.catalog.transaction() as db:
            db.execute(
                "DELETE FROM collection_volumes WHERE collection_id = ? AND volume_id = ?", (collection.id, vol.id)
            )
