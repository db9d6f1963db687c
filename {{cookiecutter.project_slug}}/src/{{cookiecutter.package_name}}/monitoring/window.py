"""The production window: which files fall in it, merged into one profile and a timeline."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .. import profiling, store
from ..config import MonitoringConfig
from ..data import DataError
from ..profiling import DatasetProfileView, ProfileError, frequencies, quantiles
from ..reference import PREDICTION

LOG_SUFFIXES = {".csv", ".parquet", ".pq", ".jsonl"}


def window_bounds(cfg: MonitoringConfig, now: datetime | None = None) -> tuple[datetime, datetime]:
    """``[end - window_hours, end]`` with ``end`` from the config or the current time (UTC)."""
    if cfg.window_end:
        try:
            end = datetime.fromisoformat(cfg.window_end)
        except ValueError:
            raise DataError(
                f"monitoring.window_end={cfg.window_end!r} is not an ISO time like 2026-01-31T12:00"
            ) from None
        end = end if end.tzinfo else end.replace(tzinfo=UTC)
    else:
        end = now or datetime.now(UTC)
    return end - timedelta(hours=cfg.window_hours), end


def window_files(
    location: str | Path,
    start: datetime,
    end: datetime,
    suffixes: set[str],
    scratch: Path,
    *,
    exclude_clients: Collection[str] = (),
) -> list[Path]:
    """Local paths of the files in ``location`` whose window time lies in ``[start, end]``, oldest first.

    The window time is the stamp in the name, else the modification time. Profiles of the clients
    in ``exclude_clients`` (by the name the service filed them under) are left out. From an object
    store, only the files kept are downloaded (into ``scratch``).
    """
    found = {
        name: modified
        for name, modified in store.listing(location, suffixes).items()
        if profiling.client_of(name) not in exclude_clients
    }
    timed = sorted((profiling.stamp_time(name) or modified, name) for name, modified in found.items())
    return store.fetch(location, {name: found[name] for when, name in timed if start <= when <= end}, scratch)


def load_window(paths: list[Path]) -> tuple[DatasetProfileView, list[dict[str, Any]], dict[str, int]]:
    """Merge the window's profiles; the prediction mix per window start (timeline); rows per client.

    Profiles written before the service filed rows by client count as ``unattributed``.
    """
    by_time: dict[datetime, DatasetProfileView] = {}
    clients: Counter[str] = Counter()
    for path in paths:
        view, when = profiling.read(path), profiling.window_time(path)
        by_time[when] = by_time[when].merge(view) if when in by_time else view
        clients[profiling.client_of(path.name) or "unattributed"] += profiling.row_count(view)
    merged = profiling.merge(by_time.values())
    if merged is None:
        raise ProfileError("no profiles in the window; widen monitoring.window_hours or check the service")
    timeline = [prediction_point(when, view) for when, view in sorted(by_time.items())]
    return merged, timeline, dict(sorted(clients.items()))


def prediction_point(when: datetime, view: DatasetProfileView) -> dict[str, Any]:
    """One window's row count and prediction distribution: class shares, or quantiles."""
    point: dict[str, Any] = {"time": when.isoformat(), "rows": profiling.row_count(view)}
    column = view.get_column(PREDICTION)
    if column is None:
        return point
    values = quantiles(column, [0.1, 0.5, 0.9])
    if values is None:
        point["shares"] = frequencies(column)
    else:
        point["quantiles"] = dict(zip(("p10", "p50", "p90"), values, strict=True))
    return point
