"""``chapuser ...``: the group's local CHAP accounts.

Replies other clients parse (research/ps-cli.md 3): ``Password is <pw>``
after create, ``Password: <pw>`` in show, ``CHAP user deletion succeeded.``
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..formatting import key_values, table
from ..grammar import Arg, Node, Option

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["NODE", "users_table"]


def users_table(session: Session) -> list[str]:
    """``chapuser show`` and ``show chapuser``."""
    rows = [(u.name, u.password, "enable" if u.enabled else "disable") for u in session.group.chap_users()]
    return table([("Name", 20), ("Password", 30), ("Status", 7)], rows)


def _list(session: Session, args: dict[str, Any]) -> list[str]:
    return _details(session, args["name"]) if "name" in args else users_table(session)


def _create(session: Session, args: dict[str, Any]) -> list[str]:
    user = session.group.create_chap_user(args["name"], args.get("password"), args.get("enabled", True))
    return [f"Password is {user.password}"]


def _ask_delete(session: Session, args: dict[str, Any]) -> list[str]:
    name = args["name"]
    session.group.chap_user(name)
    return session.confirm(f"Do you really want to delete the CHAP user {name}?", lambda: _delete(session, name))


def _change(session: Session, args: dict[str, Any]) -> list[str]:
    if "password" in args:
        session.group.update_chap_user(args["name"], password=args["password"])
    else:
        session.group.update_chap_user(args["name"], enabled=args["enabled"])
    return []


def _details(session: Session, name: str) -> list[str]:
    user = session.group.chap_user(name)
    pairs = [("Name", user.name), ("Password", user.password), ("Status", "enable" if user.enabled else "disable")]
    return key_values(pairs, session.setting("formatoutput"))


def _delete(session: Session, name: str) -> list[str]:
    session.group.delete_chap_user(name)
    return ["CHAP user deletion succeeded."]



def _names(session: Session, args: dict[str, Any]) -> list[str]:
    return [u.name for u in session.group.chap_users()]


_NAME = Arg("name", "CHAP user name", choices=_names)
_PASSWORD = Arg("password", "password")

NODE = Node("chapuser", "local CHAP accounts", children=(
    Node("create", "create a CHAP account (a password is made if none is given)", args=(Arg("name", "CHAP user name"),),
         options=(Option("password", "its secret", "password", _PASSWORD),
                  Option("enable", "usable at once (the default)", "enabled", const=True),
                  Option("disable", "not usable yet", "enabled", const=False)), run=_create),
    Node("delete", "delete a CHAP account", args=(_NAME,), run=_ask_delete),
    Node("select", "work on a CHAP account", args=(_NAME,), children=(
        Node("show", "show it", run=_list),
        Node("passwd", "set its secret", args=(_PASSWORD,), run=_change),
        Node("enable", "make it usable", run=_change, preset={"enabled": True}),
        Node("disable", "make it unusable", run=_change, preset={"enabled": False}),
    )),
    Node("show", "list the CHAP accounts, or show one", args=(Arg("name", "CHAP user name", optional=True, choices=_names),),
         run=_list),
))  # fmt: skip
