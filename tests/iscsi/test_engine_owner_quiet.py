"""The engine owner's quiet hooks (targets/engine_owner.py rule 7), on a clock the test moves.

The group's settle is such a hook (array_sim.raid.held rule 3): it must run on the worker, never
beside a call, once after calls stop for QUIET_AFTER of the owner's clock, and not again until
another call has run.
"""

from __future__ import annotations

import asyncio
import threading
import time

from targets.engine_owner import QUIET_AFTER, EngineOwner


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _eventually(condition, seconds: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.002)
    return condition()


async def _scenario() -> list[str]:
    clock = Clock()
    owner = EngineOwner(asyncio.get_running_loop(), clock=clock)
    seen: list[str] = []

    def hook() -> None:
        assert threading.current_thread().name == "engine-owner"
        assert owner._running.locked()  # nothing inlined runs beside it (rule 6)
        seen.append("quiet")

    owner.quiet.append(hook)
    try:
        await owner.run(lambda: seen.append("call"))
        time.sleep(0.05)  # worker time passes, the owner's clock does not
        seen.append(f"before {len(seen)}")
        clock.now += QUIET_AFTER
        assert _eventually(lambda: seen.count("quiet") == 1)
        clock.now += 10 * QUIET_AFTER
        time.sleep(0.05)
        assert seen.count("quiet") == 1  # once per quiet spell
        ran, _ = owner.run_inline(lambda: seen.append("inline"))
        assert ran
        clock.now += QUIET_AFTER
        assert _eventually(lambda: seen.count("quiet") == 2)
    finally:
        owner.stop()
    return seen


def test_quiet_hooks_run_once_after_calls_stop() -> None:
    seen = asyncio.run(_scenario())
    assert seen == ["call", "before 1", "quiet", "inline", "quiet"]


async def _no_hooks() -> None:
    owner = EngineOwner(asyncio.get_running_loop())
    try:
        assert await owner.run(lambda: 42) == 42
        assert owner._quiet_wait() is None  # nothing registered: the worker waits without a deadline
    finally:
        owner.stop()


def test_without_hooks_the_worker_sleeps_until_work_comes() -> None:
    asyncio.run(_no_hooks())
