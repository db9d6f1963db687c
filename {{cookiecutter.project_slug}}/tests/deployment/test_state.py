"""Desired-state files: the shipped ones load, any valid one round-trips, bad ones fail in one line.

The line names the file and the dotted field and says what would fix it: it is what a reviewer
of a promotion pull request reads in the CI log.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from {{ cookiecutter.package_name }}.config import PROJECT_ROOT
from {{ cookiecutter.package_name }}.deployment import state

DELETE = object()  # a patch value meaning "leave this field out"


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


def patched(changes: dict[str, object], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of ``base`` (``valid()``) with each dotted field set to a value (or left out: ``DELETE``)."""
    doc = copy.deepcopy(base) if base else valid()
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = doc
        for key in parents:
            node = node[key]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return doc


def leaves(doc: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of every scalar field in a document."""
    names: list[str] = []
    for key, value in doc.items():
        if isinstance(value, dict):
            names += leaves(value, f"{prefix}{key}.")
        elif not isinstance(value, list | tuple) and value is not None:
            names.append(f"{prefix}{key}")
    return names


FULL = dataclasses.asdict(state.parse(valid()))  # every field of the schema, defaults filled in


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


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param(
            {"colors.blue.model_version": 3}, {"colors.blue.model_version": "3"}, id="version-as-int"
        ),
        pytest.param({"colors.green": DELETE}, {"colors.green": None}, id="color-left-out-is-empty"),
        pytest.param({"traffic.green": DELETE}, {"traffic.green": 0}, id="weight-left-out-is-0"),
        pytest.param({"checks.latency.p95_ms": 40}, {"checks.latency.p95_ms": 40.0}, id="int-for-a-float"),
        pytest.param(
            {"colors.blue": None, "live": "green", "traffic": {"blue": 0, "green": 100}},
            {"live": "green"},
            id="empty-state-routes-anywhere",
        ),
    ],
)
def test_state__lenient_where_yaml_is_ambiguous(
    changes: dict[str, object], expected: dict[str, object]
) -> None:
    desired = dataclasses.asdict(state.parse(patched(changes)))
    for dotted, value in expected.items():
        node: Any = desired
        for key in dotted.split("."):
            node = node[key]
        assert node == value


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"live": "red"}, "live: expected 'blue' or 'green', got 'red'"),
        ({"live": "green"}, "live: color 'green' has no release; set colors.green.bento and model_version"),
        ({"environment": DELETE}, "environment: required field is missing; add it"),
        ({"environment": None}, "environment: expected a non-empty string, got None"),
        ({"colors.blue.bento": "  "}, "colors.blue.bento: expected a non-empty string, got '  '"),
        ({"colors.blue": {"bento": "x"}}, "colors.blue.model_version: required field is missing; add it"),
        ({"colors.blue.tag": "x"}, "colors.blue.tag: unknown field; allowed: bento, model_version"),
        ({"colors.red": None}, "colors.red: expected 'blue' or 'green', got 'red'"),
        ({"colors": ["blue"]}, "colors: expected a mapping of blue/green to a value"),
        ({"traffic.blue": 90}, "traffic: weights must add up to 100, got {'blue': 90, 'green': 0}"),
        ({"traffic.green": -1}, "traffic.green: expected a whole percentage 0-100, got -1"),
        ({"traffic.green": 0.0}, "traffic.green: expected a whole percentage 0-100, got 0.0"),
        (
            {"traffic": {"blue": 0, "green": 100}},
            "traffic.green: 100% goes to a color with no release; set it to 0",
        ),
        (
            {
                "colors.green": {"bento": "svc:two", "model_version": "2"},
                "traffic": {"blue": 40, "green": 60},
            },
            "traffic: the live color 'blue' must carry the larger share",
        ),
        (
            {"canary_steps": [25, 2]},
            "canary_steps: expected strictly increasing percentages like [2, 25, 75], got [25, 2]",
        ),
        ({"canary_steps": [25, 25]}, "canary_steps: expected strictly increasing percentages"),
        ({"canary_steps": [0, 50]}, "canary_steps[0]: expected a whole percentage 1-99, got 0"),
        ({"canary_steps": [50, 100]}, "canary_steps[1]: expected a whole percentage 1-99, got 100"),
        ({"canary_steps": "25"}, "canary_steps: expected a list of percentages like [2, 25, 75]"),
        ({"router.port": 80}, "router.port: expected an unprivileged port 1024-65535, got 80"),
        ({"router.port": "18080"}, "router.port: expected an unprivileged port 1024-65535, got '18080'"),
        (
            {"router.green_port": 13001},
            "router: port, preview_port, blue_port and green_port must all differ",
        ),
        (
            {"router.ports": 1},
            "router.ports: unknown field; allowed: port, preview_port, blue_port, green_port",
        ),
        ({"router": None}, "router: expected a mapping of fields"),
        ({"checks.latency.p95_ms": "fast"}, "checks.latency.p95_ms: expected a number >= 0, got 'fast'"),
        ({"checks.latency.p95_ms": True}, "checks.latency.p95_ms: expected a number >= 0, got True"),
        ({"checks.latency.p95_ms": float("nan")}, "checks.latency.p95_ms: expected a number >= 0, got nan"),
        (
            {"checks.latency.concurrency": 2.5},
            "checks.latency.concurrency: expected a whole number >= 1, got 2.5",
        ),
        (
            {"checks.latency.concurrency": 0},
            "checks.latency.concurrency: expected a whole number >= 1, got 0",
        ),
        ({"checks.gate": "yes"}, "checks.gate: expected true or false, got 'yes'"),
        ({"checks.post_switch.windows": 3}, "checks.post_switch.windows: unknown field; allowed: window_s,"),
        ({"checks.latency": None}, "checks.latency: expected a mapping of fields"),
        (
            {"colour": "blue"},
            "colour: unknown field; allowed: environment, live, colors, traffic, canary_steps",
        ),
        ({"live": "red", "environment": ""}, "environment: expected a non-empty string, got '' (and 1 more)"),
        (
            {"signed_by": "keys/release.asc"},
            "colors.blue runs a bento, not an image, and signed_by asks for signed images",
        ),
    ],
)
def test_state__bad_document_fails_naming_the_field_and_the_fix(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(state.StateError, match=re.escape(message)) as caught:
        state.parse(patched(changes))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("field", leaves(FULL))
def test_state__every_field_rejects_a_wrong_type_in_its_own_words(field: str) -> None:
    with pytest.raises(state.StateError, match=rf"^{re.escape(field)}: expected [^\n]+, got \[\]$"):
        state.parse(patched({field: []}, FULL))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("live: [unclosed", "production.yaml: not valid YAML"),
        ("- blue", "production.yaml: expected a mapping of fields"),
    ],
)
def test_state__bad_file_names_the_file(tmp_path: Path, document: str, message: str) -> None:
    path = tmp_path / "production.yaml"
    path.write_text(document)
    with pytest.raises(state.StateError, match=re.escape(message)):
        state.load(path)


def test_state__missing_file_says_where_the_format_is(tmp_path: Path) -> None:
    with pytest.raises(state.StateError, match=r"missing\.yaml: desired-state file not found \(see deploy/"):
        state.load(tmp_path / "missing.yaml")


def test_state__promotion_edit_round_trips(tmp_path: Path) -> None:
    desired = state.parse(valid())
    promoted = state.with_release(desired, state.Release("svc:two", "2"))
    assert promoted.live == "green"
    assert promoted.traffic == {"blue": 0, "green": 100}
    assert promoted.release("blue") == desired.release("blue")
    path = state.dump(promoted, tmp_path / "production.yaml", "promote")
    assert state.load(path) == promoted
    assert yaml.safe_load(path.read_text())["colors"]["green"] == {"bento": "svc:two", "model_version": "2"}


def test_state__dump_keeps_the_shipped_layout(tmp_path: Path) -> None:
    shipped = PROJECT_ROOT / "deploy" / "production.yaml"
    path = state.dump(state.load(shipped), tmp_path / "production.yaml", "promote")
    text = path.read_text()
    assert text.startswith(state.HEADER.format(environment="production", session="promote"))
    assert list(yaml.safe_load(text)) == list(yaml.safe_load(shipped.read_text()))
    assert yaml.safe_load(text) == yaml.safe_load(shipped.read_text())


def test_state__a_promotion_edit_changes_only_the_lines_it_must_and_keeps_every_comment(
    tmp_path: Path,
) -> None:
    """The promotion pull request's diff: the release, the live color and the traffic, nothing else."""
    edited = tmp_path / "production.yaml"
    shipped = (PROJECT_ROOT / "deploy" / "production.yaml").read_text()
    edited.write_text(shipped)
    promoted = state.with_release(state.load(edited), state.Release("svc:two", "2"))
    state.dump(promoted, edited, "promote")

    after = edited.read_text()
    assert state.load(edited) == promoted
    changed = [
        line
        for line in difflib.unified_diff(shipped.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert all(re.match(r"^[+-]\s*(live|blue|green|bento|model_version)\b", line) for line in changed), (
        changed
    )
    assert [c for c in shipped.splitlines() if "#" in c and c.strip().startswith("#")] == [
        c for c in after.splitlines() if "#" in c and c.strip().startswith("#")
    ]
    assert after.count("#") >= shipped.count("#") - 2  # at most the two replaced colors' example notes


NAMES = st.text(st.characters(categories=["L", "N", "P", "S"], include_characters=" "), min_size=1).filter(
    str.strip
)
RELEASES = st.fixed_dictionaries({"bento": NAMES, "model_version": NAMES | st.integers(0, 10**6)})
AMOUNTS = st.integers(0, 10**6) | st.floats(0, 1e6)
COUNTS = st.integers(0, 10**6)
LATENCY = st.fixed_dictionaries(
    {},
    optional={
        "p95_ms": AMOUNTS,
        "p99_ms": AMOUNTS,
        "concurrency": st.integers(1, 64),
        "min_requests": COUNTS,
        "relative_to_live": AMOUNTS,
        "cap_p95_ms": AMOUNTS,
        "duration_s": AMOUNTS,
        "rows_per_request": COUNTS,
    },
)
POST_SWITCH = st.fixed_dictionaries(
    {},
    optional={
        "window_s": AMOUNTS,
        "max_error_rate": AMOUNTS,
        "p95_ms": AMOUNTS,
        "probe_concurrency": COUNTS,
        "min_requests": COUNTS,
    },
)
CHECKS = st.fixed_dictionaries(
    {},
    optional={
        "gate": st.booleans(),
        "readiness_timeout_s": AMOUNTS,
        "warm_up_requests": COUNTS,
        "latency": LATENCY,
        "schemathesis_examples": COUNTS,
        "schemathesis_checks": st.sampled_from(
            ["all", "not_a_server_error", "status_code_conformance,not_a_server_error"]
        ),
        "parity_tolerance": AMOUNTS,
        "post_switch": POST_SWITCH,
    },
)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """Any valid desired-state document: releases only where traffic goes, live carrying the most."""
    live = draw(st.sampled_from(state.COLORS))
    live_release = draw(st.none() | RELEASES)
    idle_release = draw(st.none() | RELEASES) if live_release else None
    idle_share = draw(st.integers(0, 50)) if idle_release or not live_release else 0
    ports = draw(st.lists(st.integers(1024, 65535), min_size=4, max_size=4, unique=True))
    return {
        "environment": draw(NAMES),
        "live": live,
        "colors": {live: live_release, state.other(live): idle_release},
        "traffic": {live: 100 - idle_share, state.other(live): idle_share},
        "canary_steps": draw(st.lists(st.integers(1, 99), unique=True).map(sorted)),
        "router": dict(zip(["port", "preview_port", "blue_port", "green_port"], ports, strict=True)),
        "checks": draw(CHECKS),
    }


FILE_SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FILE_SETTINGS
@given(document=documents())
def test_state__any_valid_document_survives_dump_and_load(tmp_path: Path, document: dict[str, Any]) -> None:
    desired = state.parse(document)
    path = state.dump(desired, tmp_path / "production.yaml", "promote")
    assert state.load(path) == desired
    assert state.dump(state.load(path), tmp_path / "again.yaml", "promote").read_text() == path.read_text()


@FILE_SETTINGS
@given(document=documents(), release=RELEASES)
def test_state__promoting_any_state_puts_the_release_live_and_keeps_the_previous_warm(
    tmp_path: Path, document: dict[str, Any], release: dict[str, Any]
) -> None:
    desired = state.parse(document)
    candidate = state.Release(release["bento"], str(release["model_version"]))
    promoted = state.with_release(desired, candidate)
    assert (promoted.live, promoted.release(promoted.live)) == (desired.idle, candidate)
    assert promoted.release(desired.live) == desired.release(desired.live)
    assert promoted.traffic == {desired.idle: 100, desired.live: 0}
    assert state.load(state.dump(promoted, tmp_path / "production.yaml", "promote")) == promoted


def test_state__a_release_with_its_image_round_trips_and_one_without_reads_as_before(tmp_path: Path) -> None:
    desired = state.parse(valid())
    promoted = state.with_release(desired, state.Release("svc:two", "2", "ghcr.io/o/svc:two"))
    path = state.dump(promoted, tmp_path / "production.yaml", "promote")
    assert state.load(path) == promoted
    assert "image: ghcr.io/o/svc:two" in path.read_text()
    assert path.read_text().count("image:") == 1  # the release without one has no `image: null`


def test_state__a_release_reads_as_its_bento_and_model_in_reports_and_logs() -> None:
    release = state.Release("svc:abc", "3", "registry.example/svc@sha256:" + "0" * 64)
    assert f"green ({release})" == "green (svc:abc (model v3))"
    assert "Release(" not in f"{release}"


DIGEST_A, DIGEST_B = "a" * 64, "b" * 64


def scores(version_metric: float = 0.8, digest: str = DIGEST_A) -> state.Scores:
    return state.Scores({"f1_macro": version_metric, "accuracy": 0.9}, 150, digest)


def test_state__a_promotion_records_the_release_s_scores_and_keeps_only_those_its_colors_serve(
    tmp_path: Path,
) -> None:
    first = state.with_release(state.parse(valid()), state.Release("svc:two", "2"), scores(0.8))
    second = state.with_release(first, state.Release("svc:three", "3"), scores(0.85, DIGEST_B))
    assert set(first.scores) == {"2"}  # v1 has none recorded: nothing is made up for it
    assert second.live_scores() == ("3", scores(0.85, DIGEST_B))
    assert set(second.scores) == {"2", "3"}  # v2 stays warm on green: a rollback finds its scores
    third = state.with_release(second, state.Release("svc:four", "4"))
    assert set(third.scores) == {"3"}  # v2 left the colors, and v4 was proposed without scores
    assert third.live_scores() == ("4", None)
    path = state.dump(second, tmp_path / "production.yaml", "promote")
    assert state.load(path) == second
    assert yaml.safe_load(path.read_text())["scores"]["3"] == {
        "metrics": {"f1_macro": 0.85, "accuracy": 0.9},
        "test_rows": 150,
        "test_digest": DIGEST_B,
    }
    assert state.rolled_back(second).live_scores() == ("2", scores(0.8))


def test_state__a_file_that_records_no_scores_is_written_without_the_section(tmp_path: Path) -> None:
    promoted = state.with_release(state.parse(valid()), state.Release("svc:two", "2"))
    assert "scores" not in state.dump(promoted, tmp_path / "staging.yaml", "deploy-staging").read_text()


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"metrics": {}, "test_rows": 1, "test_digest": DIGEST_A}, "scores.1.metrics: expected at least one"),
        (
            {"metrics": {"f1_macro": float("nan")}, "test_rows": 1, "test_digest": DIGEST_A},
            "scores.1.metrics.f1_macro: expected a finite number, got nan",
        ),
        (
            {"metrics": {"F1": 0.5}, "test_rows": 1, "test_digest": DIGEST_A},
            "scores.1.metrics.F1: expected a metric name such as f1_macro, got 'F1'",
        ),
        (
            {"metrics": {"f1_macro": 0.5}, "test_rows": 0, "test_digest": DIGEST_A},
            "scores.1.test_rows: expected a whole number of rows >= 1, got 0",
        ),
        (
            {"metrics": {"f1_macro": 0.5}, "test_rows": 1, "test_digest": "abc"},
            "scores.1.test_digest: expected the test split's SHA-256 in 64 lowercase hex digits",
        ),
        (
            {"metrics": {"f1_macro": 0.5}, "test_rows": 1},
            "scores.1.test_digest: required field is missing; add it",
        ),
    ],
)
def test_state__a_bad_scores_record_fails_naming_the_field(record: dict[str, Any], message: str) -> None:
    with pytest.raises(state.StateError, match=re.escape(message)):
        state.parse(valid() | {"scores": {"1": record}})


GATE = {
    "candidate_version": "7",
    "candidate_metrics": {"f1_macro": 0.8, "roc_auc": None},  # undefined ROC AUC was written as null
    "test_rows": 150,
    "test_digest": DIGEST_A,
}


@pytest.mark.parametrize(
    ("gate", "version", "expected"),
    [
        (GATE, "7", state.Scores({"f1_macro": 0.8}, 150, DIGEST_A)),
        (GATE, "8", None),  # compare scored another model: nothing recorded for this one
        ({"candidate_version": "7", "candidate": 0.8}, "7", None),  # a gate report from before these fields
    ],
)
def test_state__scores_of_reads_the_compare_report_for_that_model_only(
    gate: dict[str, Any], version: str, expected: state.Scores | None
) -> None:
    assert state.scores_of(gate, version) == expected


def test_state__scores_of_a_broken_compare_report_is_one_line() -> None:
    with pytest.raises(state.StateError, match=r"^gate\.json: test_digest: expected the test split's SHA-"):
        state.scores_of(GATE | {"test_digest": "zz"}, "7")


def test_state__the_first_recorded_scores_come_with_a_comment_saying_what_they_are(tmp_path: Path) -> None:
    edited = tmp_path / "production.yaml"
    edited.write_text((PROJECT_ROOT / "deploy" / "production.yaml").read_text())
    promoted = state.with_release(state.load(edited), state.Release("svc:two", "2"), scores())
    state.dump(promoted, edited, "promote")
    state.dump(state.with_release(promoted, state.Release("svc:three", "3"), scores()), edited, "promote")

    text = edited.read_text()
    assert state.load(edited).scores.keys() == {"2", "3"}
    assert text.count("# Held-out test scores per model version, written by the release that proposed") == 1
    assert text.index("# Held-out test scores") < text.index("\nscores:")
    fourth = state.with_release(state.load(edited), state.Release("svc:4", "4"))
    emptied = state.with_release(fourth, state.Release("svc:5", "5"))
    state.dump(emptied, edited, "promote")  # both recorded models left the colors: the section stays, empty
    state.dump(state.with_release(emptied, state.Release("svc:6", "6"), scores()), edited, "promote")
    assert edited.read_text().count("# Held-out test scores") == 1
    assert state.load(edited).scores.keys() == {"6"}
