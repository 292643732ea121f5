"""The kernel side of a TCMU device: finding our UIO devices, opening them safely, waking the kernel.

This is the only module of ``targets.tcmu`` that touches the system (sysfs, configfs, /dev/uioN);
the ring itself is parsed by ``ring`` over the mapping opened here. Rules (research/lio.md 3.1, 1
rule 3):

1. A TCMU device's UIO name is ``tcm-user/<hba>/<storage object>/<dev_config>``; ours are those
   whose dev_config starts with our handler subtype (``arraysim/``). Nothing else is opened.
2. Opening is the reopen sequence of libtcmu, on every open (a restart after ``kill -9`` finds
   commands in the ring): write 1 to ``action/block_dev``, 1 to ``action/reset_ring`` (commands in
   flight complete with BUSY, so initiators retry them), open ``/dev/uioN``, map the whole region
   (its size is ``maps/map0/size``), write 0 to ``block_dev``.
3. ``wait`` consumes the kernel's event count (4 bytes); ``OSError`` (EIO) there means the device
   was deleted: the owner closes it. ``notify`` writes 4 bytes, and the kernel reaps completions.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["UioDevice", "UioName", "find_devices"]

SYS_UIO = Path("/sys/class/uio")
CONFIGFS_CORE = Path("/sys/kernel/config/target/core")


@dataclass(frozen=True)
class UioName:
    """A TCMU UIO device, from its name (rule 1)."""

    uio: str
    hba: str
    storage_object: str
    config: str

    @property
    def configfs(self) -> Path:
        return CONFIGFS_CORE / f"user_{self.hba}" / self.storage_object


def find_devices(subtype: str) -> list[UioName]:
    """Every TCMU device whose handler subtype is ``subtype`` (rule 1)."""
    found = []
    for entry in sorted(SYS_UIO.glob("uio*")):
        try:
            parts = (entry / "name").read_text().strip().split("/", 3)
        except OSError:
            continue  # gone while we looked
        if len(parts) == 4 and parts[0] == "tcm-user" and parts[3].startswith(subtype + "/"):
            found.append(UioName(entry.name, parts[1], parts[2], parts[3]))
    return found


class UioDevice:
    """One opened TCMU device: its file descriptor and its mapping (mailbox, ring, data area)."""

    def __init__(self, name: UioName) -> None:
        self.name = name
        action = name.configfs / "action"
        (action / "block_dev").write_text("1")
        (action / "reset_ring").write_text("1")
        self.fd = os.open(f"/dev/{name.uio}", os.O_RDWR | os.O_CLOEXEC)
        try:
            size = int((SYS_UIO / name.uio / "maps" / "map0" / "size").read_text().strip(), 16)
            self.mapping = mmap.mmap(self.fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(self.fd)
            raise
        (action / "block_dev").write_text("0")

    def wait(self) -> None:
        """Consume the event count (rule 3); raises OSError once the device is deleted."""
        os.read(self.fd, 4)

    def notify(self) -> None:
        """Tell the kernel completions are in the ring (rule 3)."""
        os.write(self.fd, b"\0\0\0\0")

    def close(self) -> None:
        self.mapping.close()
        os.close(self.fd)
