"""Markdown cells and tables every stage writes, and scalars shown by what they mean."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal

VERDICTS = {"passed", "healthy", "ready", "promote"}  # booleans that mean pass or fail
EPOCH = (1e9, 4e9)  # seconds since 1970 in this range are timestamps (2001 to 2096)
TIME_KEY = re.compile(r"(^|_)(at|time|timestamp|started|finished|ended)$")


def fmt(value: object) -> str:
    """One table cell: booleans as words, whole numbers thousands separated, floats by :func:`decimal`."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return decimal(value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def decimal(value: float, digits: int = 4) -> str:
    """A number as a reader compares it: never in e-notation, which wraps and hides the magnitude.

    From 1,000 up, whole and thousands separated; below, ``digits`` significant digits; closer to
    zero than ``10**-digits``, the bound it is below (``<0.0001``).
    """
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    floor = 10.0**-digits
    if value != 0 and abs(value) < floor:
        return f"<{floor:.{digits}f}" if value > 0 else f">-{floor:.{digits}f}"
    return format(Decimal(f"{value:.{digits}g}"), "f")


def p_value(value: float) -> str:
    """``p<0.001``, ``p=0.004``, ``p=0.03``: what a test's p-value says, without false precision."""
    if not math.isfinite(value):
        return "-"
    if value < 0.001:
        return "p<0.001"
    return f"p={value:.3f}" if value < 0.01 else f"p={value:.2f}"


def versus(statistic: float, threshold: float, decimals: int = 3) -> tuple[str, str]:
    """Both numbers at one precision that keeps their order: never "0.070 > 0.070" from rounding.

    ``decimals`` grows (up to 8) while the two would print equal but are not.
    """
    shown = (f"{statistic:.{decimals}f}", f"{threshold:.{decimals}f}")
    while decimals < 8 and statistic != threshold and shown[0] == shown[1]:
        decimals += 1
        shown = (f"{statistic:.{decimals}f}", f"{threshold:.{decimals}f}")
    return shown


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
