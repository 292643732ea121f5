"""The group's clock: real time, or a simulated clock that tests and demos move by hand.

A ``Group`` reads the time only through the callable it was given
(``Group(directory, clock)``); snapshot timestamps, default snapshot names,
event times and schedules all follow it. ``SimulatedClock`` stands still
until it is moved (``simulate clock advance|set``), so every time the group
records is the one the test chose. Moving it forward runs the schedules
through every instant in between (``schedule_runner``); where the simulated
time is kept across a restart is the group's business (``schedule_runner``:
in the catalog).

This module also reads the times and durations people type:
``2026-01-05 10:00[:SS]`` and ``6h``, ``90m``, ``1d12h``, ``30s``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

__all__ = ["SimulatedClock", "parse_clock_time", "parse_duration", "format_clock_time"]

_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")
#: Duration units: the suffixes ``simulate clock advance`` takes, in seconds.
_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
#: The longest duration taken (beyond it a simulated clock would soon leave the calendar).
DURATION_MOST = timedelta(days=100 * 366)
_DURATION = re.compile(r"(?:[0-9]{1,9}[wdhms])+")
_PART = re.compile(r"([0-9]+)([wdhms])")


class SimulatedClock:
    """A clock that shows the time it was set to until it is set again."""

    def __init__(self, start: datetime) -> None:
        self._now = start.replace(microsecond=0)

    def __call__(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when.replace(microsecond=0)


def parse_clock_time(text: str) -> datetime:
    """``YYYY-MM-DD HH:MM[:SS]`` (also with a ``T`` between date and time).

    Raises:
        ValueError: with a message fit for the CLI.
    """
    cleaned = text.strip().replace("T", " ", 1)
    for layout in _TIME_FORMATS:
        try:
            return datetime.strptime(cleaned, layout)
        except ValueError:
            continue
    raise ValueError(f"Invalid time '{text[:40]}'; use YYYY-MM-DD HH:MM[:SS].")


def parse_duration(text: str) -> timedelta:
    """``6h``, ``90m``, ``1d12h``, ``2w``, ``30s``: whole numbers with units w, d, h, m, s.

    Raises:
        ValueError: with a message fit for the CLI.
    """
    if not (text.isascii() and _DURATION.fullmatch(text.lower())):
        raise ValueError(f"Invalid duration '{text[:40]}'; use a number with s, m, h, d or w (6h, 1d12h).")
    seconds = sum(int(number) * _UNITS[unit] for number, unit in _PART.findall(text.lower()))
    if seconds > DURATION_MOST.total_seconds():
        raise ValueError(f"Invalid duration '{text[:40]}'; at most {DURATION_MOST.days} days.")
    return timedelta(seconds=seconds)


def format_clock_time(when: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS``, as ``simulate clock show`` prints it."""
    return f"{when:%Y-%m-%d %H:%M:%S}"
