"""How the Group Manager lays out its output.

Three shapes, all taken from real output quoted in research/ps-cli.md 2.3:

* a section title, ``____ Volume Information ____`` (83 characters wide);
* ``Key: Value`` lines, one per line with ``formatoutput off`` (what scripts
  parse), two per line with ``formatoutput on`` (what people read);
* tables with fixed column widths, single spaces between columns and a row
  of dashes; a value wider than its column wraps onto continuation lines,
  indented two spaces inside its column. The Cinder driver depends on this
  wrapping for ``access show`` (an initiator wraps to exactly one more line).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["title", "key_values", "table"]

TITLE_WIDTH = 83


def title(text: str) -> str:
    """``_____ text _____``, 83 characters, as the array prints section titles."""
    left = (TITLE_WIDTH - len(text) - 2) // 2
    return "_" * left + f" {text} " + "_" * (TITLE_WIDTH - len(text) - 2 - left)


def key_values(pairs: Sequence[tuple[str, str]], formatted: bool) -> list[str]:
    """``Key: Value`` lines; two to a line, padded, when ``formatted``."""
    lines = [f"{key}: {value}".rstrip() if value else f"{key}:" for key, value in pairs]
    if not formatted:
        return lines
    half = TITLE_WIDTH // 2
    paired, i = [], 0
    while i < len(lines):
        left = lines[i]
        if i + 1 < len(lines) and len(left) < half and len(lines[i + 1]) <= TITLE_WIDTH - half:
            paired.append(left.ljust(half) + lines[i + 1])
            i += 2
        else:
            paired.append(left)
            i += 1
    return paired


def table(columns: Sequence[tuple[str, int]], rows: Sequence[Sequence[str]]) -> list[str]:
    """A fixed-width table; each column is ``(heading, width)``."""
    lines = [
        " ".join(heading.ljust(width) for heading, width in columns).rstrip(),
        " ".join("-" * width for _, width in columns),
    ]
    for row in rows:
        pieces = [_wrap(str(value), width) for value, (_, width) in zip(row, columns, strict=True)]
        for n in range(max(len(p) for p in pieces)):
            cells = []
            for piece, (_, width) in zip(pieces, columns, strict=True):
                cell = piece[n] if n < len(piece) else ""
                cells.append(("  " + cell if n else cell).ljust(width))
            lines.append(" ".join(cells).rstrip())
    return lines


def _wrap(value: str, width: int) -> list[str]:
    """The first ``width`` characters, then continuation pieces of ``width - 2``."""
    pieces = [value[:width]]
    rest = value[width:]
    step = max(1, width - 2)
    while rest:
        pieces.append(rest[:step])
        rest = rest[step:]
    return pieces
