"""``array_sim.raid.aio``: batches of writes through ``io_submit`` land as ``pwrite`` would put them.

Real files, real system calls; the short-write path through a real file size limit (RLIMIT_FSIZE)
in a child process.
"""

from __future__ import annotations

import errno
import mmap
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from array_sim.raid.aio import MAX_BATCH, AioWriter


@pytest.fixture
def writer() -> Iterator[AioWriter]:
    w = AioWriter.open()
    assert w is not None, "Linux AIO (io_setup) is not available here"
    yield w
    w.close()


def _files(tmp_path: Path, n: int) -> list[int]:
    return [os.open(tmp_path / f"disk-{i}", os.O_RDWR | os.O_CREAT, 0o600) for i in range(n)]


def test_every_kind_of_buffer_lands_where_asked(writer: AioWriter, tmp_path: Path) -> None:
    a, b = _files(tmp_path, 2)
    pool_map = mmap.mmap(-1, 8192)
    pool_map[:8192] = bytes(range(256)) * 32
    parity = np.arange(4096, dtype=np.uint16).astype(np.uint8)
    writer.write([
        (a, 0, b"read-only bytes"),
        (a, 4096, memoryview(bytearray(b"a bytearray"))),
        (b, 100, memoryview(pool_map)[1000:5000]),
        (b, 65536, parity),
        (a, 20, b""),
    ])
    assert os.pread(a, 15, 0) == b"read-only bytes"
    assert os.pread(a, 11, 4096) == b"a bytearray"
    assert os.pread(b, 4000, 100) == pool_map[1000:5000]
    assert os.pread(b, 4096, 65536) == parity.tobytes()
    pool_map.resize(4096)  # no export of the map is left behind (rule 6): the gather pool resizes its maps


def test_more_writes_than_one_batch(writer: AioWriter, tmp_path: Path) -> None:
    fds = _files(tmp_path, 3)
    writes = [(fds[i % 3], 512 * i, bytes([i % 251]) * 512) for i in range(3 * MAX_BATCH + 5)]
    writer.write(writes)
    for fd, offset, data in writes:
        assert os.pread(fd, 512, offset) == data


def test_a_bad_descriptor_raises_its_errno_once_the_writes_before_it_are_done(
    writer: AioWriter, tmp_path: Path) -> None:
    (good,) = _files(tmp_path, 1)
    closed = os.open(tmp_path / "closed", os.O_RDWR | os.O_CREAT)
    os.close(closed)
    with pytest.raises(OSError) as raised:
        writer.write([(good, 0, b"first"), (closed, 0, b"lost"), (good, 5, b"after")])
    assert raised.value.errno == errno.EBADF
    assert os.pread(good, 5, 0) == b"first"
    with pytest.raises(OSError) as raised:  # the first write of the batch is the bad one
        writer.write([(closed, 0, b"lost")])
    assert raised.value.errno == errno.EBADF
    writer.write([(good, 10, b"still works")])
    assert os.pread(good, 11, 10) == b"still works"


def test_a_short_write_is_finished_and_then_raises_the_real_error(tmp_path: Path) -> None:
    child = f"""
import os, resource, signal, sys
sys.path.insert(0, {str(Path(__file__).parents[2])!r})
from array_sim.raid.aio import AioWriter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))
fd = os.open({str(tmp_path / "limited")!r}, os.O_RDWR | os.O_CREAT, 0o600)
try:
    AioWriter.open().write([(fd, 4096, b"x" * 8192)])
except OSError as error:
    print(error.errno, os.fstat(fd).st_size)
"""
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == [str(errno.EFBIG), "8192"], out.stderr
    assert (tmp_path / "limited").read_bytes()[4096:] == b"x" * 4096


def test_off_in_the_environment_means_no_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARRAY_SIM_AIO", "off")
    assert AioWriter.open() is None


def test_close_twice(tmp_path: Path) -> None:
    w = AioWriter.open()
    assert w is not None
    w.close()
    w.close()
