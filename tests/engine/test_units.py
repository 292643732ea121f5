"""Sizes as a PS Series group counts them: 15 MiB pages, binary MB/GB/TB (units.py)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from array_sim import units
from array_sim.units import PAGE_SIZE, GiB, MiB, TiB, format_size, pages_for, parse_percent, parse_size


def test_page_and_chunk_sizes() -> None:
    assert 15 * MiB == PAGE_SIZE
    assert units.SECTOR_SIZE == 512
    assert units.CHUNK_SIZE == 4096
    assert units.CHUNKS_PER_PAGE * units.CHUNK_SIZE == PAGE_SIZE


def test_one_gb_volume_is_69_pages() -> None:
    # research/ps-cli.md 2.4: a "1GB" volume exports 1,085,276,160 bytes.
    assert pages_for(parse_size("1GB")) == 69
    assert pages_for(parse_size("1GB")) * PAGE_SIZE == 1_085_276_160
    assert format_size(pages_for(GiB) * PAGE_SIZE) == "1.01GB"


def test_two_gb_volume_reserve_is_2_01gb() -> None:
    assert pages_for(2 * GiB) == 137
    assert format_size(137 * PAGE_SIZE) == "2.01GB"


@pytest.mark.parametrize(
    ("size", "pages"),
    [(1, 1), (PAGE_SIZE - 1, 1), (PAGE_SIZE, 1), (PAGE_SIZE + 1, 2), (45 * MiB, 3), (100 * GiB, 6827)],
)
def test_pages_for_rounds_up(size: int, pages: int) -> None:
    assert pages_for(size) == pages


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1GB", GiB),
        ("1G", GiB),
        ("1gb", GiB),
        (" 2GB ", 2 * GiB),
        ("500MB", 500 * MiB),
        ("500M", 500 * MiB),
        ("500", 500 * MiB),
        ("1.5GB", 1536 * MiB),
        ("2TB", 2 * TiB),
        ("1T", TiB),
        ("0.5MB", MiB // 2),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "GB", "abc", "1KB", "1PB", "0", "0GB", "-1GB", "1 GB", "1e3MB", "1.GB"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0MB"),
        (15 * MiB, "15MB"),
        (1023 * MiB, "1023MB"),
        (GiB, "1GB"),
        (1035 * MiB, "1.01GB"),
        (1536 * MiB, "1.5GB"),
        (2055 * MiB, "2.01GB"),
        (100 * GiB, "100GB"),
        (2 * TiB, "2TB"),
        (TiB + TiB // 4, "1.25TB"),
    ],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


@settings(max_examples=200, deadline=None)
@given(st.integers(MiB, 1 << 50))
def test_format_size_round_trips_within_rounding(size: int) -> None:
    # Only MB, GB and TB with at most two decimals: the Cinder driver's
    # _get_space_in_gb understands no other unit.
    text = format_size(size)
    assert re.fullmatch(r"\d+(\.\d{1,2})?(MB|GB|TB)", text), text
    scale = {"MB": MiB, "GB": GiB, "TB": TiB}[text[-2:]]
    assert size >= scale or scale == MiB
    assert abs(parse_size(text) - size) <= scale // 200 + 1


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 1 << 20), st.sampled_from(["MB", "GB", "TB"]))
def test_whole_sizes_parse_exactly(number: int, unit: str) -> None:
    scale = {"MB": MiB, "GB": GiB, "TB": TiB}[unit]
    assert parse_size(f"{number}{unit}") == number * scale
    assert parse_size(f"{number}{unit[0]}") == number * scale


@pytest.mark.parametrize(("text", "value"), [("50%", 50), ("50", 50), ("0%", 0), ("200%", 200), (" 10% ", 10)])
def test_parse_percent(text: str, value: int) -> None:
    assert parse_percent(text) == value


@pytest.mark.parametrize("text", ["", "%", "x%", "-5%", "1.5%", "ten"])
def test_parse_percent_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid percentage"):
        parse_percent(text)


@pytest.mark.parametrize(
    "text",
    [
        "\u0661\u0660GB",  # Arabic-Indic "10": int() and \d accept it, the array does not
        "\u0967GB",  # Devanagari 1
        "\uff11GB",  # fullwidth 1
        "1\u0660MB",
        "9" * 400 + "GB",  # once an infinite float, an OverflowError past the CLI's error handling
    ],
)
def test_parse_size_takes_ascii_digits_only(text: str) -> None:
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(text)


@pytest.mark.parametrize("text", ["\u0665\u0660%", "\u0665", "\uff15\uff10", "5\u0660%", "50%%", "9" * 400])
def test_parse_percent_takes_ascii_digits_only(text: str) -> None:
    with pytest.raises(ValueError, match="invalid percentage"):
        parse_percent(text)
