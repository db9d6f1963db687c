"""Hourly roll-ups: the profiles of a finished hour merged into one file per client.

Reading a profile costs ~16-19 ms whatever its size, so a week of 1-minute windows from four
workers (40,320 files) took minutes to read. whylogs merges profiles (counts add exactly,
quantile sketches within their own error), so an hour read from its roll-up holds exactly the
rows of its files and the same distributions, and a week is 168 reads per client and model
version. Roll-ups live beside the profiles they merge, named
``<hour>-rollup-<files>[.model-<version>].client-<client>.bin``. The profiles stay; a store's
retention may remove them once rolled up, and the roll-up is read instead. The file count in the
name keeps roll-ups honest: when a late profile lands in an hour already rolled up (a worker
flushing on shutdown), the counts differ, the hour is read from its profiles again and rolled
up anew on the next run.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from .. import profiling, store
from ..profiling import ProfileError

HOUR = timedelta(hours=1)
SETTLE = timedelta(minutes=5)
"""An hour is rolled up once it ended this long ago: the last windows' profiles have landed."""
ROLLUP = re.compile(r"-rollup-(\d+)\.(model|client)-")

Group = tuple[datetime, str, str]
"""An hour (its start, UTC), a client and a model version ("" when not recorded)."""


def rolled_files(name: str) -> int | None:
    """How many profiles a roll-up merged, from its name; None for a profile that is not one."""
    match = ROLLUP.search(name)
    return int(match.group(1)) if match else None


def rollup_name(hour: datetime, files: int, client: str, model_version: str = "") -> str:
    """``<hour stamp>-rollup-<files>[.model-<version>].client-<client>.bin``."""
    return profiling.profile_name(f"{hour:{profiling.STAMP}}-rollup-{files}", client, model_version)


def _groups(names: Iterable[str]) -> tuple[dict[Group, list[str]], dict[Group, list[str]]]:
    """Profiles and roll-ups by (hour, client); files without a stamp belong to no hour."""
    profiles: dict[Group, list[str]] = defaultdict(list)
    rollups: dict[Group, list[str]] = defaultdict(list)
    for name in names:
        stamp = profiling.stamp_time(name)
        if stamp is None:
            continue
        hour = stamp.replace(minute=0, second=0, microsecond=0)
        group = (hour, profiling.client_of(name) or "", profiling.version_of(name) or "")
        (rollups if rolled_files(name) is not None else profiles)[group].append(name)
    return profiles, rollups


def _current(group: Group, profiles: dict[Group, list[str]], rollups: dict[Group, list[str]]) -> str | None:
    """The group's roll-up that merged exactly the profiles there are now, if any.

    With no profile left (retention removed them after the roll-up), the roll-up that merged most.
    """
    count, candidates = len(profiles.get(group, [])), rollups.get(group, [])
    if count == 0 and candidates:
        return max(candidates, key=lambda name: rolled_files(name) or 0)
    return next((name for name in candidates if rolled_files(name) == count), None)


def select(names: dict[str, datetime], start: datetime, end: datetime) -> dict[str, datetime]:
    """The files to read for ``[start, end]``: a current roll-up for every whole hour inside it.

    An hour only partly inside the window, or without a current roll-up, is read from its
    profiles; stale roll-ups are never read.
    """
    profiles, rollups = _groups(names)
    chosen = {name: when for name, when in names.items() if rolled_files(name) is None}
    for group in set(profiles) | set(rollups):
        hour = group[0]
        rollup = _current(group, profiles, rollups)
        if rollup is not None and start <= hour and hour + HOUR <= end:
            for name in profiles.get(group, []):
                chosen.pop(name, None)
            chosen[rollup] = names[rollup]
    return chosen


def roll_up(location: str | Path, now: datetime, scratch: Path) -> dict[str, str]:
    """Write a roll-up for every finished hour that has none current; the ones written, or why not.

    Returns ``{roll-up name: "<n> profiles"}`` for each written, and ``{hour/client: reason}`` for
    an hour whose profiles could not all be read (it is left to be read file by file).
    """
    names = store.listing(location, {".bin"})
    profiles, rollups = _groups(names)
    done: dict[str, str] = {}
    for group, members in sorted(profiles.items()):
        hour, client, version = group
        if hour + HOUR + SETTLE > now or _current(group, profiles, rollups) is not None:
            continue
        paths = store.fetch(location, {name: names[name] for name in members}, scratch)
        try:
            merged = profiling.merge(profiling.read(path) for path in paths)
        except ProfileError as error:
            done[f"{hour:{profiling.STAMP}}/{client}"] = f"not rolled up: {error}"
            continue
        if merged is None:
            continue
        name = rollup_name(hour, len(members), client, version)
        store.put(str(location), name, partial(profiling.write, merged))
        done[name] = f"{len(members)} profiles"
    return done
