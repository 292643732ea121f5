"""The sans-IO pieces of the SSH front end: input lines, reply framing, the login guard."""

from __future__ import annotations

import pytest

from firmware_model.ssh.guard import LoginGuard
from firmware_model.ssh.lines import LineReader, banner_text, exec_text, reply_text


@pytest.mark.parametrize("ending", ["\r", "\r\n", "\n", "\x1a"])
def test_every_line_ending_ends_one_line(ending: str) -> None:
    reader = LineReader()
    assert reader.feed(f"volume show{ending}whoami{ending}") == ["volume show", "whoami"]
    assert reader.pending == 0


def test_cr_lf_split_across_reads_is_one_line_ending() -> None:
    """ps-cli.md 1.8 item 3: a client sending CR LF must not get a prompt for an empty line it never sent."""
    reader = LineReader()
    assert reader.feed("whoami\r") == ["whoami"]
    assert reader.feed("\nstty show\r") == ["stty show"]
    assert reader.feed("\n") == []
    assert reader.feed("\r\r\n") == ["", ""]  # CR alone, then CR LF: two empty lines the client did send


def test_a_line_can_arrive_a_character_at_a_time() -> None:
    reader = LineReader()
    out: list[str | None] = []
    for char in "vol sel v1 show\r\nwhoami\n":
        out += reader.feed(char)
    assert out == ["vol sel v1 show", "whoami"]


def test_an_overlong_line_is_dropped_whole_and_the_reader_stays_bounded() -> None:
    reader = LineReader(most=10)
    assert reader.feed("0123456789") == []
    assert reader.pending == 10
    assert reader.feed("abc") == []
    assert reader.pending == 0  # dropped, never held
    assert reader.feed("def\rwhoami\r") == [None, "whoami"]
    assert reader.feed("x" * 50 + "\n") == [None]


def test_the_last_line_without_an_ending_is_run_at_end_of_input() -> None:
    reader = LineReader()
    assert reader.feed("whoami\rvolume show") == ["whoami"]
    assert reader.finish() == ["volume show"]
    assert reader.finish() == []


def test_replies_without_a_terminal_start_blank_and_end_at_the_prompt() -> None:
    """ps-cli.md 1.8 item 4: the blank line stands where an echo would be; the prompt ends the reply."""
    text = reply_text(["ID  Initiator", "1   iqn"], "group-0> ", terminal=False)
    assert text == "\r\nID  Initiator\r\n1   iqn\r\ngroup-0> "
    assert text.splitlines() == ["", "ID  Initiator", "1   iqn", "group-0> "]
    assert reply_text([], "group-0> ", terminal=False).splitlines() == ["", "group-0> "]


def test_replies_at_a_terminal_leave_the_echo_and_line_ends_to_the_editor() -> None:
    assert reply_text(["a", "b"], "g> ", terminal=True) == "a\nb\ng> "
    assert banner_text(["", "Welcome", ""], "g> ", terminal=True) == "\nWelcome\n\ng> "
    assert banner_text(["", "Welcome", ""], "g> ", terminal=False) == "\r\nWelcome\r\n\r\ng> "
    assert exec_text(["x", "y"]) == "x\ny\n"


def test_refusals_slow_down_per_account_and_address_and_a_success_clears_them() -> None:
    guard = LoginGuard(first=0.5, most=8.0, forget=900.0)
    delays = [guard.refused("grpadmin", "10.0.0.9", now=float(i)) for i in range(7)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert guard.refused("grpadmin", "10.0.0.8", now=7.0) == 0.5  # the owner logging in from elsewhere
    guard.accepted("grpadmin", "10.0.0.9")
    assert guard.refusals("grpadmin", "10.0.0.9", now=8.0) == 0
    assert guard.refused("grpadmin", "10.0.0.9", now=8.0) == 1.0  # the address still counts: 8 refusals // 3


def test_one_address_trying_many_accounts_slows_down_too() -> None:
    guard = LoginGuard(first=0.5, spread=3)
    delays = [guard.refused(f"user{i}", "10.0.0.7", now=float(i)) for i in range(9)]
    assert delays[:3] == [0.5, 0.5, 0.5] and delays[5] == 1.0 and delays[8] == 2.0


def test_refusals_are_forgotten_and_the_guard_is_bounded() -> None:
    guard = LoginGuard(forget=60.0, capacity=100)
    guard.refused("a", "10.0.0.1", now=0.0)
    guard.refused("a", "10.0.0.1", now=1.0)
    assert guard.refused("a", "10.0.0.1", now=100.0) == 0.5
    for i in range(1000):
        guard.refused("x", f"10.1.{i // 256}.{i % 256}", now=200.0)
    assert len(guard._counts) <= 100
