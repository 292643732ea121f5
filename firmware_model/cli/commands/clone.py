"""``... clone <new> [description <text>]`` for volumes and snapshots, and the reply to any volume creation.

The reply is what clients parse (research/ps-cli.md 1.6): the Cinder driver
takes the IQN from ``iSCSI target name is <IQN>.`` after dropping the period.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from array_sim import Volume

from ..words import Words

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["clone", "creation_lines"]


def creation_lines(new: Volume) -> list[str]:
    return ["Volume creation succeeded.", f"iSCSI target name is {new.iqn}."]


def clone(session: Session, words: Words, volume: str, snapshot: str | None = None) -> list[str]:
    new_name = words.take("new volume name")
    description = ""
    if words.optional_keyword(["description"]):
        description = words.take("description")
    words.end()
    return creation_lines(session.group.clone_volume(volume, new_name, snapshot=snapshot, description=description))
