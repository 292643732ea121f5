"""The member's persistent RAID state: ``raid.json`` beside the disk files.

Rules of this module:

1. The superblock is one JSON document replaced atomically: write a temporary file, fsync it,
   rename it over the old one, fsync the directory. A crash leaves the old or the new state.
2. The store writes it on every state change (disk failed, spare taken, replaced, latent errors
   added or corrected, lost strips) and every few MiB of reconstruction progress, so a reopened
   store resumes reconstruction from a cursor at most that far behind (stripes rebuilt twice are
   harmless).
3. Contents (``version`` 1): policy, disks, disk_size, strip_size, name, ``roles`` (for each set,
   the physical disk at each position or null), ``disk_states`` (per disk: status in
   EQLMEMBER-MIB eqlDiskStatus names on-line / spare / failed, ``rebuilt`` stripes, errors,
   latent error ranges), ``failed`` (member beyond tolerance), ``lost`` strips, and ``verify``
   (the verification cursor, or null) with its ``mismatches`` (both absent from superblocks
   written before verification existed, which read as null and 0).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["FILE_NAME", "load", "save"]

FILE_NAME = "raid.json"


def load(directory: Path) -> dict[str, Any]:
    with open(directory / FILE_NAME, encoding="utf-8") as file:
        state: dict[str, Any] = json.load(file)
    if state.get("version") != 1:
        raise ValueError(f"{directory / FILE_NAME}: unknown superblock version {state.get('version')}")
    return state


def save(directory: Path, state: dict[str, Any]) -> None:
    tmp = directory / (FILE_NAME + ".tmp")
    with open(tmp, "w", encoding="utf-8") as file:
        json.dump(state, file, indent=1, sort_keys=True)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, directory / FILE_NAME)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
