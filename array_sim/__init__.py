"""array-sim engine: a PS Series group's volumes, snapshots, pools and members on disk.

Layers, top to bottom (each talks only to the one below):

* ``group`` (with ``volume_admin``, ``snapshot_admin``, ``access_admin``):
  the group's objects and PS Series rules; ``space``: reserves and pool space.
* ``volume_device``: a volume or snapshot as a ``block.BlockDevice``.
* ``pages`` (with ``chunk_map``): page tables, copy-on-write, physical pages.
* ``pool``: pools, members, placement of pages on members.
* ``member_store``: a member's page slots in a disk file.
"""

from .block import BlockDevice, BlockError, DeviceOffline, Extent, OutOfRange, SpaceExhausted, WriteProtected
from .errors import AlreadyExists, EngineError, GroupLocked, InvalidRequest, NoSpace, NotFound
from .group import Group, default_group_dir
from .records import AccessRecord, ChapUser, Snapshot, Volume

__all__ = [
    "AccessRecord",
    "AlreadyExists",
    "BlockDevice",
    "BlockError",
    "ChapUser",
    "DeviceOffline",
    "EngineError",
    "Extent",
    "Group",
    "GroupLocked",
    "InvalidRequest",
    "NoSpace",
    "NotFound",
    "OutOfRange",
    "Snapshot",
    "SpaceExhausted",
    "Volume",
    "WriteProtected",
    "default_group_dir",
]
