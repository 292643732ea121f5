"""PS Series names and stored text: target IQNs, default snapshot names, and the limits of every text field.

Volume IQNs have the array's shape (research/ps-cli.md 2.4)::

    iqn.2001-05.com.equallogic:0-8a0906-<9 hex>-<16 hex>-<volume name>

where the 9-hex part identifies the group and the 16-hex part is a per-object
serial. The name is fixed when the object is created and never changes, as on
the array ("the group generates an iSCSI target name, which you cannot
modify"). Snapshots get the same shape with their own serial and their own
name after the volume's.

Every text field the group stores has one limit, in ``TEXT_LIMITS``: the
array's where it is known, else the one iSCSI puts on the value when it goes
on the wire (RFC 7143). A value outside its limit is refused whole, never cut
or cleaned, and no field takes control characters (they would break the
line-oriented output that clients parse).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from .errors import InvalidRequest

__all__ = [
    "IQN_PREFIX",
    "TEXT_LIMITS",
    "TextLimit",
    "check_text",
    "shown",
    "target_iqn",
    "UnitIdentity",
    "unit_identity",
    "default_snapshot_name",
    "valid_object_name",
]

IQN_PREFIX = "iqn.2001-05.com.equallogic:0-8a0906"

#: Object names: the array's characters (Configuration Guide v14.1 5.2.1: "A-Z, a-z, 0-9, '.', '-', ':'"),
#: which are also what an iSCSI name may hold (RFC 3722), since the name ends the IQN.
_OBJECT_NAME = re.compile(r"[A-Za-z0-9.:-]")
_OBJECT_HINT = "letters, digits, '.', '-' or ':'"
_ARRAY = "the array allows"
_ISCSI_VALUE = "iSCSI allows (RFC 7143 section 6.1)"


@dataclass(frozen=True)
class TextLimit:
    """The longest value of one text field, counted as its authority counts it."""

    #: The field as error messages name it.
    what: str
    most: int
    #: True: UTF-8 bytes (an iSCSI value); False: characters (the array's fields).
    in_bytes: bool
    #: Whose limit it is, as the error says it ("the array allows", "iSCSI allows (...)").
    authority: str
    #: The one character allowed, if restricted, and how errors describe the characters.
    allowed: re.Pattern[str] | None = None
    hint: str = ""
    least: int = 0
    #: Names start with a letter or digit.
    alnum_first: bool = False

    def size(self, value: str) -> int:
        return len(value.encode()) if self.in_bytes else len(value)

    @property
    def unit(self) -> str:
        return "bytes" if self.in_bytes else "characters"


#: One row per stored text field.
TEXT_LIMITS: dict[str, TextLimit] = {
    # Volume (and pool) names stop at 63 characters (the array: 1 to 64, Configuration Guide v14.1
    # 5.2.1) so that a default snapshot name (21 more) stays within the 127 of a snapshot name; a
    # snapshot IQN then has at most 190 bytes, inside the 223 of an iSCSI name.
    "volume_name": TextLimit("volume name", 63, False, _ARRAY, _OBJECT_NAME, _OBJECT_HINT, 1, True),
    "pool_name": TextLimit("pool name", 63, False, _ARRAY, _OBJECT_NAME, _OBJECT_HINT, 1, True),
    "snapshot_name": TextLimit("snapshot name", 127, False, _ARRAY, _OBJECT_NAME, _OBJECT_HINT, 1, True),
    # Collection names: no public figure; a volume name's (inferred), so that the default name of a
    # snapshot collection (21 more characters) fits a snapshot collection name (a snapshot name's 127).
    "collection_name": TextLimit("collection name", 63, False, _ARRAY, _OBJECT_NAME, _OBJECT_HINT, 1, True),
    "snapcol_name": TextLimit("snapshot collection name", 127, False, _ARRAY, _OBJECT_NAME, _OBJECT_HINT, 1, True),
    # Schedule names: no public figure; an object name's characters and length (inferred).
    "schedule_name": TextLimit("schedule name", 63, False, _ARRAY, _OBJECT_NAME, _OBJECT_HINT, 1, True),
    # The array's volume and snapshot descriptions: up to 127 characters (PS Series CLI reference,
    # "description text"; recalled, ps-cli.md records no figure).
    "description": TextLimit("description", 127, False, _ARRAY),
    # No array figure known: the alias goes out as TargetAlias, an iSCSI text value (255 bytes).
    "alias": TextLimit("iSCSI alias", 255, True, _ISCSI_VALUE),
    # iSCSI names: at most 223 bytes (RFC 7143 section 4.2.7.1); "*" is any initiator. No blanks.
    "initiator": TextLimit(
        "initiator name",
        223,
        True,
        "iSCSI allows (RFC 7143 section 4.2.7.1)",
        re.compile(r"\S"),
        "characters other than blanks",
        1,
    ),
    # A dotted quad with '*' octets, 255.255.255.255 at the longest (the form is checked by access_admin).
    "ipaddress": TextLimit("IP address", 15, False, _ARRAY, re.compile(r"[0-9.*]"), "digits, '.' and '*'", 1),
    # CHAP user names: the simulator keeps the array's object-name length; sent as CHAP_N (a text value).
    "chap_user": TextLimit(
        "CHAP user name",
        63,
        False,
        _ARRAY,
        re.compile(r"[A-Za-z0-9._:@-]"),
        "letters, digits, '.', '_', ':', '@' or '-'",
        1,
    ),
    # No array figure known: 255 bytes like any iSCSI value, and at least 12 (RFC 7143 section 12.1.3).
    "chap_password": TextLimit("CHAP password", 255, True, "iSCSI allows (RFC 7143 sections 6.1, 12.1.3)", least=12),
}


def shown(text: str, most: int = 40) -> str:
    """``text`` fit for a one-line message: control characters escaped (``\\r``), long text cut with ``...``."""
    escaped = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return escaped if len(escaped) <= most else escaped[:most] + "..."


def check_text(field: str, value: str) -> None:
    """Refuse ``value`` for the field ``field`` of ``TEXT_LIMITS`` unless it is within the limit.

    Raises:
        InvalidRequest: naming the field, the problem and the limit.
    """
    limit = TEXT_LIMITS[field]
    problem = _problem(limit, value)
    if problem:
        raise InvalidRequest(problem)


def _problem(limit: TextLimit, value: str) -> str:
    what, unit = limit.what, limit.unit
    control = next((c for c in value if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        return f"Invalid {what} '{shown(value)}': it contains a control character ({shown(control)})."
    size = limit.size(value)
    if limit.least > 1 and not limit.least <= size <= limit.most:
        return f"Invalid {what}: it has {size} {unit}; {limit.authority} {limit.least} to {limit.most} {unit}."
    if size > limit.most:
        return f"Invalid {what}: too long ({size} {unit}); {limit.authority} at most {limit.most} {unit}."
    if size < limit.least:
        return f"Invalid {what}: it is empty."
    allowed = limit.allowed
    bad = next((c for c in value if not allowed.fullmatch(c)), None) if allowed else None
    if bad is not None:
        return f"Invalid {what} '{shown(value)}': '{bad}' is not allowed; use up to {limit.most} {limit.hint}."
    if limit.alnum_first and not value[:1].isalnum():
        return f"Invalid {what} '{shown(value)}': it must start with a letter or a digit."
    return ""


def target_iqn(group_id: int, serial: int, name: str) -> str:
    """The IQN of a volume or snapshot: group id, object serial, object name."""
    return f"{IQN_PREFIX}-{group_id:09x}-{serial:016x}-{name.lower()}"


@dataclass(frozen=True)
class UnitIdentity:
    """How a volume or snapshot names itself to SCSI: the same whichever front end serves it, so
    multipath sees one device (VPD 80h Unit Serial Number, VPD 83h NAA designator, SPC-5 7.7)."""

    #: Unit serial number: the group id and the object serial in hex (25 ASCII characters).
    serial: str
    #: NAA IEEE Registered Extended (type 6), 16 bytes: EqualLogic's 6090a0 prefix, then the serial.
    naa: bytes


#: NAA 6 + the company id EqualLogic volumes report (0x090a0 after the NAA nibble; research/lio.md 9.7).
NAA_PREFIX = "6090a0"


def unit_identity(group_id: int, serial: int) -> UnitIdentity:
    """The identity of the object with ``serial`` in group ``group_id`` (the two numbers of its IQN)."""
    text = f"{group_id:09x}{serial:016x}"
    return UnitIdentity(text, bytes.fromhex(NAA_PREFIX + text[-26:].rjust(26, "0")))


def default_snapshot_name(volume: str, when: datetime, number: int) -> str:
    """``<volume>-<YYYY>-<MM>-<DD>-<hh>:<mm>:<ss>.<n>``, as the array names snapshots."""
    return f"{volume}-{when:%Y-%m-%d-%H:%M:%S}.{number}"


def valid_object_name(name: str, snapshot: bool = False) -> bool:
    """Whether ``name`` is a valid volume, pool or member name (or, with ``snapshot``, snapshot name)."""
    return not _problem(TEXT_LIMITS["snapshot_name" if snapshot else "volume_name"], name)
