"""The engine owner's background share (targets/engine_owner.py rules 4 and 6), on a clock the test moves.

Calls and background steps advance the owner's clock by fixed amounts (powers of two, so the
arithmetic is exact), which makes the order the worker runs them in deterministic.
"""

from __future__ import annotations

import asyncio
import threading

from targets.engine_owner import BACKGROUND_SHARE, EngineOwner

CALL, STEP = 1 / 1024, 3 / 1024  # seconds each call and each background step takes


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _under_load() -> list[str]:
    clock = Clock()
    owner = EngineOwner(asyncio.get_running_loop(), clock=clock)
    order: list[str] = []
    gate = threading.Event()
    try:
        first = owner.submit(gate.wait)  # holds the worker while the queue fills

        def step() -> bool:
            clock.now += STEP
            order.append("step")
            return True

        def call() -> None:
            clock.now += CALL
            order.append("call")

        owner.submit_background(step)
        calls = [owner.submit(call) for _ in range(100)]
        gate.set()
        await asyncio.wrap_future(first)
        for future in calls:
            await asyncio.wrap_future(future)
    finally:
        owner.stop()
    return order


def test_under_load_background_gets_its_share_and_no_more() -> None:
    order = asyncio.run(_under_load())
    in_batch = order[: len(order) - order[::-1].index("call")]  # up to the last call
    steps = [i for i, what in enumerate(in_batch) if what == "step"]
    gaps = {b - a - 1 for a, b in zip(steps, steps[1:])}
    assert gaps == {round(STEP * (1 - BACKGROUND_SHARE) / BACKGROUND_SHARE / CALL)}  # 9 calls per step
    share = len(steps) * STEP / (len(steps) * STEP + 100 * CALL)
    assert abs(share - BACKGROUND_SHARE) < 0.02


async def _idle() -> None:
    owner = EngineOwner(asyncio.get_running_loop(), clock=Clock())
    done = threading.Event()
    runs: list[int] = []

    def step() -> bool:
        runs.append(1)
        if len(runs) == 50:
            done.set()
            return False
        return True

    try:
        owner.submit_background(step)
        assert await asyncio.to_thread(done.wait, 10)
        assert await owner.run(len, runs) == 50  # queued behind the steps: none ran after the last
    finally:
        owner.stop()


def test_when_idle_steps_run_back_to_back_until_done() -> None:
    asyncio.run(_idle())


async def _after_an_inlined_call() -> tuple[int, int]:
    clock = Clock()
    owner = EngineOwner(asyncio.get_running_loop(), clock=clock)
    runs: list[int] = []
    done = threading.Event()

    def step() -> bool:
        clock.now += STEP
        runs.append(1)
        if len(runs) == 20:
            done.set()
            return False
        return True

    def call() -> None:
        clock.now += CALL

    try:
        assert owner.run_inline(call)[0]  # the worker is idle: run here, on the loop
        owner.submit_background(step)
        await asyncio.sleep(0.3)  # real time; the owner's clock stands still
        while_busy = len(runs)
        clock.now += 1.0  # no call for a second: idle, steps back to back
        assert await asyncio.to_thread(done.wait, 10)
    finally:
        owner.stop()
    return while_busy, len(runs)


def test_an_inlined_call_holds_background_work_back_like_a_submitted_one() -> None:
    """One step, then none until the clock passes its share's wait: an inlined call is a call too."""
    assert asyncio.run(_after_an_inlined_call()) == (1, 20)
