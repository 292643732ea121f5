"""The Group Manager command tree (``TREE``): one module per top-level noun, each giving its ``NODE``.

``firmware_model.cli.grammar`` reads the tree: parsing, ``?``, ``help``, ``tree`` and completion all
come from it. A noun whose module still reads its own words (a ``(session, Words)`` handler) is a
``raw`` node: it runs, and ``?`` stops at it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..grammar import Arg, Node, tree_lines, usage
from . import chapuser, group, member, simulate, volume

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["TREE"]


def _help(session: Session, args: dict[str, Any]) -> list[str]:
    lines = usage(TREE, args.get("words", []))
    if not args.get("words"):
        lines += ["", "Type ? anywhere on a line for what may come there, help COMMAND for one command,",
                  "tree for all of them; keywords may be abbreviated (vol sel v1 sh)."]  # fmt: skip
    return lines


def _tree(session: Session, args: dict[str, Any]) -> list[str]:
    return tree_lines(TREE)


TREE = Node("", "Group Manager commands:", children=(
    Node("volume", "volumes, their snapshots and access records", raw=volume.volume),
    Node("pool", "storage pools", raw=group.pool),
    Node("member", "the group's arrays", raw=member.member),
    Node("grpparams", "group settings and defaults for new volumes", raw=group.grpparams),
    chapuser.NODE,
    Node("cli-settings", "this account's CLI settings, kept across sessions", raw=group.cli_settings),
    Node("stty", "this session's terminal settings", raw=group.stty),
    Node("show", "a summary of the group, or a list of volumes, pools, members, CHAP users, events",
         raw=group.show),
    Node("whoami", "the account of this session", raw=group.whoami),
    Node("logout", "end this session", raw=group.logout),
    Node("exit", "leave the sub-mode, or end this session", raw=group.logout),
    Node("simulate", "what only a simulator does: arrays added, faults, power, cables", raw=simulate.simulate),
    Node("help", "help on a command", args=(Arg("words", "command", optional=True, rest=True),), run=_help),
    Node("tree", "every command", run=_tree),
))  # fmt: skip
