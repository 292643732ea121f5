"""The Group Manager command tree: one module per top-level noun.

Each handler takes the session and a ``Words`` cursor positioned after its
keyword, and returns the output lines. ``TOP_LEVEL`` is the root.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..words import Words
from . import chapuser, group, member, simulate, volume

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["TOP_LEVEL"]

_COMMANDS = {
    "volume": volume.volume,
    "pool": group.pool,
    "member": member.member,
    "grpparams": group.grpparams,
    "chapuser": chapuser.chapuser,
    "cli-settings": group.cli_settings,
    "stty": group.stty,
    "show": group.show,
    "whoami": group.whoami,
    "logout": group.logout,
    "exit": group.logout,
    "simulate": simulate.simulate,
}


def TOP_LEVEL(session: Session, words: Words) -> list[str]:  # noqa: N802 - the root of the tree
    return _COMMANDS[words.keyword(list(_COMMANDS))](session, words)
