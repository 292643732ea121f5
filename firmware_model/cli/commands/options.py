"""Argument converters shared by the command trees: sizes, percentages, whole numbers, enable/disable.

Each converter turns one word into a value or refuses it with the ``CliError`` text the CLI has always
printed (``Invalid size '1XB'; use a number with MB, GB or TB.``); the trees (``grammar.Arg``) call them
as each word is read, so a refused word is refused before anything runs.
"""

from __future__ import annotations

from collections.abc import Callable

from array_sim.units import parse_percent, parse_size

from ..grammar import Arg, choice_arg
from ..words import CliError

__all__ = [
    "PERCENT_SETTINGS", "size_value", "percent_value", "whole_number_value", "percent", "whole_number",
    "enable_arg",
]  # fmt: skip

#: The volume settings given as percentages (``volume create``, ``clone``, ``volume select V ...``):
#: keyword -> ``Volume`` field.
PERCENT_SETTINGS = {
    "snap-reserve": "snap_reserve",
    "snap-warn": "snap_warn",
    "thin-min-reserve": "thin_min_reserve",
    "thin-warn-threshold": "thin_warn",
    "thin-max-grow": "thin_max",
}


def size_value(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError:
        raise CliError(f"Invalid size '{text}'; use a number with MB, GB or TB.") from None


def percent_value(text: str, what: str) -> int:
    try:
        return parse_percent(text)
    except ValueError:
        raise CliError(f"Invalid percentage '{text}' for {what}.") from None


def whole_number_value(text: str, what: str, low: int = 0, high: int = 10**18 - 1) -> int:
    """A whole number in ASCII digits from ``low`` to ``high`` (Python's int() also takes other scripts' digits)."""
    if len(text) > 19 or not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise CliError(f"Invalid {what} '{text[:40]}'; use a whole number from {low} to {high}.")
    return int(text)


def percent(what: str) -> Callable[[str], int]:
    """The converter of the percentage setting ``what`` (``snap-reserve``)."""
    return lambda text: percent_value(text, what)


def whole_number(what: str) -> Callable[[str], int]:
    return lambda text: whole_number_value(text, what)


def enable_arg(name: str) -> Arg:
    """``enable|disable`` as a bool (``multihost-access enable``, ``thin-provision disable``)."""
    return choice_arg(name, "enable or disable", ["enable", "disable"], "value", lambda word: word == "enable")
