"""CHAP for iSCSI login (RFC 7143 section 12.1.3, RFC 1994), one-way and mutual, MD5 only.

The target sends ``CHAP_A=5``, an identifier and a random challenge; the
initiator answers ``CHAP_N`` and ``CHAP_R = MD5(id || secret || challenge)``.
For mutual CHAP the initiator adds its own ``CHAP_I``/``CHAP_C`` and the
target answers with its name and response. Binary values are ``0x`` hex or
``0b`` base64 (section 6.1). A challenge equal to ours (a reflection
attack) is refused, as section 12.1.3 requires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["ChapError", "ChapExchange", "decode_binary", "chap_response"]

MD5 = "5"
CHALLENGE_BYTES = 16


class ChapError(Exception):
    """Authentication failed (login status 0x0201)."""


def decode_binary(text: str) -> bytes:
    """A binary-value (``0x...`` hex or ``0b...`` base64), section 6.1."""
    try:
        if text[:2] in ("0x", "0X"):
            digits = text[2:]
            return bytes.fromhex(("0" + digits) if len(digits) % 2 else digits)
        if text[:2] in ("0b", "0B"):
            return base64.b64decode(text[2:], validate=True)
    except (ValueError, binascii.Error):
        pass
    raise ChapError(f"malformed binary value {text[:32]!r}")


def chap_response(identifier: int, secret: str, challenge: bytes) -> bytes:
    return hashlib.md5(bytes([identifier]) + secret.encode() + challenge, usedforsecurity=False).digest()


@dataclass
class ChapExchange:
    """The target's side of one CHAP exchange."""

    #: Secret of a local CHAP user by name, or None if there is no such (enabled) user.
    secret_of: Callable[[str], str | None]
    #: (name, secret) the target answers mutual CHAP with, or None if not configured.
    target_credentials: tuple[str, str] | None
    identifier: int = field(default_factory=lambda: secrets.randbelow(256))
    challenge: bytes = field(default_factory=lambda: secrets.token_bytes(CHALLENGE_BYTES))
    user: str | None = None

    def offer(self, algorithms: str) -> list[tuple[str, str]]:
        """Answer ``CHAP_A``: pick MD5 and send our identifier and challenge."""
        if MD5 not in algorithms.split(","):
            raise ChapError("the initiator offers no CHAP algorithm we support (MD5)")
        return [("CHAP_A", MD5), ("CHAP_I", str(self.identifier)), ("CHAP_C", "0x" + self.challenge.hex())]

    def verify(self, keys: dict[str, str]) -> list[tuple[str, str]]:
        """Check ``CHAP_N``/``CHAP_R``; answer a mutual challenge. Returns the keys to send."""
        name, response = keys.get("CHAP_N"), keys.get("CHAP_R")
        if name is None or response is None:
            raise ChapError("CHAP_N and CHAP_R are required")
        secret = self.secret_of(name)
        expected = chap_response(self.identifier, secret or "", self.challenge)
        if secret is None or not hmac.compare_digest(decode_binary(response), expected):
            raise ChapError(f"CHAP authentication failed for user {name!r}")
        self.user = name
        if "CHAP_I" not in keys and "CHAP_C" not in keys:
            return []
        if self.target_credentials is None:
            raise ChapError("mutual CHAP requested but no target CHAP credentials are configured")
        identifier_text, challenge_text = keys.get("CHAP_I", ""), keys.get("CHAP_C", "")
        if not identifier_text.isdigit() or not 0 <= int(identifier_text) <= 255:
            raise ChapError("malformed CHAP_I")
        challenge = decode_binary(challenge_text)
        if challenge == self.challenge or not challenge:
            raise ChapError("the initiator's CHAP challenge reflects ours")
        target_name, target_secret = self.target_credentials
        answer = chap_response(int(identifier_text), target_secret, challenge)
        return [("CHAP_N", target_name), ("CHAP_R", "0x" + answer.hex())]
