"""Task management functions (RFC 7143 section 11.5, SAM-5 section 7).

Rules of this module:

1. A TMF finds a task wherever it is: a write waiting for Data-Out (it is
   forgotten), a command handed to the engine owner (it is marked aborted:
   if it has not started it does nothing), or a command not received yet
   (RefCmdSN inside the window, section 11.5.1). No status is ever sent for
   an aborted task (section 4.2.3.3).
2. The response comes after every task it aborted has completed, that is,
   come back from the engine owner (section 11.5.1, SAM-5 7.1): ``plan``
   says which tasks to wait for, and the connection sends the response then.
3. Resets touch the logical units, so they are engine work too, run after
   the aborted commands (the owner keeps submission order); SPC-2
   reservations are cleared and unit attentions raised there.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING

from ..scsi import decode_lun
from .pdu import TaskManagementRequest
from .tasks import Work

if TYPE_CHECKING:
    from .connection import Connection


__all__ = ["Function", "Plan", "Response", "plan", "lun_number"]


@functools.lru_cache(maxsize=64)
def lun_number(field: int) -> int:
    """The LUN of a PDU's LUN field; -1 (no such logical unit) for one we cannot address."""
    try:
        return decode_lun(field.to_bytes(8, "big"))
    except ValueError:
        return -1


class Function(IntEnum):
    ABORT_TASK = 1
    ABORT_TASK_SET = 2
    CLEAR_ACA = 3
    CLEAR_TASK_SET = 4
    LOGICAL_UNIT_RESET = 5
    TARGET_WARM_RESET = 6
    TARGET_COLD_RESET = 7
    TASK_REASSIGN = 8


class Response(IntEnum):
    COMPLETE = 0
    TASK_DOES_NOT_EXIST = 1
    LUN_DOES_NOT_EXIST = 2
    REASSIGNMENT_NOT_SUPPORTED = 4
    NOT_SUPPORTED = 5
    REJECTED = 255


@dataclass
class Plan:
    """What one TMF does: its response, the tasks it waits for, and its engine action (rules 2, 3)."""

    request: TaskManagementRequest
    response: Response
    waits: list[Work] = field(default_factory=list)
    action: Callable[[], object] | None = None

    @property
    def closes(self) -> bool:
        """SAM-5: a cold reset also ends the I_T nexus: the connection closes after the response."""
        return self.request.function == Function.TARGET_COLD_RESET and self.response == Response.COMPLETE


def plan(connection: Connection, request: TaskManagementRequest) -> Plan:
    """Abort what the TMF names now (rule 1) and say what is left to do."""
    function = request.function
    lun = lun_number(request.lun)
    scsi = connection.scsi
    waits: list[Work] = []
    action: Callable[[], object] | None = None
    if function == Function.ABORT_TASK:
        found, waits = connection.abort_tasks(lambda task: task.itt == request.referenced_task_tag)
        # Section 11.5.1: a command not received yet (RefCmdSN inside the window) counts as
        # received and aborted; one that already completed (behind ExpCmdSN) does not exist.
        done = found or connection.forget_command(request.ref_cmd_sn)
        response = Response.COMPLETE if done else Response.TASK_DOES_NOT_EXIST
    elif function in (Function.ABORT_TASK_SET, Function.CLEAR_TASK_SET):
        waits = connection.abort_tasks(lambda task: task.lun == lun)[1]
        response = Response.COMPLETE
    elif function == Function.LOGICAL_UNIT_RESET:
        if scsi is None or lun not in scsi.luns:
            response = Response.LUN_DOES_NOT_EXIST
        else:
            waits = connection.abort_tasks(lambda task: task.lun == lun)[1]
            unit = scsi.luns[lun]
            action = lambda: unit.reset("lun")  # noqa: E731
            response = Response.COMPLETE
    elif function in (Function.TARGET_WARM_RESET, Function.TARGET_COLD_RESET):
        waits = connection.abort_tasks(lambda task: True)[1]
        if scsi is not None:
            target, kind = scsi, "cold" if function == Function.TARGET_COLD_RESET else "warm"
            action = lambda: target.reset(kind)  # noqa: E731
        response = Response.COMPLETE
    elif function == Function.TASK_REASSIGN:
        response = Response.REASSIGNMENT_NOT_SUPPORTED
    else:
        response = Response.NOT_SUPPORTED
    return Plan(request, response, waits, action)
