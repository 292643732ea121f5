"""``collection ...`` through the sans-IO session: volume collections and snapshot collections."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from array_sim import Group
from array_sim.member_admin import FILE_LAYOUT
from array_sim.units import GiB

WHEN = datetime(2024, 1, 2, 3, 4, 5)
SNAPCOL = "db-2024-01-02-03:04:05.1"


@pytest.fixture
def db(tmp_path: Path, helpers: Any) -> Iterator[Any]:
    """A script-style session on a group whose clock is fixed at ``WHEN``: volumes a, b, c; collection db of a, b."""
    group = Group.init(tmp_path / "g", member_size=10 * GiB, clock=lambda: WHEN, raid_policy=FILE_LAYOUT)
    try:
        cli = helpers.Cli(group)
        cli.quiet("cli-settings confirmation off")
        cli.quiet("cli-settings formatoutput off")
        for name in ("a", "b", "c"):
            cli.ok(f"volume create {name} 100MB")
        assert cli.ok('collection create db a b description "the database"') == ["Collection creation succeeded."]
        yield cli
    finally:
        group.close()


def test_collections_are_listed_and_shown(db: Any, helpers: Any) -> None:
    db.ok("collection create logs c,a")
    assert db.rows("collection show") == [["db", "2", "0", "the database"], ["logs", "2", "0", ""]]
    values = db.values("collection select db show")
    assert (values["Name"], values["Description"], values["Volumes"], values["SnapshotCollections"]) == (
        "db", "the database", "2", "0",
    )  # fmt: skip
    rows = helpers.table_rows(db.ok("collection show logs"))
    assert rows == [["c", "100MB", "online", "0"], ["a", "100MB", "online", "0"]]
    db.quiet("collection select db add c")
    db.quiet("collection select db delete a")
    db.quiet("coll sel db desc primary")
    db.quiet("collection rename logs journal")
    assert db.rows("collection show") == [["db", "2", "0", "primary"], ["journal", "2", "0", ""]]
    assert db.ok("collection delete journal") == ["Collection deletion succeeded."]
    assert [row[0] for row in db.rows("collection show")] == ["db"]


def test_create_now_names_every_snapshot_and_volumes_show_them(db: Any) -> None:
    assert db.ok("collection select db snapshot create-now description nightly") == [
        "Snapshot collection creation succeeded.",
        f"Snapshot collection name is {SNAPCOL}",
        "Snapshot of volume a is a-2024-01-02-03:04:05.1",
        "Snapshot of volume b is b-2024-01-02-03:04:05.1",
    ]
    assert db.rows("collection select db snapshot show") == [[SNAPCOL, "2", "offline", "2024-01-02 03:04:05"]]
    values = db.values(f"collection select db snapshot select {SNAPCOL} show")
    assert (values["Collection"], values["Description"], values["Snapshots"]) == ("db", "nightly", "complete")
    assert db.rows(f"collection select db snapshot show {SNAPCOL}") == [
        ["a", "a-2024-01-02-03:04:05.1", "offline", "0"],
        ["b", "b-2024-01-02-03:04:05.1", "offline", "0"],
    ]
    # Each snapshot is an ordinary snapshot of its volume too, and says where it belongs.
    assert [row[0] for row in db.rows("volume select a snapshot show")] == ["a-2024-01-02-03:04:05.1"]
    assert db.values("volume select b snapshot show b-2024-01-02-03:04:05.1")["SnapshotCollection"] == SNAPCOL
    db.ok("volume select c snapshot create-now")
    assert "SnapshotCollection" not in db.values("volume select c snapshot show c-2024-01-02-03:04:05.1")


def test_online_offline_restore_and_delete_as_one(db: Any) -> None:
    db.group.device("a").write(0, b"1" * 512)
    db.ok("collection select db snapshot create-now")
    db.group.device("a").write(0, b"2" * 512)
    db.quiet(f"collection select db snapshot select {SNAPCOL} online")
    assert db.rows("collection select db snapshot show")[0][2] == "online"
    db.quiet("volume select a snapshot select a-2024-01-02-03:04:05.1 offline")
    assert db.rows("collection select db snapshot show")[0][2] == "mixed"
    assert "must be offline" in db.error(f"collection select db snapshot select {SNAPCOL} restore")
    db.quiet(f"collection select db snapshot select {SNAPCOL} offline")
    db.quiet("volume select a offline")
    db.quiet("volume select b offline")
    assert db.ok(f"collection select db snapshot select {SNAPCOL} restore") == [
        "Snapshot collection db-2024-01-02-03:04:05.2 of the data before the restore was created."
    ]
    db.quiet("volume select a online")
    assert db.group.device("a").read(0, 1) == b"1" * 512
    assert db.ok(f"collection select db snapshot delete {SNAPCOL}") == ["Snapshot collection deletion succeeded."]
    assert db.ok("collection select db snapshot select db-2024-01-02-03:04:05.2 delete") == [
        "Snapshot collection deletion succeeded."
    ]
    assert db.rows("collection select db snapshot show") == []
    assert db.rows("volume select a snapshot show") == []


def test_an_incomplete_snapshot_collection_says_so(db: Any) -> None:
    db.ok("collection select db snapshot create-now")
    db.ok("volume select a snapshot delete a-2024-01-02-03:04:05.1")
    assert db.rows("collection select db snapshot show")[0][1] == "1 of 2"
    values = db.values(f"collection select db snapshot show {SNAPCOL}")
    assert values["Snapshots"] == "incomplete (1 of 2 snapshots left)"
    db.quiet("volume select a offline")
    db.quiet("volume select b offline")
    assert "incomplete" in db.error(f"collection select db snapshot select {SNAPCOL} restore")


def test_the_sub_mode_and_help(db: Any) -> None:
    db.quiet("collection select db")
    assert db.prompt == "group-0(collection_db)> "
    assert db.ok("snapshot create-now")[1] == f"Snapshot collection name is {SNAPCOL}"
    assert db.values("show")["Name"] == "db"
    db.quiet("exit")
    assert db.prompt == "group-0> "
    words = [line.split()[0] for line in db.run("collection select db snapshot select x ?")]
    assert words == ["show", "online", "offline", "restore", "delete"]
    assert db.session.complete("collection select d") == ["db"]
    assert db.session.complete("collection create x a ") == ["a", "b", "c", "description"]
    assert db.session.complete("collection select db delete ") == ["a", "b"]


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("collection create db c", ["Collection db already exists."]),
        ("collection create x", ["Missing volume names."]),
        ("collection create x description d", ["Missing volume name."]),
        ("collection create x a description", ["Missing description."]),
        ("collection create x a description d e", ["Unexpected argument 'e'."]),
        ("collection create x a nosuch", ["Volume nosuch does not exist."]),
        ("collection create x a,a", ["named more than once"]),
        ("collection create x a,b,c,a,b,c,a,b,c", ["named more than once"]),
        ("collection delete nosuch", ["Collection nosuch does not exist."]),
        ("collection select nosuch show", ["Collection nosuch does not exist."]),
        ("collection select db add a", ["already in collection db"]),
        ("collection select db delete c", ["not in collection db"]),
        ("collection select db snapshot select nosuch show", ["Snapshot collection nosuch does not exist."]),
        ("collection select db snapshot delete nosuch", ["does not exist"]),
        ("collection select db snapshot create-now bogus", ["Bad option 'bogus'"]),
    ],
)
def test_refusals_change_nothing(db: Any, helpers: Any, line: str, words: list[str]) -> None:
    before = helpers.group_state(db.group)
    error = db.error(line)
    for word in words:
        assert word in error, error
    assert helpers.group_state(db.group) == before


def test_a_volume_without_snapshot_reserve_refuses_the_whole_snapshot_collection(db: Any, helpers: Any) -> None:
    db.quiet("volume select b snap-reserve 0%")
    before = helpers.group_state(db.group)
    error = db.error("collection select db snapshot create-now")
    assert "Volume b has no snapshot reserve" in error and "No snapshot of collection db was taken" in error
    assert helpers.group_state(db.group) == before


def test_confirmations_ask_first(db: Any, helpers: Any) -> None:
    db.ok("collection select db snapshot create-now")
    asking = helpers.Cli(db.group)
    asking.quiet("cli-settings confirmation on")
    assert asking.run("collection delete db") == []
    assert asking.prompt.startswith("Do you really want to delete the collection db?")
    assert asking.run("n") == []
    assert asking.run(f"collection select db snapshot delete {SNAPCOL}") == []
    assert "and its 2 snapshots? (y/n) [n]" in asking.prompt
    assert asking.run("y") == ["Snapshot collection deletion succeeded."]
