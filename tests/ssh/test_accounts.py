"""Administration accounts: the engine's rules, the ``account`` commands, and a read-only session."""

from __future__ import annotations

import base64
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from array_sim import AlreadyExists, Group, InvalidRequest, NotFound
from array_sim.accounts import Accounts, check_password, hash_password, parse_public_key
from firmware_model.cli.session import Session
from firmware_model.ssh.channel import AccountSession

# An Ed25519 key as ssh-keygen writes it (the blob: "ssh-ed25519" and 32 bytes).
ED25519 = "ssh-ed25519 " + base64.b64encode(b"\0\0\0\x0bssh-ed25519\0\0\0\x20" + bytes(range(32))).decode()


def _rsa_line(bits: int) -> str:
    modulus = (1 << (bits - 1)) | 1
    raw = modulus.to_bytes(bits // 8, "big")
    blob = b"\0\0\0\x07ssh-rsa" + b"\0\0\0\x03\x01\x00\x01" + len(raw).to_bytes(4, "big") + raw
    return "ssh-rsa " + base64.b64encode(blob).decode() + " admin@host"


@pytest.fixture
def group(tmp_path: Path) -> Iterator[Group]:
    g = Group.init(tmp_path / "g", member_size=1 << 30, raid_policy="file")
    try:
        yield g
    finally:
        g.close()


@pytest.fixture
def accounts(group: Group) -> Accounts:
    return Accounts(group.catalog)


def test_passwords_are_stored_hashed_with_a_salt(accounts: Accounts, group: Group) -> None:
    accounts.create("cinder", "Secret-12")
    accounts.create("other", "Secret-12")
    stored = [row[0] for row in group.catalog.db.execute("SELECT password FROM accounts ORDER BY name")]
    assert all(record.startswith("scrypt$") and "Secret-12" not in record for record in stored)
    assert stored[0] != stored[1]  # a salt each
    assert check_password(accounts.password_record("cinder"), "Secret-12")
    assert not check_password(accounts.password_record("cinder"), "Secret-13")
    assert not check_password(accounts.password_record("nobody"), "Secret-12")
    assert not check_password("md5$whatever", "x") and not check_password("garbage", "x")
    assert check_password(hash_password("é-ü"), "é-ü")


@pytest.mark.parametrize("password", ["ab", "x" * 14, "has space", "naïve12"])
def test_the_arrays_password_rule(accounts: Accounts, password: str) -> None:
    """3 to 13 ASCII characters, punctuation allowed, no spaces (Administrator Guide)."""
    with pytest.raises(InvalidRequest, match="3 to 13"):
        accounts.create("cinder", password)


def test_names_types_and_the_default_admin(accounts: Accounts) -> None:
    assert accounts.ensure_default_admin() is not None
    assert accounts.ensure_default_admin() is None  # made once
    for name in ("1abc", "a b", "x" * 33, ""):
        with pytest.raises(InvalidRequest, match="Invalid account name"):
            accounts.create(name, "Secret-12")
    with pytest.raises(AlreadyExists):
        accounts.create("grpadmin", "Secret-12")
    for change in (lambda: accounts.delete("grpadmin"), lambda: accounts.set_enabled("grpadmin", False),
                   lambda: accounts.set_kind("grpadmin", "read-only")):  # fmt: skip
        with pytest.raises(InvalidRequest, match="default account grpadmin"):
            change()
    with pytest.raises(InvalidRequest, match="account type"):
        accounts.create("ops", "Secret-12", kind="pool-admin")
    with pytest.raises(NotFound, match="does not exist"):
        accounts.delete("nobody")


def test_public_keys_are_checked_one_per_account(accounts: Accounts) -> None:
    accounts.create("cinder", "Secret-12")
    key = accounts.set_public_key("cinder", _rsa_line(2048))
    assert key.kind == "ssh-rsa" and key.fingerprint.startswith("SHA256:") and key.comment == "admin@host"
    with pytest.raises(AlreadyExists, match="one per account"):
        accounts.set_public_key("cinder", ED25519)
    accounts.delete_public_key("cinder")
    accounts.set_public_key("cinder", ED25519, "laptop")
    assert accounts.get("cinder").key_description == "laptop"
    wrong_type = "ssh-rsa " + ED25519.split()[1]
    for bad, why in ((_rsa_line(512), "512 bits"), ("ssh-dss AAAA", "Invalid SSH public key"),
                     ("ssh-ed25519 !!!", "cannot be read"), (wrong_type, "cannot be read")):  # fmt: skip
        with pytest.raises(InvalidRequest, match=why):
            parse_public_key(bad)


def test_deleting_an_account_takes_its_cli_settings(accounts: Accounts, group: Group) -> None:
    accounts.create("cinder", "Secret-12")
    group.set_cli_setting("cinder", "paging", "off")
    accounts.delete("cinder")
    assert group.cli_settings("cinder")["paging"] == "on"


def test_account_commands(group: Group) -> None:
    session = Session(group, "grpadmin", interactive=False)
    assert session.execute("cli-settings confirmation off") == []
    assert session.execute("cli-settings formatoutput off") == []
    created = session.execute("account create ops read-only description \"night shift\"")
    assert created[0] == "Account creation succeeded." and created[1].startswith("Password is ")
    assert session.execute("account create cinder password Cinder-12") == ["Account creation succeeded."]
    rows = session.execute("account show")
    assert rows[0].split() == ["Name", "Type", "Status", "SSH-Key", "Description"]
    assert rows[2].split()[:4] == ["cinder", "group-admin", "enable", "no"]
    assert rows[3].split() == ["ops", "read-only", "enable", "no", "night", "shift"]
    details = session.execute("account select ops show")
    assert "Type: read-only" in details and "Description: night shift" in details
    assert not any("Password" in line for line in details)  # never shown
    assert session.execute("account select ops read-write") == []
    assert session.execute("account select ops disable") == []
    assert "Status: disable" in session.execute("account select ops show")
    assert session.execute(f'account select ops ssh-key add "{ED25519} me@laptop"')[0].startswith(
        "SSH public key ssh-ed25519 SHA256:"
    )
    assert "Description: me@laptop" in session.execute("account select ops ssh-key show")
    assert session.execute("account select ops ssh-key delete") == []
    assert session.execute("account select ops passwd x")[0].startswith("% Error - Invalid password")
    assert session.execute("account select ops passwd New-pass1") == []
    assert check_password(Accounts(group.catalog).password_record("ops"), "New-pass1")
    assert session.execute("account delete ops") == ["Account deletion succeeded."]
    assert session.execute("account select ops show") == ["% Error - Account ops does not exist."]
    assert session.complete("account select c") == ["cinder"]


def test_a_read_only_session_shows_and_changes_only_its_settings(group: Group) -> None:
    Accounts(group.catalog).create("viewer", "Secret-12", kind="read-only")
    group.create_volume("v1", 100 << 20)
    before = sorted(group.catalog.db.iterdump())
    session = AccountSession(group, "viewer", False, None, read_only=True)
    refused = "% Error - Account viewer is read-only: it may show the group, not change it."
    for command in ("volume create v2 100MB", "volume select v1 offline", "account create x password Secret-12",
                    "grpparams description hello", "simulate member select member-1 power off",
                    "member select member-1 delete", "cli-settings confirmation off"):  # fmt: skip
        if command.startswith("cli-settings"):
            assert session.execute(command) == []
            continue
        assert session.execute(command) == [refused], command
    assert session.execute("volume show")[2].startswith("v1")
    assert session.execute("member show")[0].startswith("Name")
    assert session.execute("volume select v1") == [] and session.prompt.endswith("(volume_v1)> ")
    assert session.execute("offline") == [refused]
    after = sorted(group.catalog.db.iterdump())
    changed = set(after) ^ set(before)
    assert all("cli_settings" in line for line in changed), changed  # only its own setting


def test_a_group_made_before_accounts_gets_the_table_empty(tmp_path: Path) -> None:
    """Migration 7 on the release 0.1 group of tests/engine/fixtures: no account yet (``serve`` makes
    grpadmin with a generated password, which it can show; a migration cannot)."""
    fixture = Path(__file__).parents[1] / "engine" / "fixtures" / "group-schema-1.tar.gz"
    with tarfile.open(fixture) as archive:
        archive.extractall(tmp_path / "old", filter="data")
    with Group.open(tmp_path / "old") as group:
        accounts = Accounts(group.catalog)
        assert accounts.all() == []
        password = accounts.ensure_default_admin()
        assert password is not None and check_password(accounts.password_record("grpadmin"), password)
