"""``chapuser ...``: the group's local CHAP accounts.

Replies other clients parse (research/ps-cli.md 3): ``Password is <pw>``
after create, ``Password: <pw>`` in show, ``CHAP user deletion succeeded.``
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..formatting import key_values, table
from ..words import Words

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["chapuser"]


def chapuser(session: Session, words: Words) -> list[str]:
    group = session.group
    action = words.keyword(["create", "delete", "select", "show"])
    if action == "show":
        if words.at_end():
            rows = [(u.name, u.password, "enable" if u.enabled else "disable") for u in group.chap_users()]
            return table([("Name", 20), ("Password", 30), ("Status", 7)], rows)
        name = words.take("CHAP user name")
        words.end()
        return _details(session, name)
    name = words.take("CHAP user name")
    if action == "create":
        password, enabled = None, True
        while not words.at_end():
            key = words.keyword(["password", "enable", "disable"], "option")
            if key == "password":
                password = words.take("password")
            else:
                enabled = key == "enable"
        user = group.create_chap_user(name, password, enabled)
        return [f"Password is {user.password}"]
    if action == "delete":
        words.end()
        group.chap_user(name)
        return session.confirm(f"Do you really want to delete the CHAP user {name}?", lambda: _delete(session, name))
    change = words.keyword(["show", "passwd", "enable", "disable"])
    if change == "show":
        words.end()
        return _details(session, name)
    if change == "passwd":
        password = words.take("password")
        words.end()
        group.update_chap_user(name, password=password)
    else:
        words.end()
        group.update_chap_user(name, enabled=change == "enable")
    return []


def _details(session: Session, name: str) -> list[str]:
    user = session.group.chap_user(name)
    pairs = [("Name", user.name), ("Password", user.password), ("Status", "enable" if user.enabled else "disable")]
    return key_values(pairs, session.setting("formatoutput"))


def _delete(session: Session, name: str) -> list[str]:
    session.group.delete_chap_user(name)
    return ["CHAP user deletion succeeded."]

