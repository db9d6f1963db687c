"""Hourly roll-ups: the profiles and prediction logs of a finished hour, merged into one file each.

Reading a profile costs ~16-19 ms whatever its size, so a week of 1-minute windows from four
workers (40,320 files) took minutes to read; the label join read as many small prediction logs.
whylogs merges profiles (counts add exactly, quantile sketches within their own error), and
prediction logs concatenate, so an hour read from its roll-up holds exactly the rows of its
files, and a week is 168 reads per client and model version, plus 168 for the predictions.
Roll-ups live beside the files they merge, named
``<hour>-rollup-<files>[.model-<version>].client-<client>.bin`` and
``<hour>-rollup-<files>.predictions.parquet``.

The sources stay; a store's retention may remove them once rolled up, and the roll-up is read
instead. Keeping them is the safer design: deleting sources after a roll-up, however well
verified, turns any bug or crash between the write and the delete into lost rows, while a kept
source costs only storage, which retention reclaims on its own schedule. It also keeps stale
roll-ups detectable: the file count in the name must equal the files there are. When a late
file lands in an hour already rolled up (a worker flushing on shutdown), the counts differ, the
hour is read from its files again, and the next run rolls it up anew and removes the stale
roll-up. A roll-up is written to a hidden partial file, checked (a prediction roll-up must
hold as many rows as its sources) and only then renamed into place, so a reader never sees a
partial or short one.

A first run (a week of files, none rolled up yet) merges every hour: the hours are independent,
so the profiles are merged in worker processes, one per CPU this process may use (never more
than there are hours; one hour or one CPU stays in this process). Each worker writes its own
hour's roll-up.
"""

from __future__ import annotations

import multiprocessing
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .. import profiling, store
from ..data import DataError
from ..profiling import ProfileError

HOUR = timedelta(hours=1)
SETTLE = timedelta(minutes=5)
"""An hour is rolled up once it ended this long ago: the last windows' files have landed."""
PREDICTIONS = ".predictions.parquet"
PROFILES = ".bin"
SUFFIX = {PREDICTIONS: ".parquet", PROFILES: ".bin"}
"""What the store lists for each kind."""
ROLLUP = re.compile(r"-rollup-(\d+)\.(?:model-|client-|predictions\.parquet$)")

Group = tuple[datetime, str, str, str]
"""An hour (its start, UTC), a client, a model version ("" when not recorded) and the file kind."""


def rolled_files(name: str) -> int | None:
    """How many files a roll-up merged, from its name; None for a file that is not one."""
    match = ROLLUP.search(name)
    return int(match.group(1)) if match else None


def rollup_name(hour: datetime, files: int, client: str, model_version: str = "") -> str:
    """``<hour stamp>-rollup-<files>[.model-<version>].client-<client>.bin``."""
    return profiling.profile_name(f"{hour:{profiling.STAMP}}-rollup-{files}", client, model_version)


def predictions_rollup_name(hour: datetime, files: int) -> str:
    """``<hour stamp>-rollup-<files>.predictions.parquet``."""
    return f"{hour:{profiling.STAMP}}-rollup-{files}{PREDICTIONS}"


def _kind(name: str) -> str | None:
    """The kind of file a roll-up can merge (a profile or a prediction log), else None."""
    if name.endswith(PREDICTIONS):
        return PREDICTIONS
    return PROFILES if name.endswith(PROFILES) else None


def _groups(names: Iterable[str]) -> tuple[dict[Group, list[str]], dict[Group, list[str]]]:
    """Sources and roll-ups by (hour, client, version, kind); files without a stamp belong to no hour."""
    sources: dict[Group, list[str]] = defaultdict(list)
    rollups: dict[Group, list[str]] = defaultdict(list)
    for name in names:
        stamp, kind = profiling.stamp_time(name), _kind(name)
        if stamp is None or kind is None:
            continue
        hour = stamp.replace(minute=0, second=0, microsecond=0)
        group = (hour, profiling.client_of(name) or "", profiling.version_of(name) or "", kind)
        (rollups if rolled_files(name) is not None else sources)[group].append(name)
    return sources, rollups


def _current(group: Group, sources: dict[Group, list[str]], rollups: dict[Group, list[str]]) -> str | None:
    """The group's roll-up that merged exactly the files there are now, if any.

    With no source left (retention removed them after the roll-up), the roll-up that merged most.
    """
    count, candidates = len(sources.get(group, [])), rollups.get(group, [])
    if count == 0 and candidates:
        return max(candidates, key=lambda name: rolled_files(name) or 0)
    return next((name for name in candidates if rolled_files(name) == count), None)


def select(names: dict[str, datetime], start: datetime, end: datetime) -> dict[str, datetime]:
    """The files to read for ``[start, end]``: a current roll-up for every whole hour inside it.

    An hour only partly inside the window, or without a current roll-up, is read from its
    sources; stale roll-ups are never read.
    """
    sources, rollups = _groups(names)
    chosen = {name: when for name, when in names.items() if rolled_files(name) is None}
    for group in set(sources) | set(rollups):
        hour = group[0]
        rollup = _current(group, sources, rollups)
        if rollup is not None and start <= hour and hour + HOUR <= end:
            for name in sources.get(group, []):
                chosen.pop(name, None)
            chosen[rollup] = names[rollup]
    return chosen


Merge = Callable[[str, dict[str, datetime], Group], str]
"""Writes one group's roll-up from its sources (names and modification times, in reading order);
returns the roll-up's name, or raises when a source cannot be read."""


Pending = tuple[Group, dict[str, datetime]]
"""A finished hour's group without a current roll-up, and its sources in reading order."""


def workers_available() -> int:
    """The CPUs this process may run on (its CPU affinity; at least one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _pending(
    names: dict[str, datetime], kind: str, now: datetime
) -> tuple[list[Pending], dict[Group, list[str]]]:
    """The finished hours of ``kind`` to roll up, oldest first, and every group's roll-ups."""
    sources, rollups = _groups(names)
    pending = [
        (group, {member: names[member] for member in sorted(members, key=_reading_order)})
        for group, members in sorted(sources.items())
        if group[3] == kind and group[0] + HOUR + SETTLE <= now and _current(group, sources, rollups) is None
    ]
    return pending, rollups


def _reading_order(name: str) -> tuple[datetime | None, str]:
    """Sources by their stamp, then name: the order a window reads them in."""
    return profiling.stamp_time(name), name


def _merged(location: str, merge: Merge, pending: list[Pending], workers: int) -> Iterator[str | Exception]:
    """Each pending hour's roll-up name, or the error that stopped it, in ``pending``'s order."""
    calls = ((location, members, group) for group, members in pending)
    workers = min(workers, len(pending))
    if workers <= 1:
        yield from (_attempt(merge, *call) for call in calls)
        return
    # spawn, not fork: forking a process whose Arrow and BLAS threads hold locks can hang the child
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(partial(_attempt, merge), *zip(*calls, strict=True), chunksize=4)


def _attempt(merge: Merge, location: str, members: dict[str, datetime], group: Group) -> str | Exception:
    """``merge``'s roll-up name, or the read error that stopped it (returned, so a worker can send it)."""
    try:
        return merge(location, members, group)
    except (ProfileError, DataError) as error:
        return error


def _roll(
    location: str | Path, kind: str, now: datetime, merge: Merge, workers: int | None = None
) -> dict[str, str]:
    """Call ``merge`` for every finished hour of ``kind`` without a current roll-up; remove stale ones.

    Returns ``{roll-up name: "<n> <kind>"}`` for each written, and ``{hour/client: reason}`` for an
    hour whose files could not all be read (it is left to be read file by file). ``workers``
    defaults to :func:`workers_available`.
    """
    pending, rollups = _pending(store.listing(location, {SUFFIX[kind]}), kind, now)
    done: dict[str, str] = {}
    merged = _merged(str(location), merge, pending, workers or workers_available())
    for (group, members), outcome in zip(pending, merged, strict=True):
        hour, client, _, _ = group
        if isinstance(outcome, Exception):
            where = client if kind == PROFILES else "predictions"
            done[f"{hour:{profiling.STAMP}}/{where}"] = f"not rolled up: {outcome}"
            continue
        done[outcome] = f"{len(members)} {'profiles' if kind == PROFILES else 'prediction logs'}"
        done |= _remove_stale(location, rollups.get(group, []), len(members))
    return done


def _remove_stale(location: str | Path, rollups: list[str], files: int) -> dict[str, str]:
    """Delete the roll-ups a new one of ``files`` files supersedes; the ones that would not go, and why.

    Only roll-ups of fewer files: one of more merged sources that retention has since removed,
    and it is the only place their rows are left.
    """
    failed: dict[str, str] = {}
    for name in rollups:
        if (rolled_files(name) or 0) >= files:
            continue
        try:
            store.remove(location, name)
        except store.STORE_ERRORS as error:
            failed[name] = f"stale roll-up not removed: {error}"
    return failed


def roll_up(location: str | Path, now: datetime, scratch: Path, workers: int | None = None) -> dict[str, str]:
    """Roll up every finished hour's profiles that has none current (see :func:`_roll`)."""
    return _roll(location, PROFILES, now, partial(_merge_profiles, scratch=scratch), workers)


def roll_up_predictions(
    location: str | Path, now: datetime, scratch: Path, workers: int = 1
) -> dict[str, str]:
    """Roll up every finished hour's prediction logs that has none current (see :func:`_roll`).

    In this process by default: a log read as Arrow costs a fraction of a millisecond, less over
    a week than starting a worker process costs.
    """
    return _roll(location, PREDICTIONS, now, partial(_merge_logs, scratch=scratch), workers)


def _merge_profiles(location: str, members: dict[str, datetime], group: Group, *, scratch: Path) -> str:
    """One client's and version's profiles of an hour merged into one roll-up; its name."""
    paths = store.fetch(location, members, scratch)
    merged = profiling.merge(profiling.read(path) for path in paths)
    if merged is None:
        raise ProfileError("no profiles")
    hour, client, version, _ = group
    name = rollup_name(hour, len(members), client, version)
    store.put(location, name, partial(profiling.write, merged))
    return name


def _merge_logs(location: str, members: dict[str, datetime], group: Group, *, scratch: Path) -> str:
    """An hour's prediction logs, in the order the window reads them, as one Parquet file; its name.

    Read and joined as Arrow tables, as pandas' per-file work (index, conversion) cost about five
    times the read itself over thousands of small files; the label join reads the result into
    the same frame as the files one by one (``tests/monitoring/test_rollup.py``).
    """
    tables = [read_log(path) for path in store.fetch(location, members, scratch)]
    try:
        merged = pa.concat_tables(tables, promote_options="default")
    except pa.ArrowException as error:  # one column of two types: the hour is read file by file
        raise DataError(f"the logs of {group[0]:{profiling.STAMP}} do not share columns ({error})") from None
    name = predictions_rollup_name(group[0], len(members))
    store.put(location, name, partial(write_checked, merged))
    return name


def read_log(path: Path) -> pa.Table:
    """One prediction log as an Arrow table, refused as ``data.load_table`` refuses a file."""
    try:
        table = pq.ParquetFile(path).read()
    except (OSError, pa.ArrowException) as error:
        raise DataError(f"{path}: cannot be read as parquet ({error})") from None
    if table.num_rows == 0:
        raise DataError(f"{path}: has {table.num_columns} columns but no data rows")
    return table


def write_checked(table: pa.Table, path: Path) -> None:
    """Write ``table`` as Parquet to a hidden partial file, read its rows back, then rename it in place."""
    staged = path.with_name(f".{path.name}.partial")
    pq.write_table(table, staged)
    written = pq.read_table(staged, columns=[table.column_names[0]]).num_rows
    if written != table.num_rows:
        staged.unlink()
        raise DataError(f"{path.name}: {written} rows written of {table.num_rows}; not rolled up")
    staged.replace(path)
