"""A logical unit over a block device, and a target that routes commands to its LUs.

These are the two objects a transport holds. Both are synchronous and keep
their state in memory; neither is thread-safe, so a transport calls them from
one thread (an asyncio target calls them from its event loop, or from one
worker thread).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

from array_sim.block import BlockDevice

from . import dispatch
from .mode import ModeParameters
from .model import Command, Nexus, Result
from .reservations import Reservations
from .sense import CheckCondition, SenseReason
from .unit_attention import UnitAttentions

__all__ = ["LogicalUnit", "ScsiTarget", "ResetKind"]


class ResetKind(Enum):
    """The resets a transport can report (SAM-5 6.3, RFC 7143 §11.5.1)."""

    #: LOGICAL UNIT RESET task management function.
    LOGICAL_UNIT = "lun"
    #: TARGET WARM RESET: a hard reset of every logical unit.
    TARGET_WARM = "warm"
    #: TARGET COLD RESET: as a warm reset, reported as a power-on.
    TARGET_COLD = "cold"


_RESET_ATTENTION = {
    ResetKind.LOGICAL_UNIT: SenseReason.UA_LUN_RESET,
    ResetKind.TARGET_WARM: SenseReason.UA_RESET,
    ResetKind.TARGET_COLD: SenseReason.UA_POWER_ON,
}


class LogicalUnit:
    """A direct-access block device (peripheral device type 0) over one volume or snapshot.

    Args:
        device: the volume or snapshot (``array_sim.block.BlockDevice``).
        serial: Unit Serial Number (VPD 80h), ASCII.
        naa: the 16-byte NAA IEEE Registered Extended identifier (NAA type 6)
            that names the logical unit in VPD 83h.
        target_name: the SCSI target device name (an iSCSI IQN) for VPD 83h.
        relative_port: RELATIVE TARGET PORT IDENTIFIER, 1..65535.
        vendor, product, revision: standard INQUIRY strings (8, 16, 4 ASCII characters at most).
    """

    #: TARGET PORT GROUP reported in VPD 83h (there is one group; TPGS=0, no ALUA).
    port_group = 1

    def __init__(
        self,
        device: BlockDevice,
        *,
        serial: str,
        naa: bytes,
        target_name: str,
        relative_port: int = 1,
        vendor: str = "EQLOGIC",
        product: str = "100E-00",
        revision: str = "8.1",
    ) -> None:
        if len(naa) != 16 or naa[0] >> 4 != 6:
            raise ValueError("naa must be a 16-byte NAA IEEE Registered Extended (type 6) identifier")
        if not 1 <= relative_port <= 0xFFFF:
            raise ValueError("relative_port must be 1..65535")
        for text, size in ((vendor, 8), (product, 16), (revision, 4), (serial, 255)):
            if len(text) > size or not all(0x20 <= ord(c) < 0x7F for c in text):
                raise ValueError(f"{text!r} is not printable ASCII of at most {size} characters")
        self.device = device
        self.serial = serial
        self.naa = bytes(naa)
        self.target_name = target_name
        self.relative_port = relative_port
        self.vendor, self.product, self.revision = vendor, product, revision
        self.mode = ModeParameters()
        self.unit_attention = UnitAttentions()
        self.reservations = Reservations()

    # ------------------------------------------------------------ transport API

    def execute(self, command: Command) -> Result:
        """Run one command. Never raises: a bad CDB is a CHECK CONDITION."""
        return dispatch.execute(self, command, luns=(command.lun,))

    def expected_data_out(self, cdb: bytes) -> int:
        """Bytes of Data-Out the CDB asks for, with this LU's block size."""
        return dispatch.expected_data_out(cdb, self.device.block_size)

    def capacity_changed(self) -> None:
        """The volume was resized: CAPACITY DATA HAS CHANGED for every I_T nexus (SBC-4 4.6)."""
        self.unit_attention.establish(SenseReason.UA_CAPACITY_CHANGED)

    def nexus_gone(self, nexus: Nexus) -> None:
        """I_T nexus loss (SAM-5 6.3.4): its SPC-2 reservation goes, persistent
        registrations stay, and its pending unit attentions are forgotten."""
        if self.reservations.spc2_holder == nexus:
            self.reservations.spc2_holder = None
        self.unit_attention.nexus_lost(nexus)

    def reset(self, kind: ResetKind | str) -> None:
        """A logical unit reset or a target (hard) reset (SAM-5 6.3.2, 6.3.3).

        SPC-2 reservations are released, persistent reservations are kept,
        mode parameters return to their defaults (nothing is saved), and every
        I_T nexus gets a unit attention: 29/03 for a LUN reset, 29/00 for a
        warm reset, 29/01 for a cold reset.
        """
        kind = ResetKind(kind)
        self.reservations.spc2_holder = None
        self.mode.restore_defaults()
        self.unit_attention.establish(_RESET_ATTENTION[kind])

    # -------------------------------------------------------- for the handlers

    @property
    def thin(self) -> bool:
        """Logical block provisioning management (LBPME): thin volumes only."""
        return self.device.thin

    @property
    def write_protected(self) -> bool:
        return self.device.read_only or self.mode.software_write_protect

    def check_writable(self) -> None:
        if self.write_protected:
            raise CheckCondition(SenseReason.WRITE_PROTECTED)


class ScsiTarget:
    """The logical units behind one SCSI target port, by LUN.

    ``luns`` is kept by reference: a transport may add or remove entries.
    REPORT LUNS lists it; INQUIRY, REPORT LUNS and REQUEST SENSE are answered
    for a LUN that is not in it, every other command gets LOGICAL UNIT NOT
    SUPPORTED.
    """

    expected_data_out = staticmethod(dispatch.expected_data_out)

    def __init__(self, luns: Mapping[int, LogicalUnit]) -> None:
        self.luns = luns

    def execute(self, command: Command) -> Result:
        return dispatch.execute(self.luns.get(command.lun), command, luns=sorted(self.luns))

    def data_out_to_gather(self, cdb: bytes, lun: int) -> tuple[int, int]:
        """``dispatch.data_out_to_gather`` with the block size of the logical unit at ``lun``."""
        lu = self.luns.get(lun)
        return dispatch.data_out_to_gather(cdb, lu.device.block_size if lu else dispatch.DEFAULT_BLOCK_SIZE)

    def nexus_gone(self, nexus: Nexus) -> None:
        for lu in self.luns.values():
            lu.nexus_gone(nexus)

    def reset(self, kind: ResetKind | str) -> None:
        """A target reset reaches every logical unit."""
        for lu in self.luns.values():
            lu.reset(kind)
