"""``simulate clock ...``: show and move the group's simulated clock (``serve --clock simulated``).

    simulate clock show
    simulate clock advance DURATION        6h, 90m, 1d12h, 2w, 30s
    simulate clock set YYYY-MM-DD HH:MM[:SS]

Moving the clock forward runs the snapshot schedules through every run in
between, each at its own time (``array_sim.schedule_runner`` rule 3), before the
command answers. On real time (the default) only ``show`` works. ``NODE`` is
the ``clock`` subtree of ``simulate``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from array_sim.clock import format_clock_time, parse_clock_time, parse_duration

from ..grammar import Arg, Node
from ..words import CliError

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["NODE"]

T = TypeVar("T")


def _cli_error(parse: Callable[[str], T]) -> Callable[[str], T]:
    """A parser of ``array_sim.clock`` as an argument converter: its ValueError is the CLI's refusal."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as error:
            raise CliError(str(error)) from None

    return convert


def _lines(session: Session, taken: int | None = None) -> list[str]:
    group = session.group
    lines = [
        f"Clock: {'simulated' if group.clock_is_simulated else 'real time'}",
        f"Time: {format_clock_time(group.clock())}",
    ]
    return lines if taken is None else [*lines, f"ScheduledRuns: {taken}"]


def _show(session: Session, args: dict[str, Any]) -> list[str]:
    return _lines(session)


def _advance(session: Session, args: dict[str, Any]) -> list[str]:
    by: timedelta = args["by"]
    return _lines(session, session.group.advance_clock(by))


def _set(session: Session, args: dict[str, Any]) -> list[str]:
    text = f"{args['date']} {args['time']}" if "time" in args else args["date"]
    when: datetime = _cli_error(parse_clock_time)(text)
    return _lines(session, session.group.set_clock(when))


NODE = Node("clock", "the simulated clock (serve --clock simulated)", children=(
    Node("show", "the clock and its time", run=_show),
    Node("advance", "move it forward, taking every scheduled snapshot on the way",
         args=(Arg("by", "duration (6h, 90m, 1d12h)", _cli_error(parse_duration)),), run=_advance),
    Node("set", "set it (forward: as advance)", args=(Arg("date", "date YYYY-MM-DD"),
                                                      Arg("time", "time HH:MM[:SS]", optional=True)), run=_set),
))  # fmt: skip
