#!/usr/bin/env python3
"""The Group Manager CLI over SSH against the local CLI (the control socket), on one running server.

    python benchmarks/ssh_cli.py [--quick] [--dir DIR] [--reps N] [--seconds S]

``array-sim serve`` on a fresh group (one 15MB volume ``bench``; the account ``bench`` with the
Cinder driver's settings: confirmation and formatoutput off), SSH on a free port of 127.0.0.1.
Four same-run comparisons (benchmarks/README.md):

1. Commands per second with a new session per command, the Cinder PS driver's pattern
   (research/ps-cli.md 1.3): over one paramiko connection, a channel per command (``invoke_shell``
   without a PTY, the MOTD read to the prompt, ``stty columns 255``, the command, read to the
   prompt, close), against the local CLI over the control socket with a connection per command
   (``array-sim cli``'s ``RemoteSession``: hello, ``stty columns 255``, the command, close). The
   command is ``volume select bench show``. Also the server's CPU time per command (from /proc),
   the figure least disturbed by a loaded machine.
2. Commands per second on one session kept open (an SSH shell, a control connection).
3. A channel per command against an ``array-sim cli`` process per command (what a shell script
   calling ``array-sim cli`` pays).
4. Time to the first prompt: TCP connect, key exchange, password login, a channel, the MOTD and the
   prompt, against the control socket's connect and first reply; with the part before the channel.

Rules: median (min-max) of ``--reps`` repetitions (3, 1 with ``--quick``) of about ``--seconds``
seconds (3, 0.5 with ``--quick``), the two sides taking turns to go first, ratios paired per
repetition: on the shared 2-vCPU development VM only ratios within one run mean anything. The
client (paramiko, in this process) shares the two cores with the server; its CPU is not the
server's. The server and the temporary directory (under ``--dir``) go at the end, on errors too.
``--quick`` is for tests/benchmarks/test_ssh_cli_bench.py.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import TypeVar

import paramiko

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from firmware_model.control import RemoteSession  # noqa: E402

_VENV_COMMAND = REPO / ".venv" / "bin" / "array-sim"
ARRAY_SIM = str(_VENV_COMMAND) if _VENV_COMMAND.exists() else "array-sim"
PASSWORD = "Bench-1234"
ACCOUNT = "bench"
COMMAND = "volume select bench show"
PROMPT = "group-0> "


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """The ``array-sim serve`` process and its SSH port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        subprocess.run([ARRAY_SIM, "init", "--dir", str(directory), "--member-size", "2GB", "--raid-policy", "file",
                        "--admin-password", PASSWORD], check=True, capture_output=True, timeout=120)  # fmt: skip
        self.log = directory.with_suffix(".log")
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [ARRAY_SIM, "serve", "--dir", str(directory), "--portal", f"127.0.0.1:{free_port()}", "--ssh-port",
                 "0"], stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while not (found := re.search(r"SSH: the Group Manager CLI on 127\.0\.0\.1:(\d+)", self.log.read_text())):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("serve did not start:\n" + self.log.read_text())
            time.sleep(0.05)
        self.port = int(found.group(1))

    def cpu(self) -> float:
        """The server's CPU seconds so far (user + system)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def login(port: int, account: str = ACCOUNT) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port, account, password=PASSWORD, look_for_keys=False, allow_agent=False, timeout=30)
    return client


def read_to_prompt(chan: paramiko.Channel) -> str:
    out = ""
    while out.find(PROMPT) == -1:
        data = chan.recv(102400)
        if not data:
            raise ConnectionError("The PS array has closed the connection.")
        out += data.decode()
    return out


def cinder_command(client: paramiko.SSHClient, command: str) -> list[str]:
    """research/ps-cli.md 1.3, ``_ssh_execute``."""
    chan = client.get_transport().open_session()  # type: ignore[union-attr]
    try:
        chan.invoke_shell()
        read_to_prompt(chan)
        chan.send("stty columns 255\r")
        read_to_prompt(chan)
        chan.send(command + "\r")
        return read_to_prompt(chan).splitlines()
    finally:
        chan.close()


def control_command(directory: Path, command: str) -> list[str]:
    """The same session shape over the control socket: a connection per command."""
    remote = RemoteSession(directory, ACCOUNT, True)
    try:
        remote.execute("stty columns 255")
        return remote.execute(command)
    finally:
        remote.close()


def rate(run_one: Callable[[], object], seconds: float, server: Server) -> tuple[float, float]:
    """(commands per second, server CPU ms per command) of ``run_one`` repeated for ``seconds``."""
    count, cpu, start = 0, server.cpu(), time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or count < 3:
        run_one()
        count += 1
    return count / elapsed, (server.cpu() - cpu) * 1e3 / count


@contextmanager
def ssh_shell(port: int) -> Iterator[Callable[[], object]]:
    client = login(port)
    chan = client.get_transport().open_session()  # type: ignore[union-attr]
    chan.invoke_shell()
    read_to_prompt(chan)

    def one() -> str:
        chan.send(COMMAND + "\r")
        return read_to_prompt(chan)

    try:
        yield one
    finally:
        client.close()


@contextmanager
def control_session(directory: Path) -> Iterator[Callable[[], object]]:
    remote = RemoteSession(directory, ACCOUNT, True)
    try:
        yield lambda: remote.execute(COMMAND)
    finally:
        remote.close()


def first_prompt_ssh(port: int) -> tuple[float, float]:
    """(seconds to the first prompt, of which before the channel opened)."""
    start = time.perf_counter()
    client = login(port)
    logged_in = time.perf_counter()
    chan = client.get_transport().open_session()  # type: ignore[union-attr]
    chan.invoke_shell()
    read_to_prompt(chan)
    done = time.perf_counter()
    client.close()
    return done - start, logged_in - start


def first_prompt_control(directory: Path) -> float:
    start = time.perf_counter()
    RemoteSession(directory, ACCOUNT, True).close()  # the hello's reply carries the first prompt
    return time.perf_counter() - start


def fmt(values: list[float], digits: int = 0) -> str:
    med = f"{statistics.median(values):,.{digits}f}"
    return med if len(values) == 1 else f"{med} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def ratio_line(label: str, a: list[float], b: list[float], names: str, unit: str, digits: int = 0) -> str:
    """``label  A a-figures unit  B b-figures unit  A/B ratios`` (ratios paired per repetition)."""
    first, second = names.split("/")
    ratios = fmt([x / y for x, y in zip(a, b, strict=True)], 2)
    return f"{label:40} {first} {fmt(a, digits)} {unit}  {second} {fmt(b, digits)} {unit}  {names} {ratios}"


A = TypeVar("A")
B = TypeVar("B")
#: A session kept open, giving the one command's call.
Session = AbstractContextManager[Callable[[], object]]


def paired(reps: int, a: Callable[[], A], b: Callable[[], B]) -> tuple[list[A], list[B]]:
    """``reps`` results of ``a`` and of ``b``, which one goes first alternating per repetition."""
    first: list[A] = []
    second: list[B] = []
    for rep in range(reps):
        if rep % 2 == 0:
            first.append(a())
            second.append(b())
        else:
            second.append(b())
            first.append(a())
    return first, second


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repetition of ~0.5 s")
    parser.add_argument("--reps", type=int, help="repetitions (default 3, 1 with --quick)")
    parser.add_argument("--seconds", type=float, help="length of one measured run (default 3, 0.5 with --quick)")
    parser.add_argument("--dir", type=Path, help="parent of the temporary directory (default system temp)")
    args = parser.parse_args(argv)
    reps, seconds = args.reps or (1 if args.quick else 3), args.seconds or (0.5 if args.quick else 3.0)
    processes, prompts = (3, 3) if args.quick else (10, 20)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop the server, remove the files
    started = time.monotonic()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ssh-cli-", dir=args.dir)))
        server = Server(tmp / "group")
        stack.callback(server.stop)
        admin = login(server.port, "grpadmin")
        for setup in ("cli-settings confirmation off", f"account create {ACCOUNT} password {PASSWORD}",
                      "volume create bench 15MB"):  # fmt: skip
            assert not any(line.startswith("% Error") for line in cinder_command(admin, setup)), setup
        admin.close()
        client = login(server.port)
        stack.callback(client.close)
        for setting in ("confirmation", "paging", "events", "formatoutput"):  # the driver's do_setup
            cinder_command(client, f"cli-settings {setting} off")
        shown = cinder_command(client, COMMAND)
        assert shown[0] == "" and shown[-1] == PROMPT and any(line.startswith("Size: ") for line in shown), shown
        print(f"# serve on 127.0.0.1, SSH port {server.port}; '{COMMAND}' as account {ACCOUNT}; {reps} reps of"
              f" ~{seconds} s; load {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip

        def per_command_ssh() -> tuple[float, float]:
            return rate(lambda: cinder_command(client, COMMAND), seconds, server)

        def per_command_control() -> tuple[float, float]:
            return rate(lambda: control_command(server.directory, COMMAND), seconds, server)

        ssh_runs, control_runs = paired(reps, per_command_ssh, per_command_control)
        print(ratio_line("1. commands/s, a session per command", [r[0] for r in ssh_runs],
                         [r[0] for r in control_runs], "ssh/control", "/s"))  # fmt: skip
        print(ratio_line("   server CPU per command", [r[1] for r in ssh_runs], [r[1] for r in control_runs],
                         "ssh/control", "ms", 2), flush=True)  # fmt: skip

        def in_session(opener: Callable[[], Session]) -> Callable[[], tuple[float, float]]:
            def run() -> tuple[float, float]:
                with opener() as one:
                    return rate(one, seconds, server)

            return run

        ssh_runs, control_runs = paired(reps, in_session(lambda: ssh_shell(server.port)),
                                        in_session(lambda: control_session(server.directory)))  # fmt: skip
        print(ratio_line("2. commands/s, one session kept open", [r[0] for r in ssh_runs],
                         [r[0] for r in control_runs], "ssh/control", "/s"))  # fmt: skip
        print(ratio_line("   server CPU per command", [r[1] for r in ssh_runs], [r[1] for r in control_runs],
                         "ssh/control", "ms", 2), flush=True)  # fmt: skip

        def by_process() -> float:
            start = time.perf_counter()
            for _ in range(processes):
                result = subprocess.run([ARRAY_SIM, "cli", "--dir", str(server.directory), "--account", ACCOUNT,
                                         COMMAND], capture_output=True, text=True, timeout=120)  # fmt: skip
                assert result.returncode == 0, result
            return processes / (time.perf_counter() - start)

        channels, by_processes = paired(reps, lambda: per_command_ssh()[0], by_process)
        print(ratio_line("3. commands/s, channel vs process", channels, by_processes, "channel/process", "/s"),
              flush=True)  # fmt: skip

        def ssh_prompts() -> tuple[float, float]:
            timings = [first_prompt_ssh(server.port) for _ in range(prompts)]
            return statistics.median(t[0] for t in timings) * 1e3, statistics.median(t[1] for t in timings) * 1e3

        def control_prompts() -> float:
            return statistics.median(first_prompt_control(server.directory) for _ in range(prompts)) * 1e3

        ssh_first, control_first = paired(reps, ssh_prompts, control_prompts)
        print(ratio_line("4. time to first prompt", [t[0] for t in ssh_first], control_first, "ssh/control", "ms", 1))
        print(f"   (of which TCP, key exchange and password login: {fmt([t[1] for t in ssh_first], 1)} ms;"
              f" median of {prompts} logins per repetition)", flush=True)  # fmt: skip
    print(f"\ntotal time {time.monotonic() - started:.0f} s. Only ratios taken within one run mean anything.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
