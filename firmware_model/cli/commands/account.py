"""``account ...``: the group's administration accounts (who may log in over SSH).

Syntax: ``account select NAME passwd`` is the array's (a public password-recovery walk-through types
it; the array then asks for the password twice, where this CLI takes it on the line:
``passwd PASSWORD``). The rest is inferred from the account fields of the Administrator Guide (type
group administrator or read-only, enabled, description, one SSH public key with a description):
``account create NAME [password P] [read-only|read-write] [description D] [enable|disable]``,
``account delete NAME``, ``account show [NAME]``, ``account select NAME show|passwd P|read-only|
read-write|enable|disable|description D``, ``account select NAME ssh-key add "KEY" [description D]``,
``... ssh-key show|delete``. Replies (``Account creation succeeded.``, ``Password is P``) follow the
array's other objects; they are inferred too. Passwords are never shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from array_sim.accounts import Account, Accounts, generate_password, parse_public_key

from ..formatting import key_values, table, title
from ..grammar import Arg, Node, Option

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["NODE", "accounts_of"]


def accounts_of(session: Session) -> Accounts:
    return Accounts(session.group.catalog, session.group.clock)


def _status(account: Account) -> str:
    return "enable" if account.enabled else "disable"


def _list(session: Session, args: dict[str, Any]) -> list[str]:
    if "name" in args:
        return _details(session, args["name"])
    rows = [
        (a.name, a.kind, _status(a), "yes" if a.public_key else "no", a.description)
        for a in accounts_of(session).all()
    ]
    return table([("Name", 16), ("Type", 11), ("Status", 7), ("SSH-Key", 7), ("Description", 36)], rows)


def _details(session: Session, name: str) -> list[str]:
    account = accounts_of(session).get(name)
    key = parse_public_key(account.public_key) if account.public_key else None
    pairs = [
        ("Name", account.name),
        ("Type", account.kind),
        ("Status", _status(account)),
        ("Description", account.description),
        ("Created", account.created),
        ("SSH-Key", f"{key.kind} {key.fingerprint}" if key else ""),
        ("SSH-Key-Description", account.key_description),
    ]
    return [title("Account Information"), *key_values(pairs, session.setting("formatoutput"))]


def _create(session: Session, args: dict[str, Any]) -> list[str]:
    password = args.get("password") or generate_password()
    accounts_of(session).create(
        args["name"], password, args.get("kind", "group-admin"), args.get("description", ""), args.get("enabled", True)
    )
    lines = ["Account creation succeeded."]
    return lines if "password" in args else [*lines, f"Password is {password}"]


def _ask_delete(session: Session, args: dict[str, Any]) -> list[str]:
    name = args["name"]
    accounts_of(session).get(name)

    def delete() -> list[str]:
        accounts_of(session).delete(name)
        return ["Account deletion succeeded."]

    return session.confirm(f"Do you really want to delete the account {name}?", delete)


def _change(session: Session, args: dict[str, Any]) -> list[str]:
    accounts, name = accounts_of(session), args["name"]
    if "password" in args:
        accounts.set_password(name, args["password"])
    elif "kind" in args:
        accounts.set_kind(name, args["kind"])
    elif "enabled" in args:
        accounts.set_enabled(name, args["enabled"])
    else:
        accounts.set_description(name, args["description"])
    return []


def _key_add(session: Session, args: dict[str, Any]) -> list[str]:
    key = accounts_of(session).set_public_key(args["name"], args["key"], args.get("description", ""))
    return [f"SSH public key {key.kind} {key.fingerprint} added."]


def _key_show(session: Session, args: dict[str, Any]) -> list[str]:
    account = accounts_of(session).get(args["name"])
    if not account.public_key:
        return []
    key = parse_public_key(account.public_key)
    pairs = [("Type", key.kind), ("Fingerprint", key.fingerprint), ("Description", account.key_description),
             ("Key", account.public_key)]  # fmt: skip
    return key_values(pairs, False)


def _key_delete(session: Session, args: dict[str, Any]) -> list[str]:
    accounts_of(session).delete_public_key(args["name"])
    return []


def _names(session: Session, args: dict[str, Any]) -> list[str]:
    return [a.name for a in accounts_of(session).all()]


_NAME = Arg("name", "account name", choices=_names)
_PASSWORD = Arg("password", "password")
_DESCRIPTION = Arg("description", "description")

NODE = Node("account", "administration accounts: who may log in over SSH", children=(
    Node("create", "create an account (a password is made and shown if none is given)",
         args=(Arg("name", "account name"),), options=(
             Option("password", "its password (3 to 13 characters)", "password", _PASSWORD),
             Option("read-only", "it may only show", "kind", const="read-only"),
             Option("read-write", "a group administrator (the default)", "kind", const="group-admin"),
             Option("description", "what it is for", "description", _DESCRIPTION),
             Option("enable", "it may log in at once (the default)", "enabled", const=True),
             Option("disable", "it may not log in yet", "enabled", const=False)), run=_create),
    Node("delete", "delete an account", args=(_NAME,), run=_ask_delete),
    Node("select", "work on an account", args=(_NAME,), children=(
        Node("show", "show it", run=_list),
        Node("passwd", "set its password", args=(_PASSWORD,), run=_change),
        Node("read-only", "it may only show", run=_change, preset={"kind": "read-only"}),
        Node("read-write", "make it a group administrator", run=_change, preset={"kind": "group-admin"}),
        Node("enable", "let it log in", run=_change, preset={"enabled": True}),
        Node("disable", "refuse its logins", run=_change, preset={"enabled": False}),
        Node("description", "set its description", args=(_DESCRIPTION,), run=_change),
        Node("ssh-key", "its SSH public key (one per account)", children=(
            Node("add", "set it: one line of an authorized_keys file, in double quotes",
                 args=(Arg("key", "public key"),),
                 options=(Option("description", "what the key is", "description", _DESCRIPTION),), run=_key_add),
            Node("show", "show it", run=_key_show),
            Node("delete", "remove it", run=_key_delete),
        )),
    )),
    Node("show", "list the accounts, or show one", args=(Arg("name", "account name", optional=True, choices=_names),),
         run=_list),
))  # fmt: skip
