"""Errors of the RAID member store that the page layer and the SCSI layer see."""

from __future__ import annotations

from ..block import UnrecoveredRead

__all__ = ["UnrecoverableRead"]


class UnrecoverableRead(UnrecoveredRead):
    """A sector that cannot be read and cannot be rebuilt (SBC-4: MEDIUM ERROR / UNRECOVERED READ ERROR).

    Raised for a latent sector error in a stripe that has no redundancy left, and for a strip
    whose contents were lost to a crash during a write to a degraded stripe (see ``store`` rule 6).
    """
