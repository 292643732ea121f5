"""SPC-5 commands every logical unit answers: INQUIRY, TEST UNIT READY, REQUEST SENSE,
REPORT LUNS, and the SBC-4 medium commands that are no-ops on a volume.
"""

from __future__ import annotations

from .model import encode_lun
from .sense import CheckCondition, SenseReason, build_sense, invalid_cdb
from .spec import Request
from .vpd import standard_inquiry, vpd_page

__all__ = [
    "inquiry",
    "test_unit_ready",
    "request_sense",
    "report_luns",
    "start_stop_unit",
    "prevent_allow_medium_removal",
]


def inquiry(req: Request) -> bytes:
    """SPC-5 6.7: standard data, or the VPD page named by PAGE CODE when EVPD is one."""
    evpd, page = req.cdb[1] & 0x01, req.cdb[2]
    if not evpd:
        if page:
            raise invalid_cdb(2, 7)
        return standard_inquiry(req.lu)
    if req.lu is None:
        raise CheckCondition(SenseReason.LUN_NOT_SUPPORTED)
    data = vpd_page(req, page)
    if data is None:
        raise invalid_cdb(2, 7)
    return data


def test_unit_ready(req: Request) -> None:
    """SPC-5 6.47: readiness is checked by the dispatcher (``needs_ready``)."""


def request_sense(req: Request) -> bytes:
    """SPC-5 6.39: report (and clear) a pending unit attention, else the LU's state.

    DESC selects descriptor format. With nothing to report: NO SENSE. For a
    LUN with no logical unit: LOGICAL UNIT NOT SUPPORTED, as parameter data
    with GOOD status.
    """
    descriptor = bool(req.cdb[1] & 0x01)
    lu = req.lu
    if lu is None:
        reason = SenseReason.LUN_NOT_SUPPORTED
    else:
        reason = lu.unit_attention.pop(req.nexus) or (
            SenseReason.NO_SENSE if lu.device.online else SenseReason.NOT_READY_OFFLINE
        )
    return build_sense(reason, descriptor=descriptor)


def report_luns(req: Request) -> bytes:
    """SPC-5 6.33. SELECT REPORT 00h/02h: every LU; 01h: well-known LUs (we have none)."""
    select = req.cdb[2]
    if select in (0x00, 0x02):
        luns = sorted(req.luns)
    elif select == 0x01:
        luns = []
    else:
        raise invalid_cdb(2, 7)
    body = b"".join(encode_lun(lun) for lun in luns)
    return len(body).to_bytes(4, "big") + bytes(4) + body


def start_stop_unit(req: Request) -> None:
    """SBC-4 5.25 on a volume that has no medium to spin or eject.

    START=1 and START=0 both complete with GOOD and the volume stays ready
    (stopping a volume is not something a host may do on a PS Series array);
    START=0 without NO_FLUSH first flushes the write cache, as stopping would.
    The medium is not removable (RMB=0), so LOEJ=1 is refused, as are power
    conditions, which this logical unit does not implement.
    """
    cdb = req.cdb
    if cdb[4] >> 4:
        raise invalid_cdb(4, 7)
    if cdb[3] & 0x0F:
        raise invalid_cdb(3, 3)
    if cdb[4] & 0x02:
        raise invalid_cdb(4, 1)
    if not cdb[4] & 0x01 and not cdb[4] & 0x04:
        req.unit.device.flush()


def prevent_allow_medium_removal(req: Request) -> None:
    """SBC-4 5.14: PREVENT 00b/01b are accepted; with RMB=0 there is nothing to lock.

    (libiscsi's test_preventallow_* run only on removable media.) The obsolete
    values 10b and 11b are refused.
    """
    if req.cdb[4] & 0x02:
        raise invalid_cdb(4, 1)
