"""The transport-free SCSI device server: SPC-5 and SBC-4 over an ``array_sim`` block device.

A transport builds a ``Command`` (CDB, gathered Data-Out, I_T nexus, LUN),
calls ``ScsiTarget.execute`` (or ``LogicalUnit.execute``) and sends back the
``Result`` (status, data-in cut to the ALLOCATION LENGTH, sense data). It
reports I_T nexus loss and resets through ``nexus_gone`` and ``reset``, and a
resize through ``capacity_changed``. Nothing here knows about iSCSI PDUs,
sessions or sockets.

Modules: ``model`` (the values above), ``dispatch`` (the opcode table and the
check sequence), ``sense`` (reasons and the one sense table), ``spc``,
``sbc``, ``provisioning``, ``vpd``, ``mode``, ``reservations`` and
``persistent_reserve``, ``rsoc``, ``unit_attention``, ``logical_unit``.
"""

from .dispatch import COMMANDS, expected_data_out
from .logical_unit import LogicalUnit, ResetKind, ScsiTarget
from .model import REPORT_LUNS_WLUN, Command, Nexus, Result, Status, decode_lun, encode_lun
from .sense import SenseKey, SenseReason

__all__ = [
    "COMMANDS",
    "Command",
    "LogicalUnit",
    "Nexus",
    "REPORT_LUNS_WLUN",
    "ResetKind",
    "Result",
    "ScsiTarget",
    "SenseKey",
    "SenseReason",
    "Status",
    "decode_lun",
    "encode_lun",
    "expected_data_out",
]
