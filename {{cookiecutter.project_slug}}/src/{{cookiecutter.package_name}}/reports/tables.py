"""Markdown cells and tables every stage writes, and scalars shown by what they mean."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

VERDICTS = {"passed", "healthy", "ready", "promote"}  # booleans that mean pass or fail
EPOCH = (1e9, 4e9)  # seconds since 1970 in this range are timestamps (2001 to 2096)
TIME_KEY = re.compile(r"(^|_)(at|time|timestamp|started|finished|ended)$")


def fmt(value: object) -> str:
    """One table cell: booleans as words, floats to four significant digits."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1e5 else f"{value:.4g}"  # timestamps, counts: every digit
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table; numbers right-aligned so they line up."""
    body = [list(row) for row in rows]
    numeric = [
        all(isinstance(r[i], int | float) and not isinstance(r[i], bool) for r in body)
        for i in range(len(header))
    ]
    align = ["---:" if num and body else "---" for num in numeric]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(fmt(cell) for cell in row) + " |" for row in body]
    return "\n".join(lines)


def quote(text: str) -> str:
    """User and error text on one line, unable to open Markdown of its own."""
    flat = " ".join(text.split())
    return flat.replace("|", "\\|").replace("<", "&lt;").replace("#", "\\#")


def number(value: object) -> float | None:
    """A metric value, or None where the model or the number is missing."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def meaning(key: str, value: object) -> object:
    """A scalar shown by what it means: pass/fail for verdicts, ISO UTC for epoch timestamps."""
    name = key.rsplit(".", 1)[-1]
    if isinstance(value, bool) and name in VERDICTS:
        return "pass ✅" if value else "FAIL ❌"
    if isinstance(value, int | float) and not isinstance(value, bool):
        stamp = float(value)
        if TIME_KEY.search(name) and EPOCH[0] <= stamp <= EPOCH[1]:
            return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return value
