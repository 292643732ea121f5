"""The login phase of one connection (RFC 7143 sections 6.3, 11.12, 11.13), sans-IO.

``LoginMachine.handle(request)`` answers each Login Request PDU with a Login
Response. It walks SecurityNegotiation -> LoginOperationalNegotiation ->
FullFeaturePhase, authenticates with CHAP when the volume's access records
ask for it, checks access, and negotiates the operational keys. A refusal
is a response with a non-zero status class, after which the connection is
closed; ``failed`` says so. Which status for which refusal:

* 0x0101 target moved temporarily (section 11.13.5, with ``TargetAddress``): a normal
  session's first request at the group IP, when the portal redirects it to a member port
  (discovery sessions are never redirected: the group IP answers them itself);
* 0x0201 authentication failure: CHAP failed, or CHAP was needed and skipped;
* 0x0202 authorization failure: no access record lets this initiator in, or
  the volume refuses a second host (multi-host access disabled);
* 0x0203 not found: no such target (or it is offline);
* 0x0205 unsupported version, 0x0207 missing parameter, 0x020b invalid
  request during login, 0x0209 unsupported session type;
* 0x0302 out of resources: text continued (C bit) past ``MAX_LOGIN_TEXT``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Protocol

from .chap import ChapError, ChapExchange
from .keys import KEYS, NegotiationError, defaults, encode_text, negotiate, parse_text
from .pdu import CONTINUE, TRANSIT, LoginRequest, LoginResponse

__all__ = ["Stage", "Access", "LoginStatus", "LoginMachine", "Portal", "LoginResult", "MAX_LOGIN_TEXT"]

#: Bytes of text one login request may carry across Login PDUs with the C bit: far above what
#: any key set needs (values are at most 8192 bytes, section 6.1), and the bound of what we hold.
MAX_LOGIN_TEXT = 65536


class Stage(IntEnum):
    SECURITY = 0
    OPERATIONAL = 1
    FULL_FEATURE = 3


class Access(Enum):
    """What the access records say of an initiator before authentication."""

    OPEN = "open"  #: a record admits it without CHAP
    CHAP = "chap"  #: only records that require CHAP match it
    DENIED = "denied"  #: no record matches


class LoginStatus(IntEnum):
    """Status-Class << 8 | Status-Detail (section 11.13.5)."""

    SUCCESS = 0x0000
    TARGET_MOVED_TEMPORARILY = 0x0101
    AUTHENTICATION_FAILURE = 0x0201
    AUTHORIZATION_FAILURE = 0x0202
    NOT_FOUND = 0x0203
    UNSUPPORTED_VERSION = 0x0205
    MISSING_PARAMETER = 0x0207
    CANNOT_INCLUDE = 0x0208
    SESSION_TYPE_UNSUPPORTED = 0x0209
    INVALID_DURING_LOGIN = 0x020B
    TARGET_ERROR = 0x0300
    OUT_OF_RESOURCES = 0x0302


class Portal(Protocol):
    """What the login needs to know of the group behind the portal."""

    address: str
    tpgt: int

    def target_alias(self, target: str) -> str | None: ...
    def access(self, target: str, initiator: str, ip: str) -> Access: ...
    def access_summary(self, target: str) -> str: ...
    def chap_access(self, target: str, initiator: str, ip: str, user: str) -> bool: ...
    def admits(self, target: str, initiator: str) -> bool: ...
    def chap_secret(self, user: str) -> str | None: ...
    def target_credentials(self) -> tuple[str, str] | None: ...
    def redirect(self, target: str, local_ip: str) -> str | None:
        """``TargetAddress`` to send a login for ``target`` that came in at ``local_ip`` to, or None."""


class LoginRefused(Exception):
    def __init__(self, status: LoginStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass
class LoginResult:
    """What a completed login established."""

    initiator: str = ""
    initiator_alias: str = ""
    target: str | None = None
    discovery: bool = False
    isid: bytes = b""
    chap_user: str | None = None
    values: dict[str, str | int] = field(default_factory=defaults)


class LoginMachine:
    """The target side of one connection's login."""

    def __init__(
        self, portal: Portal, peer_ip: str, tsih: int, stat_sn: int = 1, queue_depth: int = 128, local_ip: str = ""
    ) -> None:
        self.portal = portal
        self.peer_ip = peer_ip
        #: The address the initiator connected to (the group IP or a member port).
        self.local_ip = local_ip
        #: Where the login was redirected to, if it was (status 0x0101).
        self.redirected_to: str | None = None
        self.tsih = tsih
        self.stat_sn = stat_sn
        self.queue_depth = queue_depth
        self.stage = Stage.SECURITY
        self.result = LoginResult()
        self.failed: str | None = None
        self.refusal: LoginStatus | None = None
        self._first = True
        self._auth: str | None = None
        self._chap: ChapExchange | None = None
        self._authenticated = False
        self._pending = b""
        self._declared_mrdsl = False
        self._declared = False
        self._access = Access.OPEN

    @property
    def done(self) -> bool:
        return self.stage is Stage.FULL_FEATURE

    def handle(self, request: LoginRequest) -> LoginResponse:
        """Answer one Login Request."""
        try:
            return self._handle(request)
        except LoginRefused as refusal:
            self.failed, self.refusal = str(refusal), refusal.status
            answers = [("TargetAddress", self.redirected_to)] if self.redirected_to else []
            return self._response(request, answers, transit=False, status=refusal.status)
        except (NegotiationError, ChapError) as error:
            status = LoginStatus.AUTHENTICATION_FAILURE if isinstance(error, ChapError) else (
                LoginStatus.INVALID_DURING_LOGIN
            )
            self.failed, self.refusal = str(error), status
            return self._response(request, [], transit=False, status=status)

    def _handle(self, request: LoginRequest) -> LoginResponse:
        current, wanted = (request.flags >> 2) & 3, request.flags & 3
        transit = bool(request.flags & TRANSIT)
        if self._first and not self._pending and current == Stage.OPERATIONAL:
            # Section 6.3: an initiator may skip the security stage when no authentication is needed.
            self.stage = Stage.OPERATIONAL
        if current != self.stage:
            raise LoginRefused(LoginStatus.INVALID_DURING_LOGIN, f"login stage {current} out of order")
        if request.flags & CONTINUE:
            # Text spanning PDUs (section 11.12.2) is read once it is whole.
            if len(self._pending) + len(request.data) > MAX_LOGIN_TEXT:
                raise LoginRefused(LoginStatus.OUT_OF_RESOURCES, f"login text continued past {MAX_LOGIN_TEXT} bytes")
            self._pending += bytes(request.data)
            return self._response(request, [], transit=False)
        pairs = parse_text(self._pending + bytes(request.data))
        self._pending = b""
        if self._first:
            self._start(request, dict(pairs))
        answers = self._security(dict(pairs)) if current == Stage.SECURITY else []
        answers += negotiate(
            [(k, v) for k, v in pairs if current == Stage.OPERATIONAL or not k.startswith(("CHAP_", "Auth"))],
            self.result.values,
            self.result.discovery,
        )
        if any(k == "MaxRecvDataSegmentLength" for k, _ in answers):
            self._declared_mrdsl = True
        if transit and (wanted not in (Stage.OPERATIONAL, Stage.FULL_FEATURE) or wanted <= current):
            raise LoginRefused(LoginStatus.INVALID_DURING_LOGIN, f"cannot move from stage {current} to {wanted}")
        ready = current != Stage.SECURITY or self._security_done()
        if transit and ready:
            if wanted == Stage.FULL_FEATURE and not self._declared_mrdsl:
                # Always declare what we receive (section 13.12), even if the initiator never asked.
                ours = KEYS["MaxRecvDataSegmentLength"].ours
                self.result.values["MaxRecvDataSegmentLength"] = ours
                answers.append(("MaxRecvDataSegmentLength", str(ours)))
                self._declared_mrdsl = True
            response = self._response(request, answers, transit=True, next_stage=Stage(wanted))
            self.stage = Stage(wanted)
            return response
        return self._response(request, answers, transit=False)

    def _start(self, request: LoginRequest, pairs: dict[str, str]) -> None:
        """Checks on the first request, which must declare who is logging in to what."""
        self._first = False
        if request.version_min > 0:
            raise LoginRefused(LoginStatus.UNSUPPORTED_VERSION, f"iSCSI version {request.version_min} unsupported")
        result = self.result
        result.isid = bytes(request.isid)
        result.initiator = pairs.get("InitiatorName", "")
        result.initiator_alias = pairs.get("InitiatorAlias", "")
        if not result.initiator:
            raise LoginRefused(LoginStatus.MISSING_PARAMETER, "InitiatorName is missing")
        session_type = pairs.get("SessionType", "Normal")
        if session_type not in ("Normal", "Discovery"):
            raise LoginRefused(LoginStatus.SESSION_TYPE_UNSUPPORTED, f"session type {session_type}")
        result.discovery = session_type == "Discovery"
        if request.tsih:
            raise LoginRefused(LoginStatus.CANNOT_INCLUDE, "this target takes one connection per session")
        if result.discovery:
            self._access = Access.OPEN
            return
        target = pairs.get("TargetName")
        if not target:
            raise LoginRefused(LoginStatus.MISSING_PARAMETER, "TargetName is missing")
        if self.portal.target_alias(target) is None:
            raise LoginRefused(LoginStatus.NOT_FOUND, f"no target {target}")
        result.target = target
        self.redirected_to = self.portal.redirect(target, self.local_ip)
        if self.redirected_to:
            raise LoginRefused(LoginStatus.TARGET_MOVED_TEMPORARILY, f"redirected to {self.redirected_to}")
        self._access = self.portal.access(target, result.initiator, self.peer_ip)
        if self._access is Access.DENIED:
            raise LoginRefused(
                LoginStatus.AUTHORIZATION_FAILURE,
                f"no access record of {target} admits {result.initiator} from {self.peer_ip}"
                f" (allowed: {self.portal.access_summary(target)})",
            )
        if not self.portal.admits(target, result.initiator):
            raise LoginRefused(
                LoginStatus.AUTHORIZATION_FAILURE, f"{target} is in use by another host (multi-host access disabled)"
            )
        if (request.flags >> 2) & 3 == Stage.OPERATIONAL and self._access is Access.CHAP:
            raise LoginRefused(LoginStatus.AUTHENTICATION_FAILURE, "CHAP is required and was skipped")

    def _security(self, keys: dict[str, str]) -> list[tuple[str, str]]:
        answers: list[tuple[str, str]] = []
        if "AuthMethod" in keys and self._auth is None:
            offered = keys["AuthMethod"].split(",")
            wanted = ["CHAP"] if self._access is Access.CHAP else ["None", "CHAP"]
            choice = next((method for method in wanted if method in offered), None)
            if choice is None:
                raise LoginRefused(LoginStatus.AUTHENTICATION_FAILURE, f"AuthMethod {keys['AuthMethod']} refused")
            self._auth = choice
            answers.append(("AuthMethod", choice))
            if choice == "None":
                self._authenticated = True
        if self._auth == "CHAP":
            if self._chap is None:
                self._chap = ChapExchange(self.portal.chap_secret, self.portal.target_credentials())
            if "CHAP_A" in keys:
                answers += self._chap.offer(keys["CHAP_A"])
            if "CHAP_N" in keys:
                answers += self._chap.verify(keys)
                self._authorize_chap(self._chap.user or "")
        return answers

    def _authorize_chap(self, user: str) -> None:
        result = self.result
        if result.target is not None and not self.portal.chap_access(
            result.target, result.initiator, self.peer_ip, user
        ):
            raise LoginRefused(LoginStatus.AUTHORIZATION_FAILURE, f"CHAP user {user} has no access to {result.target}")
        result.chap_user = user
        self._authenticated = True

    def _security_done(self) -> bool:
        if self._auth is None:
            # The initiator skipped AuthMethod: allowed only where no authentication is required.
            if self._access is Access.CHAP:
                raise LoginRefused(LoginStatus.AUTHENTICATION_FAILURE, "CHAP is required")
            return True
        return self._authenticated

    def _response(
        self,
        request: LoginRequest,
        answers: list[tuple[str, str]],
        transit: bool,
        next_stage: Stage | None = None,
        status: LoginStatus = LoginStatus.SUCCESS,
    ) -> LoginResponse:
        current = self.stage if status == LoginStatus.SUCCESS else (request.flags >> 2) & 3
        flags = (current << 2) | (int(next_stage) if next_stage is not None else 0)
        if transit:
            flags |= TRANSIT
        if status == LoginStatus.SUCCESS and self.result.target and not self._declared:
            answers = [*answers, *self._declarations(answers)]
        response = LoginResponse(
            flags=flags,
            version_max=0,
            version_active=0,
            isid=bytes(request.isid),
            tsih=self.tsih if next_stage == Stage.FULL_FEATURE else 0,
            itt=request.itt,
            stat_sn=self.stat_sn,
            exp_cmd_sn=request.cmd_sn,
            max_cmd_sn=(request.cmd_sn + self.queue_depth - 1) & 0xFFFFFFFF,
            status_class=status >> 8,
            status_detail=status & 0xFF,
            data=encode_text(answers),
        )
        # Section 11.13.4: each Login Response, like any response, takes the next StatSN.
        self.stat_sn = (self.stat_sn + 1) & 0xFFFFFFFF
        return response

    def _declarations(self, answers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """TargetPortalGroupTag (section 13.9: in the first response of a normal session) and TargetAlias."""
        self._declared = True
        target = self.result.target or ""
        declarations = [("TargetPortalGroupTag", str(self.portal.tpgt))]
        alias = self.portal.target_alias(target)
        if alias:
            declarations.append(("TargetAlias", alias))
        return [d for d in declarations if d[0] not in dict(answers)]
