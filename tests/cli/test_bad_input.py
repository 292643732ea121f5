"""Refused commands: each prints exactly one ``% Error - ...`` line and changes nothing.

Every case runs on the same small group (built fresh per case):

* ``v1``: 1G thick, online, snapshots ``s1`` and ``s2`` (offline), access record 1;
* ``thin1``: 1G thin; ``thin90``: 1G thin, thin-max-grow 90%; ``thinbig``: 6G thin;
* ``nosnap``: 1G with snap-reserve 0;
* ``off1``: 1G, offline, with the snapshot ``offsnap`` set online;
* CHAP user ``bob``; pool ``p2`` with no member.

The group is built once for the module: a refused command changes nothing,
so each case compares the state just before and just after its own command.
"Nothing changed" is checked on what the CLI shows (``volume show``, every
volume's detail, snapshot and access lists, pools, members, CHAP users, group
parameters, CLI settings) and on every catalog row.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from array_sim import Group
from array_sim.units import GiB

LONG_NAME = "x" * 128

CASES = {
    "syntax": [
        "bogus",
        "volume bogus",
        "volume create v9 1G bogus",
        "volume create v9 1G pool",
        "volume select v1 bogus",
        "volume select v1 show extra",
        "volume select v1 show connections extra",
        "volume show v1 extra",
        "volume select v1 offline now",
        "volume select v1 size 2G no-snap extra",
        "volume select v1 multihost-access maybe",
        "volume select v1 thin-provision maybe",
        "volume select v1 snap-depletion bogus",
        "volume select v1 snapshot bogus",
        "volume select v1 snapshot select s1 bogus",
        "volume select v1 snapshot select s1 online now",
        "volume select v1 snapshot create-now extra",
        "volume select v1 access bogus",
        "volume select v1 access create bogus x",
        "volume select v1 access create ipaddress 10.0.0.1 authmethod md5",
        "volume select v1 access create ipaddress 10.0.0.1 apply-to everything",
        "volume select v1 access select 1 bogus",
        "volume select v1 access delete 1 extra",
        "pool bogus",
        "pool select default bogus",
        "pool show extra",
        "member bogus",
        "member select member-1 bogus",
        "grpparams bogus",
        "grpparams show extra",
        "grpparams info-messages maybe",
        "grpparams def-snap-depletion bogus",
        "cli-settings bogus on",
        "cli-settings paging maybe",
        "cli-settings paging off extra",
        "stty bogus",
        "stty hardwrap maybe",
        "whoami extra",
        "show bogus",
        "show pool extra",
        "chapuser bogus",
        "chapuser select bob bogus",
        "chapuser create carl bogus",
        "logout now",
    ],
    "ambiguous": [
        "s",
        "vol s",
        "volume select v1 s",
        "volume select v1 thin 50",
        "volume select v1 o",
        "volume create v9 1G snap 50",
        "grpparams def-thin 5",
    ],
    "missing": [
        "volume",
        "volume create",
        "volume create v9",
        "volume select",
        "volume rename v1",
        "volume delete",
        "volume select v1 size",
        "volume select v1 description",
        "volume select v1 iscsi-alias",
        "volume select v1 snap-reserve",
        "volume select v1 multihost-access",
        "volume select v1 clone",
        "volume select v1 snapshot",
        "volume select v1 snapshot rename s1",
        "volume select v1 snapshot select",
        "volume select v1 snapshot select s1",
        "volume select v1 snapshot select s1 clone",
        "volume select v1 snapshot delete",
        "volume select v1 access",
        "volume select v1 access delete",
        "volume select v1 access create",
        "volume select v1 access create initiator",
        "volume select v1 access create ipaddress",
        "chapuser create",
        "chapuser select bob passwd",
        "pool create",
        "pool select",
        "grpparams group-ipaddress",
        "grpparams def-snap-reserve",
        "cli-settings",
        "cli-settings paging",
        "stty columns",
    ],
    "size": [
        "volume create v9 1XB",
        "volume create v9 -1G",
        "volume create v9 0",
        "volume create v9 0G",
        "volume create v9 0.0GB",
        "volume create v9 G",
        "volume create v9 1.2.3G",
        "volume create v9 1KB",
        "volume create v9 1PB",
        "volume create v9 one",
        "volume select v1 size 1XB",
        "volume select v1 size 0",
        "volume select v1 size -5GB",
    ],
    "percent": [
        "volume create v9 1G snap-reserve abc",
        "volume create v9 1G snap-warn 101%",
        "volume create v9 1G thin-provision thin-max-grow 0",
        "volume select v1 snap-reserve -5",
        "volume select v1 snap-reserve 10001%",
        "volume select v1 snap-reserve %",
        "volume select v1 snap-warn 50.5%",
        "volume select v1 snap-warn 101",
        "volume select v1 thin-min-reserve 101",
        "volume select v1 thin-warn-threshold 0",
        "volume select v1 thin-max-grow 0%",
        "volume select v1 thin-max-grow 101",
        "volume select thin1 thin-max-grow 50",
        # The maximum in-use space must not be below the in-use warning limit, however it is set.
        "volume create v9 1G thin-provision thin-max-grow 50",
        "volume select thin90 thin-warn-threshold 95",
        "grpparams def-thin-growth-max 50",
        "grpparams def-snap-reserve x",
        "grpparams def-snap-warn 150",
        "grpparams def-thin-growth-max 0",
        "grpparams def-thin-growth-warn 101%",
    ],
    "ip": [
        "grpparams group-ipaddress 1.2.3",
        "grpparams group-ipaddress 256.1.1.1",
        "grpparams group-ipaddress 1.2.3.4.5",
        "grpparams group-ipaddress abc",
        "grpparams group-ipaddress *.*.*.*",
        "grpparams group-ipaddress 10.0.0.-1",
        "volume select v1 access create ipaddress 300.1.1.1",
        "volume select v1 access create ipaddress 10.0.0",
        "volume select v1 access create ipaddress a.b.c.d",
        "volume select v1 access create initiator iqn.x:y ipaddress 10.0.0.256",
    ],
    "name": [
        'volume create "my vol" 1G',
        "volume create my/vol 1G",
        "volume create vol$ 1G",
        "volume create -vol 1G",
        "volume create vol;rm 1G",
        'volume create "" 1G',
        f"volume create {LONG_NAME} 1G",
        'volume rename v1 "a b"',
        "volume rename v1 bad/name",
        "volume select v1 clone bad/name",
        'volume select v1 clone "two words"',
        "volume select v1 snapshot select s1 clone bad*name",
        "volume select v1 snapshot rename s1 bad/name",
        'volume select v1 snapshot select s1 rename "s 3"',
        'chapuser create "b b"',
        "chapuser create bad/user",
        "grpparams name bad_name!",
        'grpparams name ""',
        'pool create "bad name"',
        'pool create ""',
        "pool create bad/pool",
    ],
    "duplicate": [
        "volume create v1 1G",
        "volume create thin1 1G thin-provision",
        "volume rename thin1 v1",
        "volume select thin1 clone v1",
        "volume select v1 snapshot select s1 clone thin1",
        "volume select v1 snapshot rename s1 s2",
        "volume select v1 snapshot select s2 rename s1",
        "chapuser create bob",
        "pool create default",
        "pool create p2",
    ],
    "state": [
        "volume delete v1",
        "volume select v1 size 500MB",
        "volume select v1 size 500MB no-snap",
        "volume select v1 snapshot select s1 restore",
        "volume select off1 snapshot select offsnap restore",
        "volume select nosnap snapshot create-now",
        "volume select nosnap size 2G no-snap extra",
        "volume create big 6G",
        "volume create big 100G thin-provision",
        "volume create big 1G pool p2",
        "volume create big 1G pool p2 thin-provision",
        "pool delete default",
        "volume select v1 size 100G",
        "volume select v1 size 100G no-snap",
        "volume select v1 snap-reserve 10000",
        "volume select thinbig thin-min-reserve 100%",
        "volume select thinbig thin-provision disable",
        "volume select v1 clone big-clone snap-reserve",
        "chapuser create carl password short",
        "chapuser select bob passwd short",
        "stty columns 0",
        "stty columns abc",
        "stty columns 99999",
    ],
    "missing-object": [
        "volume select nosuch show",
        "volume select nosuch",
        "volume show nosuch",
        "volume delete nosuch",
        "volume rename nosuch x",
        "volume select nosuch offline",
        "volume select nosuch snapshot create-now",
        "volume select v1 snapshot delete nosuch",
        "volume select v1 snapshot show nosuch",
        "volume select v1 snapshot select nosuch show",
        "volume select v1 snapshot select nosuch clone x",
        "volume select v1 snapshot rename nosuch x",
        "volume select thin1 snapshot select s1 show",
        "volume select v1 access delete 9",
        "volume select v1 access delete x",
        "volume select v1 access select 9 show",
        "chapuser delete nobody",
        "chapuser show nobody",
        "chapuser select nobody show",
        "chapuser select nobody passwd long-enough-secret",
        "pool select nopool show",
        "pool delete nopool",
        "member select member-9 show",
        "volume create v9 1G pool nopool",
    ],
    "quotes": [
        'volume select v1 description "unbalanced',
        "volume select v1 description 'x",
        'volume create "v9 1G',
        "volume create v9 1G description 'it''s",
        'chapuser create "bob',
    ],
}

ALL_CASES = [pytest.param(line, id=f"{kind}:{line[:60]}") for kind, lines in CASES.items() for line in lines]


class World:
    """The module's group, rebuilt after a case that (wrongly) changed it."""

    def __init__(self, factory: pytest.TempPathFactory, helpers: Any) -> None:
        self.factory = factory
        self.helpers = helpers
        self.group: Group | None = None
        self.cli: Any = None
        self.rebuild()

    def rebuild(self) -> None:
        self.close()
        self.group = Group.init(self.factory.mktemp("bad-input") / "g", member_size=10 * GiB)
        self.cli = self.helpers.Cli(self.group)
        self.cli.quiet("cli-settings confirmation off")
        self.cli.quiet("cli-settings formatoutput off")
        build(self.cli)

    def close(self) -> None:
        if self.group is not None:
            self.group.close()
            self.group = None


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, helpers: Any) -> Iterator[World]:
    holder = World(tmp_path_factory, helpers)
    try:
        yield holder
    finally:
        holder.close()


def catalog_rows(group: Group) -> list[tuple[object, ...]]:
    db = group.catalog.db
    tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'") if name != "events"]
    return [tuple(sorted(map(repr, db.execute(f"SELECT * FROM {table}")))) for table in tables]


@pytest.fixture
def world(shared: World) -> Iterator[Any]:
    assert shared.group is not None
    before = catalog_rows(shared.group)
    yield shared.cli
    shared.cli.session.modes.clear()
    if catalog_rows(shared.group) != before:
        shared.rebuild()


def build(cli: Any) -> None:
    cli.ok("volume create v1 1G")
    for name in ("s1", "s2"):
        auto = cli.ok("volume select v1 snapshot create-now")[1].removeprefix("Snapshot name is ")
        cli.quiet(f"volume select v1 snapshot rename {auto} {name}")
    cli.ok("volume select v1 access create initiator iqn.1993-08.org.debian:01:2227dab76162 ipaddress 10.0.0.1")
    cli.ok("volume create thin1 1G thin-provision")
    cli.ok("volume create thinbig 6G thin-provision")
    cli.ok("volume create thin90 1G thin-provision thin-max-grow 90")
    cli.ok("volume create nosnap 1G snap-reserve 0")
    cli.ok("volume create off1 1G")
    auto = cli.ok("volume select off1 snapshot create-now")[1].removeprefix("Snapshot name is ")
    cli.quiet(f"volume select off1 snapshot rename {auto} offsnap")
    cli.quiet("volume select off1 snapshot select offsnap online")
    cli.quiet("volume select off1 offline")
    cli.ok("chapuser create bob password bob-secret-1234")
    cli.quiet("pool create p2")


@pytest.mark.parametrize("line", ALL_CASES)
def test_refused_command_prints_one_error_and_changes_nothing(world: Any, helpers: Any, line: str) -> None:
    before = helpers.group_state(world.group)
    prompt = world.prompt
    error = world.error(line)
    assert error.startswith("% Error - ")
    assert world.prompt == prompt
    after = helpers.group_state(world.group)
    changed = [key for key in before if before[key] != after.get(key)] + [key for key in after if key not in before]
    assert not changed, f"{line!r} printed {error!r} but changed {changed}"


@pytest.mark.parametrize(
    "line",
    [
        "volume delete v1",
        "volume select v1 snapshot select s1 restore",
        "volume select v1 access delete 9",
        "volume select v1 snapshot delete nosuch",
        "chapuser delete nobody",
    ],
)
def test_refused_after_confirmation_changes_nothing(world: Any, helpers: Any, line: str) -> None:
    """With confirmation on, a refusal (before or after the question) is still one line and no change."""
    asking = helpers.Cli(world.group, "operator")  # a new account: confirmation on
    before = helpers.group_state(world.group)
    out = asking.run(line)
    if out == []:
        assert asking.prompt.endswith("(y/n) [n] ")
        out = asking.run("y")
    assert len(out) == 1 and out[0].startswith("% Error - "), out
    assert asking.prompt == "group-0> "
    assert helpers.group_state(world.group) == before


def test_missing_objects_say_does_not_exist(world: Any) -> None:
    for line in CASES["missing-object"]:
        if "access delete x" in line:
            continue
        assert "does not exist" in world.error(line), line


def test_errors_inside_sub_command_mode(world: Any, helpers: Any) -> None:
    inside = helpers.Cli(world.group)
    assert inside.run("volume select v1") == []
    before = helpers.group_state(world.group)
    for line in (
        "size 500MB",
        "snapshot select s1 restore",
        "clone thin1",
        "bogus",
        'description "open',
        "access delete 7",
    ):
        inside.error(line)
        assert inside.prompt == "group-0(volume_v1)> "
    assert helpers.group_state(world.group) == before
