"""Any other stage report: scalars and record lists as tables, percentiles and drift as charts."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from .charts import bar_chart, drift_chart
from .jsonfile import Json
from .tables import meaning, table

PERCENTILE = re.compile(r"^p\d{1,2}(\.\d+)?(_ms)?$")


def generic_section(title: str, payload: object) -> str:
    """Any other stage report: scalars and record lists as tables, percentiles and drift as charts."""
    parts = [f"### {title}"]
    scalars = [(key, meaning(key, value)) for key, value in flatten(payload)]
    if scalars:
        parts.append(table(["field", "value"], scalars))
    for name, records in record_lists(payload):
        parts.append(
            f"**{name}**\n\n"
            + table(list(records[0]), ([meaning(k, r.get(k)) for k in records[0]] for r in records))
        )
        if all("statistic" in r and "threshold" in r for r in records) and (
            chart := drift_chart(f"{name}: drift per column", records)
        ):
            parts.append(chart)
    for name, percentiles in percentile_maps(payload):
        labels, values = list(percentiles), [float(v) for v in percentiles.values()]
        parts.append(bar_chart(f"{name} percentiles", labels, values, "ms"))
    return "\n\n".join(parts)


def flatten(payload: object, prefix: str = "") -> Iterable[tuple[str, object]]:
    """Scalar leaves as dotted keys; lists are left to :func:`record_lists`."""
    if isinstance(payload, Mapping):
        for key, value in payload.items():
            yield from flatten(value, f"{prefix}{key}.")
    elif not isinstance(payload, list) and prefix:
        yield prefix.rstrip("."), payload


def record_lists(payload: object, name: str = "records") -> Iterable[tuple[str, list[Json]]]:
    """Every non-empty list of objects, wherever it sits, with the key that holds it."""
    if isinstance(payload, Mapping):
        for key, value in payload.items():
            yield from record_lists(value, str(key))
    elif isinstance(payload, list) and payload and all(isinstance(item, Mapping) for item in payload):
        yield name, [{k: v for k, v in item.items() if not isinstance(v, dict | list)} for item in payload]


def percentile_maps(payload: object, name: str = "latency") -> Iterable[tuple[str, dict[str, float]]]:
    """Latency percentiles (``p50``, ``p95``, ``p99_ms``...) wherever two or more sit side by side."""
    if isinstance(payload, list):
        for item in payload:
            yield from percentile_maps(item, name)
        return
    if not isinstance(payload, Mapping):
        return
    numbers = {
        str(k): float(v)
        for k, v in payload.items()
        if PERCENTILE.match(str(k)) and isinstance(v, int | float) and not isinstance(v, bool)
    }
    if len(numbers) >= 2:
        yield str(payload.get("name", name)), numbers
    for key, value in payload.items():
        yield from percentile_maps(value, str(payload.get("name", key)))
