"""The champion/challenger gate as a decision table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.training.selection import decide


@pytest.mark.parametrize(
    ("candidate", "champion", "margin", "greater_is_better", "promote"),
    [
        (0.70, None, 0.0, True, True),  # first model: nothing to beat
        (0.70, 0.69, 0.0, True, True),  # better
        (0.70, 0.70, 0.0, True, True),  # equal is "at least as good"
        (0.70, 0.71, 0.0, True, False),  # worse
        (0.70, 0.69, 0.02, True, False),  # better, but not by the margin
        (0.72, 0.70, 0.02, True, True),  # exactly the margin
        (90.0, 100.0, 5.0, False, True),  # lower RMSE is better
        (100.0, 90.0, 0.0, False, False),  # higher RMSE is worse
        (98.0, 100.0, 5.0, False, False),  # lower, but not by the margin
    ],
)
def test_gate__decision_table(
    candidate: float, champion: float | None, margin: float, greater_is_better: bool, promote: bool
) -> None:
    decision = decide("metric", candidate, champion, margin, greater_is_better)
    assert decision.promote is promote
    assert decision.reason


def test_gate__decision_is_written_as_json_for_ci(tmp_path: Path) -> None:
    path = decide("f1_macro", 0.7, 0.6, 0.0, True).write(tmp_path / "gate.json")
    assert json.loads(path.read_text())["promote"] is True
