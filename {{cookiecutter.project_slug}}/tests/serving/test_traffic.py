"""Traffic profiling: every served row lands in exactly one profile, whatever the store does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from {{ cookiecutter.package_name }} import profiling
from {{ cookiecutter.package_name }}.headers import DIRECT
from {{ cookiecutter.package_name }}.serving.traffic import Served, TrafficProfiler, client_name, combine


def batch(start: int, size: int) -> tuple[pd.DataFrame, list[str]]:
    """A served batch: its input frame (id + one feature) and one prediction per row."""
    numbers = range(start, start + size)
    frame = pd.DataFrame({"customer_id": [f"C{i}" for i in numbers], "tenure": range(size)})
    return frame, [f"P{i}" for i in numbers]


def profiled_rows(folder: Path) -> int:
    return sum(profiling.row_count(profiling.read(path)) for path in folder.glob("*.bin"))


def test_traffic__every_recorded_row_is_in_a_profile(tmp_path: Path) -> None:
    profiler = TrafficProfiler(str(tmp_path), window_s=3600, id_column="customer_id")
    profiler.record(*batch(0, 7))
    assert profiler.flush() is not None
    profiler.record(*batch(7, 5))
    profiler.record(*batch(12, 1))
    profiler.stop()  # the partial window is flushed on stop
    assert profiled_rows(tmp_path) == 13
    assert profiler.stats.files_written == 2
    ids = pd.concat(pd.read_parquet(path) for path in tmp_path.glob("*.predictions.parquet"))
    assert sorted(ids["customer_id"]) == sorted(f"C{i}" for i in range(13))
    assert (ids["prediction"] == "P" + ids["customer_id"].str[1:]).all()  # each row kept its own


def test_traffic__id_column_is_not_profiled(tmp_path: Path) -> None:
    profiler = TrafficProfiler(str(tmp_path), id_column="customer_id")
    profiler.record(*batch(0, 3))
    path = profiler.flush()
    assert path is not None
    assert set(profiling.read(path).get_columns()) == {"tenure", "prediction"}


def test_traffic__timer_writes_windows_in_the_background(tmp_path: Path) -> None:
    profiler = TrafficProfiler(str(tmp_path), window_s=0.05)
    profiler.start()
    profiler.record(*batch(0, 4))
    for _ in range(100):
        if profiler.stats.rows_written:
            break
        __import__("time").sleep(0.02)
    profiler.stop()
    assert profiled_rows(tmp_path) == 4


def test_traffic__unwritable_store_counts_failures_and_keeps_rows(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the profile directory should be")
    failures: list[int] = []
    profiler = TrafficProfiler(str(blocked), id_column="customer_id", on_failure=failures.append)
    profiler.record(*batch(0, 5))
    assert profiler.flush() is None
    assert profiler.stats.write_failures == 1
    assert failures == [5]
    blocked.unlink()
    profiler.record(*batch(5, 2))
    profiler.stop()
    assert profiled_rows(blocked) == 7
    ids = pd.read_parquet(next(blocked.glob("*.predictions.parquet")))
    assert list(ids["customer_id"]) == [f"C{i}" for i in range(7)]  # kept rows first, in order
    assert list(ids["prediction"]) == [f"P{i}" for i in range(7)]


def test_traffic__buffer_is_bounded_and_drops_are_counted(tmp_path: Path) -> None:
    profiler = TrafficProfiler(str(tmp_path), max_buffered_rows=10)
    for start in range(0, 30, 5):
        profiler.record(*batch(start, 5))
    profiler.stop()
    assert profiler.stats.rows_dropped == 20
    assert profiled_rows(tmp_path) == 10


def test_traffic__rows_are_filed_by_the_client_that_sent_them(tmp_path: Path) -> None:
    """Batches from several clients share a window; each client gets its own profile of its own rows."""
    profiler = TrafficProfiler(str(tmp_path), id_column="customer_id")
    web, mixed = batch(0, 4), batch(4, 6)
    profiler.record(*web, ["web-app"] * 4)
    profiler.record(*mixed, ["operator", "web-app", "operator", "operator", "batch", "web-app"])
    profiler.record(*batch(10, 2))  # no clients: a caller that reached the color directly
    profiler.stop()
    rows = {
        profiling.client_of(path.name): profiling.row_count(profiling.read(path))
        for path in tmp_path.glob("*.bin")
    }
    assert rows == {"web-app": 6, "operator": 3, "batch": 1, DIRECT: 2}
    logged = pd.read_parquet(next(tmp_path.glob("*.predictions.parquet")))
    assert dict(zip(logged["customer_id"], logged["client"], strict=True))["C5"] == "web-app"
    assert "client" not in profiling.read(next(tmp_path.glob("*.bin"))).get_columns()


@given(st.text(max_size=80))
def test_traffic__any_client_header_becomes_a_safe_file_name_part(header: str) -> None:
    name = client_name(header)
    assert name == header or name == "unknown"
    assert profiling.client_of(profiling.profile_name("20260101T000000-h-1-00001", name)) == name
    assert "/" not in name
    assert client_name(None) == DIRECT


def test_traffic__files_and_predictions_name_the_model_version(tmp_path: Path) -> None:
    profiler = TrafficProfiler(str(tmp_path), id_column="customer_id", model_version="7")
    profiler.record(*batch(0, 3), clients=["web-app"] * 3)
    path = Path(str(profiler.flush()))
    assert path.name.endswith(".model-7.client-web-app.bin")
    assert (profiling.version_of(path.name), profiling.client_of(path.name)) == ("7", "web-app")
    ids = pd.read_parquet(next(tmp_path.glob("*.predictions.parquet")))
    assert set(ids["model_version"]) == {"7"}


def test_traffic__every_class_probability_is_logged_beside_the_prediction_not_profiled(
    tmp_path: Path,
) -> None:
    classes = ["bronze", "gold", "silver"]
    profiler = TrafficProfiler(str(tmp_path), id_column="customer_id", classes=classes)
    frame, predictions = batch(0, 3)
    probabilities = np.array([[0.1, 0.9, 0.0], [0.6, 0.3, 0.1], [0.2, 0.05, 0.75]])
    profiler.record(frame.iloc[:2], predictions[:2], probabilities=probabilities[:2])
    profiler.record(frame.iloc[2:], predictions[2:], probabilities=probabilities[2:])
    path = profiler.flush()
    assert path is not None
    columns = [f"proba__{label}" for label in classes]
    assert not {"confidence", *columns} & set(profiling.read(path).get_columns())
    ids = pd.read_parquet(next(tmp_path.glob("*.predictions.parquet")))
    assert ids["confidence"].tolist() == [0.9, 0.6, 0.75]  # the top class's probability
    assert (ids[columns].dtypes == np.float32).all()  # half the bytes; 7 digits rank and bin alike
    np.testing.assert_allclose(ids[columns].to_numpy(), probabilities, atol=1e-7)


def test_traffic__a_regressor_logs_no_probabilities(tmp_path: Path) -> None:
    profiler = TrafficProfiler(str(tmp_path), id_column="customer_id")
    profiler.record(*batch(0, 3))
    profiler.flush()
    ids = pd.read_parquet(next(tmp_path.glob("*.predictions.parquet")))
    assert not [column for column in ids.columns if column == "confidence" or column.startswith("proba__")]


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 4)), min_size=1, max_size=12))
def test_traffic__a_window_recorded_as_rows_is_the_window_recorded_as_frames(
    batches: list[tuple[bool, int]],
) -> None:
    """The service hands rows (one frame per window is cheaper); replays hand frames; mixed, in order."""

    def frame_of(rows: list[dict[str, object]]) -> pd.DataFrame:
        return pd.DataFrame(rows, columns=["customer_id", "tenure"])

    as_frames, as_rows = [], []
    start = 0
    for rows_given, size in batches:
        frame, predictions = batch(start, size)
        start += size
        as_frames.append(Served(frame, predictions, [DIRECT] * size))
        inputs = frame.to_dict(orient="records") if rows_given else frame
        as_rows.append(Served(inputs, predictions, [DIRECT] * size))
    pd.testing.assert_frame_equal(combine(as_rows, frame_of=frame_of), combine(as_frames))


def test_traffic__rows_without_a_frame_builder_are_a_clear_error() -> None:
    profiler = TrafficProfiler("unused")
    profiler.record([{"tenure": 1}], ["P0"])
    with pytest.raises(TypeError, match="frame_of"):
        combine(profiler._take())
