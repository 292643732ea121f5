"""Task management functions (RFC 7143 section 11.5, SAM-5 section 7).

Commands run to completion as soon as their data is in, so the only tasks a
TMF can still find are writes waiting for Data-Out; aborting one forgets it
(no status is ever sent for it, section 4.2.3.3). Resets go to the SCSI
layer, which clears SPC-2 reservations and raises unit attentions.
"""

from __future__ import annotations

import functools
from enum import IntEnum
from typing import TYPE_CHECKING

from ..scsi import decode_lun
from .pdu import TaskManagementRequest, TaskManagementResponse

if TYPE_CHECKING:
    from .connection import Connection


__all__ = ["Function", "Response", "task_management", "lun_number"]


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


def task_management(connection: Connection, request: TaskManagementRequest) -> TaskManagementResponse:
    """Carry out one TMF request and build its response."""
    function = request.function
    lun = lun_number(request.lun)
    scsi = connection.scsi
    if function == Function.ABORT_TASK:
        aborted = connection.abort_tasks(lambda task: task.itt == request.referenced_task_tag)
        # Section 11.5.1: a command not received yet (RefCmdSN inside the window) counts as
        # received and aborted; one that already completed (behind ExpCmdSN) does not exist.
        done = aborted or connection.forget_command(request.ref_cmd_sn)
        response = Response.COMPLETE if done else Response.TASK_DOES_NOT_EXIST
    elif function in (Function.ABORT_TASK_SET, Function.CLEAR_TASK_SET):
        connection.abort_tasks(lambda task: task.lun == lun)
        response = Response.COMPLETE
    elif function == Function.LOGICAL_UNIT_RESET:
        if scsi is None or lun not in scsi.luns:
            response = Response.LUN_DOES_NOT_EXIST
        else:
            connection.abort_tasks(lambda task: task.lun == lun)
            scsi.luns[lun].reset("lun")
            response = Response.COMPLETE
    elif function in (Function.TARGET_WARM_RESET, Function.TARGET_COLD_RESET):
        connection.abort_tasks(lambda task: True)
        if scsi is not None:
            scsi.reset("cold" if function == Function.TARGET_COLD_RESET else "warm")
        response = Response.COMPLETE
    elif function == Function.TASK_REASSIGN:
        response = Response.REASSIGNMENT_NOT_SUPPORTED
    else:
        response = Response.NOT_SUPPORTED
    reply = TaskManagementResponse(response=response, itt=request.itt, **connection._sns(advance=True))
    if function == Function.TARGET_COLD_RESET and response == Response.COMPLETE:
        # SAM-5: a cold reset also ends the I_T nexus: the connection closes after the response.
        connection.drop("target cold reset", warn_initiator=False)
    return reply
