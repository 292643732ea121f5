"""A hostile initiator against a real ``array-sim serve`` process: claimed transfer lengths, bad text,
slow readers, refused logins, an over-long control line and a portal already in use.

Memory is read from the server process itself (``/proc/<pid>/status`` VmRSS): a target that sizes
a buffer by what a peer claims, or queues output a peer does not read, shows it there.
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import time

import pytest

from targets.iscsi.framing import encode_pdu
from targets.iscsi.pdu import DataIn, ReadyToTransfer, Reject, ScsiCommand, ScsiResponse, TextRequest, TextResponse

from .test_server import ARRAY_SIM, INITIATOR, Server

pytestmark = pytest.mark.slow

MiB = 1 << 20
EDTL_MAX = 0xFFFFFFFF


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("hostile") / "group")
    server.cli("cli-settings", "confirmation", "off")
    server.cli("volume", "create", "v1", "100MB", "thin-provision")
    server.cli("volume", "select", "v1", "access", "create", "initiator", INITIATOR)
    yield server
    if server.process.poll() is None:
        server.stop(signal.SIGKILL)
    for link in server.links:
        link.close()


def rss(server: Server) -> int:
    """The server process's resident set size in bytes."""
    with open(f"/proc/{server.process.pid}/status") as status:
        lines = status.read().splitlines()
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def logged_in(server: Server, extra: list[tuple[str, str]] | None = None):
    ini = server.initiator()
    assert ini.login(server.iqn("v1"), extra=extra)[-1].status_class == 0
    ini.command(bytes(6))  # the new I_T nexus's unit attention, if any
    assert ini.command(bytes(6))[-1].status == 0
    return ini


def sense_code(response: ScsiResponse) -> tuple[int, int]:
    """(sense key, additional sense code) of a CHECK CONDITION, fixed or descriptor format."""
    sense = bytes(response.data)[2:]
    if sense[0] & 0x7F in (0x72, 0x73):
        return sense[1] & 0x0F, sense[2]
    return sense[2] & 0x0F, sense[12]


def read_works(ini) -> None:
    replies = ini.command(struct.pack(">BBIBHB", 0x28, 0, 0, 0, 1, 0), read=512)
    assert any(isinstance(r, DataIn) and r.flags & 0x01 and r.status == 0 for r in replies), replies


def write16(lba: int, blocks: int) -> bytes:
    return struct.pack(">BBQIBB", 0x8A, 0, lba, blocks, 0, 0)


#: Commands with a Data-Out phase, each with EDTL FFFFFFFFh: (name, CDB, Data-Out the CDB asks for).
DATA_OUT_COMMANDS = [
    ("WRITE(16)", write16(0, 8), 8 * 512),
    ("WRITE SAME(16)", struct.pack(">BBQIBB", 0x93, 0, 0, 8, 0, 0), 512),
    ("COMPARE AND WRITE", struct.pack(">BBQ3xBBB", 0x89, 0, 0, 1, 0, 0), 1024),
    ("UNMAP", struct.pack(">BB5xHB", 0x42, 0, 0xFFFF, 0), 0xFFFF),
    ("MODE SELECT(10)", bytes([0x55, 0x10, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0]), 0xFFFF),
    ("PERSISTENT RESERVE OUT", struct.pack(">BBB2xIB", 0x5F, 0, 0, 0xFFFFFFFF, 0), 0xFFFFFFFF),
]


def test_claimed_transfer_lengths_allocate_nothing(server):
    ini = logged_in(server)
    before = rss(server)
    r2ts: dict[str, list[ReadyToTransfer]] = {}
    for name, cdb, asked in DATA_OUT_COMMANDS:
        for _ in range(3):
            replies = ini.command(cdb, length=EDTL_MAX)
            r2ts.setdefault(name, []).extend(r for r in replies if isinstance(r, ReadyToTransfer))
            if asked > 65536 * 512:
                # More than any command may transfer: refused on its CDB at once, nothing solicited.
                (response,) = replies
                assert isinstance(response, ScsiResponse) and response.status == 0x02
                assert sense_code(response) == (0x05, 0x1A)  # PARAMETER LIST LENGTH ERROR
    assert rss(server) - before < 16 * MiB
    for name, _cdb, asked in DATA_OUT_COMMANDS:
        # Only what the CDB asks for is solicited, never the claimed EDTL.
        assert all(r.buffer_offset + r.desired_length <= asked for r in r2ts[name]), name
    read_works(ini)

    # The first WRITE(16) completes with its 4096 bytes: GOOD, and the EDTL's excess as underflow.
    r2t = r2ts["WRITE(16)"][0]
    replies = ini.data_out(r2t.itt, r2t.ttt, 0, b"W" * 4096)
    (response,) = [r for r in replies if isinstance(r, ScsiResponse)]
    assert response.status == 0 and response.flags & 0x02 and response.residual == EDTL_MAX - 4096
    replies = ini.command(struct.pack(">BBIBHB", 0x28, 0, 0, 0, 8, 0), read=4096)
    assert b"".join(bytes(r.data) for r in replies if isinstance(r, DataIn)) == b"W" * 4096


def test_writes_that_never_send_their_data_hold_no_memory(server):
    """100 writes of MAXIMUM TRANSFER LENGTH (32 MiB each), none sending a byte: nothing is held for them."""
    ini = logged_in(server)
    before = rss(server)
    pdus = []
    for n in range(100):
        pdus.append(ScsiCommand(flags=0xA1, itt=ini.next_itt(), expected_length=32 * MiB, cmd_sn=ini.cmd_sn,
                                exp_stat_sn=ini.exp_stat_sn, cdb=write16(n, 65536).ljust(16, b"\0")))  # fmt: skip
        ini.cmd_sn += 1
    replies = ini.exchange(*pdus)
    assert sum(isinstance(r, ReadyToTransfer) for r in replies) == 100
    assert rss(server) - before < 16 * MiB
    read_works(ini)


def test_transfer_length_beyond_32_bits_of_residual(server):
    """WRITE(16)/READ(16) of FFFFFFFFh blocks with EDTL 4096: INVALID FIELD IN CDB, residual clamped."""
    ini = logged_in(server)
    cdb = write16(0, 0xFFFFFFFF)
    (response,) = [r for r in ini.command(cdb, write=b"Q" * 4096) if isinstance(r, ScsiResponse)]
    assert response.status == 0x02 and sense_code(response) == (0x05, 0x24)
    assert response.flags & 0x04 and response.residual == 0xFFFFFFFF  # overflow, clamped to 32 bits
    read16 = bytes([0x88]) + cdb[1:]
    (response,) = [r for r in ini.command(read16, read=4096) if isinstance(r, ScsiResponse)]
    assert response.status == 0x02 and sense_code(response) == (0x05, 0x24)
    # Nothing was written.
    replies = ini.command(struct.pack(">BBIBHB", 0x28, 0, 0, 0, 8, 0), read=4096)
    assert b"Q" not in b"".join(bytes(r.data) for r in replies if isinstance(r, DataIn))
    read_works(ini)


@pytest.mark.parametrize("text", [b"\xff\xfe=All\0", b"SendTargets\0", b"=All\0"])
def test_malformed_text_request_is_rejected_and_the_session_lives(server, text):
    ini = logged_in(server)
    pdu = TextRequest(flags=0x80, itt=ini.next_itt(), ttt=0xFFFFFFFF, cmd_sn=ini.cmd_sn,
                      exp_stat_sn=ini.exp_stat_sn, data=text)  # fmt: skip
    ini.cmd_sn += 1
    (reject,) = ini.exchange(pdu)
    assert isinstance(reject, Reject) and reject.reason == 0x04
    assert not ini.link.closed
    replies = ini.text([("SendTargets", "")])
    assert isinstance(replies[-1], TextResponse) and b"TargetName=" in bytes(replies[-1].data)
    read_works(ini)


def test_refused_login_says_why_in_the_log(server):
    iqn = server.iqn("v1")
    stranger = server.initiator("iqn.2026-11.test:stranger")
    assert stranger.login(iqn)[-1].status_detail == 0x02
    deadline = time.monotonic() + 5
    while "stranger" not in server.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [line for line in server.log.read_text().splitlines() if "iqn.2026-11.test:stranger" in line]
    redirect, line = lines  # sent from the group IP to a member port, refused there
    assert "redirect: " in redirect and "login refused" not in redirect
    assert "login refused" in line and iqn in line and "no access record" in line
    assert f"initiator {INITIATOR}" in line  # what the records do allow


def test_a_reader_that_does_not_read_gets_no_more_than_it_takes(server):
    ini = logged_in(server, extra=[("MaxRecvDataSegmentLength", "262144")])
    count, blocks = 120, 4096  # 120 READs of 2 MiB each: 240 MiB the client does not read yet
    for lba in range(0, blocks, 128):  # data of its own (unmapped blocks would read as untouched zero pages)
        assert ini.command(struct.pack(">BBIBHB", 0x2A, 0, lba, 0, 128, 0), write=bytes([lba % 251 + 1]) * 65536)[
            -1
        ].status == 0
    pdus = []
    for _ in range(count):
        pdus.append(ScsiCommand(flags=0xC1, itt=ini.next_itt(), expected_length=blocks * 512, cmd_sn=ini.cmd_sn,
                                exp_stat_sn=ini.exp_stat_sn, cdb=struct.pack(">BBIBHB", 0x28, 0, 0, 0, blocks, 0)
                                .ljust(16, b"\0")))  # fmt: skip
        ini.cmd_sn += 1
    before = rss(server)
    sock = ini.link.sock
    sock.sendall(b"".join(bytes(p) for pdu in pdus for p in encode_pdu(pdu)))
    time.sleep(3)
    grown = rss(server) - before
    assert grown < 48 * MiB, f"server grew by {grown >> 20} MiB for a client that reads nothing"

    statuses, data = 0, 0
    sock.settimeout(10)
    while statuses < count:
        chunk = sock.recv(1 << 20)
        assert chunk, "connection closed"
        ini.framer.feed(chunk)
        for frame in ini.framer.frames():
            reply = frame.decode()
            assert isinstance(reply, DataIn), reply
            data += len(reply.data)
            statuses += bool(reply.flags & 0x01)
    assert data == count * blocks * 512
    ini.exp_stat_sn = (reply.stat_sn + 1) & 0xFFFFFFFF
    read_works(ini)


def control_request(sock: socket.socket, reader, message: bytes) -> dict:
    sock.sendall(message + b"\n")
    return json.loads(reader.readline())


def test_over_long_control_lines_are_refused_and_the_channel_lives(server):
    # The real CLI: a 70,000-character name gets the same answer as without a server...
    long_name = "x" * 70000
    result = subprocess.run([ARRAY_SIM, "cli", "--dir", str(server.directory), f"volume create {long_name} 10MB"],
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert result.returncode == 1
    assert result.stdout.startswith("% Error - Invalid volume name: too long (70000 characters)"), result.stdout[:200]
    # ...and a line past what the control channel reads is refused, the next line answered.
    result = subprocess.run([ARRAY_SIM, "cli", "--dir", str(server.directory)], capture_output=True, text=True,
                            input="y" * (2 * MiB) + "\nvolume show\nexit\n", timeout=30)  # fmt: skip
    assert "% Error - The command line is too long" in result.stdout
    assert "v1" in result.stdout.split("too long", 1)[1]

    # A raw socket: too long, not JSON, not an object; the session answers after each.
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(server.directory / "control.sock"))
        reader = sock.makefile("rb")
        assert control_request(sock, reader, b'{"account": "grpadmin"}')["lines"] == []
        reply = control_request(sock, reader, b'{"line": "' + b"z" * (3 * MiB) + b'"}')
        assert reply["lines"][0].startswith("% Error - The command line is too long")
        assert control_request(sock, reader, b"\xff\xfe")["lines"][0].startswith("% Error - ")
        assert control_request(sock, reader, b"[1, 2]")["lines"][0].startswith("% Error - ")
        reply = control_request(sock, reader, json.dumps({"line": "volume show"}).encode())
        assert any("v1" in line for line in reply["lines"])
    assert server.process.poll() is None


def test_serve_on_a_portal_in_use_says_so_in_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([ARRAY_SIM, "serve", "--dir", str(tmp_path / "g"), "--portal", f"127.0.0.1:{port}"],
                                capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr == f"array-sim: cannot listen on 127.0.0.1:{port}: address already in use\n"
    assert "Traceback" not in result.stdout


def test_serve_without_a_control_socket_says_so_in_one_line(tmp_path):
    directory = tmp_path / ("d" * 110) / "group"  # longer than a Unix socket path may be
    port = socket.socket()
    with port:
        port.bind(("127.0.0.1", 0))
        number = port.getsockname()[1]
    result = subprocess.run([ARRAY_SIM, "serve", "--dir", str(directory), "--portal", f"127.0.0.1:{number}"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith(f"array-sim: cannot open the control socket {directory}/control.sock: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stdout
