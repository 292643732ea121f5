"""The sans-IO connection against a real group, with no sockets: login, access, data flow, hostile PDUs."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from array_sim import Group
from array_sim.units import GiB
from targets.iscsi.connection import Connection
from targets.iscsi.keys import parse_text
from targets.iscsi.pdu import (
    DataIn,
    DataOut,
    LoginResponse,
    LogoutRequest,
    LogoutResponse,
    NopIn,
    NopOut,
    ReadyToTransfer,
    Reject,
    ScsiCommand,
    ScsiResponse,
    TaskManagementRequest,
    TaskManagementResponse,
    TextResponse,
)
from targets.iscsi.framing import encode_pdu
from targets.portal import GroupPortal

from .initiator import Initiator, MemoryLink

INITIATOR = "iqn.2026-11.test:initiator"


@pytest.fixture
def group(tmp_path):
    with Group.init(tmp_path / "g", member_size=4 * GiB) as group:
        group.set_cli_setting("grpadmin", "confirmation", "off")
        group.create_volume("open", 100 * 2**20)
        group.create_access("open", initiator=INITIATOR)
        group.create_volume("secret", 100 * 2**20)
        group.create_chap_user("alice", "alice-secret-12")
        group.create_access("secret", chap_user="alice")
        group.create_volume("hidden", 100 * 2**20)
        yield group


@pytest.fixture
def portal(group):
    return GroupPortal(group, "127.0.0.1:3260")


def initiator(portal, name=INITIATOR, isid="400001370001"):
    return Initiator(MemoryLink(Connection(portal, "127.0.0.1", portal.new_tsih())), name=name,
                     isid=bytes.fromhex(isid))  # fmt: skip


def logged_in(portal, group, volume="open", **kwargs):
    """A logged-in initiator whose logical unit is ready (a new I_T nexus has no unit attention)."""
    ini = initiator(portal)
    assert status(ini.login(group.volume(volume).iqn, **kwargs)) == 0
    assert ini.command(bytes(6))[-1].status == 0  # TEST UNIT READY
    return ini


def status(replies):
    response = replies[-1]
    assert isinstance(response, LoginResponse)
    return response.status_class << 8 | response.status_detail


def read10(lba, blocks):
    return struct.pack(">BBIBHB", 0x28, 0, lba, 0, blocks, 0)


def write10(lba, blocks):
    return struct.pack(">BBIBHB", 0x2A, 0, lba, 0, blocks, 0)


def test_login_read_write_logout(group, portal):
    ini = logged_in(portal, group)
    data = bytes(range(256)) * 16
    replies = ini.command(write10(8, 8), write=data)
    assert isinstance(replies[-1], ScsiResponse) and replies[-1].status == 0
    replies = ini.command(read10(8, 8), read=4096)
    assert b"".join(bytes(r.data) for r in replies if isinstance(r, DataIn)) == data
    assert replies[-1].flags & 0x01 and replies[-1].status == 0  # status phase collapse
    assert isinstance(ini.logout()[-1], LogoutResponse) and ini.link.closed
    assert group.device("open").read(8, 8) == data


def test_large_write_is_solicited_with_r2t(group, portal):
    ini = logged_in(portal, group, extra=[("MaxBurstLength", "16384"), ("MaxOutstandingR2T", "2")])
    data = bytes([7]) * 65536
    first = 8192  # immediate data
    replies = ini.command(write10(0, 128), write=data[:first], length=len(data))
    r2ts = [r for r in replies if isinstance(r, ReadyToTransfer)]
    assert len(r2ts) == 2 and all(r.desired_length == 16384 for r in r2ts)
    done = []
    while r2ts:
        r2t = r2ts.pop(0)
        piece = data[r2t.buffer_offset : r2t.buffer_offset + r2t.desired_length]
        replies = ini.data_out(r2t.itt, r2t.ttt, r2t.buffer_offset, piece)
        r2ts += [r for r in replies if isinstance(r, ReadyToTransfer)]
        done += [r for r in replies if isinstance(r, ScsiResponse)]
    assert done and done[-1].status == 0
    assert group.device("open").read(0, 128) == data


@pytest.mark.parametrize(
    ("target", "expected"),
    [("iqn.2001-05.com.equallogic:nope", 0x0203), ("hidden", 0x0202), ("secret", 0x0201)],
)
def test_refused_logins_have_the_right_status(group, portal, target, expected):
    iqn = group.volume(target).iqn if ":" not in target else target
    ini = initiator(portal)
    assert status(ini.login(iqn)) == expected
    assert ini.link.closed


def test_chap_login_and_wrong_password(group, portal):
    iqn = group.volume("secret").iqn
    assert status(initiator(portal).login(iqn, chap=("alice", "alice-secret-12"))) == 0
    bad = initiator(portal, isid="400001370002")
    assert status(bad.login(iqn, chap=("alice", "wrong-password-1"))) == 0x0201


def test_missing_initiator_name_is_refused(group, portal):
    ini = initiator(portal, name="")
    assert status(ini.login(group.volume("open").iqn)) == 0x0207


def test_multihost_access_disabled_refuses_a_second_host(group, portal):
    group.create_access("open", initiator="iqn.2026-11.test:other")
    portal.refresh()  # what the server does after every CLI command
    iqn = group.volume("open").iqn
    first = initiator(portal)
    assert status(first.login(iqn)) == 0
    assert status(initiator(portal, name="iqn.2026-11.test:other").login(iqn)) == 0x0202
    first.logout()
    portal.session_ended(first.link.connection)
    assert status(initiator(portal, name="iqn.2026-11.test:other").login(iqn)) == 0
    group.configure_volume("open", multihost=True)


def test_discovery_lists_only_targets_the_initiator_may_reach(group, portal):
    ini = initiator(portal)
    assert status(ini.login(None, discovery=True)) == 0
    reply = ini.text([("SendTargets", "All")])[-1]
    assert isinstance(reply, TextResponse)
    names = [v for k, v in parse_text(reply.data) if k == "TargetName"]
    assert names == [group.volume("open").iqn, group.volume("secret").iqn]
    addresses = [v for k, v in parse_text(reply.data) if k == "TargetAddress"]
    assert addresses == ["127.0.0.1:3260,1"] * 2


def test_nop_out_ping_is_echoed(group, portal):
    ini = initiator(portal)
    ini.login(group.volume("open").iqn)
    reply = ini.exchange(NopOut(itt=77, cmd_sn=ini.cmd_sn, exp_stat_sn=ini.exp_stat_sn, data=b"ping"))
    assert isinstance(reply[-1], NopIn) and reply[-1].itt == 77 and bytes(reply[-1].data) == b"ping"


def test_commands_are_executed_in_cmdsn_order_and_out_of_window_ones_dropped(group, portal):
    ini = logged_in(portal, group)
    sn = ini.cmd_sn
    late = ScsiCommand(flags=0xA1, itt=10, expected_length=512, cmd_sn=sn + 1, cdb=write10(0, 1).ljust(16, b"\0"),
                       data=b"B" * 512)  # fmt: skip
    early = ScsiCommand(flags=0xA1, itt=11, expected_length=512, cmd_sn=sn, cdb=write10(0, 1).ljust(16, b"\0"),
                        data=b"A" * 512)  # fmt: skip
    assert ini.exchange(late) == []  # held until CmdSN sn arrives
    replies = ini.exchange(early)
    assert [r.itt for r in replies] == [11, 10]
    assert group.device("open").read(0, 1) == b"B" * 512
    stale = ScsiCommand(flags=0xA1, itt=12, expected_length=512, cmd_sn=(sn - 5) % 2**32,
                        cdb=write10(0, 1).ljust(16, b"\0"),
                        data=b"C" * 512)  # fmt: skip
    assert ini.exchange(stale) == []
    assert group.device("open").read(0, 1) == b"B" * 512


def test_unknown_opcode_and_stray_data_out_are_rejected_and_the_session_goes_on(group, portal):
    ini = logged_in(portal, group)
    bogus = bytes([0x1D]) + bytes(47)
    reply = ini.exchange(raw=bogus)
    assert isinstance(reply[-1], Reject) and reply[-1].reason == 0x04 and bytes(reply[-1].data) == bogus
    reply = ini.data_out(itt=999, ttt=5, offset=0, data=b"x" * 512)
    assert isinstance(reply[-1], Reject)
    assert ini.command(read10(0, 1), read=512)[-1].status == 0


def test_digests_negotiated_and_used(group, portal):
    ini = logged_in(portal, group, extra=[("HeaderDigest", "CRC32C"), ("DataDigest", "CRC32C")])
    assert ini.header_digest and ini.data_digest
    ini.command(write10(0, 1), write=b"D" * 512)
    replies = ini.command(read10(0, 1), read=512)
    assert bytes(replies[-1].data) == b"D" * 512


def test_pdu_before_login_drops_the_connection(group, portal):
    ini = initiator(portal)
    ini.exchange(ScsiCommand(flags=0xC1, itt=1, expected_length=512, cdb=read10(0, 1).ljust(16, b"\0")))
    assert ini.link.closed


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(min_size=1, max_size=400))
def test_garbage_after_login_never_raises_nor_changes_data(group, portal, garbage):
    device = group.device("open")
    before = device.read(0, 64)
    ini = initiator(portal)
    ini.login(group.volume("open").iqn)
    ini.link.connection.receive(garbage)
    ini.link.connection.data_to_send()
    assert device.read(0, 64) == before
    portal.session_ended(ini.link.connection)


def test_data_out_out_of_sequence_fails_the_command_and_keeps_the_session(group, portal):
    ini = logged_in(portal, group)
    replies = ini.command(write10(0, 8), length=4096)
    r2t = next(r for r in replies if isinstance(r, ReadyToTransfer))
    bad = ini.exchange(
        DataOut(flags=0x80, itt=r2t.itt, ttt=r2t.ttt, exp_stat_sn=ini.exp_stat_sn, data_sn=5,
                buffer_offset=0, data=b"Q" * 4096)  # fmt: skip
    )
    response = bad[-1]
    assert isinstance(response, ScsiResponse) and response.status == 2
    sense = bytes(response.data)[2:]
    assert (sense[2] & 0x0F, sense[12], sense[13]) == (0x0B, 0x4B, 0x00)  # ABORTED COMMAND, DATA PHASE ERROR
    assert group.device("open").read(0, 8) != b"Q" * 4096
    assert ini.command(read10(0, 1), read=512)[-1].status == 0


def test_target_pings_an_idle_initiator_with_nop_in(group, portal):
    ini = logged_in(portal, group)
    connection = ini.link.connection
    connection.ping()
    ini.framer.feed(b"".join(bytes(p) for p in connection.data_to_send()))
    nop = next(frame.decode() for frame in ini.framer.frames())
    assert isinstance(nop, NopIn) and nop.itt == 0xFFFFFFFF and nop.ttt != 0xFFFFFFFF
    assert connection._ping_ttt == nop.ttt
    ini.exchange(NopOut(flags=0x80, immediate=True, itt=0xFFFFFFFF, ttt=nop.ttt, cmd_sn=ini.cmd_sn,
                        exp_stat_sn=ini.exp_stat_sn))  # fmt: skip
    assert connection._ping_ttt is None


def _received(ini, *pdus):
    """Feed PDUs to the connection without running its engine work: what came straight back."""
    connection = ini.link.connection
    connection.receive(b"".join(bytes(p) for pdu in pdus for p in encode_pdu(pdu)))
    ini.framer.feed(b"".join(bytes(p) for p in connection.data_to_send()))
    return [frame.decode() for frame in ini.framer.frames()]


def _completed(ini, work):
    """Be the engine owner for ``work`` (in the order given); what the connection sent then."""
    connection = ini.link.connection
    for item in work:
        connection.completed(item, item.run())
    ini.framer.feed(b"".join(bytes(p) for p in connection.data_to_send()))
    return [frame.decode() for frame in ini.framer.frames()]


def _write(ini, itt, lba, fill):
    pdu = ScsiCommand(flags=0xA1, itt=itt, expected_length=512, cmd_sn=ini.cmd_sn, exp_stat_sn=ini.exp_stat_sn,
                      cdb=write10(lba, 1).ljust(16, b"\0"), data=fill * 512)  # fmt: skip
    ini.cmd_sn += 1
    return pdu


def test_commands_are_handed_out_in_cmdsn_order_and_answered_when_completed(group, portal):
    ini = logged_in(portal, group)
    connection = ini.link.connection
    first, second = _write(ini, 20, 0, b"A"), _write(ini, 21, 0, b"B")
    assert _received(ini, second, first) == []  # nothing runs on the connection's side
    work = connection.work_to_run()
    assert [w.itt for w in work] == [20, 21] and connection.work_to_run() == []
    assert group.device("open").read(0, 1) == bytes(512)
    # A NOP-Out is answered while the commands are out; StatSN is taken at response time.
    nop = ini.exchange(NopOut(flags=0x80, itt=22, ttt=0xFFFFFFFF, cmd_sn=ini.cmd_sn, exp_stat_sn=ini.exp_stat_sn))
    ini.cmd_sn += 1
    replies = _completed(ini, work)
    assert [r.itt for r in replies] == [20, 21]
    assert [r.stat_sn for r in replies] == [nop[0].stat_sn + 1, nop[0].stat_sn + 2]
    assert group.device("open").read(0, 1) == b"B" * 512


def test_abort_task_of_a_queued_command_answers_after_it_and_sends_no_status(group, portal):
    ini = logged_in(portal, group)
    connection = ini.link.connection
    doomed = _write(ini, 30, 1, b"X")
    _received(ini, doomed)
    abort = TaskManagementRequest(flags=0x80 | 1, immediate=True, itt=31, referenced_task_tag=30,
                                  cmd_sn=ini.cmd_sn, exp_stat_sn=ini.exp_stat_sn, ref_cmd_sn=doomed.cmd_sn)  # fmt: skip
    assert _received(ini, abort) == []  # the TMF response waits for the aborted command (RFC 7143 11.5.1)
    replies = _completed(ini, connection.work_to_run())
    assert len(replies) == 1 and isinstance(replies[0], TaskManagementResponse)
    assert replies[0].itt == 31 and replies[0].response == 0
    assert group.device("open").read(1, 1) == bytes(512)  # it never ran
    assert ini.command(bytes(6))[-1].status == 0  # the session goes on


def test_logical_unit_reset_runs_on_the_engine_after_the_commands_before_it(group, portal):
    ini = logged_in(portal, group)
    connection = ini.link.connection
    _received(ini, _write(ini, 40, 2, b"R"))
    reset = TaskManagementRequest(flags=0x80 | 5, immediate=True, itt=41, cmd_sn=ini.cmd_sn,
                                  exp_stat_sn=ini.exp_stat_sn)  # fmt: skip
    assert _received(ini, reset) == []
    work = connection.work_to_run()
    assert [(w.itt, w.command, w.aborted) for w in work] == [(40, True, True), (41, False, False)]
    replies = _completed(ini, work)
    assert [type(r) for r in replies] == [TaskManagementResponse] and replies[0].response == 0
    # The reset raised its unit attention (SAM-5 6.3.1): the next command sees it.
    assert ini.command(bytes(6))[-1].status == 2


def test_logout_is_answered_after_the_commands_before_it(group, portal):
    ini = logged_in(portal, group)
    connection = ini.link.connection
    _received(ini, _write(ini, 50, 3, b"L"))
    logout = LogoutRequest(flags=0x80, itt=51, cmd_sn=ini.cmd_sn, exp_stat_sn=ini.exp_stat_sn)
    ini.cmd_sn += 1
    assert _received(ini, logout) == [] and not connection.closing
    replies = _completed(ini, connection.work_to_run())
    assert [type(r) for r in replies] == [ScsiResponse, LogoutResponse] and connection.closing
    assert group.device("open").read(3, 1) == b"L" * 512


def test_commands_handed_out_are_aborted_when_the_connection_goes(group, portal):
    ini = logged_in(portal, group)
    connection = ini.link.connection
    _received(ini, _write(ini, 60, 4, b"G"))
    connection.drop("test", warn_initiator=False)
    work = connection.work_to_run()
    assert _completed(ini, work) == [] and all(w.aborted for w in work)
    assert group.device("open").read(4, 1) == bytes(512)
