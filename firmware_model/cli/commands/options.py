"""Argument parsing shared by the commands: sizes, percentages, on/off switches."""

from __future__ import annotations

from array_sim.units import parse_percent, parse_size

from ..words import CliError, Words

__all__ = [
    "PERCENT_SETTINGS", "size_argument", "percent_argument", "whole_number_argument", "enable_argument",
    "on_off_argument", "size_value", "percent_value", "whole_number_value",
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


def size_argument(words: Words) -> int:
    return size_value(words.take("size"))


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


def percent_argument(words: Words, what: str) -> int:
    return percent_value(words.take(what), what)


def whole_number_argument(words: Words, what: str, low: int = 0, high: int = 10**18 - 1) -> int:
    return whole_number_value(words.take(what), what, low, high)


def enable_argument(words: Words) -> bool:
    return words.keyword(["enable", "disable"], "value") == "enable"


def on_off_argument(words: Words) -> str:
    return words.keyword(["on", "off"], "value")
