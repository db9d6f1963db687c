"""CI dashboard rendering: sections appear for the reports that exist, and only for them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.reports import charts, ci_page, jsonfile, tables

VALIDATION = {
    "path": "data/sample/customers.csv",
    "rows": 500,
    "violations": [],
    "drift": [{"column": "tenure", "kind": "ks", "statistic": 0.04, "threshold": 0.25, "drifted": False}],
    "passed": True,
}
TRAIN = {
    "run_id": "abc123",
    "model_name": "m",
    "model_version": "3",
    "registered_as_candidate": True,
    "metrics": {"f1_macro": 0.81, "accuracy": 0.85},
    "cv_mean": 0.8,
    "data_digest": "d1",
    "data_path": "data/sample/customers.csv",
    "git_commit": "f00",
    "estimator": "RandomForestClassifier",
}
GATE = {
    "promote": True,
    "reason": "candidate is better by 0.0200 (margin 0.0)",
    "metric": "f1_macro",
    "candidate": 0.81,
    "champion": 0.79,
    "margin": 0.0,
    "candidate_version": "3",
    "champion_version": "2",
}
JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" failures="1"
 skipped="2" tests="10" time="3.5"></testsuite></testsuites>"""


def write(root: Path, relative: str, payload: object) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))


def test_render__no_reports_says_so(tmp_path: Path) -> None:
    page = ci_page.render(tmp_path / "reports")

    assert page.startswith(ci_page.MARKER)
    assert "No stage reports" in page


def test_render__validation_and_training_sections(tmp_path: Path) -> None:
    write(tmp_path, "validation/validation.json", VALIDATION)
    write(tmp_path, "training/train.json", TRAIN)
    write(tmp_path, "training/gate.json", GATE)

    page = ci_page.render(tmp_path)

    assert "### Data validation: passed ✅" in page
    assert "| `tenure`" not in page  # drift rows are plain cells, not code spans
    assert "| tenure | ks | 0.04 | 0.25 | no |" in page
    assert "#### Gate: PROMOTE ✅" in page
    assert "| model version | v2 | v3 |  |" in page
    assert "| f1_macro (same held-out rows) | 0.79 | 0.81 | +0.0200 (margin 0) |" in page
    assert "| git_commit | f00 |" in page
    assert "the closest, tenure, is at 16.0%." in page  # 0.04 of 0.25: no chart of it
    assert "xychart-beta" not in page  # nor of the gate: the table's change is the number that decides


def test_render__gate_without_champion_says_so(tmp_path: Path) -> None:
    write(
        tmp_path,
        "training/gate.json",
        GATE | {"champion": None, "champion_version": None, "reason": "no champion yet"},
    )

    page = ci_page.render(tmp_path)

    assert "| model version | — | v3 |  |" in page
    assert "no live model yet" in page


RECORDED = GATE | {  # a pull request's gate: no champion in its registry, production's recorded scores
    "champion_source": "recorded",
    "champion_version": "7",
    "champion_test_rows": 150,
    "champion_test_digest": "ab" * 32,
    "test_rows": 150,
    "test_digest": "ab" * 32,
}


@pytest.mark.parametrize(
    ("ours", "rows", "sentence"),
    [
        (
            {},
            "same held-out rows",
            "this job's 150 test rows are the same rows (SHA-256 abababababab…).",
        ),
        (
            {"test_rows": 160, "test_digest": "cd" * 32},
            "other held-out rows",
            "(SHA-256 abababababab…); this job's 160 test rows are other rows (SHA-256 cdcdcdcdcdcd…): the "
            "data or its split changed, so the change is not the models' alone.",
        ),
    ],
)
def test_render__gate_against_recorded_scores_says_whose_and_on_which_rows(
    tmp_path: Path, ours: dict[str, object], rows: str, sentence: str
) -> None:
    write(tmp_path, "training/gate.json", RECORDED | ours)

    page = ci_page.render(tmp_path)

    assert "|  | live (recorded scores) | proposed (candidate) | change |" in page
    assert "| model version | v7 | v3 (this job's registry) |  |" in page  # two registries' numbers
    assert f"| f1_macro ({rows}) | 0.79 | 0.81 | +0.0200 (margin 0) |" in page
    assert "Live column: the held-out scores `deploy/production.yaml` records for v7, the model" in page
    assert "production serves, measured by the release that proposed it on 150 test rows" in page
    assert sentence in page


def test_render__gate_with_a_live_model_but_no_recorded_score_says_so(tmp_path: Path) -> None:
    write(
        tmp_path,
        "training/gate.json",
        GATE | {"champion": None, "champion_version": "7", "reason": "no champion to compare with: ..."},
    )

    page = ci_page.render(tmp_path)

    assert "| model version | v7 | v3 |  |" in page
    assert "no live score recorded" in page
    assert "no live model yet" not in page  # production does serve one
    assert "Live column" not in page  # nothing was read from production's file


def test_render__junit_counts(tmp_path: Path) -> None:
    write(tmp_path, "tests/junit.xml", JUNIT)

    page = ci_page.render(tmp_path)

    assert "### Tests: FAILED ❌" in page
    assert "| passed | 7 |" in page


def test_render__failing_tests_are_the_verdict(tmp_path: Path) -> None:
    write(tmp_path, "tests/junit.xml", JUNIT)

    assert "**❌ Did not pass: Tests**" in ci_page.render(tmp_path)


@pytest.mark.parametrize("broken", [True, False])
def test_render__ruff_and_mypy_findings_reach_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: bool
) -> None:
    """The real linters' own output files, as `nox -s lint typecheck` writes them."""
    (tmp_path / "code.py").write_text('import os\n\nx: int = "a"\n' if broken else "x: int = 1\n")
    lint = tmp_path / "reports" / "lint"
    lint.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    tools = Path(sys.executable).parent
    ruff = [
        str(tools / "ruff"),
        "check",
        "--isolated",
        "--select",
        "F401",
        "--exit-zero",
        "--output-format=json",
    ]
    subprocess.run([*ruff, f"--output-file={lint / 'ruff.json'}", "code.py"], check=True, capture_output=True)
    mypy = [str(tools / "mypy"), "--no-incremental", "--junit-xml", str(lint / "mypy.xml"), "code.py"]
    subprocess.run(mypy, check=False, capture_output=True)

    page = ci_page.render(tmp_path / "reports")

    if broken:
        assert "**❌ Did not pass: Lint**" in page
        assert "### Lint (ruff + mypy): FAILED ❌, 2 finding(s)" in page
        assert "| ruff | code.py:1 | F401 | `os` imported but unused |" in page
        assert (
            '| mypy | code.py:3 | assignment | Incompatible types in assignment (expression has type "str"'
            in page
        )
    else:
        assert "**✅ Every stage in this job passed.**" in page
        assert "### Lint (ruff + mypy): passed ✅" in page


def test_render__unknown_report_gets_tables_and_percentile_chart(tmp_path: Path) -> None:
    checks = {
        "passed": False,
        "latency_ms": {"p50": 3.1, "p95": 9.5, "p99": 20.0},
        "checks": [{"name": "latency", "passed": True}, {"name": "parity", "passed": False}],
    }
    write(tmp_path, "staging/checks.json", checks)

    page = ci_page.render(tmp_path)

    assert "### Staging: checks" in page
    assert "| latency_ms.p95 | 9.5 |" in page
    assert "| parity | FAIL ❌ |" in page
    assert 'x-axis ["p50", "p95", "p99"]' in page


def test_render__percentiles_inside_check_records_are_charted(tmp_path: Path) -> None:
    checks = {
        "results": [
            {"name": "latency", "passed": True, "numbers": {"rps": 107.1, "p50_ms": 3.0, "p95_ms": 9.0}}
        ]
    }
    write(tmp_path, "checks/staging.json", checks)

    page = ci_page.render(tmp_path)

    assert 'title "latency percentiles"' in page
    assert 'x-axis ["p50_ms", "p95_ms"]' in page


def chart_labels(page: str) -> list[list[str]]:
    """The category labels of each Mermaid chart on a page, in order."""
    return [json.loads(f"[{found}]") for found in re.findall(r"^    x-axis \[(.*)\]$", page, re.MULTILINE)]


def drift_rows(statistics: list[float], threshold: float = 0.1) -> list[dict[str, object]]:
    """Validation drift rows, one column per statistic, named ``column_0``, ``column_1``..."""
    return [
        {
            "column": f"column_{i}",
            "kind": "ks",
            "statistic": s,
            "threshold": threshold,
            "drifted": s > threshold,
        }
        for i, s in enumerate(statistics)
    ]


def test_render__a_wide_drift_table_charts_only_the_columns_nearest_their_threshold(tmp_path: Path) -> None:
    statistics = [0.001 * i for i in range(30)]  # column_29 is nearest: 145% of its threshold
    write(tmp_path, "validation/validation.json", VALIDATION | {"drift": drift_rows(statistics, 0.02)})

    page = ci_page.render(tmp_path)

    assert chart_labels(page) == [[f"column_{i}" for i in range(29, 21, -1)]]  # nearest first
    assert all(f"| column_{i} | ks |" in page for i in range(30))  # the table keeps every column
    assert "(8 nearest of 30 columns)" in page
    assert "    bar [145, 140, 135, 130, 125, 120, 115, 110]" in page  # % of each column's threshold
    assert "    line [100, 100, 100, 100, 100, 100, 100, 100]" in page  # the threshold itself
    assert "xychart-beta horizontal" in page  # one label a row: none overlap at any count


def test_drift_chart__ranks_columns_by_their_own_threshold_not_by_raw_distance() -> None:
    rows = [
        {"column": "contract", "statistic": 0.12, "threshold": 0.3},  # 40% of its threshold
        {"column": "tenure", "statistic": 0.06, "threshold": 0.1},  # 60%: nearer, though smaller
        {"column": "region", "statistic": None, "threshold": 0.3},  # undefined (NaN in the JSON)
    ]

    chart = charts.drift_chart("Drift", rows) or ""

    assert chart_labels(chart) == [["tenure", "contract"]]
    assert "    bar [60, 40]" in chart


def test_drift_chart__nothing_to_chart_without_numbers() -> None:
    assert charts.drift_chart("Drift", [{"column": "a", "statistic": None, "threshold": 0.1}]) is None


def test_short_labels__long_names_are_cut_in_the_middle_and_stay_distinct() -> None:
    names = ["monthly_charges_mean_2023", "monthly_charges_mean_2024", "monthly_charges_mean_2024", "tenure"]

    labels = charts.short_labels(names)

    assert labels == ["monthly_charg…n_2023", "monthly_charg…n_2024", "monthly_charg…n_2 #2", "tenure"]
    assert all(len(label) <= charts.LABEL_CHARS for label in labels)
    assert len(set(labels)) == len(labels)  # Mermaid draws equal labels as one bar


def test_render__no_chart_names_more_than_chart_bars_labels(tmp_path: Path) -> None:
    latency = {f"p{n}": float(n) for n in range(10, 99, 8)}  # twelve percentiles
    write(tmp_path, "staging/load.json", {"latency_ms": latency})
    write(tmp_path, "monitoring/drift.json", {"columns": drift_rows([0.05 * i for i in range(20)])})

    drawn = chart_labels(ci_page.render(tmp_path))

    assert len(drawn) == 2
    assert all(len(labels) <= charts.CHART_BARS for labels in drawn)


def test_render__unreadable_report_is_skipped(tmp_path: Path) -> None:
    write(tmp_path, "staging/checks.json", "{not json")

    assert "No stage reports" in ci_page.render(tmp_path)


@pytest.mark.parametrize(
    ("monitoring", "expected"),
    [
        ({"columns": [{"column": "a", "drifted": False}]}, "false"),
        ({"columns": [{"column": "a", "drifted": True}]}, "true"),
        ({"drift_detected": True}, "true"),
    ],
)
def test_signals__drift_from_monitoring_report(
    tmp_path: Path, monitoring: dict[str, object], expected: str
) -> None:
    write(tmp_path, "monitoring/drift.json", monitoring)

    assert ci_page.signals(tmp_path) == {"drift": expected, "alerts": "drift" if expected == "true" else ""}


def test_render__a_monitoring_alert_outranks_the_gate_and_unreadable_files_are_not_drift(
    tmp_path: Path,
) -> None:
    """Given a promoted gate and a monitoring report whose only finding is an unreadable profile;
    when the page and the outputs are made; then the first line names the unreadable file's alert,
    and the workflow's outputs say no drift (no retraining) but an ``unreadable`` alert."""
    write(tmp_path, "training/gate.json", GATE)
    alerts = ["profiles: 1 unreadable files skipped"]
    write(
        tmp_path,
        "monitoring/monitor.json",
        {"drift_detected": False, "alert_kinds": ["unreadable"], "alerts": alerts},
    )

    first = ci_page.render(tmp_path).split("\n\n")[2]

    assert first.startswith(
        "**⚠️ Unreadable production profiles** (no drift): profiles: 1 unreadable files skipped"
    )
    assert ci_page.signals(tmp_path) == {"promote": "true", "drift": "false", "alerts": "unreadable"}


def test_publish__appends_to_step_summary_and_sets_outputs(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    write(root, "training/gate.json", GATE | {"promote": False})
    summary, outputs = tmp_path / "summary.md", tmp_path / "output.txt"
    summary.write_text("earlier step\n")

    path = ci_page.publish(root, {"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(outputs)})

    assert path == root / "summary.md"
    assert summary.read_text().startswith("earlier step\n" + ci_page.MARKER)
    assert outputs.read_text() == "promote=false\n"


def test_publish__outside_ci_only_writes_the_file(tmp_path: Path) -> None:
    path = ci_page.publish(tmp_path / "reports", {})

    assert path.read_text().startswith(ci_page.MARKER)


def test_write_json__undefined_metrics_become_null_so_strict_readers_parse_it(tmp_path: Path) -> None:
    payload = {"metrics": {"roc_auc": float("nan"), "f1": 0.5}, "rows": [float("inf"), 1]}
    path = jsonfile.write_json(payload, tmp_path / "deep" / "train.json")
    text = path.read_text()
    assert "NaN" not in text
    assert "Infinity" not in text
    assert json.loads(text) == {"metrics": {"roc_auc": None, "f1": 0.5}, "rows": [None, 1]}


def test_render__a_failed_stage_is_the_first_line_with_its_error_and_remedy(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    write(root, "training/gate.json", GATE)
    jsonfile.record_failure(
        root, "check-staging", "staging answered 503: start it with `nox -s deploy-staging`"
    )
    page = ci_page.render(root)
    first = page.split("\n\n")[2]  # after the marker and the title
    assert first.startswith("**❌ check-staging failed**")
    assert "`nox -s deploy-staging`" in first
    assert "### Failed stages" in page


def test_render__a_report_that_did_not_pass_is_the_verdict_and_no_status_is_inverted(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    write(root, "staging/checks.json", {"passed": False, "checks": [{"name": "latency", "passed": False}]})
    write(root, "monitoring/monitor.json", {"drifted": True, "started": 1_764_300_000})
    page = ci_page.render(root)
    assert page.split("\n\n")[2] == "**❌ Did not pass: Staging: checks**: the sections below say what failed"
    assert "| drifted | yes |" in page  # a signal, not a green tick
    assert "| passed | FAIL ❌ |" in page
    assert "| started | 2025-11-28 03:20:00 UTC |" in page
    assert "✅" not in page


def test_render__a_stage_s_own_markdown_is_its_section_once(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    write(root, "staging/checks.json", {"passed": True, "latency": {"p50": 3.0, "p95": 9.0}})
    write(root, "staging/checks.md", "### Staging checks: passed\n\nlatency p95 9 ms within 200 ms")
    page = ci_page.render(root)
    assert page.count("latency p95 9 ms") == 1
    assert "| field | value |" not in page  # no generic table beside it


@pytest.mark.slow
def test_train__a_refused_stage_leaves_its_failure_for_the_summary(tmp_path: Path) -> None:
    overrides = [f"training.report_dir={tmp_path}/reports/training", f"hydra.run.dir={tmp_path}/hydra"]
    result = subprocess.run(
        ["train", f"data.path={tmp_path}/absent.csv", *overrides], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    page = ci_page.render(tmp_path / "reports")
    assert page.split("\n\n")[2].startswith("**❌ train failed**: ")
    assert "absent.csv: no such file; check data.path" in page


# Each workflow event's usual refusal, produced by the real command on a fresh checkout: the
# summary's first line must name the step, say what went wrong and how to fix it.
REFUSALS = [
    ("release", ["deploy", "check", "staging"], "deploy-check", "deploy one first (`nox -s deploy-staging`)"),
    ("rollback", ["deploy", "rollback", "production"], "deploy-rollback", "and run `nox -s promote`"),
    ("monitor", ["monitor"], "monitor", "run `nox -s train` and promote a model first"),
]


@pytest.mark.parametrize(("event", "command", "stage", "remedy"), REFUSALS, ids=[r[0] for r in REFUSALS])
@pytest.mark.slow
def test_cli__each_event_s_refusal_is_the_summary_s_first_line_with_its_remedy(
    tmp_path: Path, event: str, command: list[str], stage: str, remedy: str
) -> None:
    (tmp_path / "deploy").mkdir()
    for name in ("staging", "production"):  # the desired state of a fresh bake: nothing released yet
        (tmp_path / "deploy" / f"{name}.yaml").write_text(Path(f"deploy/{name}.yaml").read_text())
    isolated = [
        f"training.report_dir={tmp_path}/reports/training",
        f"deploy.desired_dir={tmp_path}/deploy",
        f"deploy.state_dir={tmp_path}/state",
        f"deploy.report_dir={tmp_path}/reports/checks",
        f"monitoring.report_dir={tmp_path}/reports/monitoring",
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
    ]
    if command[0] == "monitor":
        isolated.append(f"hydra.run.dir={tmp_path}/hydra")
    result = subprocess.run([*command, *isolated], capture_output=True, text=True, check=False)
    assert result.returncode == 1, result.stderr
    first = ci_page.render(tmp_path / "reports").split("\n\n")[2]
    assert first.startswith(f"**❌ {stage} failed**: ")
    assert remedy in first
    assert "Traceback" not in result.stderr


def test_render__the_sbom_is_one_line_not_a_table_of_every_package(tmp_path: Path) -> None:
    write(
        tmp_path,
        "sbom.cdx.json",
        {"bomFormat": "CycloneDX", "components": [{"name": f"p{i}"} for i in range(130)]},
    )
    page = ci_page.render(tmp_path)
    assert "130 packages (CycloneDX) in `sbom.cdx.json`" in page
    assert "| p129 |" not in page


def test_render__the_request_body_is_json_not_a_table_a_column_per_feature(tmp_path: Path) -> None:
    row = {f"feature_{i}": i for i in range(12)} | {"customer_id": "C001376"}
    write(tmp_path, "request.json", {"rows": [row]})
    page = ci_page.render(tmp_path)
    assert f"(`curl -d @{tmp_path.name}/request.json`)" in page
    assert '"customer_id": "C001376"' in page.split("```json")[1]
    assert "| feature_0 |" not in page


def promotion_report(status: str, live: str, detail: str) -> dict[str, object]:
    """A promotion/rollback report as ``deploy`` writes it (decisions end with the result)."""
    decisions = [
        {"at": 1.0, "step": "gate green", "outcome": "passed"},
        {"at": 2.0, "step": "result", "outcome": status, "detail": detail},
    ]
    return {
        "status": status,
        "matches_desired_state": status != "rolled_back",
        "live": live,
        "decisions": decisions,
    }


@pytest.mark.parametrize(
    ("status", "live", "detail", "first"),
    [
        ("promoted", "green", "", "**✅ Promotion of production: promoted**, `green` serves"),
        (
            "refused",
            "blue",
            "latency p95 900 ms > 200 ms",
            "**⛔ Promotion of production: refused**, `blue` still serves: latency p95 900 ms > 200 ms",
        ),
        (
            "rolled_back",
            "blue",
            "operator asked: bad answers",
            "**↩️ Promotion of production: rolled back**, `blue` serves: operator asked: bad answers",
        ),
    ],
    ids=["promoted", "refused", "rolled-back"],
)
def test_render__a_promotion_s_outcome_is_the_verdict_and_a_rollback_is_not_a_failure(
    tmp_path: Path, status: str, live: str, detail: str, first: str
) -> None:
    write(tmp_path, "checks/promotion-production.json", promotion_report(status, live, detail))
    page = ci_page.render(tmp_path)
    assert page.split("\n\n")[2] == first
    assert "FAIL" not in page
    assert "| matches_desired_state | " in page


def test_render__the_training_section_has_per_class_metrics_and_the_confusion_matrix(tmp_path: Path) -> None:
    breakdown = {
        "per_class": {"no": {"precision": 0.9, "recall": 0.8, "f1": 0.85, "rows": 450}},
        "confusion": {"classes": ["no", "yes"], "rows": [[360, 90], [20, 130]]},
    }
    write(tmp_path, "training/train.json", TRAIN | {"breakdown": breakdown})
    page = ci_page.render(tmp_path)
    assert "| no | 0.9 | 0.8 | 0.85 | 450 |" in page
    assert "| actual \\ predicted | no | yes |" in page
    assert "| yes | 20 | 130 |" in page


def test_render__metrics_per_segment_are_a_table_per_column(tmp_path: Path) -> None:
    segments = {"region": {"north": {"rows": 300, "f1_macro": 0.7}, "south": {"rows": 12, "f1_macro": 0.4}}}
    write(tmp_path, "training/train.json", TRAIN | {"breakdown": {"segments": segments}})
    page = ci_page.render(tmp_path)
    assert "| region (test split) | rows | f1_macro |" in page
    assert "| south | 12 | 0.4 |" in page  # the rows say how far a small segment's number goes


def test_render__a_release_s_verdict_is_the_gate_not_staging_s_deploy(tmp_path: Path) -> None:
    write(tmp_path, "training/gate.json", GATE)
    write(tmp_path, "checks/promotion-staging.json", promotion_report("promoted", "green", ""))
    assert ci_page.render(tmp_path).split("\n\n")[2].startswith("**Gate: promote ✅**")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (3000, "3,000"),
        (12345.6, "12,346"),
        (2.1e-231, "<0.0001"),
        (0.001333, "0.001333"),
        (0.81, "0.81"),
        (0.0, "0"),
    ],
)
def test_fmt__numbers_one_way_thousands_separated_never_in_e_notation(value: float, shown: str) -> None:
    assert tables.fmt(value) == shown


@pytest.mark.parametrize(
    ("value", "shown"), [(0.0, "p<0.001"), (2.1e-231, "p<0.001"), (0.0041, "p=0.004"), (0.031, "p=0.03")]
)
def test_p_value__says_what_the_test_says_without_false_precision(value: float, shown: str) -> None:
    assert tables.p_value(value) == shown


def test_versus__numbers_that_differ_never_print_equal() -> None:
    assert tables.versus(0.0704, 0.07) == ("0.0704", "0.0700")
    assert tables.versus(0.25, 0.1) == ("0.250", "0.100")
    assert tables.versus(0.07, 0.07) == ("0.070", "0.070")


def test_render__the_training_reference_monitoring_fetched_is_no_section_of_its_own(tmp_path: Path) -> None:
    write(tmp_path, "monitoring/monitor.json", {"drift_detected": False, "rows": 10})
    write(tmp_path, "monitoring/reference/reference.json", {"metrics": {"f1_macro": 0.81}, "rows": 3000})
    write(tmp_path, "monitoring/reference/model.json", {"name": "m", "version": "3"})

    page = ci_page.render(tmp_path)

    assert "reference" not in page.lower()
    assert "f1_macro" not in page  # the training metrics are the training section's, once
