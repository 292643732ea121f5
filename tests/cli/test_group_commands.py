"""Group-wide commands: pool, member, grpparams, cli-settings, stty, whoami, show; formatoutput."""

from __future__ import annotations

import re
from typing import Any

from array_sim.units import GiB

POOL_HEADER = [
    "Name                 Default Members Volumes Capacity   FreeSpace",
    "-------------------- ------- ------- ------- ---------- ----------",
]
SETTINGS = ["confirmation", "paging", "events", "formatoutput", "displayinMB", "idlelogout", "reprintBadInput"]


def test_pool_list_and_show_pool(cli: Any) -> None:
    assert cli.ok("pool show") == [*POOL_HEADER, "default              true    1       0       9.99GB     9.99GB"]
    assert cli.ok("show pool") == cli.ok("pool show")
    cli.ok("volume create v1 1G")
    cli.quiet("pool create p2")
    out = cli.ok("show pool")
    assert out == [
        *POOL_HEADER,
        "default              true    1       1       9.99GB     7.97GB",
        "p2                   false   0       0       0MB        0MB",
    ]
    # The Proxmox plugin's regex over 'show pool'.
    found = re.search(r"(\w+)\s+\w+\s+\d+\s+\d+\s+([\d\.]+)([MGT]B)\s+([\d\.]+)([MGT]B)", out[2])
    assert found and found.groups() == ("default", "9.99", "GB", "7.97", "GB")


def test_pool_select_show(cli: Any) -> None:
    out = cli.ok("pool select default show")
    assert out[0] == "________________________________ Pool Information _________________________________"
    assert cli.values("pool select default show") == {
        "Name": "default",
        "Default": "true",
        "Members": "1",
        "TotalCapacity": "9.99GB",
        "FreeSpace": "9.99GB",
        "VolumeReserve": "0MB",
        "SnapshotReserve": "0MB",
        "VolumeReportedSpace": "0MB",
        "TotalVolumes": "0",
        "TotalSnapshots": "0",
    }
    cli.ok("volume create thick 1G")
    cli.ok("volume create thin 2G thin-provision snap-reserve 50%")
    cli.ok("volume select thick snapshot create-now")
    values = cli.values("pool select default show")
    # thick: 69 pages + 69 snapshot reserve; thin: 10% of 137 = 14 pages + 7.
    assert values["VolumeReserve"] == "1.22GB"  # 83 pages
    assert values["SnapshotReserve"] == "1.11GB"  # 76 pages
    assert values["FreeSpace"] == "7.66GB"  # 682 - 159 pages
    assert values["VolumeReportedSpace"] == "3.02GB"  # 206 pages
    assert values["TotalVolumes"] == "2"
    assert values["TotalSnapshots"] == "1"
    cli.quiet("pool create p2")
    cli.group.add_member("member-2", 3 * GiB, "p2")
    values = cli.values("pool select p2 show")
    assert (values["Default"], values["Members"], values["TotalCapacity"], values["TotalVolumes"]) == (
        "false", "1", "2.99GB", "0",  # 204 pages of 15MB
    )  # fmt: skip
    cli.ok("volume create inp2 1G pool p2")
    assert cli.values("pool select p2 show")["TotalVolumes"] == "1"
    assert cli.values("pool select default show")["TotalVolumes"] == "2"


def test_pool_select_show_lists_the_pools_members_and_volumes_after_its_figures(cli: Any) -> None:
    cli.quiet("pool create p2")
    cli.group.add_member("member-2", 3 * GiB, "p2")
    cli.ok("volume create inp2 500MB pool p2")
    cli.ok("volume create alsoinp2 500MB pool p2")
    cli.ok("volume select alsoinp2 offline")
    out = cli.ok("pool select p2 show")
    members = out.index("_" * 37 + " Members " + "_" * 37)
    volumes = out.index("_" * 37 + " Volumes " + "_" * 37)
    assert "TotalVolumes: 2" in out[:members]
    assert [line.split() for line in out[members + 3 : volumes]] == [["member-2", "on-line", "2.99GB", "2.99GB"]]
    assert [line.split() for line in out[volumes + 3 :]] == [["alsoinp2", "510MB", "offline"], ["inp2", "510MB", "online"]]


def test_pool_delete_takes_only_an_empty_pool_and_never_default(cli: Any) -> None:
    cli.quiet("pool create p2")
    cli.quiet("pool create p3")
    assert "cannot be deleted" in cli.error("pool delete default")
    cli.group.add_member("member-2", 3 * GiB, "p2")
    assert "still has members" in cli.error("pool delete p2")
    cli.ok("volume create v3 1G")
    assert cli.ok("pool delete p3") == ["Pool deletion succeeded."]
    assert [row[0] for row in cli.rows("pool show")] == ["default", "p2"]
    assert "does not exist" in cli.error("pool delete p3")
    cli.quiet("pool create p3")  # the name is free again


def test_pool_delete_asks_first_when_confirmation_is_on(make_cli: Any) -> None:
    cli = make_cli(script=False)
    cli.quiet("pool create p2")
    assert cli.run("pool delete p2") == []
    assert cli.prompt == "Do you really want to delete the pool p2? (y/n) [n] "
    assert cli.run("n") == []
    assert [row[0] for row in cli.rows("pool show")] == ["default", "p2"]
    cli.run("pool delete p2")
    assert cli.run("y") == ["Pool deletion succeeded."]
    assert [row[0] for row in cli.rows("pool show")] == ["default"]


def test_pool_delete_refuses_a_pool_that_still_has_volumes(cli: Any) -> None:
    cli.quiet("pool create p2")
    cli.group.add_member("member-2", 3 * GiB, "p2")
    cli.ok("volume create inp2 1G pool p2")
    assert "still has volumes" in cli.error("pool delete p2")
    cli.ok("volume select inp2 offline")
    cli.ok("volume delete inp2")
    assert "still has members" in cli.error("pool delete p2")


def test_a_group_takes_four_pools_and_sixteen_members_a_pool_eight(cli: Any) -> None:
    for name in ("p2", "p3", "p4"):
        cli.quiet(f"pool create {name}")
    assert "4 pools" in cli.error("pool create p5")
    for n in range(2, 10):  # member-1 and 8 more: default is full at 8
        if n < 9:
            cli.quiet(f"simulate member add m{n} disks 3 disk-size 15MB")
        else:
            assert "8 members" in cli.error(f"simulate member add m{n} disks 3 disk-size 15MB")
    for n in range(9, 17):  # 8 in default, 8 in p2: the group is full at 16
        cli.quiet(f"simulate member add m{n} disks 3 disk-size 15MB pool p2")
    assert "16 members" in cli.error("simulate member add m17 disks 3 disk-size 15MB pool p3")


def test_members(cli: Any) -> None:
    assert cli.ok("member show") == [
        "Name            Status   RaidStatus         Disks Capacity   FreeSpace  Pool",
        "--------------- -------- ------------------ ----- ---------- ---------- --------",
        "member-1        on-line  ok                 12    9.99GB     9.99GB     default",
    ]
    assert cli.ok("show member") == cli.ok("member show")
    out = cli.ok("member select member-1 show")
    assert out[0] == "_______________________________ Member Information ________________________________"
    values = cli.values("member select member-1 show")
    assert values == {
        "Name": "member-1",
        "Status": "on-line",
        "Pool": "default",
        "RaidPolicy": "raid6",
        "RaidStatus": "ok",
        "RaidPercentage": "0%",
        "LostRaidBlocks": "false",
        "Spares": "1",
        "Disks": "12",
        "DiskSize": values["DiskSize"],
        "TotalSpace": "9.99GB",
        "UsedSpace": "0MB",
        "FreeSpace": "9.99GB",
        "Operation": "none",
    }
    assert "does not exist" in cli.error("member select member-9 show")


def test_grpparams_show_and_settings(cli: Any) -> None:
    out = cli.ok("grpparams show")
    assert out[0] == "________________________________ Group Information ________________________________"
    expected = {
        "Group-Name": "group-0",
        "Group-Ipaddress": "10.1.2.3",
        "Description": "",
        "Info-Messages": "enabled",
        "Def-Snap-Reserve": "100%",
        "Def-Snap-Warn": "10%",
        "Def-Snap-Depletion": "delete-oldest",
        "Def-Thin-Min-Reserve": "10%",
        "Def-Thin-Growth-Warn": "60%",
        "Def-Thin-Growth-Max": "100%",
    }
    values = cli.values("grpparams show")
    assert {key: values.get(key) for key in expected} == expected
    cli.quiet("grpparams group-ipaddress 192.168.10.20")
    cli.quiet('grpparams description "lab group"')
    cli.quiet("grpparams info-messages disable")
    values = cli.values("grpparams show")
    assert values["Group-Ipaddress"] == "192.168.10.20"
    assert values["Description"] == "lab group"
    assert values["Info-Messages"] == "disabled"
    assert [line for line in cli.ok("show") if line.startswith("Group-Ipaddress:")] == [
        "Group-Ipaddress: 192.168.10.20"
    ]


def test_grpparams_name_changes_the_prompt(cli: Any) -> None:
    assert cli.prompt == "group-0> "
    cli.quiet("grpparams name eql")
    assert cli.prompt == "eql> "
    assert cli.values("grpparams show")["Group-Name"] == "eql"


def test_volume_defaults_apply_to_new_volumes_only(cli: Any) -> None:
    cli.ok("volume create before 1G thin-provision")
    for command in (
        "def-snap-reserve 50%",
        "def-snap-warn 25",
        "def-snap-depletion volume-offline",
        "def-thin-min-reserve 20%",
        "def-thin-growth-warn 70%",
        "def-thin-growth-max 90%",
    ):
        cli.quiet(f"grpparams {command}")
    values = cli.values("grpparams show")
    assert [values[k] for k in values if k.startswith("Def-")] == ["50%", "25%", "volume-offline", "20%", "70%", "90%"]
    cli.ok("volume create after 1G thin-provision")
    new = cli.values("volume select after show")
    assert (new["Snap-Reserve"], new["Snap-Warn"], new["Snap-Depletion"]) == ("50%", "25%", "volume-offline")
    assert (new["Thin-Min-Reserve"].split()[0], new["Thin-Growth-Warn"], new["Thin-Growth-Max"]) == (
        "20%",
        "70%",
        "90%",
    )
    old = cli.values("volume select before show")
    assert (old["Snap-Reserve"], old["Snap-Warn"], old["Snap-Depletion"]) == ("100%", "10%", "delete-oldest")
    assert (old["Thin-Min-Reserve"].split()[0], old["Thin-Growth-Warn"], old["Thin-Growth-Max"]) == (
        "10%",
        "60%",
        "100%",
    )
    # Options on the command line win over the defaults.
    cli.ok("volume create explicit 1G snap-reserve 0")
    assert cli.values("volume select explicit show")["Snap-Reserve"] == "0%"


def test_cli_settings_show_and_set(make_cli: Any) -> None:
    cli = make_cli(script=False)
    assert cli.ok("cli-settings show") == [f"{key}: {'off' if key == 'displayinMB' else 'on'}" for key in SETTINGS]
    for key in SETTINGS:
        cli.quiet(f"cli-settings {key} off")
    assert cli.ok("cli-settings show") == [f"{key}: off" for key in SETTINGS]
    cli.quiet("cli-settings displayinMB on")
    assert "displayinMB: on" in cli.ok("cli-settings show")


def test_cli_settings_persist_per_account(make_cli: Any) -> None:
    first = make_cli(script=False)
    first.quiet("cli-settings formatoutput off")
    first.quiet("cli-settings paging off")
    again = make_cli(script=False)  # a new session of the same account
    assert "formatoutput: off" in again.ok("cli-settings show")
    assert "paging: off" in again.ok("cli-settings show")
    other = make_cli(account="monitor", script=False)
    assert "formatoutput: on" in other.ok("cli-settings show")
    assert "paging: on" in other.ok("cli-settings show")
    assert other.ok("whoami") == ["monitor"]
    assert again.ok("whoami") == ["grpadmin"]


def test_formatoutput_on_pairs_and_off_one_per_line(make_cli: Any) -> None:
    cli = make_cli(script=False)
    cli.ok("volume create v1 1G")
    formatted = cli.ok("volume select v1 show")
    cli.quiet("cli-settings formatoutput off")
    plain = cli.ok("volume select v1 show")
    assert formatted[0] == plain[0]
    assert len(formatted) < len(plain)
    assert formatted[1] == "Name: v1                                 Size: 1GB"
    assert plain[1:3] == ["Name: v1", "Size: 1GB"]
    # Formatted lines hold the same Key: Value items, two to a line, left column 41 wide.
    items = []
    for line in formatted[1:]:
        if len(line) > 41 and line[40] == " " and line[41] != " ":
            items += [line[:41].rstrip(), line[41:]]
        else:
            items.append(line)
    assert items == plain[1:]
    for command in ("pool select default show", "grpparams show", "member select member-1 show"):
        plain_out = cli.ok(command)[1:]
        block = plain_out[: next((i for i, line in enumerate(plain_out) if line.startswith("_")), len(plain_out))]
        assert block and all(": " in line or line.endswith(":") for line in block)  # tables may follow it


def test_stty_whoami_and_show(make_cli: Any) -> None:
    cli = make_cli(interactive=True)
    assert cli.ok("stty show") == ["columns: 80", "hardwrap: on"]
    cli.quiet("stty columns 255")
    cli.quiet("stty hardwrap off")
    assert cli.ok("stty show") == ["columns: 255", "hardwrap: off"]
    # stty is per session.
    assert make_cli(interactive=True).ok("stty show") == ["columns: 80", "hardwrap: on"]
    assert cli.ok("whoami") == ["grpadmin"]
    cli.ok("volume create v1 1G")
    cli.ok("volume select v1 snapshot create-now")
    assert cli.ok("show") == [
        "________________________________ Group Information ________________________________",
        "Name: group-0",
        "Group-Ipaddress: 10.1.2.3",
        "Members: 1",
        "Pools: 1",
        "Volumes: 1",
        "Snapshots: 1",
    ]
    assert cli.ok("show volume v1") == cli.ok("volume show v1")
