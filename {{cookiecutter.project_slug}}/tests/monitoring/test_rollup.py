"""Hourly roll-ups: a window read from them holds exactly the rows of the profiles they merged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import profiling
from {{ cookiecutter.package_name }}.monitoring import rollup
from {{ cookiecutter.package_name }}.monitoring.window import load_window, window_files

NOW = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
CLIENTS = ("web-app", "batch")


def write_minutes(folder: Path, hours: int, per_minute: int = 3) -> int:
    """Profiles every 10 minutes for ``hours`` hours before NOW, two clients; rows written."""
    rows, start = 0, (NOW - timedelta(hours=hours)).replace(minute=0)
    for step in range(hours * 6 + 3):  # into the current, unfinished hour too
        when = start + timedelta(minutes=10 * step)
        for worker, client in enumerate(CLIENTS):
            frame = pd.DataFrame(
                {"x": [step * 1.0 + i for i in range(per_minute)], "plan": ["a", "b", "a"][:per_minute]}
            )
            name = profiling.profile_name(f"{when:{profiling.STAMP}}-host-{worker}-{step:05d}", client)
            profiling.write(profiling.profile(frame), folder / name)
            rows += len(frame)
    return rows


def window(folder: Path, start: datetime, end: datetime, scratch: Path) -> tuple[int, float, int]:
    """Rows, the mean of x, and how many files the window was read from."""
    paths = window_files(folder, start, end, {".bin"}, scratch)
    loaded = load_window(paths)
    assert not loaded.unreadable
    x = loaded.view.get_column("x").get_metric("distribution")
    return profiling.row_count(loaded.view), round(float(x.mean.value), 9), len(paths)


def test_rollup__a_window_reads_the_same_rows_from_far_fewer_files(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    written = write_minutes(folder, hours=5)
    start, end = NOW - timedelta(hours=6), NOW
    before = window(folder, start, end, tmp_path)
    done = rollup.roll_up(folder, NOW, tmp_path)
    assert len(done) == 5 * len(CLIENTS)  # finished hours only: the current one stays as it is
    assert all(reason == "6 profiles" for reason in done.values())
    after = window(folder, start, end, tmp_path)
    assert after[:2] == before[:2] == (written, before[1])  # lossless: same rows, same statistics
    assert after[2] == 5 * len(CLIENTS) + 3 * len(CLIENTS)  # 10 roll-ups + the current hour's profiles
    assert rollup.roll_up(folder, NOW, tmp_path) == {}  # nothing left to do


def test_rollup__an_hour_cut_by_the_window_is_read_from_its_profiles(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    write_minutes(folder, hours=3)
    start = (NOW - timedelta(hours=2)).replace(minute=25)  # cuts an hour in two
    before = window(folder, start, NOW, tmp_path)
    rollup.roll_up(folder, NOW, tmp_path)
    assert window(folder, start, NOW, tmp_path)[:2] == before[:2]


def test_rollup__a_late_profile_makes_its_hour_read_file_by_file_until_rolled_again(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    written = write_minutes(folder, hours=2)
    rollup.roll_up(folder, NOW, tmp_path)
    hour = (NOW - timedelta(hours=2)).replace(minute=0)
    late = profiling.profile_name(f"{hour + timedelta(minutes=59):{profiling.STAMP}}-host-9-00001", "web-app")
    profiling.write(profiling.profile(pd.DataFrame({"x": [1000.0], "plan": ["a"]})), folder / late)
    start = NOW - timedelta(hours=3)
    assert window(folder, start, NOW, tmp_path)[0] == written + 1  # the stale roll-up is not read
    assert list(rollup.roll_up(folder, NOW, tmp_path).values()) == ["7 profiles"]
    assert window(folder, start, NOW, tmp_path)[0] == written + 1


def test_rollup__an_unreadable_profile_leaves_its_hour_unrolled_and_says_why(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    write_minutes(folder, hours=1)
    hour = (NOW - timedelta(hours=1)).replace(minute=0)
    (folder / profiling.profile_name(f"{hour:{profiling.STAMP}}-host-9-00002", "batch")).write_bytes(b"")
    done = rollup.roll_up(folder, NOW, tmp_path)
    assert done[f"{hour:{profiling.STAMP}}/batch"].startswith("not rolled up: ")
    assert sum(1 for name in done if rollup.rolled_files(name) is not None) == 1  # web-app's hour


@pytest.mark.parametrize("name", ["20260302T110000-host-1-00001.client-web-app.bin", "notes.bin"])
def test_rolled_files__profiles_are_not_roll_ups(name: str) -> None:
    assert rollup.rolled_files(name) is None
    assert rollup.rolled_files(rollup.rollup_name(NOW, 240, "web-app")) == 240


def test_rollup__model_versions_are_rolled_up_apart(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    hour = (NOW - timedelta(hours=2)).replace(minute=0)
    for minute, version in [(0, "3"), (10, "3"), (20, "4")]:
        name = profiling.profile_name(
            f"{hour + timedelta(minutes=minute):{profiling.STAMP}}-h-1-{minute:05d}", "web-app", version
        )
        profiling.write(profiling.profile(pd.DataFrame({"x": [1.0], "plan": ["a"]})), folder / name)
    written = [name for name in rollup.roll_up(folder, NOW, tmp_path) if rollup.rolled_files(name)]
    assert {profiling.version_of(name): rollup.rolled_files(name) for name in written} == {"3": 2, "4": 1}
    loaded = load_window(window_files(folder, NOW - timedelta(hours=3), NOW, {".bin"}, tmp_path))
    assert loaded.versions == {"3": 2, "4": 1}


def test_rollup__profiles_removed_after_their_roll_up_are_read_from_it(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    write_minutes(folder, hours=2)
    start = NOW - timedelta(hours=3)
    before = window(folder, start, NOW, tmp_path)
    rollup.roll_up(folder, NOW, tmp_path)
    finished = NOW.replace(minute=0)
    for path in folder.glob("*.bin"):  # a retention policy keeps only the roll-ups of past hours
        stamp = profiling.stamp_time(path.name)
        if stamp is not None and stamp < finished and rollup.rolled_files(path.name) is None:
            path.unlink()
    assert window(folder, start, NOW, tmp_path)[:2] == before[:2]
