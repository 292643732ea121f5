"""Ring commands run on a ``LogicalUnit``: the glue between ``ring`` and ``targets.scsi``, sans-IO.

The LIO front end's loop wakes on the uio fd, calls ``commands()`` (or
``process()`` to run everything at once), runs each ``targets.scsi.Command``
where the engine lives, and hands each result to ``finish``; afterwards
``ring.notify_due`` says whether to write to the fd. Nothing here does I/O.

Rules of this module:

1. One fixed I_T nexus, ``LIO_NEXUS``, for every command. A TCMU entry
   carries a CDB and iovecs and nothing about who sent them (struct
   ``tcmu_cmd_entry`` has no initiator field), and the per-initiator work
   is done in the kernel before a command reaches the ring: ACLs, CHAP and
   LUN write-protect in the fabric and core, REPORT LUNS, PERSISTENT
   RESERVE and RESERVE/RELEASE in ``passthrough_parse_cdb`` (lio.md 3.4).
   What is left per nexus in the logical unit is its unit attention queue,
   so a condition (a resize's CAPACITY DATA HAS CHANGED, a reset) is
   reported once, to whichever initiator sends the next command, as with
   tcmu-runner's one UA state per device.
2. Data-Out is gathered as ``data_out_to_gather`` sizes it from the CDB and
   the block size (as the iSCSI target does, ``scsi_tasks`` rule 1), never
   more than the command's iovecs hold; a BIDI command's first iovecs are
   all Data-Out (``queue_cmd_ring``).
3. A command whose preparation or execution raises completes with CHECK
   CONDITION, HARDWARE ERROR / INTERNAL TARGET FAILURE (44h/00h), and the
   next command runs: one bad command must not stall the device until
   ``cmd_time_out`` (lio.md risk 4). ``RingError`` is the exception: the
   mapping is lost and the I/O shell must reopen the device.
4. A GOOD read that returns no data is completed with zeros: the kernel
   ignores ``read_len`` 0 (``tcmu_handle_completion``) and would pass the
   initiator whatever an earlier command left in those data blocks.
5. Sense data is cut to the entry's 96 bytes (SPC-5 4.4.1 allows truncated
   sense data; ours is 18 bytes fixed, or a few descriptors).
"""

from __future__ import annotations

import logging

from ..scsi import Command, LogicalUnit, Nexus, Result, SenseReason, Status
from ..scsi.dispatch import data_out_to_gather
from ..scsi.sense import build_sense
from . import abi
from .ring import Ring, RingCommand, RingError

__all__ = ["LIO_NEXUS", "TcmuHandler", "INTERNAL_FAILURE"]

log = logging.getLogger(__name__)

#: The I_T nexus every TCMU command runs under (rule 1). The names follow the
#: iSCSI port name shape (``name,i,0x<ISID>``, ``name,t,0x<TPGT>``) that
#: ``targets.scsi`` expects, with names no real initiator or target uses.
LIO_NEXUS = Nexus("lio-tcmu,i,0x000000000000", "lio-tcmu,t,0x0001")

#: What a command that raised completes with (rule 3).
INTERNAL_FAILURE = Result(
    Status.CHECK_CONDITION, sense=build_sense(SenseReason.INTERNAL_TARGET_FAILURE, descriptor=False)
)


class TcmuHandler:
    """One TCMU device: its ring and the logical unit behind it.

    Args:
        ring: the device's ``Ring``.
        lu: the volume or snapshot the device serves.
        nexus: the I_T nexus commands run under (rule 1).
    """

    def __init__(self, ring: Ring, lu: LogicalUnit, nexus: Nexus = LIO_NEXUS) -> None:
        self.ring = ring
        self.lu = lu
        self.nexus = nexus

    def process(self) -> int:
        """Take every queued command, run each on the logical unit and complete it.

        Returns:
            How many commands were completed; ``ring.notify_due`` says
            whether the kernel must be told.

        Raises:
            RingError: the ring is corrupt (rule 3).
        """
        batch = self.commands()
        for ring_command, command in batch:
            self.finish(ring_command, self.execute(command))
        return len(batch)

    def commands(self) -> list[tuple[RingCommand, Command]]:
        """The newly queued commands, each with the ``Command`` to run for it.

        A command that cannot even be prepared is completed at once (rule 3)
        and is not returned.
        """
        ready = []
        for ring_command in self.ring.take():
            try:
                ready.append((ring_command, self.prepare(ring_command)))
            except RingError:
                raise
            except Exception:
                log.exception("TCMU command %d (CDB %s) could not be prepared", ring_command.cmd_id,
                              ring_command.cdb.hex())  # fmt: skip
                self.finish(ring_command, INTERNAL_FAILURE)
        return ready

    def prepare(self, ring_command: RingCommand) -> Command:
        """The ``targets.scsi.Command`` for a ring command, its Data-Out gathered (rule 2)."""
        if ring_command.bidi:
            wanted = ring_command.data_out_length
        else:
            wanted = min(data_out_to_gather(ring_command.cdb, self.lu.device.block_size)[1],
                         ring_command.data_out_length)  # fmt: skip
        data_out = ring_command.data_out(wanted) if wanted else b""
        return Command(ring_command.cdb, data_out, nexus=self.nexus, lun=0)

    def execute(self, command: Command) -> Result:
        """``LogicalUnit.execute``, with an exception turned into ``INTERNAL_FAILURE`` (rule 3)."""
        try:
            return self.lu.execute(command)
        except Exception:
            log.exception("SCSI command %s raised", bytes(command.cdb).hex())
            return INTERNAL_FAILURE

    def finish(self, ring_command: RingCommand, result: Result | BaseException) -> None:
        """Complete a ring command with what its ``Command`` returned (or raised, rule 3).

        Raises:
            RingError: the ring is corrupt.
            ValueError: the command is not in flight (completed twice).
        """
        if isinstance(result, BaseException):
            log.error("TCMU command %d (CDB %s) raised %r", ring_command.cmd_id, ring_command.cdb.hex(), result)
            result = INTERNAL_FAILURE
        try:
            status, data_in, sense = int(result.status), result.data_in, bytes(result.sense[: abi.SENSE_SIZE])
        except Exception:
            log.exception("TCMU command %d: unusable result %r", ring_command.cmd_id, result)
            status, data_in, sense = int(INTERNAL_FAILURE.status), b"", INTERNAL_FAILURE.sense
        if status == Status.GOOD and not data_in and self._reads_nothing_into(ring_command):
            data_in = bytes(ring_command.data_in_length)  # rule 4
        self.ring.complete(ring_command, status, data_in, sense)

    def _reads_nothing_into(self, ring_command: RingCommand) -> bool:
        """A Data-In buffer the kernel will pass on in full although nothing was read (rule 4)."""
        if ring_command.bidi:
            return ring_command.data_in_length > 0
        if not ring_command.data_in_length:
            return False
        return data_out_to_gather(ring_command.cdb, self.lu.device.block_size)[0] == 0
