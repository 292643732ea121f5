"""``simulate``: what only a simulator does, kept under one noun so nobody takes it for the array's.

    simulate member add NAME [disks N] [disk-size SIZE] [pool P]
        brings an unconfigured array into the group (set its RAID policy with
        ``member select NAME raid-policy P``, as on the array).
    simulate member select M disk N fail | replace | bad-sectors OFFSET LENGTH
        fails disk N, puts a new disk in slot N (it becomes a spare), or makes
        LENGTH bytes at byte OFFSET of disk N unreadable (a latent sector error;
        the RAID layer rebuilds and rewrites them when they are read).
    simulate member select M power off | on
        powers member M off (it goes off-line: every volume and snapshot with data on it goes
        offline, and only those) or back on (they come back online).
    simulate member select M eth N down | up
        pulls the cable of member M's port ethN (its address is not listened on and its
        connections drop; initiators come back through the group IP) or puts it back.
    simulate member select M verify
        starts the array's background verification of member M now (RAID status
        verifying): every stripe is read, latent sector errors are rewritten and
        parity that disagrees with the data is rewritten and counted.

    simulate clock show | advance DURATION | set YYYY-MM-DD HH:MM[:SS]
        shows or moves the simulated clock of ``serve --clock simulated`` (commands/clock.py).

None of this is PS Series syntax; every fault is deterministic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from array_sim.member_admin import DEFAULT_DISKS
from array_sim.units import PAGE_SIZE, GiB

from ..words import CliError, Words
from . import clock
from .options import size_argument, whole_number_argument
from .schedule import run_words

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["simulate", "DEFAULT_DISK_SIZE"]

#: Disk size of an array added without ``disk-size`` (sparse files: it costs what is written).
DEFAULT_DISK_SIZE = 10 * GiB


def simulate(session: Session, words: Words) -> list[str]:
    if words.keyword(["member", "clock"], "object") == "clock":
        return run_words(session, clock.NODE, words)
    action = words.keyword(["add", "select"])
    if action == "add":
        name = words.take("member name")
        disks, disk_size, pool = DEFAULT_DISKS, DEFAULT_DISK_SIZE, "default"
        while not words.at_end():
            option = words.keyword(["disks", "disk-size", "pool"], "option")
            if option == "disks":
                disks = whole_number_argument(words, "number of disks")
            elif option == "disk-size":
                disk_size = size_argument(words)
                if disk_size < PAGE_SIZE:  # an array's disk holds at least one page
                    raise CliError("The disk size must be at least 15MB.")
            else:
                pool = words.take("pool name")
        session.group.add_array(name, pool, disks, disk_size)
        return []
    name = words.take("member name")
    admin = session.group.member_admin
    what = words.keyword(["disk", "verify", "power", "eth"], "object")
    if what == "verify":
        words.end()
        admin.verify(name)
        return []
    if what == "eth":
        eth = whole_number_argument(words, "port number")
        up = words.keyword(["up", "down"], "link state") == "up"
        words.end()
        session.group.set_member_port(name, eth, up)
        return []
    if what == "power":
        on = words.keyword(["on", "off"], "power state") == "on"
        words.end()
        session.group.power_member(name, on)
        return []
    disk = whole_number_argument(words, "disk number")
    fault = words.keyword(["fail", "replace", "bad-sectors"], "fault")
    if fault == "bad-sectors":
        offset = whole_number_argument(words, "offset in bytes")
        length = whole_number_argument(words, "length in bytes")
        words.end()
        admin.add_bad_sectors(name, disk, offset, length)
    elif fault == "fail":
        words.end()
        admin.fail_disk(name, disk)
    else:
        words.end()
        admin.replace_disk(name, disk)
    return []

