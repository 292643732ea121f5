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

None of this is PS Series syntax; every fault is deterministic. ``NODE`` is the ``simulate`` subtree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from array_sim.member_admin import DEFAULT_DISKS
from array_sim.units import PAGE_SIZE, GiB

from ..grammar import Arg, Node, Option, choice_arg
from ..words import CliError
from . import clock
from .member import member_names
from .options import size_value, whole_number

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["NODE", "DEFAULT_DISK_SIZE"]

#: Disk size of an array added without ``disk-size`` (sparse files: it costs what is written).
DEFAULT_DISK_SIZE = 10 * GiB


def _disk_size(text: str) -> int:
    size = size_value(text)
    if size < PAGE_SIZE:  # an array's disk holds at least one page
        raise CliError("The disk size must be at least 15MB.")
    return size


def _add(session: Session, args: dict[str, Any]) -> list[str]:
    session.group.add_array(args["member"], args.get("pool", "default"), args.get("disks", DEFAULT_DISKS),
                            args.get("disk_size", DEFAULT_DISK_SIZE))  # fmt: skip
    return []


def _verify(session: Session, args: dict[str, Any]) -> list[str]:
    session.group.member_admin.verify(args["member"])
    return []


def _power(session: Session, args: dict[str, Any]) -> list[str]:
    session.group.power_member(args["member"], args["on"])
    return []


def _eth(session: Session, args: dict[str, Any]) -> list[str]:
    session.group.set_member_port(args["member"], args["eth"], args["up"])
    return []


def _disk(session: Session, args: dict[str, Any]) -> list[str]:
    admin, name, disk = session.group.member_admin, args["member"], args["disk"]
    if args["fault"] == "bad-sectors":
        admin.add_bad_sectors(name, disk, args["offset"], args["length"])
    elif args["fault"] == "fail":
        admin.fail_disk(name, disk)
    else:
        admin.replace_disk(name, disk)
    return []


_MEMBER = Arg("member", "member name", choices=member_names)

NODE = Node("simulate", "what only a simulator does: arrays added, faults, power, cables, the clock", children=(
    Node("member", "arrays: add one, fail its disks, power, cables", children=(
        Node("add", "bring an unconfigured array into the group (then: member select M raid-policy P)",
             args=(Arg("member", "member name"),), options=(
            Option("disks", f"how many disks (default {DEFAULT_DISKS})", "disks",
                   Arg("disks", "number of disks", whole_number("number of disks"))),
            Option("disk-size", "each disk's size (default 10GB)", "disk_size", Arg("disk_size", "size", _disk_size)),
            Option("pool", "the pool it joins (default: default)", "pool", Arg("pool", "pool name")),
        ), run=_add),
        Node("select", "fault a member", args=(_MEMBER,), children=(
            Node("disk", "fail, replace or damage one of its disks",
                 args=(Arg("disk", "disk number", whole_number("disk number")),), children=(
                Node("fail", "the disk fails", run=_disk, preset={"fault": "fail"}),
                Node("replace", "a new disk in the slot (it becomes a spare)", run=_disk,
                     preset={"fault": "replace"}),
                Node("bad-sectors", "LENGTH bytes at byte OFFSET become unreadable (a latent sector error)",
                     args=(Arg("offset", "offset in bytes", whole_number("offset in bytes")),
                           Arg("length", "length in bytes", whole_number("length in bytes"))),
                     run=_disk, preset={"fault": "bad-sectors"}),
            ), children_are="fault"),
            Node("verify", "start its background verification now", run=_verify),
            Node("power", "power it off (its volumes go offline) or on",
                 args=(choice_arg("on", "power state", ["on", "off"], "power state", lambda word: word == "on"),),
                 run=_power),
            Node("eth", "pull the cable of its port ethN, or put it back",
                 args=(Arg("eth", "port number", whole_number("port number")),
                       choice_arg("up", "link state", ["up", "down"], "link state", lambda word: word == "up")),
                 run=_eth),
        ), children_are="object"),
    )),
    clock.NODE,
), children_are="object")  # fmt: skip
