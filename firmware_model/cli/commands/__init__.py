"""The Group Manager command tree (``TREE``): one module per top-level noun, each giving its ``NODE``.

``firmware_model.cli.grammar`` reads the tree: parsing, ``?``, ``help``, ``tree`` and completion all
come from it, for every word of every command (grammar rule 5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..grammar import Arg, Node, tree_lines, usage
from . import account, chapuser, collection, group, member, simulate, volume

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
    volume.NODE,
    collection.NODE,
    group.POOL,
    member.NODE,
    group.GRPPARAMS,
    chapuser.NODE,
    account.NODE,
    group.CLI_SETTINGS_NODE,
    group.STTY,
    group.SHOW,
    group.WHOAMI,
    group.LOGOUT,
    group.EXIT,
    simulate.NODE,
    Node("help", "help on a command", args=(Arg("words", "command", optional=True, rest=True),), run=_help),
    Node("tree", "every command", run=_tree),
))  # fmt: skip
