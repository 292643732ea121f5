"""Linux native AIO through ctypes: all the disk writes of one RAID write in one system call.

Rules of this module:

1. **Why.** The engine owner and the event loop share the GIL (``engine_owner`` rule 5). Every
   ``os.pwritev`` releases it and must win it back, and while the loop is busy in Python that takes
   up to the switch interval: a RAID 6 write of eleven ``pwritev`` calls paid up to eleven waits
   (measured: eleven 96 KiB writes beside a busy thread took 5.3 ms; one ``io_submit`` 0.75 ms).
   ``io_submit`` takes every write of a batch in one call: the GIL is released and won back once.
2. **Buffered files complete inside the call.** The disks are opened without ``O_DIRECT``, so the
   kernel performs each write in ``io_submit`` itself (``fs/aio.c``: ``aio_write`` runs the file's
   ``write_iter``, which for a buffered file does not queue): the events are reaped under the GIL
   (``io_getevents`` with ``min_nr`` 0 through ``ctypes.PyDLL``), and any event not yet there with a
   blocking call that releases it.
3. **Optional and equal.** ``AioWriter.open()`` returns None on an architecture whose system call
   numbers are not in ``_SYSCALLS``, when ``io_setup`` fails (a seccomp filter, a kernel without
   AIO, ``fs.aio-max-nr`` used up), or with ``ARRAY_SIM_AIO=off`` in the environment; the disks
   then write with one ``pwritev`` per run. Both write the same bytes: the tests run both.
4. **One context per store**, made at open and destroyed at close: a store is used by one thread at
   a time (``engine_owner`` rule 1), so its iocb arrays are never shared. At most ``MAX_BATCH``
   writes go in one call; a larger batch goes in chunks, each reaped before the next.
5. **Errors.** Every event of a call is reaped before anything is raised, so no write is left in
   flight with a buffer the caller may reuse. A failed write raises ``OSError`` with its errno; a
   short one (a regular file writes short only at ENOSPC or a signal) is finished with ``pwrite``,
   which then raises the real error if there is one.
6. **Addresses.** A buffer's address comes from ``ctypes.c_char.from_buffer`` (about 0.2 us; the
   export it takes ends with the expression, so a gather-pool map can still be resized); a
   read-only buffer (``bytes``) goes through numpy (about 1.4 us). Callers keep the buffers alive
   until ``write`` returns.

Reference: Linux ``include/uapi/linux/aio_abi.h`` (``struct iocb``, ``struct io_event``),
``io_submit(2)``, ``io_getevents(2)``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from collections.abc import Sequence

import numpy as np

__all__ = ["AioWriter", "MAX_BATCH", "Write"]

#: The most writes handed to the kernel in one ``io_submit`` (rule 4): a 1 MiB write to a RAID 6
#: member of 12 disks is at most 24 strips and 4 parity columns.
MAX_BATCH = 64
#: ``io_setup``, ``io_destroy``, ``io_getevents``, ``io_submit`` by machine (``unistd.h`` of each).
_SYSCALLS = {"x86_64": (206, 207, 208, 209), "aarch64": (0, 1, 4, 2)}
_IOCB_CMD_PWRITE = 1

#: One write: (file descriptor, file offset, the bytes).
Write = tuple[int, int, "memoryview | np.ndarray | bytes"]


class _Iocb(ctypes.Structure):
    _fields_ = [
        ("aio_data", ctypes.c_uint64), ("aio_key", ctypes.c_uint32), ("aio_rw_flags", ctypes.c_int32),
        ("aio_lio_opcode", ctypes.c_uint16), ("aio_reqprio", ctypes.c_int16), ("aio_fildes", ctypes.c_uint32),
        ("aio_buf", ctypes.c_uint64), ("aio_nbytes", ctypes.c_uint64), ("aio_offset", ctypes.c_int64),
        ("aio_reserved2", ctypes.c_uint64), ("aio_flags", ctypes.c_uint32), ("aio_resfd", ctypes.c_uint32),
    ]  # fmt: skip


class _Event(ctypes.Structure):
    _fields_ = [("data", ctypes.c_uint64), ("obj", ctypes.c_uint64), ("res", ctypes.c_int64), ("res2", ctypes.c_int64)]


def _syscalls() -> tuple[object, object] | None:
    """libc's ``syscall`` twice: one that releases the GIL, one that keeps it (rule 2)."""
    try:
        released = ctypes.CDLL(None, use_errno=True).syscall
        kept = ctypes.PyDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):
        return None
    released.restype = kept.restype = ctypes.c_long
    return released, kept


def _address(buffer: memoryview | np.ndarray | bytes) -> int:
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    except TypeError:  # read-only (rule 6)
        return np.frombuffer(buffer, np.uint8).ctypes.data


class AioWriter:
    """One AIO context and its iocbs (rule 4)."""

    def __init__(self, numbers: tuple[int, int, int, int], calls: tuple[object, object], ctx: ctypes.c_ulong):
        self._destroy, self._getevents, self._submit = (ctypes.c_long(n) for n in numbers[1:])
        self._call, self._call_kept = calls
        self._ctx = ctx
        self._iocbs = (_Iocb * MAX_BATCH)()
        self._pointers = (ctypes.POINTER(_Iocb) * MAX_BATCH)(*(ctypes.pointer(cb) for cb in self._iocbs))
        self._events = (_Event * MAX_BATCH)()
        for i, cb in enumerate(self._iocbs):
            cb.aio_lio_opcode = _IOCB_CMD_PWRITE
            cb.aio_data = i  # an event names its iocb by index

    @classmethod
    def open(cls) -> AioWriter | None:
        """A writer, or None where AIO is not available (rule 3)."""
        numbers = _SYSCALLS.get(platform.machine())
        if os.environ.get("ARRAY_SIM_AIO", "") == "off" or numbers is None:
            return None
        calls = _syscalls()
        if calls is None:
            return None
        ctx = ctypes.c_ulong(0)
        if calls[0](ctypes.c_long(numbers[0]), ctypes.c_long(MAX_BATCH), ctypes.byref(ctx)) != 0:  # type: ignore
            return None
        return cls(numbers, calls, ctx)

    def write(self, writes: Sequence[Write]) -> None:
        """Write every ``(fd, offset, data)`` of ``writes``, in one ``io_submit`` per ``MAX_BATCH`` (rule 1)."""
        for start in range(0, len(writes), MAX_BATCH):
            self._write_chunk(writes[start : start + MAX_BATCH])

    def _write_chunk(self, writes: Sequence[Write]) -> None:
        sizes = []
        for cb, (fd, offset, data) in zip(self._iocbs, writes):
            size = data.nbytes if isinstance(data, (memoryview, np.ndarray)) else len(data)
            cb.aio_fildes = fd
            cb.aio_buf = _address(data) if size else 0
            cb.aio_nbytes = size
            cb.aio_offset = offset
            sizes.append(size)
        n = len(writes)
        submitted = self._call(self._submit, self._ctx, ctypes.c_long(n), self._pointers)  # type: ignore
        if submitted < 0:
            error = ctypes.get_errno()
            raise OSError(error, f"io_submit: {os.strerror(error)}")
        results = self._reap(submitted)
        for i in range(submitted, n):  # the kernel refused the rest of the batch: write them one by one
            fd, offset, data = writes[i]
            results[i] = os.pwrite(fd, data, offset)
        failed = None
        for i, (fd, offset, data) in enumerate(writes):
            res = results[i]
            if res < 0:
                failed = failed or OSError(-res, f"aio write at {offset}: {os.strerror(-res)}")
            elif res < sizes[i]:  # short (rule 5): the rest with pwrite, which raises a real error
                view = memoryview(data).cast("B")[res:]
                while view:
                    done = os.pwrite(fd, view, offset + sizes[i] - len(view))
                    view = view[done:]
        if failed is not None:
            raise failed

    def _reap(self, submitted: int) -> dict[int, int]:
        """The result of each of the first ``submitted`` iocbs, by index; every one of them reaped (rule 5)."""
        results: dict[int, int] = {}
        events, ctx = self._events, self._ctx
        at_most = ctypes.c_long(submitted)
        got = self._call_kept(self._getevents, ctx, ctypes.c_long(0), at_most, events, None)  # type: ignore
        while True:
            if got < 0:
                error = ctypes.get_errno()
                if error == errno.EINTR:
                    got = 0
                else:
                    raise OSError(error, f"io_getevents: {os.strerror(error)}")
            for event in events[:got]:
                results[event.data] = event.res
            left = submitted - len(results)
            if not left:
                return results
            want = ctypes.c_long(left)
            got = self._call(self._getevents, ctx, want, want, events, None)  # type: ignore

    def close(self) -> None:
        if self._ctx.value:
            self._call(self._destroy, self._ctx)  # type: ignore
            self._ctx.value = 0

    def __del__(self) -> None:
        self.close()
