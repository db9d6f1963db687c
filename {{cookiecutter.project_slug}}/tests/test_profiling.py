"""whylogs on NumPy 2: the compat alias makes logging, merging and round trips work."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import profiling


def test_profiling__numpy_2_alias_lets_whylogs_log_strings() -> None:
    assert np.__version__.startswith("2")
    view = profiling.profile(pd.DataFrame({"text": ["a", "b", None], "number": [1.0, None, 3.0]}))
    assert profiling.row_count(view) == 3
    assert view.get_column("text").get_metric("types").string.value == 2


def test_profiling__merged_profiles_count_every_row(tmp_path: Path, sample: pd.DataFrame) -> None:
    parts = [sample.iloc[:1000], sample.iloc[1000:2500], sample.iloc[2500:]]
    paths = [profiling.write(profiling.profile(part), tmp_path / f"{i}.bin") for i, part in enumerate(parts)]
    merged = profiling.merge(profiling.read(path) for path in paths)
    assert merged is not None
    assert profiling.row_count(merged) == len(sample)
    assert not list(tmp_path.glob(".*partial"))


def test_profiling__unreadable_profile_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken.bin").write_bytes(b"not a profile")
    with pytest.raises(profiling.ProfileError, match=r"broken\.bin"):
        profiling.read(tmp_path / "broken.bin")


def test_read__one_component_class_per_kind_and_the_same_statistics(
    tmp_path: Path, sample: pd.DataFrame
) -> None:
    """whylogs defines a class per component read; the shim makes one per kind, and nothing else changes."""
    parts = [sample.iloc[: len(sample) // 2], sample.iloc[len(sample) // 2 :]]
    paths = [profiling.write(profiling.profile(part), tmp_path / f"{i}.bin") for i, part in enumerate(parts)]
    first, second = (profiling.read(path) for path in paths)
    column = str(sample.select_dtypes("number").columns[0])
    kinds = [type(view.get_column(column).get_metric("distribution").kll) for view in (first, second)]
    assert kinds[0] is kinds[1]
    merged = first.merge(second)
    whole = profiling.profile(sample)
    for name in sample.columns:
        ours, theirs = merged.get_column(str(name)), whole.get_column(str(name))
        assert ours.get_metric("counts").n.value == theirs.get_metric("counts").n.value
        assert ours.get_metric("counts").null.value == theirs.get_metric("counts").null.value
    mean = merged.get_column(column).get_metric("distribution").mean.value
    assert mean == pytest.approx(float(sample[column].mean()))
    copied = copy.deepcopy(merged.get_column(column).get_metric("distribution").kll)
    assert copied.value.get_n() == merged.get_column(column).get_metric("distribution").kll.value.get_n()
