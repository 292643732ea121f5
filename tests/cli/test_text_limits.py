"""Stored text within the array's or iSCSI's limits (array_sim/naming.py ``TEXT_LIMITS``), ASCII digits only,
nothing dropped silently, and the snapshot reserve of a volume with snapshots.

Each refusal goes through the sans-IO CLI session, prints one ``% Error - ...``
line naming the limit, and leaves the group as it was (``group_state``).
"""

from __future__ import annotations

from typing import Any

import pytest

from array_sim.member_admin import FILE_LAYOUT
from array_sim.naming import TEXT_LIMITS

IQN = "iqn.1993-08.org.debian:01:host1"


@pytest.fixture
def raid_policy() -> str:
    """No RAID is tested here: the ``group`` fixture's member is one sparse file (quicker to make, flush and delete)."""
    return FILE_LAYOUT

#: (command, words the error must contain)
REFUSED = [
    ("volume select v1 description " + "d" * 10_000, ["description", "127 characters"]),
    ("volume select v1 description " + "d" * 128, ["description", "127 characters"]),
    ("volume create v2 1G description " + "d" * 128, ["description", "127 characters"]),
    ("volume select v1 clone v2 description " + "d" * 128, ["description", "127 characters"]),
    ("volume select v1 snapshot create-now description " + "d" * 128, ["description", "127"]),
    ("volume select v1 snapshot select s1 description " + "d" * 128, ["description", "127"]),
    ("volume select v1 iscsi-alias " + "a" * 10_000, ["iSCSI alias", "255 bytes", "RFC 7143"]),
    ("volume select v1 iscsi-alias " + "a" * 256, ["iSCSI alias", "255 bytes"]),
    ("volume select v1 iscsi-alias " + "\u00e9" * 128, ["iSCSI alias", "256 bytes", "255 bytes"]),
    ("volume create v2 1G iscsi-alias " + "a" * 256, ["iSCSI alias", "255 bytes"]),
    ("volume select v1 access create initiator iqn.2000-01.com.x:" + "i" * 206, ["initiator name", "223 bytes"]),
    ("volume select v1 access create ipaddress 10.0.0.1" + "0" * 20, ["IP address", "15"]),
    ("volume select v1 access create username " + "u" * 64, ["CHAP user name", "63"]),
    ("chapuser create " + "u" * 64, ["CHAP user name", "63"]),
    ("chapuser create carl password " + "p" * 256, ["CHAP password", "12 to 255 bytes"]),
    ("chapuser select bob passwd " + "p" * 256, ["CHAP password", "12 to 255 bytes"]),
    ("volume create " + "v" * 64 + " 1G", ["volume name", "63"]),
    ("volume rename v1 " + "v" * 64, ["volume name", "63"]),
    ("volume select v1 snapshot rename s1 " + "s" * 128, ["snapshot name", "127"]),
    ("pool create " + "p" * 64, ["pool name", "63"]),
    ("grpparams description " + "d" * 128, ["description", "127 characters"]),
    ("collection create " + "c" * 64 + " v1", ["collection name", "63"]),
    ("collection create c1 v1 description " + "d" * 128, ["description", "127 characters"]),
    ("collection create c\\1 v1", ["'\\' is not allowed"]),
    ("grpparams target-auth-username " + "u" * 64, ["CHAP user name", "63"]),
    # Digits of other scripts: int(), float() and \d take them; the array does not.
    ("volume create v2 \u0661\u0660GB", ["Invalid size"]),
    ("volume create v2 \uff11GB", ["Invalid size"]),
    ("volume select v1 size \u0662GB", ["Invalid size"]),
    ("volume create v2 " + "9" * 400 + "GB", ["Invalid size"]),
    ("volume select v1 snap-reserve \u0665\u0660%", ["Invalid percentage"]),
    ("volume create v2 1G snap-warn \u0661\u0660", ["Invalid percentage"]),
    ("volume select v1 access select \u0661 show", ["Invalid access record ID"]),
    # A backslash is no escape character: the name keeps it and is refused.
    ("volume create vol\\1 1G", ["'\\' is not allowed", "63"]),
    ("volume rename v1 v\\2", ["'\\' is not allowed"]),
    ("volume select v1 snapshot rename s1 s\\3", ["'\\' is not allowed"]),
    ("chapuser create c\\d", ["'\\' is not allowed"]),
    # A carriage return or line feed inside the line refuses it, quoted or not.
    ('volume create "vo\rl" 1G', ["contains a control character", "\\r"]),
    ("volume create vo\rl 1G", ["contains a control character", "\\r"]),
    ('volume select v1 description "a\nb"', ["contains a control character", "\\n"]),
]


@pytest.fixture
def world(cli: Any) -> Any:
    cli.ok("volume create v1 1G")
    auto = cli.ok("volume select v1 snapshot create-now")[1].removeprefix("Snapshot name is ")
    cli.quiet(f"volume select v1 snapshot rename {auto} s1")
    cli.ok("chapuser create bob password bob-secret-1234")
    return cli


@pytest.mark.parametrize(("line", "words"), REFUSED, ids=[line[:50] for line, _ in REFUSED])
def test_refused_with_the_limit_and_nothing_changed(world: Any, helpers: Any, line: str, words: list[str]) -> None:
    before = helpers.group_state(world.group)
    error = world.error(line)
    for word in words:
        assert word in error, error
    assert "\r" not in error and "\n" not in error, error
    assert helpers.group_state(world.group) == before


def test_refused_from_argv_words(world: Any, helpers: Any) -> None:
    """Words from a shell's argv skip the tokenizer; the engine's limits still hold."""
    before = helpers.group_state(world.group)
    for words in (
        ["volume", "create", "vz\n", "1G"],
        ["volume", "create", "vo\rl", "1G"],
        ["volume", "select", "v1", "description", "a\rb"],
        ["chapuser", "create", "c\r"],
    ):
        out = world.session.execute_words(words)
        assert len(out) == 1 and out[0].startswith("% Error - ") and "a control character" in out[0], out
        assert "\r" not in out[0] and "\n" not in out[0]
    assert helpers.group_state(world.group) == before


def test_values_at_the_limit_are_stored(world: Any) -> None:
    world.quiet("volume select v1 description " + "d" * 127)
    world.quiet("volume select v1 iscsi-alias " + "\u00e9" * 127 + "a")  # 255 bytes
    initiator = "iqn.2000-01.com.x:" + "i" * 205  # 223 bytes
    world.ok(f"volume select v1 access create initiator {initiator}")
    world.ok("volume create " + "v" * 63 + " 1G")
    world.quiet('volume select v1 snapshot select s1 description "back\\slash kept"')
    details = world.values("volume select v1 show")
    assert details["Description"] == "d" * 127
    assert details["iSCSI Alias"] == "\u00e9" * 127 + "a"
    assert [r[1] for r in world.rows("volume select v1 access show")] == [initiator]
    snap = world.values("volume select v1 snapshot select s1 show")
    assert snap["Description"] == "back\\slash kept"


def test_a_line_ending_ends_the_line(world: Any) -> None:
    """SSH and telnet clients end lines with CR (the Cinder driver sends ``command\\r``)."""
    assert world.values("volume select v1 show\r")["Name"] == "v1"
    assert world.values("volume select v1 show\r\n")["Name"] == "v1"


def test_every_stored_text_field_has_a_limit() -> None:
    assert set(TEXT_LIMITS) == {
        "volume_name", "pool_name", "snapshot_name", "description", "alias",
        "initiator", "ipaddress", "chap_user", "chap_password", "schedule_name", "collection_name", "snapcol_name",
    }  # fmt: skip
    assert TEXT_LIMITS["alias"].most == 255 and TEXT_LIMITS["alias"].in_bytes
    assert TEXT_LIMITS["initiator"].most == 223 and TEXT_LIMITS["initiator"].in_bytes


def test_snap_reserve_cannot_drop_to_zero_with_snapshots(world: Any, helpers: Any) -> None:
    before = helpers.group_state(world.group)
    for value in ("0%", "0"):
        error = world.error(f"volume select v1 snap-reserve {value}")
        assert "snapshot reserve cannot be 0%" in error and "v1" in error, error
    assert helpers.group_state(world.group) == before
    assert world.values("volume select v1 show")["Snap-Reserve"] == "100%"
    world.quiet("volume select v1 snap-reserve 50%")  # still above what the snapshot holds
    world.ok("volume select v1 snapshot delete s1")
    world.quiet("volume select v1 snap-reserve 0%")  # no snapshots left
    assert world.values("volume select v1 show")["Snap-Reserve"] == "0%"


def test_snap_reserve_cannot_drop_below_what_snapshots_hold(world: Any, helpers: Any) -> None:
    """Ten pages written, snapshotted, then overwritten: the snapshot holds ten pages (150MB)."""
    from array_sim.units import PAGE_SIZE, SECTOR_SIZE

    world.ok("volume create v3 1G")
    device = world.group.device("v3")
    for page in range(10):
        device.write(page * PAGE_SIZE // SECTOR_SIZE, b"a" * 4096)
    world.ok("volume select v3 snapshot create-now")
    device = world.group.device("v3")
    for page in range(10):
        device.write(page * PAGE_SIZE // SECTOR_SIZE, b"b" * 4096)
    before = helpers.group_state(world.group)
    error = world.error("volume select v3 snap-reserve 5%")
    assert "cannot be smaller than the 150MB its snapshots use" in error, error
    assert helpers.group_state(world.group) == before
    world.quiet("volume select v3 snap-reserve 50%")
    assert world.values("volume select v3 show")["Snap-Reserve"] == "50%"


@pytest.mark.slow  # ten array-sim processes; the refusals themselves run in-process above
def test_one_shot_refusals_through_the_real_command(tmp_path: Any, console: Any, helpers: Any) -> None:
    """``array-sim cli`` from a shell: one error line, exit 1, nothing stored (argv words and a whole line)."""
    from array_sim import Group
    from array_sim.units import GiB

    directory = tmp_path / "g"
    Group.init(directory, member_size=10 * GiB).close()
    assert console.cli(directory, "volume", "create", "v1", "1G").returncode == 0
    for words in (
        ["volume create vol\\1 1G"],
        ["volume", "create", "vol\\1", "1G"],
        ["volume", "create", "v\r2", "1G"],
        ["volume", "create", "v2", "\u0661\u0660GB"],
        ["volume", "select", "v1", "description", "d" * 10_000],
        ["volume", "select", "v1", "iscsi-alias", "a" * 256],
        ["volume", "select", "v1", "access", "create", "initiator", "iqn.2000-01.com.x:" + "i" * 206],
    ):
        result = console.cli(directory, *words)
        lines = result.stdout.splitlines()
        assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith("% Error - "), result
    listing = console.lines(directory, "volume", "show")
    assert [line.split()[0] for line in listing[2:]] == ["v1"], listing
    assert console.lines(directory, "cli-settings", "formatoutput", "off") == []
    details = helpers.key_values(console.lines(directory, "volume", "select", "v1", "show"))
    assert details["Description"] == "" and details["iSCSI Alias"] == "v1"
    assert console.lines(directory, "volume", "select", "v1", "access", "show")[2:] == []
