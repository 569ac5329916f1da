"""Text that fits a terminal: shortened in the middle, never cut into stubs.

A name like ``payments-database-replica-eu-west-1`` cut at its end ("payments-da…") loses
what tells it apart from its siblings; cut in the middle ("payments-…west-1") it keeps both
ends. Pure functions, shared by ``stalwart status`` and the demo's live table.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ("ELLIPSIS", "columns", "middle", "pack")

ELLIPSIS = "…"
MIN_KEEP = 3
"""A shortened text keeps at least this many characters on each side of the ellipsis."""


def middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters: the start and the end, an ellipsis between
    (the start gets the odd character). Texts that fit are returned as they are; a width
    too small to keep ``MIN_KEEP`` characters each side keeps the start alone."""
    text = " ".join(text.split())  # one line: newlines and runs of spaces as one space
    if len(text) <= width:
        return text
    if width <= 0:
        return ""
    if width < 2 * MIN_KEEP + 1:
        return text[: width - 1] + ELLIPSIS if width > 1 else ELLIPSIS
    keep = width - 1
    head = (keep + 1) // 2
    return text[:head] + ELLIPSIS + text[len(text) - (keep - head) :]


def columns(
    rows: Sequence[Sequence[str]],
    *,
    width: int,
    flexible: Sequence[int],
    right: Sequence[int] = (),
    gap: int = 2,
) -> list[str]:
    """Lay ``rows`` (the first one is the header) out in at most ``width`` characters.

    Every column gets its widest cell. When that is too wide, the ``flexible`` columns (by
    index) give up characters, the widest of them first, so that they end up sharing the
    room rather than one of them losing all of it; none goes below its header's width (or
    ``2 * MIN_KEEP + 1``). Their cells are shortened in the middle. ``right``: the columns
    aligned right."""
    count = max((len(row) for row in rows), default=0)
    cells = [
        [" ".join(str(cell).split()) for cell in row] + [""] * (count - len(row)) for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(count)]
    floor = {i: max(len(cells[0][i]) if cells else 0, 2 * MIN_KEEP + 1) for i in flexible}
    excess = sum(widths) + gap * (count - 1) - width
    while excess > 0:
        shrinkable = [i for i in flexible if widths[i] > floor[i]]
        if not shrinkable:
            break  # as narrow as it goes: the terminal wraps the rest
        widest = max(shrinkable, key=lambda i: widths[i])
        others = [widths[i] for i in shrinkable if i != widest]
        # Down to the next widest (or the floor, or as far as needed), in one step.
        target = max([floor[widest], *others, widths[widest] - excess])
        step = max(1, widths[widest] - target)
        widths[widest] -= step
        excess -= step
    lines = []
    for row in cells:
        parts = []
        for i, cell in enumerate(row):
            text = middle(cell, widths[i])
            parts.append(text.rjust(widths[i]) if i in right else text.ljust(widths[i]))
        lines.append((" " * gap).join(parts).rstrip())
    return lines


def pack(segments: Sequence[str], width: int, *, sep: str = "   ") -> list[str]:
    """``segments`` in order, joined by ``sep``, on as few lines of at most ``width``
    characters as they go; a segment wider than a line is shortened in the middle."""
    lines: list[str] = []
    for segment in segments:
        text = middle(segment, width)
        if lines and len(lines[-1]) + len(sep) + len(text) <= width:
            lines[-1] += sep + text
        else:
            lines.append(text)
    return lines
