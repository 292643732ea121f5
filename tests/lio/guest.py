"""The LIO test guest: Debian 12's own 6.1 kernel under QEMU (TCG), LIO loaded, this project at /opt/array-sim.

``Guest`` is a context manager that runs ``scripts/lio-guest/build`` (cached in ``.cache/lio-guest/``: seconds
when nothing changed), ``scripts/lio-guest/image`` (this tree into a fresh disk in ``workdir``) and
``scripts/lio-guest/boot``, waits for ``LIO-GUEST READY`` on the serial console, and then offers:

* ``run(command, timeout)``: a bash script run in the guest as root, over its control port (the protocol is in
  ``scripts/lio-guest/guest-init``), returning ``(exit_code, output)``, stdout and stderr together; 124 when the
  guest's ``timeout`` ended it;
* ``host_port``: the port on 127.0.0.1 that QEMU forwards to the guest's iSCSI port 3260. The guest's own
  addresses (10.0.2.x) stay inside QEMU: a test never uses any host-side address but 127.0.0.1.

On the way out the guest is powered off and qemu killed for sure (it also dies with this process). The logs
(``build.log``, ``image.log``, ``qemu.log``, ``console.log``, ``timings.txt``) stay in ``workdir``; the disk
does not.

TCG is slow and its speed varies about 2x with the machine's load: every wait here is generous.
``skip_unless_buildable()`` skips the calling test module where the guest cannot be built.
"""

from __future__ import annotations

import base64
import ctypes
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts" / "lio-guest"
BUILD_TIMEOUT = 1800.0  # cold: about 1.5 min here (apt, a 70 MB kernel, debootstrap); much more on a slow mirror
IMAGE_TIMEOUT = 300.0  # a few seconds
BOOT_TIMEOUT = 300.0  # qemu started to READY: about 15 s on an idle 2-core machine
RUN_TIMEOUT = 120.0
ANSWER_GRACE = 30.0  # past a command's timeout: the guest's `timeout -k 5` has answered by then
READY, FAILED = "LIO-GUEST READY", ("LIO-GUEST FAILED", "INITRD:", "Kernel panic")
PR_SET_PDEATHSIG = 1


class GuestError(RuntimeError):
    """The guest could not be built, booted or reached; the message carries the log that says why."""


def cache_dir() -> Path:
    return Path(os.environ.get("LIO_GUEST_CACHE") or REPO / ".cache" / "lio-guest")


def unbuildable_reason() -> str | None:
    """Why the guest cannot be built here, or None."""
    if platform.machine() != "x86_64":
        return f"the LIO guest's root is amd64 and debootstrap runs it: not on {platform.machine()}"
    if os.geteuid() != 0 and (
        shutil.which("sudo") is None or subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode != 0
    ):
        return "building the LIO guest needs root or passwordless sudo (apt, debootstrap, chroot)"
    if shutil.which("qemu-system-x86_64") is None and shutil.which("apt-get") is None:
        return "no qemu-system-x86_64, and no apt-get to install it"
    if (cache_dir() / "stamps" / "initrd").exists() and shutil.which("qemu-system-x86_64"):
        return None  # built: the build only checks it (unless the host's apt lists know a newer kernel)
    codename = ""
    if Path("/etc/os-release").exists():
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                codename = line.split("=", 1)[1].strip('"')
    if codename != "bookworm":
        return f"the LIO guest's kernel comes from the host's apt: Debian 12 (bookworm) only, not {codename or '?'}"
    try:
        socket.create_connection(("deb.debian.org", 80), timeout=5).close()
    except OSError as error:
        return f"no network to deb.debian.org to build the LIO guest ({error})"
    return None


def skip_unless_buildable() -> None:
    """Skip the calling test module (at import) where the guest cannot be built."""
    if reason := unbuildable_reason():
        pytest.skip(reason, allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


_prctl = ctypes.CDLL(None).prctl  # looked up here: the child between fork and exec only calls it


def _die_with_parent() -> None:
    """In qemu's process before exec: SIGKILL when the process that started it dies, however it dies."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return f"(no {path.name})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def fileio_peer_script(iqn: str, path: str, size: int, write_back: bool = False, port: int = 3260) -> str:
    """A bash script that makes the peer of our LIO targets in the guest: a LIO ``fileio`` LUN of ``size``
    bytes on the file ``path``, target ``iqn`` on 10.0.2.15:``port``, open to any initiator (demo mode)."""
    return f"""python3 - <<'PY'
from rtslib_fb import FabricModule, FileIOStorageObject, LUN, NetworkPortal, Target, TPG
lun_file = FileIOStorageObject("{iqn.rsplit(':', 1)[-1]}", "{path}", size={size}, write_back={write_back})
tpg = TPG(Target(FabricModule("iscsi"), "{iqn}"), 1)
NetworkPortal(tpg, "10.0.2.15", {port})
LUN(tpg, 0, lun_file)
for name, value in (("generate_node_acls", "1"), ("cache_dynamic_acls", "1"), ("demo_mode_write_protect", "0"),
                    ("authentication", "0")):
    tpg.set_attribute(name, value)
tpg.enable = True
PY"""


def attached_disk_script(iqn: str) -> str:
    """A bash script that waits (30 s at most) for the disk open-iscsi attached for its session to ``iqn``
    and prints its name (``sdX``); exits 1 if none comes."""
    return f"""for i in $(seq 100); do
    d=$(iscsiadm -m session -P 3 | awk -v t="{iqn}" '$1 == "Target:" {{on = ($2 == t)}} on && /Attached scsi disk/ {{print $4; exit}}')
    [ -n "$d" ] && [ -b /dev/$d ] && echo "$d" && exit 0
    sleep 0.3
done
exit 1"""


class Guest:
    """One booted LIO test guest; see the module's docstring."""

    def __init__(self, workdir: Path, project: Path = REPO, boot_timeout: float = BOOT_TIMEOUT) -> None:
        self.workdir = Path(workdir)
        self.project = Path(project)
        self.boot_timeout = boot_timeout
        self.image = self.workdir / "root.img"
        self.host_port = 0
        #: Seconds each phase took: build, image, boot (qemu started to READY).
        self.timings: dict[str, float] = {}
        # console.log and control.sock: a short path of its own (a unix socket's is at most 107 bytes).
        self._run_dir = Path(tempfile.mkdtemp(prefix="lio-guest-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._buffer = bytearray()
        self._broken = ""

    @property
    def console(self) -> Path:
        """The serial console's log: kernel messages and guest-init's lines."""
        return self._run_dir / "console.log"

    def __enter__(self) -> Guest:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._script("build", [], BUILD_TIMEOUT)
        self._script("image", [str(self.project), str(self.image)], IMAGE_TIMEOUT)
        for attempt in range(3):
            self.host_port = _free_port()
            started = time.monotonic()
            if self._boot():
                self.timings["boot"] = time.monotonic() - started
                break
            # Another process took the free port before qemu bound it: try another one.
            if attempt == 2:
                raise GuestError(f"qemu could not forward a port on 127.0.0.1:\n{_tail(self.workdir / 'qemu.log')}")
        self._control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._control.connect(str(self._run_dir / "control.sock"))

    def run(self, command: str, timeout: float = RUN_TIMEOUT) -> tuple[int, str]:
        """Run ``command`` (bash) in the guest: its exit code and its output (stdout and stderr together)."""
        if self._control is None or self._broken:
            raise GuestError(f"the guest's control port is not usable: {self._broken or 'not started'}")
        token = secrets.token_hex(8)
        script = base64.b64encode(command.encode()).decode()
        self._control.sendall(f"{token} {math.ceil(timeout)} {script}\n".encode())
        deadline = time.monotonic() + timeout + ANSWER_GRACE
        while True:
            words = self._answer(deadline).split(b" ")
            # An answer to an earlier command that timed out on this side is skipped.
            if words[0].decode(errors="replace") == token and len(words) == 3:
                return int(words[1]), base64.b64decode(words[2]).decode(errors="replace")

    def stop(self) -> None:
        """Power the guest off, kill qemu if it is still there, keep the logs, drop the disk. Idempotent."""
        if self._proc is not None:
            if self._proc.poll() is None and self._control is not None and not self._broken:
                # No answer comes: the guest is gone before it could write one.
                with_sysrq = "sync; echo o >/proc/sysrq-trigger"
                try:
                    self._control.sendall(f"poweroff 10 {base64.b64encode(with_sysrq.encode()).decode()}\n".encode())
                    self._proc.wait(timeout=30)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
        if self._control is not None:
            self._control.close()
            self._control = None
        if self.console.exists():
            shutil.copyfile(self.console, self.workdir / "console.log")
        if self.timings:
            (self.workdir / "timings.txt").write_text("".join(f"{k} {v:.1f} s\n" for k, v in self.timings.items()))
        shutil.rmtree(self._run_dir, ignore_errors=True)
        self.image.unlink(missing_ok=True)

    def _script(self, name: str, args: list[str], timeout: float) -> None:
        log = self.workdir / f"{name}.log"
        started = time.monotonic()
        with open(log, "wb") as out:
            try:
                done = subprocess.run([str(SCRIPTS / name), *args], stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, timeout=timeout)  # fmt: skip
            except subprocess.TimeoutExpired:
                raise GuestError(f"scripts/lio-guest/{name} took over {timeout:.0f} s:\n{_tail(log)}") from None
        if done.returncode != 0:
            raise GuestError(f"scripts/lio-guest/{name} exited {done.returncode}:\n{_tail(log)}")
        self.timings[name] = time.monotonic() - started

    def _boot(self) -> bool:
        """Start qemu and wait for READY: True; False if qemu exited because it could not forward the port."""
        qemu_log = self.workdir / "qemu.log"
        command = [str(SCRIPTS / "boot"), str(self.host_port), str(self._run_dir), str(self.image)]
        with open(qemu_log, "wb") as out:
            self._proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True, preexec_fn=_die_with_parent)  # fmt: skip
        deadline = time.monotonic() + self.boot_timeout
        while time.monotonic() < deadline:
            console = self.console.read_text(errors="replace") if self.console.exists() else ""
            if any(marker in console for marker in FAILED):
                raise GuestError(f"the guest failed to start:\n{_tail(self.console)}")
            if READY in console:
                return True
            if self._proc.poll() is not None:
                if "host forwarding" in qemu_log.read_text(errors="replace"):
                    self._proc = None
                    return False
                raise GuestError(f"qemu exited {self._proc.returncode}:\n{_tail(qemu_log)}\n{_tail(self.console)}")
            time.sleep(0.5)
        raise GuestError(f"no {READY!r} within {self.boot_timeout:.0f} s:\n{_tail(self.console)}")

    def _answer(self, deadline: float) -> bytes:
        """The next line from the control port."""
        assert self._control is not None
        while (end := self._buffer.find(b"\n")) < 0:
            left = deadline - time.monotonic()
            if left <= 0:
                self._broken = "a command did not answer in time"
                raise TimeoutError(f"no answer from the guest in time; console:\n{_tail(self.console)}")
            self._control.settimeout(left)
            try:
                chunk = self._control.recv(1 << 16)
            except TimeoutError:
                continue
            if not chunk:
                self._broken = "the control port closed"
                raise GuestError(f"the guest's control port closed (qemu gone?); console:\n{_tail(self.console)}")
            self._buffer += chunk
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line
