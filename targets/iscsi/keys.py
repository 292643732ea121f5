"""Text keys and their negotiation (RFC 7143 sections 6 and 13).

Every operational key the RFC defines is one row of ``KEYS``: its kind
(how the answer is reached), our value, the allowed range and the default.
``negotiate`` answers an initiator's offers from the table, so no key has
an ``if`` of its own. Our values are what this target supports: digests
CRC32C or None, one connection per session, error recovery level 0,
no markers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = [
    "Kind",
    "KeySpec",
    "KEYS",
    "NegotiationError",
    "parse_text",
    "encode_text",
    "negotiate",
    "defaults",
]


class Kind(Enum):
    LIST = "list"  #: the first of the initiator's values that we support (section 6.2.1)
    MIN = "min"  #: numerical, the smaller of both values
    MAX = "max"  #: numerical, the larger of both values
    OR = "or"  #: boolean, Yes if either side says Yes
    AND = "and"  #: boolean, Yes only if both say Yes
    DECLARATIVE = "declarative"  #: each side states its own value; nothing is answered back


@dataclass(frozen=True)
class KeySpec:
    kind: Kind
    #: Our value: for LIST the values we support in order of preference.
    ours: str | int | tuple[str, ...]
    default: str | int
    low: int = 0
    high: int = 0
    #: Keys that only a normal session negotiates (section 13, "Scope").
    normal_only: bool = False


_MAX_24 = (1 << 24) - 1

KEYS: dict[str, KeySpec] = {
    "HeaderDigest": KeySpec(Kind.LIST, ("CRC32C", "None"), "None"),
    "DataDigest": KeySpec(Kind.LIST, ("CRC32C", "None"), "None"),
    "MaxConnections": KeySpec(Kind.MIN, 1, 1, 1, 65535, normal_only=True),
    "InitialR2T": KeySpec(Kind.OR, "No", "Yes", normal_only=True),
    "ImmediateData": KeySpec(Kind.AND, "Yes", "Yes", normal_only=True),
    "MaxRecvDataSegmentLength": KeySpec(Kind.DECLARATIVE, 262144, 8192, 512, _MAX_24),
    "MaxBurstLength": KeySpec(Kind.MIN, 1048576, 262144, 512, _MAX_24, normal_only=True),
    "FirstBurstLength": KeySpec(Kind.MIN, 262144, 65536, 512, _MAX_24, normal_only=True),
    "DefaultTime2Wait": KeySpec(Kind.MAX, 2, 2, 0, 3600),
    "DefaultTime2Retain": KeySpec(Kind.MIN, 0, 20, 0, 3600),
    "MaxOutstandingR2T": KeySpec(Kind.MIN, 16, 1, 1, 65535, normal_only=True),
    "DataPDUInOrder": KeySpec(Kind.OR, "Yes", "Yes", normal_only=True),
    "DataSequenceInOrder": KeySpec(Kind.OR, "Yes", "Yes", normal_only=True),
    "ErrorRecoveryLevel": KeySpec(Kind.MIN, 0, 0, 0, 2),
    "OFMarker": KeySpec(Kind.AND, "No", "No"),
    "IFMarker": KeySpec(Kind.AND, "No", "No"),
    "TaskReporting": KeySpec(Kind.LIST, ("RFC3720",), "RFC3720", normal_only=True),
    "iSCSIProtocolLevel": KeySpec(Kind.MIN, 1, 0, 0, 31),
}

#: Declarations an initiator makes, which we take note of and do not answer.
INITIATOR_DECLARATIONS = ("InitiatorName", "InitiatorAlias", "SessionType", "TargetName")
#: Keys only meaningful with markers, answered Irrelevant (section 13.25, RFC 7143 deprecates markers).
MARKER_INTERVALS = ("OFMarkInt", "IFMarkInt")


class NegotiationError(Exception):
    """The initiator's text breaks the rules (answered with a login reject, status 0x0207 or 0x020b)."""


def parse_text(data: bytes | memoryview) -> list[tuple[str, str]]:
    """``key=value`` pairs from a NUL-separated data segment (section 6.1)."""
    pairs = []
    for item in bytes(data).split(b"\0"):
        if not item:
            continue
        key, sep, value = item.partition(b"=")
        if not sep or not key:
            raise NegotiationError(f"malformed text key {item[:64]!r}")
        try:
            pairs.append((key.decode("utf-8"), value.decode("utf-8")))
        except UnicodeDecodeError:
            raise NegotiationError("text key is not UTF-8") from None
    return pairs


def encode_text(pairs: list[tuple[str, str]]) -> bytes:
    return b"".join(f"{key}={value}".encode() + b"\0" for key, value in pairs)


def defaults() -> dict[str, str | int]:
    """Every operational key at its RFC default, before any negotiation."""
    values = {name: spec.default for name, spec in KEYS.items()}
    values["InitiatorMaxRecvDataSegmentLength"] = KEYS["MaxRecvDataSegmentLength"].default
    return values


def negotiate(
    offers: list[tuple[str, str]], values: dict[str, str | int], discovery: bool
) -> list[tuple[str, str]]:
    """Answer the initiator's operational offers; updates ``values`` with what was agreed.

    Declarations (``InitiatorName`` ...) and security keys are left to the
    caller; anything else not in the table is answered ``NotUnderstood``.
    """
    answers: list[tuple[str, str]] = []
    for name, offer in offers:
        if name in INITIATOR_DECLARATIONS or name.startswith("CHAP_") or name == "AuthMethod":
            continue
        if name in MARKER_INTERVALS:
            answers.append((name, "Irrelevant"))
            continue
        spec = KEYS.get(name)
        if spec is None:
            answers.append((name, "NotUnderstood"))
            continue
        if discovery and spec.normal_only:
            answers.append((name, "Irrelevant"))
            continue
        if offer in ("Reject", "Irrelevant", "NotUnderstood"):
            continue
        result = _answer(name, spec, offer)
        if spec.kind is Kind.DECLARATIVE:
            # Each side declares what it can receive (section 13.12).
            values["Initiator" + name] = int(result)
            values[name] = spec.ours
            answers.append((name, str(spec.ours)))
            continue
        values[name] = int(result) if spec.kind in (Kind.MIN, Kind.MAX) else result
        answers.append((name, result))
    if int(values["FirstBurstLength"]) > int(values["MaxBurstLength"]):
        # Section 13.14: FirstBurstLength MUST NOT exceed MaxBurstLength.
        values["FirstBurstLength"] = values["MaxBurstLength"]
    return answers


def _answer(name: str, spec: KeySpec, offer: str) -> str:
    if spec.kind is Kind.LIST:
        offered = offer.split(",")
        supported = spec.ours if isinstance(spec.ours, tuple) else (str(spec.ours),)
        for value in offered:
            if value in supported:
                return value
        return "Reject"
    if spec.kind in (Kind.OR, Kind.AND):
        if offer not in ("Yes", "No"):
            raise NegotiationError(f"{name}={offer} is not Yes or No")
        yes = (offer == "Yes") or (spec.ours == "Yes") if spec.kind is Kind.OR else (offer == spec.ours == "Yes")
        return "Yes" if yes else "No"
    if not offer.isdigit() or not spec.low <= int(offer) <= spec.high:
        raise NegotiationError(f"{name}={offer} is out of range {spec.low}..{spec.high}")
    ours = int(spec.ours) if not isinstance(spec.ours, tuple) else 0
    if spec.kind is Kind.MIN:
        return str(min(int(offer), ours))
    if spec.kind is Kind.MAX:
        return str(max(int(offer), ours))
    return offer
