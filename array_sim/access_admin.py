"""Access records, local CHAP accounts and per-account CLI settings.

An access record (a volume's "basic access point") names who may log in: an
initiator name, an IP address (``*`` wildcards per octet), a CHAP user, or any
mix, and whether it applies to the volume, its snapshots or both. They are
stored here; the iSCSI target enforces them. Each text field has the length of
``naming.TEXT_LIMITS`` (initiator names RFC 7143's 223 bytes). CHAP accounts are the group's
local ``chapuser`` list. CLI settings persist per account across sessions, as
the Cinder driver needs (research/ps-cli.md 1.8 item 7).
"""

from __future__ import annotations

import re
import secrets
import string
from typing import TYPE_CHECKING

from .errors import AlreadyExists, InvalidRequest, NotFound
from .naming import check_text
from .records import AccessRecord, ChapUser, Volume, insert_row, load_rows

if TYPE_CHECKING:
    from .catalog import Catalog

__all__ = ["AccessAdmin", "APPLY_TO", "CLI_SETTINGS"]

APPLY_TO = ("volume", "snapshot", "both")
AUTH_METHODS = ("none", "chap")
#: CLI settings and their defaults (the array starts with paging and formatting on).
CLI_SETTINGS = {
    "confirmation": "on",
    "paging": "on",
    "events": "on",
    "formatoutput": "on",
    "displayinMB": "off",
    "idlelogout": "on",
    "reprintBadInput": "on",
}
_OCTET = r"(\*|25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])"
_IP_RE = re.compile(rf"{_OCTET}(\.{_OCTET}){{3}}")


class AccessAdmin:
    """Access records, CHAP users, CLI settings; mixed into ``Group``."""

    if TYPE_CHECKING:
        catalog: Catalog

        def volume(self, name: str) -> Volume: ...

    # ---------------------------------------------------------- access records

    def access_records(self, volume: str) -> list[AccessRecord]:
        vol = self.volume(volume)
        records = [r for r in load_rows(self.catalog.db, AccessRecord) if r.volume_id == vol.id]
        return sorted(records, key=lambda r: r.number)

    def create_access(
        self,
        volume: str,
        initiator: str = "",
        ipaddress: str = "",
        chap_user: str = "",
        auth_method: str = "none",
        apply_to: str = "both",
    ) -> AccessRecord:
        """Add an access record; at least one of initiator, IP address or CHAP user is needed."""
        vol = self.volume(volume)
        if not (initiator or ipaddress or chap_user):
            raise InvalidRequest("An access record needs an initiator, an IP address or a CHAP user name.")
        for field, value in (("initiator", initiator), ("ipaddress", ipaddress), ("chap_user", chap_user)):
            if value:
                check_text(field, value)
        if ipaddress and not _IP_RE.fullmatch(ipaddress):
            raise InvalidRequest(f"Invalid IP address '{ipaddress}'.")
        if apply_to not in APPLY_TO:
            raise InvalidRequest(f"Invalid apply-to value '{apply_to}'.")
        if auth_method not in AUTH_METHODS:
            raise InvalidRequest(f"Invalid authentication method '{auth_method}'.")
        if chap_user and auth_method == "none":
            auth_method = "chap"
        existing = self.access_records(volume)
        record = AccessRecord(
            id=0,
            volume_id=vol.id,
            number=max((r.number for r in existing), default=0) + 1,
            initiator=initiator,
            ipaddress=ipaddress,
            auth_method=auth_method,
            chap_user=chap_user,
            apply_to=apply_to,
        )
        with self.catalog.transaction() as db:
            insert_row(db, record)
        return record

    def delete_access(self, volume: str, number: int) -> None:
        vol = self.volume(volume)
        with self.catalog.transaction() as db:
            deleted = db.execute(
                "DELETE FROM access_records WHERE volume_id = ? AND number = ?", (vol.id, number)
            ).rowcount
        if not deleted:
            raise NotFound(f"Access record {number} does not exist.")

    # -------------------------------------------------------------- CHAP users

    def chap_users(self) -> list[ChapUser]:
        return sorted(load_rows(self.catalog.db, ChapUser), key=lambda u: u.name)

    def chap_user(self, name: str) -> ChapUser:
        for user in self.chap_users():
            if user.name == name:
                return user
        raise NotFound(f"CHAP user {name} does not exist.")

    def create_chap_user(self, name: str, password: str | None = None, enabled: bool = True) -> ChapUser:
        """Create a local CHAP account; without a password one is generated (returned)."""
        check_text("chap_user", name)
        if any(u.name == name for u in self.chap_users()):
            raise AlreadyExists(f"CHAP user {name} already exists.")
        if password is None:
            alphabet = string.ascii_letters + string.digits
            password = "".join(secrets.choice(alphabet) for _ in range(16))
        check_text("chap_password", password)
        user = ChapUser(name, password, enabled)
        with self.catalog.transaction() as db:
            insert_row(db, user)
        return user

    def update_chap_user(self, name: str, password: str | None = None, enabled: bool | None = None) -> None:
        user = self.chap_user(name)
        if password is not None:
            check_text("chap_password", password)
        with self.catalog.transaction() as db:
            db.execute(
                "UPDATE chap_users SET password = ?, enabled = ? WHERE name = ?",
                (password or user.password, user.enabled if enabled is None else enabled, name),
            )

    def delete_chap_user(self, name: str) -> None:
        self.chap_user(name)
        with self.catalog.transaction() as db:
            db.execute("DELETE FROM chap_users WHERE name = ?", (name,))

    # ------------------------------------------------------------ CLI settings

    def cli_settings(self, account: str) -> dict[str, str]:
        settings = dict(CLI_SETTINGS)
        settings.update(
            self.catalog.db.execute("SELECT key, value FROM cli_settings WHERE account = ?", (account,)).fetchall()
        )
        return settings

    def set_cli_setting(self, account: str, key: str, value: str) -> None:
        if key not in CLI_SETTINGS:
            raise InvalidRequest(f"Unknown CLI setting '{key}'.")
        if value not in ("on", "off"):
            raise InvalidRequest(f"Invalid value '{value}' for {key}; use on or off.")
        with self.catalog.transaction() as db:
            db.execute("INSERT OR REPLACE INTO cli_settings VALUES (?, ?, ?)", (account, key, value))
