"""The group's administration accounts: who may log in to the Group Manager (SSH), with what rights.

An account has a name, a password (stored hashed), a type (``group-admin``: every command;
``read-only``: shows only), an enabled flag, a description, and at most one SSH public key with a
description of its own. ``grpadmin`` is made with the group (``array-sim init``) and, as on the
array, cannot be deleted, disabled or made read-only ("You cannot disable, delete, change the name,
or change the type of the default group administration (grpadmin) account", PS6610 Administrator
Guide, Modify Local Administration Accounts).

Rules of this module:

1. A password is never stored: ``hash_password`` keeps ``scrypt$N$r$p$salt$key`` (RFC 7914, a
   random 16-byte salt per password); ``check_password`` recomputes it. Hashing costs tens of
   milliseconds of CPU on purpose (it releases the GIL): callers on the engine owner do it only when
   a password is set, and logins check it off the owner (``password_record`` hands the record out).
2. The array's password rule: 3 to 13 ASCII characters, case-sensitive, punctuation allowed, no
   spaces (PS6210E Administrator Guide p.66). The array then uses only the first 8 characters;
   the simulator checks all of them (a password longer than 8 is not accepted by its first 8).
3. SSH public keys (firmware 9.1 and later: "RSA and SSH 2 keys, one public key per user, a maximum
   of 4096 bit, minimum key length of 128 bytes, local users only", PS6610 Administrator Guide,
   SSH Key Pair Authentication) are OpenSSH ``authorized_keys`` lines, checked here with the
   standard library only: the key type, its base64 blob and the type named inside the blob; RSA
   moduli of 1024 to 4096 bits. Ed25519 and ECDSA keys are accepted too (inferred: the guide names
   RSA). The SSH front end matches the blob byte for byte.
4. Account names: 1 to 32 letters, digits, '.', '_' or '-', starting with a letter (inferred: no
   public figure).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .errors import AlreadyExists, InvalidRequest, NotFound
from .naming import check_text, shown

if TYPE_CHECKING:
    from .catalog import Catalog

__all__ = [
    "Account", "Accounts", "ACCOUNT_TYPES", "DEFAULT_ADMIN", "PublicKey", "parse_public_key", "hash_password",
    "check_password", "generate_password", "check_password_rule",
]  # fmt: skip

DEFAULT_ADMIN = "grpadmin"
#: Account types: the array's group administrator and read-only account (pool and volume
#: administrators are not modelled).
ACCOUNT_TYPES = ("group-admin", "read-only")
#: scrypt cost (RFC 7914): N = 2^14, r = 8 (16 MiB, about 80 ms on the development VM), p = 1.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 1 << 14, 8, 1
_SCRYPT_MEMORY = 64 << 20
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,31}")
#: Printable ASCII without the space (rule 2).
_PASSWORD = re.compile(r"[!-~]{3,13}")
_KEY_TYPES = ("ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")
#: The longest authorized_keys line taken: a 4096-bit RSA key is about 750 characters.
_KEY_LINE_MOST = 4096


@dataclass(frozen=True)
class Account:
    name: str
    kind: str
    enabled: bool
    description: str
    public_key: str
    key_description: str
    created: str

    @property
    def read_only(self) -> bool:
        return self.kind == "read-only"


@dataclass(frozen=True)
class PublicKey:
    """An SSH public key as ``authorized_keys`` holds it (rule 3)."""

    kind: str
    blob: bytes
    comment: str

    @property
    def line(self) -> str:
        text = f"{self.kind} {base64.b64encode(self.blob).decode()}"
        return f"{text} {self.comment}" if self.comment else text

    @property
    def fingerprint(self) -> str:
        """``SHA256:...`` as ``ssh-keygen -l`` prints it."""
        return "SHA256:" + base64.b64encode(hashlib.sha256(self.blob).digest()).decode().rstrip("=")


def _ssh_string(blob: bytes, offset: int) -> tuple[bytes, int]:
    """RFC 4251 section 5 ``string``: a uint32 length, then that many bytes."""
    if offset + 4 > len(blob):
        raise ValueError("truncated")
    size = int.from_bytes(blob[offset : offset + 4], "big")
    end = offset + 4 + size
    if end > len(blob):
        raise ValueError("truncated")
    return blob[offset + 4 : end], end


def parse_public_key(line: str) -> PublicKey:
    """An ``authorized_keys`` line (``TYPE BASE64 [comment]``), checked (rule 3).

    Raises:
        InvalidRequest: naming what is wrong with it.
    """
    if len(line) > _KEY_LINE_MOST:
        raise InvalidRequest(f"The SSH public key is too long (more than {_KEY_LINE_MOST} characters).")
    parts = line.strip().split(None, 2)
    if len(parts) < 2 or parts[0] not in _KEY_TYPES:
        raise InvalidRequest(
            f"Invalid SSH public key '{shown(line)}'; give a line of an authorized_keys file"
            f" ({', '.join(_KEY_TYPES)})."
        )
    kind, encoded = parts[0], parts[1]
    comment = parts[2].strip() if len(parts) > 2 else ""
    try:
        blob = base64.b64decode(encoded, validate=True)
        named, offset = _ssh_string(blob, 0)
        if named.decode("ascii", "replace") != kind:
            raise ValueError("type")
        if kind == "ssh-rsa":
            _exponent, offset = _ssh_string(blob, offset)
            modulus, offset = _ssh_string(blob, offset)
            bits = int.from_bytes(modulus, "big").bit_length()
            if not 1024 <= bits <= 4096:
                raise InvalidRequest(f"The RSA key has {bits} bits; the group takes 1024 to 4096.")
    except (ValueError, UnicodeError):
        raise InvalidRequest(f"Invalid SSH public key: its {kind} data cannot be read.") from None
    check_text("description", comment)
    return PublicKey(kind, blob, comment)


def hash_password(password: str) -> str:
    """The stored form of ``password`` (rule 1)."""
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, maxmem=_SCRYPT_MEMORY, dklen=32
    )
    encode = base64.b64encode
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${encode(salt).decode()}${encode(key).decode()}"


def check_password(record: str, password: str) -> bool:
    """True if ``password`` is the one ``record`` was made from (constant time in what matters)."""
    try:
        scheme, n, r, p, salt, key = record.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        found = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), maxmem=_SCRYPT_MEMORY,
            dklen=len(expected),
        )  # fmt: skip
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(found, expected)


@functools.cache
def _unknown() -> str:
    """Checked against when the account does not exist, so that a refusal takes as long either way."""
    return hash_password(secrets.token_hex(8))


def check_password_rule(password: str) -> None:
    """Refuse a password the array would refuse (rule 2)."""
    if not _PASSWORD.fullmatch(password):
        raise InvalidRequest(
            "Invalid password: use 3 to 13 ASCII letters, digits or punctuation, without spaces."
        )


def generate_password() -> str:
    """13 random letters and digits: the longest password the array takes."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(13))


class Accounts:
    """The ``accounts`` table of a group's catalog (every change in one transaction)."""

    def __init__(self, catalog: Catalog, clock: Callable[[], datetime] = datetime.now) -> None:
        self.catalog = catalog
        self.clock = clock

    _COLUMNS = "name, kind, enabled, description, public_key, key_description, created"

    def all(self) -> list[Account]:
        rows = self.catalog.db.execute(f"SELECT {self._COLUMNS} FROM accounts ORDER BY name").fetchall()
        return [Account(r[0], r[1], bool(r[2]), *r[3:]) for r in rows]

    def find(self, name: str) -> Account | None:
        row = self.catalog.db.execute(f"SELECT {self._COLUMNS} FROM accounts WHERE name = ?", (name,)).fetchone()
        return Account(row[0], row[1], bool(row[2]), *row[3:]) if row else None

    def get(self, name: str) -> Account:
        account = self.find(name)
        if account is None:
            raise NotFound(f"Account {shown(name)} does not exist.")
        return account

    def password_record(self, name: str) -> str:
        """What ``check_password`` checks a login against; for an unknown account, a record no
        password matches, so that the check costs the same (rule 1)."""
        row = self.catalog.db.execute("SELECT password FROM accounts WHERE name = ?", (name,)).fetchone()
        return row[0] if row else _unknown()

    def create(
        self, name: str, password: str, kind: str = "group-admin", description: str = "", enabled: bool = True
    ) -> Account:
        if not _NAME.fullmatch(name):
            raise InvalidRequest(
                f"Invalid account name '{shown(name)}': use 1 to 32 letters, digits, '.', '_' or '-',"
                " starting with a letter."
            )
        if self.find(name) is not None:
            raise AlreadyExists(f"Account {name} already exists.")
        self._check_kind(kind)
        check_password_rule(password)
        check_text("description", description)
        with self.catalog.transaction() as db:
            db.execute(
                "INSERT INTO accounts (name, password, kind, enabled, description, public_key, key_description,"
                " created) VALUES (?, ?, ?, ?, ?, '', '', ?)",
                (name, hash_password(password), kind, int(enabled), description,
                 self.clock().isoformat(timespec="seconds")),
            )  # fmt: skip
        return self.get(name)

    def delete(self, name: str) -> None:
        self.get(name)
        self._not_default(name, "deleted")
        with self.catalog.transaction() as db:
            db.execute("DELETE FROM accounts WHERE name = ?", (name,))
            db.execute("DELETE FROM cli_settings WHERE account = ?", (name,))

    def set_password(self, name: str, password: str) -> None:
        self.get(name)
        check_password_rule(password)
        self._update(name, "password", hash_password(password))

    def set_kind(self, name: str, kind: str) -> None:
        self.get(name)
        self._check_kind(kind)
        if kind != "group-admin":
            self._not_default(name, "made read-only")
        self._update(name, "kind", kind)

    def set_enabled(self, name: str, enabled: bool) -> None:
        self.get(name)
        if not enabled:
            self._not_default(name, "disabled")
        self._update(name, "enabled", int(enabled))

    def set_description(self, name: str, description: str) -> None:
        self.get(name)
        check_text("description", description)
        self._update(name, "description", description)

    def set_public_key(self, name: str, line: str, description: str = "") -> PublicKey:
        """The account's one SSH public key (rule 3); refused while it has one."""
        account = self.get(name)
        key = parse_public_key(line)
        check_text("description", description)
        if account.public_key:
            raise AlreadyExists(f"Account {name} already has an SSH public key; delete it first (one per account).")
        with self.catalog.transaction() as db:
            db.execute(
                "UPDATE accounts SET public_key = ?, key_description = ? WHERE name = ?",
                (key.line, description or key.comment, name),
            )
        return key

    def delete_public_key(self, name: str) -> None:
        if not self.get(name).public_key:
            raise NotFound(f"Account {name} has no SSH public key.")
        with self.catalog.transaction() as db:
            db.execute("UPDATE accounts SET public_key = '', key_description = '' WHERE name = ?", (name,))

    def ensure_default_admin(self) -> str | None:
        """Make ``grpadmin`` if the group has none (a group made before accounts existed, or by
        ``serve`` on first run); returns the password it was given, None if it existed."""
        if self.find(DEFAULT_ADMIN) is not None:
            return None
        password = generate_password()
        self.create(DEFAULT_ADMIN, password, description="the default administrator")
        return password

    def _update(self, name: str, column: str, value: object) -> None:
        with self.catalog.transaction() as db:
            db.execute(f"UPDATE accounts SET {column} = ? WHERE name = ?", (value, name))

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in ACCOUNT_TYPES:
            raise InvalidRequest(f"Invalid account type '{shown(kind)}'; use one of: {', '.join(ACCOUNT_TYPES)}.")

    @staticmethod
    def _not_default(name: str, what: str) -> None:
        if name == DEFAULT_ADMIN:
            raise InvalidRequest(f"The default account {DEFAULT_ADMIN} cannot be {what}.")
