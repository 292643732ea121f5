"""The PS Series RAID policies: one table, and the geometry a policy gives a number of disks.

Rules of this module:

1. **Names are EQLMEMBER-MIB ``eqlDriveGroupRAIDPolicy``'s** (research/next-capabilities.md 1.1):
   raid6, raid6-nospares, raid10, raid10-nospares, raid50, raid50-nospares, raid5, raid5-nospares.
   Every fact about a policy is a row of ``POLICIES``; nothing else in the package tests a name.
2. **A member is a sequence of equal RAID sets plus hot spares.** RAID 5 and RAID 6 are one set
   over every non-spare disk; RAID 10 is one two-disk mirror per set; RAID 50 is several RAID 5
   sets of at most 7 disks. Data is striped over the sets strip by strip (``layout``).
3. **Spare counts** come from the Configuration Guide tables (RAID 10: 2, RAID 5: 1) and, where the
   tables were not public, from recollection marked INFERRED there (RAID 6: 1, RAID 50: 2 with
   sets of at most 7 disks and at least two sets, 16 disks -> 2 x 7 + 2). Disks that do not fill a whole RAID 50 set
   become extra spares (INFERRED).
4. A disk count below a policy's minimum is refused with ``InvalidRequest`` whose message the CLI
   prints after "% Error - ".
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidRequest

__all__ = ["Policy", "POLICIES", "Geometry", "policy_named", "geometry"]


@dataclass(frozen=True)
class Policy:
    """One row of the policy table."""

    name: str
    #: 5, 6, 10 or 50.
    level: int
    #: Hot spares kept out of the sets.
    spares: int
    #: How the non-spare disks form sets: "one" (a single set), "mirrors" (pairs), "raid5-sets-of-7".
    sets: str
    #: Fewest disks the policy accepts (spares included).
    min_disks: int
    #: Source of the layout: "documented" or "inferred".
    source: str = "documented"
    note: str = ""


POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy("raid6", 6, 1, "one", 5, "inferred", "1 hot spare recalled, tables not public"),
        Policy("raid6-nospares", 6, 0, "one", 4, "inferred"),
        Policy("raid10", 10, 2, "mirrors", 6),
        Policy("raid10-nospares", 10, 0, "mirrors", 4, note="needs an even number of disks"),
        Policy("raid50", 50, 2, "raid5-sets-of-7", 8, "inferred", "16 disks -> 2 x 7 + 2 spares"),
        Policy("raid50-nospares", 50, 0, "raid5-sets-of-7", 6, "inferred"),
        Policy("raid5", 5, 1, "one", 4),
        Policy(
            "raid5-nospares",
            5,
            0,
            "one",
            3,
            note="in the MIB; the array's docs call RAID 5 without a spare unsupported",
        ),
    )
}

#: Widest RAID 5 set of a RAID 50 member (INFERRED).
RAID50_SET_WIDTH = 7


@dataclass(frozen=True)
class Geometry:
    """How ``disks`` disks are used under a policy."""

    policy: Policy
    disks: int
    #: Number of RAID sets (mirror pairs for RAID 10).
    sets: int
    #: Disks per set.
    width: int
    #: Redundant strips per stripe of a set: 1 (RAID 5, mirror) or 2 (RAID 6).
    parity: int
    #: Disks that start as hot spares.
    spares: int

    @property
    def data_strips(self) -> int:
        """Data strips per stripe of one set (1 for a mirror)."""
        return 1 if self.mirror else self.width - self.parity

    @property
    def mirror(self) -> bool:
        return self.policy.level == 10


def policy_named(name: str) -> Policy:
    try:
        return POLICIES[name]
    except KeyError:
        raise InvalidRequest(f"Unknown RAID policy {name}; use one of {', '.join(POLICIES)}.") from None


def geometry(name: str, disks: int) -> Geometry:
    """The sets and spares ``disks`` disks form under policy ``name`` (InvalidRequest if impossible)."""
    policy = policy_named(name)
    if disks < policy.min_disks:
        raise InvalidRequest(f"RAID policy {policy.name} needs at least {policy.min_disks} disks, not {disks}.")
    members = disks - policy.spares
    if policy.sets == "one":
        return Geometry(policy, disks, 1, members, 2 if policy.level == 6 else 1, policy.spares)
    if policy.sets == "mirrors":
        if policy.spares == 0 and members % 2:
            raise InvalidRequest(f"RAID policy {policy.name} needs an even number of disks, not {disks}.")
        pairs = members // 2
        return Geometry(policy, disks, pairs, 2, 1, disks - 2 * pairs)
    sets = max(2, -(-members // RAID50_SET_WIDTH))
    width = members // sets
    return Geometry(policy, disks, sets, width, 1, disks - sets * width)
