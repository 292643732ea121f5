"""The one owner of the group: a worker thread that runs everything touching the engine, in order.

The front ends (the iSCSI connections, the CLI control server, the
background tasks) never call the group themselves: they submit work here
and get completions back on the event loop (RFC 7143 leaves execution to
the SCSI layer; this is the ``target_submit_cmd``/``queue_status`` split).

Rules of this module:

1. One worker thread runs every submitted call, one at a time, in submission
   order. Nothing else calls ``Group`` methods, ``BlockDevice`` methods or
   ``LogicalUnit`` methods while the worker runs, so the engine stays
   single-threaded as ``array_sim`` assumes.
2. The worker takes every queued call per wake-up and hands the finished
   ones back in one ``loop.call_soon_threadsafe`` (then the ``delivered``
   hooks run once): a deep queue costs one thread hop per batch, not per
   command.
3. ``submit`` returns a ``concurrent.futures.Future``; ``run`` awaits one
   from a coroutine. ``submit_batch`` calls ``done`` on the loop with the
   results (or the exception raised) in order.
4. Background work (``submit_background``) is a step function returning
   True while it has more to do. Once no call has come for ``IDLE_AFTER``,
   steps run back to back. Until then background work gets at most
   ``BACKGROUND_SHARE`` of the worker's time: after a step that took d
   seconds the next one waits d * (1 - share) / share seconds, spent on
   calls or waiting for them (md's rebuild that slows to its minimum while
   there is other I/O), so a reconstruction neither stops nor swamps the
   initiators.
5. The worker and the loop share the GIL: the process's switch interval is
   set to ``SWITCH_INTERVAL`` so that the loop, when it has work, waits at
   most that long for a worker busy in Python.
6. Inlining: ``run_inline`` runs a call on the caller's thread (the loop)
   only while the worker is idle and nothing is queued, holding the lock the
   worker holds while it runs anything: never two threads in the engine, and
   never ahead of work submitted earlier. Front ends use it only for calls
   that cost no more than a thread hop (small reads and writes, no FUA), so
   the loop is never held for long. An inlined call holds background work
   back as a submitted one does (rule 4).
7. Once calls stop coming for ``QUIET_AFTER`` (after a batch or an inlined
   call), the ``quiet`` hooks run on the worker, once: the group settles what
   its stores keep in memory between writes (``array_sim.raid.held``), so the
   parity of a member nobody writes to is always on its disks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["EngineOwner", "BACKGROUND_SHARE"]

log = logging.getLogger("array_sim.owner")

#: How long the worker may hold the GIL while the loop waits for it (rule 5); Python's default is 5 ms.
SWITCH_INTERVAL = 0.0005
#: The most of the worker's time background steps take while calls keep coming (rule 4).
BACKGROUND_SHARE = 0.25
#: Seconds without a call after which background steps run back to back (rule 4).
IDLE_AFTER = 0.05
#: Seconds without a call after which the ``quiet`` hooks run (rule 7).
QUIET_AFTER = 0.005


class EngineOwner:
    """The worker thread that owns the group (rule 1)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, clock: Callable[[], float] = time.perf_counter) -> None:
        self.loop = loop
        #: Measures calls and steps for the background share (rule 4); tests pass their own.
        self._clock = clock
        #: When the last call ended, and the earliest a background step may start while busy (rule 4).
        self._last_call = float("-inf")
        self._next_step = 0.0
        #: Run on the loop once after each batch of completions (rule 2).
        self.delivered: list[Callable[[], None]] = []
        #: Run on the worker once calls stop coming (rule 7); ``_unquiet``: a call ran since they last did.
        self.quiet: list[Callable[[], None]] = []
        self._unquiet = False
        self._calls: deque[tuple[Callable[[], Any], Callable[[Any, BaseException | None], None]]] = deque()
        self._background: deque[Callable[[], bool]] = deque()
        self._wake = threading.Condition()
        #: Held by whoever runs engine code: the worker for each batch, or ``run_inline`` (rule 6).
        self._running = threading.Lock()
        self._stopping = False
        #: Completions of the batch being run, delivered to the loop together (rule 2).
        self._pending: list[Callable[[], None]] = []
        sys.setswitchinterval(SWITCH_INTERVAL)
        self._thread = threading.Thread(target=self._work, name="engine-owner", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ submitting

    def _enqueue(self, call: Callable[[], Any], finish: Callable[[Any, BaseException | None], None]) -> None:
        with self._wake:
            self._calls.append((call, finish))
            self._wake.notify()

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        """Run ``fn(*args)`` on the worker; the future is set there (rule 3)."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def finish(result: Any, error: BaseException | None) -> None:
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        self._enqueue(lambda: fn(*args), finish)
        return future

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``submit`` awaited from a coroutine on the loop."""
        return await asyncio.wrap_future(self.submit(fn, *args), loop=self.loop)

    def submit_batch(self, calls: list[Callable[[], Any]], done: Callable[[list[Any]], None]) -> None:
        """Run ``calls`` in order on the worker; ``done(results)`` runs on the loop (rule 2)."""
        results: list[Any] = []

        def run_all() -> list[Any]:
            for call in calls:
                try:
                    results.append(call())
                except Exception as error:  # a front end's call must not stop the worker
                    log.exception("engine call failed")
                    results.append(error)
            return results

        self._enqueue(run_all, lambda result, error: self._pending.append(lambda: done(results)))

    def run_inline(self, call: Callable[[], Any]) -> tuple[bool, Any]:
        """(True, ``call()``) run here if the worker is idle and nothing waits; (False, None) if not (rule 6)."""
        if not self._running.acquire(blocking=False):
            return False, None
        try:
            with self._wake:
                if self._calls:
                    return False, None
            try:
                return True, call()
            finally:
                self._last_call = self._clock()  # a call as any other for the background share (rule 4)
                if self.quiet and not self._unquiet:
                    with self._wake:  # the worker may be waiting with no deadline (rule 7)
                        self._unquiet = True
                        self._wake.notify()
        finally:
            self._running.release()

    def submit_background(self, step: Callable[[], bool]) -> None:
        """Run ``step()`` between calls until it returns False (rule 4)."""
        with self._wake:
            self._background.append(step)
            self._wake.notify()

    def stop(self) -> None:
        """Finish what is queued, then end the worker (background work is left for the next start)."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join()

    # -------------------------------------------------------------- worker

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._calls and not self._stopping:
                    waits = [w for w in (self._step_wait(), self._quiet_wait()) if w is not None]
                    if not waits:
                        self._wake.wait()
                    elif min(waits) <= 0:
                        break
                    else:
                        self._wake.wait(min(waits))
                if self._stopping and not self._calls:
                    return
            with self._running:  # taken before the batch, so nothing inlined overtakes it (rule 6)
                self._run_batch()

    def _step_wait(self) -> float | None:
        """Seconds until a background step may run (0 or less: now) by rule 4; None without one."""
        if not self._background:
            return None
        now = self._clock()
        if now - self._last_call >= IDLE_AFTER:
            return 0.0
        return min(self._next_step - now, self._last_call + IDLE_AFTER - now)

    def _run_batch(self) -> None:
        with self._wake:
            batch = list(self._calls)
            self._calls.clear()
        self._pending = []
        for call, finish in batch:
            try:
                result, error = call(), None
            except BaseException as raised:  # handed to the submitter
                result, error = None, raised
            finish(result, error)
            self._last_call = self._clock()
            if self._background and self._clock() >= self._next_step:
                self._step()
        if self._pending:
            self.loop.call_soon_threadsafe(self._deliver, self._pending)
        if batch:
            self._unquiet = True
            return
        quiet, step = self._quiet_wait(), self._step_wait()
        if quiet is not None and quiet <= 0:
            self._run_quiet()
        if step is not None and step <= 0:
            self._step()  # no call came while the step waited (rule 4)

    def _quiet_wait(self) -> float | None:
        """Seconds until the quiet hooks are due (rule 7); None when they are not."""
        if not (self._unquiet and self.quiet):
            return None
        return self._last_call + QUIET_AFTER - self._clock()

    def _run_quiet(self) -> None:
        self._unquiet = False
        for hook in self.quiet:
            try:
                hook()
            except Exception:
                log.exception("quiet hook failed")

    def _step(self) -> None:
        step = self._background.popleft()
        start = self._clock()
        try:
            more = step()
        except Exception:
            log.exception("background step failed; it is not run again")
            more = False
        end = self._clock()
        self._next_step = end + (end - start) * (1 - BACKGROUND_SHARE) / BACKGROUND_SHARE
        if more:
            self._background.append(step)

    def _deliver(self, completions: list[Callable[[], None]]) -> None:
        for completion in completions:
            completion()
        for hook in self.delivered:
            hook()
