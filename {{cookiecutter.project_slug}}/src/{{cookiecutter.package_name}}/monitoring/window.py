"""The production window: which files fall in it, merged into one profile and a timeline."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .. import profiling, store
from ..config import MonitoringConfig
from ..data import DataError
from ..profiling import DatasetProfileView, ProfileError, frequencies, quantiles
from ..reference import PREDICTION
from . import rollup

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
    in ``exclude_clients`` (by the name the service filed them under) are left out. A whole hour
    inside the window with a current roll-up is read from it (:mod:`.rollup`). From an object
    store, only the files kept are downloaded (into ``scratch``).
    """
    found = {
        name: modified
        for name, modified in store.listing(location, suffixes).items()
        if profiling.client_of(name) not in exclude_clients
    }
    found = rollup.select(found, start, end)
    timed = sorted((profiling.stamp_time(name) or modified, name) for name, modified in found.items())
    return store.fetch(location, {name: found[name] for when, name in timed if start <= when <= end}, scratch)


def future_files(location: str | Path, now: datetime, slack: timedelta = timedelta(minutes=5)) -> list[str]:
    """Profiles stamped later than ``now`` (a writer's clock ahead): never in a window ending now."""
    names = store.listing(location, {".bin"})
    return sorted(name for name in names if (profiling.stamp_time(name) or now) > now + slack)


UNVERSIONED = "unrecorded"
MAX_POINTS = 120
"""More profile windows than this, or any hour read from a roll-up, are drawn per hour."""


@dataclass(frozen=True)
class Loaded:
    """The window's profiles merged: whole and per time bucket; rows per client and per model version."""

    view: DatasetProfileView
    buckets: dict[datetime, DatasetProfileView]
    clients: dict[str, int]
    unreadable: dict[str, str]
    versions: dict[str, int]


def load_window(paths: list[Path]) -> Loaded:
    """Merge the window's profiles, per bucket (profile window, or hour when there are many) and whole.

    A file that cannot be read (zero bytes, truncated, not a profile) is skipped and returned,
    named with the reason, so one bad file never costs the whole report. Profiles written before
    the service filed rows by client count as ``unattributed``.
    """
    by_time: dict[datetime, DatasetProfileView] = {}
    clients: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    unreadable: dict[str, str] = {}
    for path in paths:
        try:
            view = profiling.read(path)
        except ProfileError as error:
            unreadable[path.name] = str(error).split(": ", 1)[-1]
            continue
        when = profiling.window_time(path)
        by_time[when] = by_time[when].merge(view) if when in by_time else view
        rows = profiling.row_count(view)
        clients[profiling.client_of(path.name) or "unattributed"] += rows
        versions[profiling.version_of(path.name) or UNVERSIONED] += rows
    merged = profiling.merge(by_time.values())
    if merged is None:
        named = f" ({len(unreadable)} unreadable: {', '.join(sorted(unreadable)[:3])})" if unreadable else ""
        raise ProfileError(
            f"no readable profiles in the window{named}; widen monitoring.window_hours or check the service"
        )
    rolled = any(rollup.rolled_files(path.name) is not None for path in paths)
    buckets = hourly(by_time) if rolled or len(by_time) > MAX_POINTS else by_time
    return Loaded(merged, buckets, dict(sorted(clients.items())), unreadable, dict(sorted(versions.items())))


def hourly(by_time: dict[datetime, DatasetProfileView]) -> dict[datetime, DatasetProfileView]:
    """Profile windows merged into the hours that hold them."""
    hours: dict[datetime, DatasetProfileView] = {}
    for when, view in by_time.items():
        hour = when.replace(minute=0, second=0, microsecond=0)
        hours[hour] = hours[hour].merge(view) if hour in hours else view
    return hours


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
