"""The champion/challenger gate as a decision table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.training.selection import decide


@pytest.mark.parametrize(
    ("candidate", "champion", "margin", "greater_is_better", "same", "promote"),
    [
        (0.70, None, 0.0, True, False, True),  # first model: nothing to beat
        (0.70, 0.69, 0.0, True, False, True),  # better
        (0.70, 0.70, 0.0, True, False, True),  # equal is "at least as good"
        (0.70, 0.71, 0.0, True, False, False),  # worse
        (0.70, 0.69, 0.02, True, False, False),  # better, but not by the margin
        (0.72, 0.70, 0.02, True, False, True),  # exactly the margin
        (90.0, 100.0, 5.0, False, False, True),  # lower RMSE is better
        (100.0, 90.0, 0.0, False, False, False),  # higher RMSE is worse
        (98.0, 100.0, 5.0, False, False, False),  # lower, but not by the margin
        (0.70, 0.70, 0.0, True, True, False),  # the champion retrained unchanged: nothing new
        (0.75, 0.70, 0.0, True, True, False),  # same lineage, another score (noise): still nothing new
    ],
)
def test_gate__decision_table(
    candidate: float,
    champion: float | None,
    margin: float,
    greater_is_better: bool,
    same: bool,
    promote: bool,
) -> None:
    decision = decide("metric", candidate, champion, margin, greater_is_better, same_as_champion=same)
    assert decision.promote is promote
    assert decision.reason


def test_gate__decision_is_written_as_json_for_ci(tmp_path: Path) -> None:
    path = decide("f1_macro", 0.7, 0.6, 0.0, True).write(tmp_path / "gate.json")
    assert json.loads(path.read_text())["promote"] is True
