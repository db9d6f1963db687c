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
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import pandas as pd

from .. import profiling, store
from ..data import DataError, load_table
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


def _roll(location: str | Path, kind: str, now: datetime, merge: Merge) -> dict[str, str]:
    """Call ``merge`` for every finished hour of ``kind`` without a current roll-up; remove stale ones.

    Returns ``{roll-up name: "<n> <kind>"}`` for each written, and ``{hour/client: reason}`` for an
    hour whose files could not all be read (it is left to be read file by file).
    """
    names = store.listing(location, {SUFFIX[kind]})
    sources, rollups = _groups(names)
    done: dict[str, str] = {}
    for group, members in sorted(sources.items()):
        hour, client, _, found = group
        if found != kind or hour + HOUR + SETTLE > now or _current(group, sources, rollups) is not None:
            continue
        ordered = sorted(members, key=lambda name: (profiling.stamp_time(name), name))
        try:
            name = merge(str(location), {member: names[member] for member in ordered}, group)
        except (ProfileError, DataError) as error:
            where = client if kind == PROFILES else "predictions"
            done[f"{hour:{profiling.STAMP}}/{where}"] = f"not rolled up: {error}"
            continue
        done[name] = f"{len(members)} {'profiles' if kind == PROFILES else 'prediction logs'}"
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


def roll_up(location: str | Path, now: datetime, scratch: Path) -> dict[str, str]:
    """Roll up every finished hour's profiles that has none current (see :func:`_roll`)."""
    return _roll(location, PROFILES, now, partial(_merge_profiles, scratch=scratch))


def roll_up_predictions(location: str | Path, now: datetime, scratch: Path) -> dict[str, str]:
    """Roll up every finished hour's prediction logs that has none current (see :func:`_roll`)."""
    return _roll(location, PREDICTIONS, now, partial(_merge_logs, scratch=scratch))


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
    """An hour's prediction logs, in the order the window reads them, as one Parquet file; its name."""
    frames = [load_table(path) for path in store.fetch(location, members, scratch)]
    merged = pd.concat(frames, ignore_index=True)
    name = predictions_rollup_name(group[0], len(members))
    store.put(location, name, partial(write_checked, merged))
    return name


def write_checked(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` as Parquet to a hidden partial file, read its rows back, then rename it in place."""
    staged = path.with_name(f".{path.name}.partial")
    frame.to_parquet(staged, index=False)
    written = len(pd.read_parquet(staged, columns=[str(frame.columns[0])]))
    if written != len(frame):
        staged.unlink()
        raise DataError(f"{path.name}: {written} rows written of {len(frame)}; not rolled up")
    staged.replace(path)
