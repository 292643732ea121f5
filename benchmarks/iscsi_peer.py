"""Start and stop the two iSCSI targets that the peer comparisons drive, on 127.0.0.1.

* **tgt** (the peer, Debian package ``tgt``): a ``tgtd`` with one target whose LUN 1 is a
  file-backed (``rdwr``) 1 GiB LUN, on a port in 3270-3279, optionally with more portals.
* **ours**: ``array-sim serve`` on a fresh group (``array-sim init --member-size 20GB``) with
  one thick volume (default ``bench``, 1GB) open to every IP address; LUN 0.

Both are context managers yielding a :class:`Target`; the processes are stopped on the way out,
errors included (tgtd the way it must be: ``tgtadm ... --op delete --force``, then SIGTERM).
Used by ``benchmarks/conformance.py``, ``benchmarks/iscsi.py`` and ``tests/peers``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GiB = 1 << 30
TGT_IQN = "iqn.2026-11.peer:tgt"
TGT_PORTS = range(3270, 3280)
#: What ours offers at login (targets/iscsi/keys.py), to set on tgt for a comparison at equal parameters.
#: tgt's defaults: MaxRecvDataSegmentLength 8192, FirstBurstLength 65536, MaxBurstLength 262144, InitialR2T Yes.
TGT_TUNED = {
    "MaxRecvDataSegmentLength": "262144",
    "MaxXmitDataSegmentLength": "262144",
    "FirstBurstLength": "262144",
    "MaxBurstLength": "1048576",
    "InitialR2T": "No",
}
LOGIN_TIMEOUT = 30.0


def array_sim_command() -> str:
    """The ``array-sim`` console command: the repository's virtualenv first, then PATH."""
    for candidate in (REPO / ".venv" / "bin" / "array-sim", Path(sys.executable).parent / "array-sim"):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("array-sim")
    if not found:
        raise RuntimeError("array-sim is not installed (run ./scripts/test once to create .venv)")
    return found


@dataclass
class Target:
    """One running target: where it listens, which LUN, and the process doing the work."""

    name: str
    iqn: str
    lun: int
    ports: list[int]
    proc: subprocess.Popen[bytes]
    host: str = "127.0.0.1"
    log: Path | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def port(self) -> int:
        return self.ports[0]

    def url(
        self,
        *,
        iqn: str | None = None,
        lun: int | None = None,
        port: int | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> str:
        auth = f"{user}%{password}@" if user else ""
        return f"iscsi://{auth}{self.host}:{port or self.port}/{iqn or self.iqn}/{self.lun if lun is None else lun}"

    def multipath_urls(self) -> list[str]:
        """Two URLs for the same LU: one per portal (the same portal twice if there is only one)."""
        ports = self.ports if len(self.ports) > 1 else self.ports * 2
        return [self.url(port=p) for p in ports[:2]]


@dataclass
class OurTarget(Target):
    group_dir: Path = field(default_factory=Path)

    def cli(self, *words: str, check: bool = True) -> list[str]:
        """One Group Manager CLI command, through the running server's control socket."""
        result = subprocess.run(
            [array_sim_command(), "cli", "--dir", str(self.group_dir), *words],
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = result.stdout.splitlines()
        if check and (result.returncode != 0 or any(line.startswith("% Error") for line in lines)):
            raise RuntimeError(
                f"array-sim cli {' '.join(words)!r} failed ({result.returncode}): {result.stdout}{result.stderr}"
            )
        return lines


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cpu_seconds(pid: int) -> float:
    """utime+stime of a process (all its threads) and of its live descendants, in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, int]] = {}  # pid -> (ppid, ticks)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
        stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += stats.get(current, (0, 0))[1]
        todo.extend(p for p, (ppid, _) in stats.items() if ppid == current)
    return total / tick


def wait_until(
    ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, timeout: float = LOGIN_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise RuntimeError(f"{what}: the target process exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(0.2)


def can_log_in(url: str) -> bool:
    """Whether an initiator can log in to ``url`` and reach its LUN (``iscsi-inq`` succeeds)."""
    try:
        return subprocess.run(["iscsi-inq", url], capture_output=True, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def wait_for_login(target: Target, timeout: float = LOGIN_TIMEOUT) -> None:
    for url in {target.url(port=p) for p in target.ports}:
        wait_until(lambda u=url: can_log_in(u), target.proc, f"{target.name}: login to {url}", timeout)


def _stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it does not go within ``timeout``; always reaps the process."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()


# --------------------------------------------------------------------------- tgt


def _tgtadm(control: int, words: str, *more: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["tgtadm", "-C", str(control), *words.split(), *more], capture_output=True, text=True, timeout=30
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"tgtadm {words} {' '.join(more)} failed: {result.stdout}{result.stderr}")
    return result


@contextmanager
def tgt_target(
    workdir: Path, *, size: int = GiB, portals: int = 1, params: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[Target]:
    """tgtd on free ports of 3270-3279 (``portals`` of them), LUN 1 = ``workdir/tgt-lun.img`` (rdwr).

    ``params``: iSCSI parameters set on the target (``tgtadm --op update``), e.g. :data:`TGT_TUNED`.
    """
    ports = [p for p in TGT_PORTS if _port_is_free(p)][:portals]
    if len(ports) < portals:
        raise RuntimeError(f"no {portals} free ports in {TGT_PORTS}")
    control = ports[0]  # tgtd's control socket is /var/run/tgtd/socket.<control>; one per port
    backing = workdir / "tgt-lun.img"
    with open(backing, "wb") as f:
        f.truncate(size)
    log = log or workdir / "tgtd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["tgtd", "-f", "-C", str(control), "--iscsi", f"portal=127.0.0.1:{ports[0]}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: _tgtadm(control, "--mode system --op show", check=False).returncode == 0, proc, "tgtd")
        _tgtadm(control, f"--lld iscsi --mode target --op new --tid 1 --targetname {TGT_IQN}")
        _tgtadm(
            control,
            "--lld iscsi --mode logicalunit --op new --tid 1 --lun 1 --bstype rdwr --backing-store",
            str(backing),
        )
        _tgtadm(control, "--lld iscsi --mode target --op bind --tid 1 --initiator-address ALL")
        for name, value in (params or {}).items():
            _tgtadm(control, f"--lld iscsi --mode target --op update --tid 1 --name {name} --value {value}")
        for port in ports[1:]:
            _tgtadm(control, f"--lld iscsi --mode portal --op new --param portal=127.0.0.1:{port}")
        target = Target("tgt", TGT_IQN, 1, ports, proc, log=log)
        wait_for_login(target)
        yield target
    finally:
        if proc.poll() is None:  # plain SIGTERM is not enough while targets exist
            _tgtadm(control, "--lld iscsi --mode target --op delete --force --tid 1", check=False)
            _tgtadm(control, "--mode system --op delete --force", check=False)
            with suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        _stop(proc)


# --------------------------------------------------------------------------- ours


@contextmanager
def our_target(
    workdir: Path,
    *,
    volume: str = "bench",
    size: str = "1GB",
    options: tuple[str, ...] = (),
    member_size: str = "20GB",
    raid_policy: str = "raid6",
    disks: int = 12,
    log: Path | None = None,
) -> Iterator[OurTarget]:
    """``array-sim serve`` on a free port, group in ``workdir/group``, one thick volume open to any IP.

    ``options`` go on the ``volume create`` line, e.g. ``("multihost-access", "enable")``: like the
    array, a volume takes one initiator at a time unless multi-host access is enabled. member-1 is
    made with ``raid_policy`` over ``disks`` disk files (``file``: one sparse file, no RAID).
    """
    command = array_sim_command()
    group_dir = workdir / "group"
    subprocess.run(
        [command, "init", "--dir", str(group_dir), "--member-size", member_size, "--raid-policy", raid_policy,
         "--disks", str(disks)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    log = log or workdir / "array-sim-serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [command, "serve", "--dir", str(group_dir), "--portal", f"127.0.0.1:{port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: (group_dir / "control.sock").exists(), proc, "array-sim serve control socket")
        target = OurTarget("ours", "", 0, [port], proc, log=log, group_dir=group_dir)
        target.cli("cli-settings confirmation off")
        lines = target.cli("volume", "create", volume, size, *options)
        target.iqn = next(line.split()[-1].rstrip(".") for line in lines if "iSCSI target name is" in line)
        target.cli("volume", "select", volume, "access", "create", "ipaddress", "*.*.*.*")
        wait_for_login(target)
        yield target
    finally:
        _stop(proc, timeout=30)
