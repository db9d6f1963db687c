"""Hourly roll-ups: a window read from them holds exactly the rows of the files they merged."""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from {{ cookiecutter.package_name }} import profiling
from {{ cookiecutter.package_name }}.config import Config, compose
from {{ cookiecutter.package_name }}.monitoring import labels, rollup
from {{ cookiecutter.package_name }}.monitoring.window import LOG_SUFFIXES, load_window, window_files

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
    stale = [path.name for path in folder.glob(f"{hour:{profiling.STAMP}}-rollup-*.client-web-app.bin")]
    assert [rollup.rolled_files(name) for name in stale] == [7]  # the superseded roll-up is gone


def test_rollup__an_unreadable_profile_leaves_its_hour_unrolled_and_says_why(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    write_minutes(folder, hours=1)
    hour = (NOW - timedelta(hours=1)).replace(minute=0)
    (folder / profiling.profile_name(f"{hour:{profiling.STAMP}}-host-9-00002", "batch")).write_bytes(b"")
    done = rollup.roll_up(folder, NOW, tmp_path)
    assert done[f"{hour:{profiling.STAMP}}/batch"].startswith("not rolled up: ")
    assert sum(1 for name in done if rollup.rolled_files(name) is not None) == 1  # web-app's hour


@pytest.mark.parametrize(
    "name",
    [
        "20260302T110000-host-1-00001.client-web-app.bin",
        "notes.bin",
        "20260302T110000-host-1-00001.predictions.parquet",
        "20260302T110000-rollup-3.csv",
    ],
)
def test_rolled_files__sources_are_not_roll_ups(name: str) -> None:
    assert rollup.rolled_files(name) is None
    assert rollup.rolled_files(rollup.rollup_name(NOW, 240, "web-app")) == 240
    assert rollup.rolled_files(rollup.predictions_rollup_name(NOW, 240)) == 240


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


def write_log(folder: Path, hour: int, file: int, rows: pd.DataFrame) -> None:
    """One worker's prediction log, ``file`` x 10 minutes into the hour ``hour`` hours back from NOW's."""
    when = NOW.replace(minute=0) - timedelta(hours=hour) + timedelta(minutes=10 * file)
    folder.mkdir(exist_ok=True)
    rows.to_parquet(
        folder / f"{when:{profiling.STAMP}}-host-{file}-{file:05d}.predictions.parquet", index=False
    )


def logged(rows: list[int], ids: list[int]) -> pd.DataFrame:
    """Logged predictions: ``row`` numbers each row once; ids may repeat (a customer scored twice)."""
    return pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in ids],
            "prediction": [["no", "yes"][i % 2] for i in ids],
            "row": rows,
        }
    )


def read_window(folder: Path, scratch: Path) -> tuple[pd.DataFrame, list[str]]:
    """The window's logs as the label join reads them, and the names of the files read."""
    paths = window_files(folder, NOW - timedelta(hours=4), NOW, LOG_SUFFIXES, scratch)
    frame, unreadable = labels.read_logs(paths)
    assert unreadable == {}
    return frame, [path.name for path in paths]


@pytest.fixture(scope="module")
def cfg() -> Config:
    return compose()


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 9)), min_size=1, max_size=40))
def test_rollup_predictions__any_split_over_files_and_hours_joins_the_same_rows(
    cfg: Config, placed: list[tuple[int, int, int]]
) -> None:
    """Hour 0 is NOW's, unfinished: it stays file by file; every finished hour becomes one file."""
    key, target = cfg.data.id_column, cfg.data.target
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "logs"
        files: dict[tuple[int, int], list[int]] = {}
        for row, (hour, file, _) in enumerate(placed):
            files.setdefault((hour, file), []).append(row)
        for (hour, file), rows in files.items():
            write_log(folder, hour, file, logged(rows, [placed[row][2] for row in rows]))
        before, _ = read_window(folder, Path(scratch))
        done = rollup.roll_up_predictions(folder, NOW, Path(scratch))
        after, read = read_window(folder, Path(scratch))
        finished = {hour for hour, _ in files if hour > 0}
        assert len(done) == len(finished)
        assert sum(rollup.rolled_files(name) is not None for name in read) == len(finished)
        assert sorted(after["row"]) == list(range(len(placed)))  # every row exactly once
        pd.testing.assert_frame_equal(after, before)  # and in the order the join reads them
        truth = pd.DataFrame({key: [f"C{i}" for i in range(10)], target: ["yes", "no"] * 5})
        joined = [labels.join_labels(cfg, frame.rename(columns={"customer_id": key}), truth, target)
                  for frame in (before, after)]  # fmt: skip
        pd.testing.assert_frame_equal(joined[1], joined[0])


def test_rollup_predictions__a_late_file_makes_its_hour_rolled_up_anew(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    for file in range(3):
        write_log(folder, 2, file, logged([file], [file]))
    assert list(rollup.roll_up_predictions(folder, NOW, tmp_path).values()) == ["3 prediction logs"]
    write_log(folder, 2, 5, logged([3], [3]))  # a worker flushing late, after the roll-up
    assert sorted(read_window(folder, tmp_path)[0]["row"]) == [0, 1, 2, 3]  # stale roll-up not read
    assert list(rollup.roll_up_predictions(folder, NOW, tmp_path).values()) == ["4 prediction logs"]
    frame, read = read_window(folder, tmp_path)
    assert sorted(frame["row"]) == [0, 1, 2, 3]
    assert [rollup.rolled_files(name) for name in read] == [4]
    assert [path.name for path in folder.glob("*-rollup-*")] == read  # the stale one is removed


def test_rollup_predictions__a_torn_log_leaves_its_hour_unrolled_and_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    for hour in (1, 2):
        write_log(folder, hour, 0, logged([hour], [hour]))
    torn = next(folder.glob(f"{NOW.replace(minute=0) - timedelta(hours=1):{profiling.STAMP}}-*"))
    torn.write_bytes(torn.read_bytes()[:30])
    done = rollup.roll_up_predictions(folder, NOW, tmp_path)
    hour = NOW.replace(minute=0) - timedelta(hours=1)
    assert done[f"{hour:{profiling.STAMP}}/predictions"].startswith(f"not rolled up: {torn}: cannot be read")
    assert sum(rollup.rolled_files(name) is not None for name in done) == 1  # the other hour
    paths = window_files(folder, NOW - timedelta(hours=4), NOW, LOG_SUFFIXES, tmp_path)
    frame, unreadable = labels.read_logs(paths)
    assert (frame["row"].tolist(), list(unreadable)) == ([2], [torn.name])


def test_rollup__a_stale_roll_up_of_more_files_than_remain_is_kept(tmp_path: Path) -> None:
    """Retention removed the hour's files, then a late one came: the old roll-up holds the only rows."""
    folder = tmp_path / "logs"
    for file in range(3):
        write_log(folder, 2, file, logged([file], [file]))
    rollup.roll_up_predictions(folder, NOW, tmp_path)
    for path in folder.glob("*-host-*"):
        path.unlink()
    write_log(folder, 2, 5, logged([3], [3]))
    assert list(rollup.roll_up_predictions(folder, NOW, tmp_path).values()) == ["1 prediction logs"]
    assert sorted(rollup.rolled_files(path.name) for path in folder.glob("*-rollup-*")) == [1, 3]


def test_roll_up__hours_merged_in_worker_processes_match_one_process(tmp_path: Path) -> None:
    """A first run merges every hour in worker processes: the same roll-ups and rows as in this one."""
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    written = write_minutes(serial, hours=4)
    shutil.copytree(serial, parallel)
    for hour in range(4, 0, -1):
        write_log(serial, hour, 0, logged([hour], [hour]))
        write_log(parallel, hour, 0, logged([hour], [hour]))
    ones, twos = (
        rollup.roll_up(where, NOW, tmp_path, n) | rollup.roll_up_predictions(where, NOW, tmp_path, n)
        for where, n in ((serial, 1), (parallel, 2))
    )
    assert twos == ones
    assert len(twos) == 4 * len(CLIENTS) + 4
    start = NOW - timedelta(hours=5)
    assert window(parallel, start, NOW, tmp_path) == window(serial, start, NOW, tmp_path)
    assert window(parallel, start, NOW, tmp_path)[0] == written
    assert read_window(parallel, tmp_path)[0].equals(read_window(serial, tmp_path)[0])


def test_roll_up_predictions__logs_of_clashing_columns_stay_file_by_file(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    write_log(folder, 2, 0, logged([0], [0]))
    write_log(folder, 2, 1, logged([1], [1]).assign(row="one"))  # the same column as text
    done = rollup.roll_up_predictions(folder, NOW, tmp_path)
    hour = NOW.replace(minute=0) - timedelta(hours=2)
    assert done[f"{hour:{profiling.STAMP}}/predictions"].startswith("not rolled up: the logs of")
    assert not list(folder.glob("*-rollup-*"))
