"""Desired-state files: the shipped ones load, bad ones fail naming the field."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from {{ cookiecutter.package_name }}.config import PROJECT_ROOT
from {{ cookiecutter.package_name }}.deployment import state


def valid() -> dict[str, Any]:
    return {
        "environment": "production",
        "live": "blue",
        "colors": {"blue": {"bento": "svc:one", "model_version": "1"}, "green": None},
        "traffic": {"blue": 100, "green": 0},
        "canary_steps": [],
        "router": {"port": 18080, "blue_port": 13001, "green_port": 13002},
        "checks": {"latency": {"p95_ms": 40}, "post_switch": {"window_s": 2}},
    }


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_state__shipped_files_load(environment: str) -> None:
    desired = state.load(PROJECT_ROOT / "deploy" / f"{environment}.yaml")
    assert desired.environment == environment
    assert desired.empty


def test_state__valid_document_parses() -> None:
    desired = state.parse(valid())
    assert desired.release("blue") == state.Release("svc:one", "1")
    assert desired.idle == "green"
    assert desired.checks.latency.p95_ms == 40
    assert desired.checks.post_switch.window_s == 2
    assert desired.router.color_port("green") == 13002


def patch(doc: dict[str, Any], dotted: str, value: object) -> dict[str, Any]:
    *parents, last = dotted.split(".")
    node = doc
    for key in parents:
        node = node[key]
    node[last] = value
    return doc


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("live", "red", "live: expected 'blue' or 'green'"),
        ("live", "green", "live: color 'green' has no release"),
        ("traffic.blue", 90, "traffic: weights must add up to 100"),
        ("traffic.green", -1, "traffic.green: expected a whole percentage"),
        ("traffic", {"blue": 0, "green": 100}, "traffic.green: 100% goes to a color with no release"),
        ("colors.blue.bento", "", "colors.blue.bento: expected a non-empty string"),
        ("colors.blue", {"bento": "x"}, "colors.blue.model_version: expected a non-empty string"),
        ("colors.blue.tag", "x", "colors.blue.tag: unknown field"),
        ("canary_steps", [25, 2], "canary_steps: expected strictly increasing"),
        ("canary_steps", "25", "canary_steps: expected a list"),
        ("router.port", 80, "router.port: expected an unprivileged port"),
        ("router.green_port", 13001, "router: port, preview_port, blue_port and green_port must all differ"),
        ("checks.latency.p95_ms", "fast", "checks.latency.p95_ms: expected a number"),
        ("checks.latency.concurrency", 2.5, "checks.latency.concurrency: expected a whole number"),
        ("checks.gate", "yes", "checks.gate: expected true or false"),
        ("checks.post_switch.windows", 3, "checks.post_switch.windows: unknown field"),
        ("environment", None, "environment: expected a non-empty string"),
    ],
)
def test_state__bad_field_is_named(field: str, value: object, message: str) -> None:
    with pytest.raises(state.StateError, match=re.escape(message)):
        state.parse(patch(valid(), field, value))


def test_state__bad_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "production.yaml"
    path.write_text("live: [unclosed")
    with pytest.raises(state.StateError, match=r"production\.yaml: not valid YAML"):
        state.load(path)
    with pytest.raises(state.StateError, match="not found"):
        state.load(tmp_path / "missing.yaml")


def test_state__promotion_edit_round_trips(tmp_path: Path) -> None:
    desired = state.parse(valid())
    promoted = state.with_release(desired, state.Release("svc:two", "2"))
    assert promoted.live == "green"
    assert promoted.traffic == {"green": 100, "blue": 0}
    assert promoted.release("blue") == desired.release("blue")
    path = state.dump(promoted, tmp_path / "production.yaml", "promote")
    assert state.load(path) == promoted
    assert yaml.safe_load(path.read_text())["colors"]["green"] == {"bento": "svc:two", "model_version": "2"}
