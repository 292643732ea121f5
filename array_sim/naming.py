"""PS Series names: target IQNs and default snapshot names.

Volume IQNs have the array's shape (research/ps-cli.md 2.4)::

    iqn.2001-05.com.equallogic:0-8a0906-<9 hex>-<16 hex>-<volume name>

where the 9-hex part identifies the group and the 16-hex part is a per-object
serial. The name is fixed when the object is created and never changes, as on
the array ("the group generates an iSCSI target name, which you cannot
modify"). Snapshots get the same shape with their own serial and their own
name after the volume's.
"""

from __future__ import annotations

import re
from datetime import datetime

__all__ = ["IQN_PREFIX", "target_iqn", "default_snapshot_name", "valid_object_name"]

IQN_PREFIX = "iqn.2001-05.com.equallogic:0-8a0906"

# iSCSI names allow letters, digits, '-', '.', ':' (RFC 3722); the name ends the IQN.
# Volume names stop at 63 characters so a default snapshot name (21 more) stays
# within the 127 that snapshot names may have.
_VOLUME_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:-]{0,62}$")
_SNAPSHOT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:-]{0,126}$")


def target_iqn(group_id: int, serial: int, name: str) -> str:
    """The IQN of a volume or snapshot: group id, object serial, object name."""
    return f"{IQN_PREFIX}-{group_id:09x}-{serial:016x}-{name.lower()}"


def default_snapshot_name(volume: str, when: datetime, number: int) -> str:
    """``<volume>-<YYYY>-<MM>-<DD>-<hh>:<mm>:<ss>.<n>``, as the array names snapshots."""
    return f"{volume}-{when:%Y-%m-%d-%H:%M:%S}.{number}"


def valid_object_name(name: str, snapshot: bool = False) -> bool:
    """Names of letters, digits, '.', '-' and ':': up to 63 characters for a volume (or pool), 127 for a snapshot."""
    return bool((_SNAPSHOT_NAME_RE if snapshot else _VOLUME_NAME_RE).match(name))
