"""Production monitoring: quiet on fresh traffic, and each simulated shift flags what moved."""

from __future__ import annotations

import dataclasses
import os
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from omegaconf import OmegaConf
from sklearn.metrics import roc_auc_score

from {{ cookiecutter.package_name }} import cli, profiling
from {{ cookiecutter.package_name }}.config import compose
from {{ cookiecutter.package_name }}.monitoring import columns, dashboards, labels, monitor, replay, window
from {{ cookiecutter.package_name }}.profiling import ProfileError
from {{ cookiecutter.package_name }}.reports import ci_page, jsonfile
from {{ cookiecutter.package_name }}.simulation import make_customers
from monitored import Fitted, configure, fit, replayed

FEATURES_MOVED_BY_COVARIATE_SHIFT = {"tenure_months", "monthly_charges", "internet_service"}
CLASSIFICATION = compose().task == "classification"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory, sample: pd.DataFrame) -> Fitted:
    return fit(tmp_path_factory.mktemp("reference"), sample)


@pytest.fixture(scope="module")
def reference_dir(fitted: Fitted) -> Path:
    return fitted.folder


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory, fitted: Fitted) -> dict[str, monitor.Comparison]:
    return {
        shift: replayed(tmp_path_factory.mktemp(shift), fitted, shift)
        for shift in ("none", "covariate", "label", "concept")
    }


def features_drifted(result: monitor.MonitorResult) -> set[str]:
    return {c.column for c in result.columns if c.role == "feature" and c.drifted}


def role_drifted(result: monitor.MonitorResult, role: str) -> bool:
    return any(c.drifted for c in result.columns if c.role == role)


@pytest.mark.slow
def test_monitor__traffic_without_drift_raises_no_alert(results: dict[str, monitor.Comparison]) -> None:
    result = results["none"].result
    assert result.alerts == []
    assert result.drift_detected is False
    assert result.rows == 2000
    assert result.performance is not None
    assert result.performance.labelled == 2000


@pytest.mark.parametrize(
    ("shift", "features", "prediction", "label", "concept"),
    [
        # shift       features that must drift              prediction  label   concept drift
        ("covariate", FEATURES_MOVED_BY_COVARIATE_SHIFT, True if CLASSIFICATION else None, None, False),
        ("label", set(), False, True, False if CLASSIFICATION else None),  # regression: error grows
        ("concept", set(), False, None, True),
    ],
)
def test_monitor__each_shift_flags_what_moved(
    results: dict[str, monitor.Comparison],
    shift: str,
    features: set[str],
    prediction: bool | None,
    label: bool | None,
    concept: bool | None,
) -> None:
    result = results[shift].result
    assert result.drift_detected
    assert features <= features_drifted(result)
    if not features:
        assert features_drifted(result) == set()
    if prediction is not None:  # regression: shorter tenure and higher charges offset each other
        assert role_drifted(result, "prediction") is prediction
    if label is not None:
        assert role_drifted(result, "label") is label
    if concept is not None:
        assert result.concept_drift is concept


def test_monitor__timeline_has_one_point_per_replayed_window(
    results: dict[str, monitor.Comparison],
) -> None:
    timeline = results["none"].result.timeline
    assert len(timeline) == 6
    assert sum(point["rows"] for point in timeline) == 2000
    summary = "shares" if CLASSIFICATION else "quantiles"
    assert all(summary in point for point in timeline)


def test_compare_columns__missing_values_type_change_and_new_category_are_alerts() -> None:
    reference = pd.DataFrame({"plan": ["a", "b"] * 500, "calls": np.arange(1000.0), "age": np.arange(1000)})
    current = reference.copy()
    current.loc[:299, "calls"] = np.nan
    current["age"] = current["age"].astype(str) + " years"
    current.loc[:99, "plan"] = "brand-new"
    roles = {name: "feature" for name in reference.columns}
    cfg = compose().monitoring
    found = columns.compare_columns(cfg, profiling.profile(reference), profiling.profile(current), roles)
    alerts = {c.column: " ".join(c.alerts) for c in found}
    assert "missing values 0.0% -> 30.0%" in alerts["calls"]
    assert "changed type numeric -> string" in alerts["age"]
    assert "new categories ['brand-new']" in alerts["plan"]


def test_compare_columns__values_outside_the_contract_are_alerts(sample: pd.DataFrame) -> None:
    # A unit bug (3 % of charges x1000) and a sign flip (5 % negative): each share is small enough
    # to leave the distribution test quiet at this size, and still names the column.
    cfg = compose()
    ranges = monitor.contract_ranges(cfg)
    current = sample.copy()
    current.loc[current.index[:90], "monthly_charges"] *= 1000
    current.loc[current.index[-150:], "total_charges"] *= -1
    roles = {"monthly_charges": "feature", "total_charges": "feature", "tenure_months": "feature"}
    found = columns.compare_columns(
        cfg.monitoring, profiling.profile(sample), profiling.profile(current), roles, ranges
    )
    by_name = {c.column: c for c in found}
    assert by_name["monthly_charges"].out_of_range == pytest.approx(0.03, abs=0.005)
    assert by_name["total_charges"].out_of_range == pytest.approx(0.05, abs=0.005)
    assert "of values outside the contract's" in " ".join(by_name["total_charges"].alerts)
    assert by_name["tenure_months"].out_of_range == 0.0
    assert not by_name["tenure_months"].alerts


@pytest.mark.parametrize(
    ("realised", "trained", "greater_is_better", "drop"),
    [(0.6, 0.8, True, 0.25), (0.9, 0.8, True, 0.0), (12.0, 10.0, False, 0.2), (8.0, 10.0, False, 0.0)],
)
def test_relative_drop__counts_only_getting_worse(
    realised: float, trained: float, greater_is_better: bool, drop: float
) -> None:
    assert labels.relative_drop(realised, trained, greater_is_better) == pytest.approx(drop)


def test_window_files__by_name_stamp_else_modification_time(tmp_path: Path) -> None:
    end = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    inside, outside = end - timedelta(hours=1), end - timedelta(hours=30)
    for when in (inside, outside):
        (tmp_path / f"{when:%Y%m%dT%H%M%S}-host-1-00001.bin").write_bytes(b"")
    unnamed = tmp_path / "worker-a.bin"
    unnamed.write_bytes(b"")
    os.utime(unnamed, (inside.timestamp(), inside.timestamp()))
    (tmp_path / ".20260301T110000-host.bin.partial").write_bytes(b"")
    found = window.window_files(tmp_path, end - timedelta(hours=24), end, {".bin"}, tmp_path)
    assert [p.name for p in found] == ["20260301T110000-host-1-00001.bin", "worker-a.bin"]


def test_monitor__object_store_window_reads_the_same_as_a_local_one(
    tmp_path: Path, fitted: Fitted, results: dict[str, monitor.Comparison]
) -> None:
    """Profiles and prediction logs written to and read from an fsspec store (``memory://``)."""
    location = f"memory://profiles-{uuid.uuid4().hex}"
    cfg = configure(
        tmp_path,
        fitted.folder,
        "monitoring.simulation.shift=covariate",
        f"monitoring.profile_dir={location}",
        f"monitoring.prediction_log_dir={location}",
    )
    replay.replay(cfg, predict=lambda rows: np.asarray(fitted.model.predict(rows)))
    remote, local = monitor.monitor(cfg).result, results["covariate"].result
    assert not (tmp_path / "profiles").exists()  # nothing went to a local folder by mistake
    assert (remote.files, remote.rows) == (local.files, local.rows)
    assert features_drifted(remote) == features_drifted(local)
    assert remote.performance == local.performance


def test_monitor__missing_profile_store_is_a_profile_error_naming_it(
    tmp_path: Path, reference_dir: Path
) -> None:
    cfg = configure(tmp_path, reference_dir)
    with pytest.raises(
        ProfileError, match=re.escape("profile store not found; check monitoring.profile_dir")
    ):
        monitor.monitor(cfg)


def test_monitor_stage__no_readable_profile_is_one_line_not_a_traceback(
    tmp_path: Path, reference_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-host-1-00001.bin").write_text(
        "not a profile"
    )
    cfg = configure(tmp_path, reference_dir)
    with pytest.raises(SystemExit) as exit_info:
        cli._monitor(OmegaConf.structured(cfg))
    error = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert error.startswith("[monitor] error: ")
    assert "no readable profiles in the window (1 unreadable: " in error
    assert "Traceback" not in error


BROKEN_FILES = {
    "zero-bytes": b"",
    "random-bytes": bytes(range(256)) * 4,
    "text": b"not a profile",
}


def test_monitor__unreadable_files_are_skipped_and_named(tmp_path: Path, fitted: Fitted) -> None:
    good = replayed(tmp_path, fitted, "none").result
    stamp = f"{datetime.now(UTC) - timedelta(minutes=1):%Y%m%dT%H%M%S}"
    for name, content in BROKEN_FILES.items():
        (tmp_path / "profiles" / f"{stamp}-host-9-{name}.bin").write_bytes(content)
    truncated = next((tmp_path / "profiles").glob("*.bin")).read_bytes()
    (tmp_path / "profiles" / f"{stamp}-host-9-truncated.bin").write_bytes(truncated[: len(truncated) // 2])
    log = next((tmp_path / "profiles").glob("*.predictions.parquet")).read_bytes()
    torn_log = f"{stamp}-host-9-torn.predictions.parquet"
    (tmp_path / "profiles" / torn_log).write_bytes(log[: len(log) // 2])
    cfg = configure(tmp_path, fitted.folder)
    result = monitor.monitor(cfg).result
    assert sorted(result.unreadable_files) == sorted(
        [*(f"{stamp}-host-9-{name}.bin" for name in [*BROKEN_FILES, "truncated"]), torn_log]
    )
    assert result.rows == good.rows  # every readable row still counted
    assert result.labels.predictions == good.labels.predictions  # and every readable prediction
    assert f"profiles: {len(BROKEN_FILES) + 2} unreadable files skipped" in result.alerts
    strict = configure(tmp_path, fitted.folder, "monitoring.fail_on_unreadable=true")
    with pytest.raises(ProfileError, match="4 unreadable profiles"):
        monitor.monitor(strict)


def test_monitor__files_stamped_in_the_future_are_reported(tmp_path: Path, fitted: Fitted) -> None:
    replayed(tmp_path, fitted, "none")
    ahead = f"{datetime.now(UTC) + timedelta(hours=2):%Y%m%dT%H%M%S}-host-1-00001.bin"
    next((tmp_path / "profiles").glob("*.bin")).replace(tmp_path / "profiles" / ahead)
    result = monitor.monitor(configure(tmp_path, fitted.folder)).result
    assert result.future_files == [ahead]


def test_monitor__one_torn_profile_among_three_is_an_unreadable_alert_never_drift(
    tmp_path: Path, fitted: Fitted
) -> None:
    """Given three windows of unshifted traffic, one profile torn mid-upload (the service's own
    whylogs bytes cut in half); when the monitor runs and the summary sets the workflow's outputs;
    then the torn file is named and alerted as ``unreadable``, and neither drift nor retraining."""
    cfg = configure(
        tmp_path, fitted.folder, "monitoring.simulation.shift=none", "monitoring.simulation.windows=3"
    )
    replay.replay(cfg, predict=lambda rows: np.asarray(fitted.model.predict(rows)))
    profiles = sorted((tmp_path / "profiles").glob("*.bin"))
    assert len(profiles) == 3
    torn = profiles[1]
    torn.write_bytes(torn.read_bytes()[: torn.stat().st_size // 2])

    comparison = monitor.monitor(cfg)
    dashboards.write(comparison, tmp_path / "reports" / "monitoring")
    outputs = tmp_path / "outputs"
    ci_page.publish(tmp_path / "reports", {"GITHUB_OUTPUT": str(outputs)})

    result = comparison.result
    assert list(result.unreadable_files) == [torn.name]
    assert "drift=false" in outputs.read_text().splitlines()  # release.yml is not started
    assert result.drift_detected is False
    assert "alerts=unreadable" in outputs.read_text().splitlines()  # an issue of its own
    assert result.alert_kinds == ["unreadable"]
    assert dashboards.headline(result).startswith("UNREADABLE PROFILES (1 skipped; no drift): ")
    first = ci_page.render(tmp_path / "reports").split("\n\n")[2]
    assert first.startswith("**⚠️ Unreadable production profiles** (no drift): profiles: 1 unreadable")


def test_monitor__a_data_quality_finding_alone_is_called_that_never_drift(
    results: dict[str, monitor.Comparison], tmp_path: Path
) -> None:
    """Given unshifted traffic whose profiles lack a feature (no distribution moved); when the
    report is written; then it is a data-quality alert, not "DRIFT DETECTED" of kind none, and it
    does not retrain: retraining on broken data would teach the model the breakage."""
    result = dataclasses.replace(results["none"].result, missing_columns=["tenure_months"])

    jsonfile.write_json(result.to_dict(), tmp_path / "monitoring" / "monitor.json")

    assert result.to_dict()["drift_kind"] == "none"
    assert dashboards.headline(result).startswith("DATA-QUALITY ALERT (no drift): ")
    assert result.drift_detected is False
    assert result.alert_kinds == ["data-quality"]
    assert ci_page.signals(tmp_path) == {"drift": "false", "alerts": "data-quality"}


def test_render__production_drift_outranks_a_promoted_gate_on_the_first_line(
    results: dict[str, monitor.Comparison], tmp_path: Path
) -> None:
    """Given a job whose gate promoted a candidate while production's labels show concept drift;
    when the CI page is rendered; then its first line is the drift and the metric's drop."""
    dashboards.write(results["concept"], tmp_path / "monitoring")
    gate = {"promote": True, "reason": "candidate is better by 0.0200 (margin 0.0)", "metric": "f1_macro"}
    jsonfile.write_json(gate, tmp_path / "training" / "gate.json")

    page = ci_page.render(tmp_path)

    first = page.split("\n\n")[2]
    assert first.startswith("**⚠️ Production drift (concept drift)**: performance: ")
    assert "worse); see the monitoring section" in first
    assert "Gate: promote" not in first


def test_markdown__the_status_column_comes_second_so_github_shows_it_unscrolled(
    results: dict[str, monitor.Comparison],
) -> None:
    """Given a window whose inputs drifted; when its Markdown is rendered; then each row's status
    is the cell after the column's name, where the 11-column table starts at GitHub's width."""
    page = dashboards.markdown(results["covariate"].result)

    header = next(line for line in page.splitlines() if line.startswith("| column |"))
    row = next(line for line in page.splitlines() if line.startswith("| tenure_months |"))
    assert [cell.strip() for cell in header.split("|")[1:3]] == ["column", "status"]
    assert row.split("|")[2].strip().startswith("feature drift ")


@pytest.mark.parametrize(
    ("labels_file", "status"),
    [
        (None, "labels.csv does not exist"),
        ("customer_id,churned\n", "no data rows"),
        ("customer_id,churned\nnobody,yes\n", "matches a logged prediction"),
    ],
    ids=["missing", "header-only", "unmatched"],
)
def test_monitor__labels_that_cannot_be_used_are_a_status_not_an_error(
    tmp_path: Path, fitted: Fitted, labels_file: str | None, status: str
) -> None:
    replayed(tmp_path, fitted, "none")
    labels_path = tmp_path / "labels.csv"
    labels_path.unlink(missing_ok=True)
    if labels_file is not None:
        labels_path.write_text(labels_file.replace("churned", compose().data.target))
    result = monitor.monitor(configure(tmp_path, fitted.folder)).result
    assert result.performance is None
    assert status in result.labels.status
    assert result.labels.predictions > 0
    assert result.labels.line().startswith("no labels yet: ")


def test_monitor_stage__drift_exits_3_when_asked_and_tells_the_workflow(
    tmp_path: Path, fitted: Fitted, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    replayed(tmp_path, fitted, "covariate")
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "outputs"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    cfg = configure(tmp_path, fitted.folder, "monitoring.fail_on_drift=true")
    with pytest.raises(SystemExit) as exit_info:
        cli._monitor(OmegaConf.structured(cfg))
    assert exit_info.value.code == 3
    assert "drift=true" in (tmp_path / "outputs").read_text().splitlines()
    assert "ALERT tenure_months: feature drift" in capsys.readouterr().out


def test_monitor__the_operators_own_traffic_is_left_out(tmp_path: Path, fitted: Fitted) -> None:
    """The checks' requests (client ``operator``) would fake drift; monitor leaves them out by name."""
    cfg = configure(tmp_path, fitted.folder, "monitoring.simulation.shift=none")
    replay.replay(cfg, predict=lambda rows: np.asarray(fitted.model.predict(rows)))
    checks = replay.traffic(configure(tmp_path, fitted.folder, "monitoring.simulation.shift=covariate"))
    checks = checks.drop(columns=[cfg.data.target, cfg.data.id_column], errors="ignore")
    checks["prediction"] = fitted.model.predict(checks)
    stamp = datetime.now(UTC).strftime(profiling.STAMP)
    name = profiling.profile_name(f"{stamp}-checks-1-00001", "operator")
    profiling.write(profiling.profile(checks), tmp_path / "profiles" / name)

    kept = monitor.monitor(cfg).result
    assert (kept.rows, kept.clients, kept.excluded_clients) == (2000, {"direct": 2000}, ["operator"])
    assert kept.alerts == []
    everyone = monitor.monitor(configure(tmp_path, fitted.folder, "monitoring.exclude_clients=[]"))
    assert everyone.result.clients == {"direct": 2000, "operator": len(checks)}
    assert everyone.result.drift_detected


@pytest.mark.parametrize(
    ("interval", "greater_is_better", "beyond"),
    [
        ((0.60, 0.62), True, True),
        ((0.60, 0.70), True, False),
        ((11.0, 12.0), False, True),
        ((9.0, 12.0), False, False),
    ],
)
def test_beyond_allowed_drop__only_when_the_whole_interval_is_worse(
    interval: tuple[float, float], greater_is_better: bool, beyond: bool
) -> None:
    trained = 0.70 if greater_is_better else 10.0
    assert labels.beyond_allowed_drop(interval, trained, greater_is_better, 0.05) is beyond


def test_monitor__too_few_labels_are_shown_never_judged(tmp_path: Path, fitted: Fitted) -> None:
    cfg = configure(
        tmp_path, fitted.folder, "monitoring.simulation.shift=concept", "monitoring.min_labels=100000"
    )
    replay.replay(cfg, predict=lambda rows: np.asarray(fitted.model.predict(rows)))
    result = monitor.monitor(cfg).result
    assert result.performance is not None
    assert result.performance.enough_labels is False
    assert result.performance.degraded is False
    assert result.performance.interval[0] <= result.performance.metrics[result.performance.judged_metric]
    assert any("too few labels to judge" in line for line in result.diagnosis[1])


@pytest.mark.parametrize(
    ("role", "distance", "own", "expected"),
    [
        # role         distance named     column's own   threshold used
        ("feature", None, None, "drift_threshold"),
        ("prediction", None, None, "outcome_threshold"),
        ("feature", "ks", None, "drift_threshold"),
        ("feature", "psi", None, "psi"),
        ("prediction", "jensen_shannon", None, "jensen_shannon"),
        ("feature", "wasserstein", 0.5, "own"),
        ("prediction", None, 0.5, "own"),
    ],
)
def test_thresholds__own_then_the_distances_then_the_roles(
    role: str, distance: str | None, own: float | None, expected: str
) -> None:
    overrides = [
        "monitoring.drift_threshold=0.11",
        "monitoring.outcome_threshold=0.07",
        "monitoring.distance_thresholds={psi: 0.2, jensen_shannon: 0.12, wasserstein: 0.3}",
        *([f"+monitoring.column_distances.x={distance}"] if distance else []),
        *([f"+monitoring.column_thresholds.x={own}"] if own is not None else []),
    ]
    cfg = compose(overrides).monitoring
    named = {
        "drift_threshold": 0.11, "outcome_threshold": 0.07, "own": own,
        "psi": 0.2, "jensen_shannon": 0.12, "wasserstein": 0.3,
    }  # fmt: skip
    assert columns.thresholds(cfg, {"x": role}) == {"x": named[expected]}


def test_compare_columns__each_column_is_measured_with_its_configured_distance(sample: pd.DataFrame) -> None:
    cfg = compose(["+monitoring.column_distances={monthly_charges: wasserstein, contract: psi}"])
    roles = {"monthly_charges": "feature", "contract": "feature", "tenure_months": "feature"}
    shifted = make_customers(800, seed=5, shift="covariate")
    found = columns.compare_columns(
        cfg.monitoring, profiling.profile(sample), profiling.profile(shifted), roles
    )
    by_name = {c.column: c for c in found}
    assert {name: c.distance for name, c in by_name.items()} == {
        "monthly_charges": "wasserstein",
        "contract": "psi",
        "tenure_months": "ks",
    }
    assert by_name["monthly_charges"].threshold == cfg.monitoring.distance_thresholds["wasserstein"]  # type: ignore[index]
    assert by_name["monthly_charges"].drifted
    assert re.search(r"\(wasserstein, p[<=]0\.\d+\)", " ".join(by_name["monthly_charges"].alerts))


@pytest.mark.parametrize("shift", ["none", "covariate"])
def test_monitor__steady_traffic_does_not_jump_from_one_window_to_the_next(
    results: dict[str, monitor.Comparison], shift: str
) -> None:
    # Every replayed window carries the same regime: far from the reference or not, no jump.
    scored = [c for c in results[shift].result.columns if c.role != "label"]
    assert all(c.vs_previous is not None for c in scored)
    assert not any(c.moved_since_previous for c in scored)


def test_monitor__a_sudden_change_shows_against_the_previous_window(tmp_path: Path, fitted: Fitted) -> None:
    # Two windows of fresh traffic, then one of the covariate-shifted regime: against the window
    # before it, the last one jumped in exactly the columns the shift moves.
    cfg = configure(tmp_path, fitted.folder, "monitoring.rollups=false")
    profiles = Path(cfg.monitoring.profile_dir)
    first = datetime.now(UTC) - timedelta(minutes=30)
    for minute, shift in enumerate(["none", "none", "covariate"]):
        frame = make_customers(600, seed=40 + minute, shift=shift)[list(fitted.model.feature_names_in_)]
        stem = f"{first + timedelta(minutes=minute):%Y%m%dT%H%M%S}-host-1-{minute:05d}"
        profiling.write(profiling.profile(frame), profiles / profiling.profile_name(stem, "web-app"))
    scored = {c.column: c for c in monitor.monitor(cfg).result.columns}
    jumped = {name for name, c in scored.items() if c.moved_since_previous}
    assert jumped >= {"tenure_months", "monthly_charges"}
    assert jumped <= FEATURES_MOVED_BY_COVARIATE_SHIFT | {"total_charges"}
    assert scored["tenure_months"].vs_previous > scored["tenure_months"].threshold  # type: ignore[operator]


@pytest.mark.parametrize(
    ("groups", "error"),
    [
        # (predicted probability, rows, of which positive)   expected calibration error
        ([(0.8, 1000, 800)], 0.0),
        ([(0.8, 1000, 600)], 0.2),  # its 0.8s come true 60 % of the time
        ([(0.2, 500, 100), (0.9, 500, 400)], 0.05),  # half the rows 0.1 off
        ([(0.05, 300, 0), (1.0, 100, 100)], 0.0375),  # 1.0 falls in the last bin
    ],
)
def test_reliability__expected_calibration_error_is_the_row_weighted_gap(
    groups: list[tuple[float, int, int]], error: float
) -> None:
    probability = np.concatenate([np.full(rows, p) for p, rows, _ in groups])
    positive = np.concatenate([np.arange(rows) < hits for _, rows, hits in groups])
    calibration = labels.reliability(positive, probability, "yes")
    assert calibration.expected_error == pytest.approx(error, abs=1e-4)
    assert [b.count for b in calibration.bins] == [rows for _, rows, _ in groups]


@given(st.lists(st.tuples(st.floats(0.0, 1.0), st.booleans()), min_size=1, max_size=200))
def test_reliability__bins_hold_every_row_and_their_own_probabilities(rows: list[tuple[float, bool]]) -> None:
    probability, positive = np.array([p for p, _ in rows]), np.array([hit for _, hit in rows])
    calibration = labels.reliability(positive, probability, "yes")
    assert sum(b.count for b in calibration.bins) == len(rows)
    assert all(b.low - 1e-9 <= b.mean_predicted <= b.high + 1e-9 for b in calibration.bins)
    assert 0.0 <= calibration.expected_error <= 1.0


def test_monitor__the_diagnosis_names_its_evidence(results: dict[str, monitor.Comparison]) -> None:
    kind, evidence = results["covariate"].result.diagnosis
    assert kind == "covariate drift"
    assert evidence[0].startswith("inputs: ")
    assert "tenure_months" in evidence[0]
    assert any(line.startswith("labels: ") and "labelled" in line for line in evidence)
    assert results["none"].result.diagnosis[0] == "none"


@pytest.mark.slow
def test_monitor__a_long_window_trends_per_hour_and_shows_when_a_move_started(
    tmp_path: Path, fitted: Fitted
) -> None:
    # Three hours of 1-minute profiles (180 windows, over MAX_POINTS): fresh traffic, then the
    # last hour from the covariate-shifted regime. One point per hour, on the hour, with scores,
    # whether the hours are read from their profiles or (once finished) from their roll-ups.
    cfg = configure(tmp_path, fitted.folder)
    profiles = Path(cfg.monitoring.profile_dir)
    first = (datetime.now(UTC) - timedelta(hours=4)).replace(minute=0, second=0, microsecond=0)
    for minute in range(180):
        shift = "covariate" if minute >= 120 else "none"
        frame = make_customers(20, seed=minute, shift=shift)[list(fitted.model.feature_names_in_)]
        stem = f"{first + timedelta(minutes=minute):%Y%m%dT%H%M%S}-host-1-{minute:05d}"
        profiling.write(profiling.profile(frame), profiles / profiling.profile_name(stem, "web-app"))
    minutes = sorted(profiles.glob("*.bin"))
    assert sorted(window.load_window(minutes).buckets) == [first + timedelta(hours=h) for h in range(3)]
    assert len(window.load_window(minutes[:60]).buckets) == 60  # few windows: one point each
    result = monitor.monitor(cfg, now=first + timedelta(hours=3, minutes=1)).result  # none rolled up yet
    times = [datetime.fromisoformat(point["time"]) for point in result.timeline]
    assert times == [first + timedelta(hours=h) for h in range(3)]
    assert [point["rows"] for point in result.timeline] == [1200, 1200, 1200]
    tenure = [point["scores"]["tenure_months"] for point in result.timeline]
    assert max(tenure[:2]) < 0.1 < 0.2 < tenure[2]
    rolled = monitor.monitor(cfg, now=first + timedelta(hours=4)).result  # all three rolled up
    assert [(p["time"], p["rows"]) for p in rolled.timeline] == [
        (p["time"], p["rows"]) for p in result.timeline
    ]
    for merged, read in zip(
        rolled.timeline, result.timeline, strict=True
    ):  # sketches merge within their error
        assert merged["scores"] == pytest.approx(read["scores"], abs=0.01)


def test_monitor__rows_and_labelled_metric_are_split_by_model_version(tmp_path: Path, fitted: Fitted) -> None:
    cfg = configure(tmp_path, fitted.folder)
    replay.replay(cfg, predict=lambda rows: np.asarray(fitted.model.predict(rows)))
    profiles = Path(cfg.monitoring.profile_dir)
    for number, path in enumerate(sorted(profiles.glob("*.bin"))):  # as two versions would have written them
        version = "3" if number % 2 else "4"
        path.rename(path.with_name(path.name.replace(".client-", f".model-{version}.client-")))
    for number, path in enumerate(sorted(profiles.glob("*.predictions.parquet"))):
        pd.read_parquet(path).assign(model_version="3" if number % 2 else "4").to_parquet(path)
    result = monitor.monitor(cfg).result
    assert set(result.versions) == {"3", "4"}
    assert sum(result.versions.values()) == result.rows
    assert result.performance is not None
    split = result.performance.by_version
    assert set(split) == {"3", "4"}
    assert sum(values["labelled"] for values in split.values()) == result.performance.labelled


@pytest.mark.skipif(not CLASSIFICATION, reason="confidence is a classifier's")
def test_monitor__logged_confidence_gives_roc_auc_and_an_estimate_before_labels(
    tmp_path: Path, fitted: Fitted
) -> None:
    cfg = configure(tmp_path, fitted.folder)
    replay.replay(cfg, predict=lambda rows: np.asarray(fitted.model.predict(rows)))
    sure = 0.8  # as if the model were 80 % sure of every prediction it served
    for path in Path(cfg.monitoring.prediction_log_dir).glob("*.predictions.parquet"):
        pd.read_parquet(path).assign(confidence=sure).to_parquet(path)
    result = monitor.monitor(cfg).result
    assert result.labels.estimated_accuracy == sure
    assert "accuracy estimated from the model's confidence 0.800" in result.labels.line()
    assert result.performance is not None
    assert 0.0 <= result.performance.metrics["roc_auc"] <= 1.0
    calibration = result.performance.calibration
    assert calibration is not None
    assert calibration.positive_class == "yes"
    assert {(b.low, b.mean_predicted) for b in calibration.bins} <= {(0.2, 0.2), (0.8, 0.8)}
    assert sum(b.count for b in calibration.bins) == result.performance.labelled
    assert "Calibration of P(yes): expected calibration error" in dashboards.markdown(result)
    (Path(cfg.monitoring.labels_path)).unlink()  # before any label: the estimate is all there is
    unlabelled = monitor.monitor(cfg).result
    assert unlabelled.performance is None
    assert unlabelled.labels.estimated_accuracy == sure


def logged_scores(truth: list[str], probabilities: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Labelled rows as the join leaves them: label, prediction and each class's logged probability."""
    frame = pd.DataFrame(
        {"label": truth, "prediction": np.asarray(classes)[probabilities.argmax(axis=1)].tolist()}
    )
    columns = {f"proba__{name}": probabilities[:, i].astype(np.float32) for i, name in enumerate(classes)}
    return frame.assign(**columns)


@given(st.integers(0, 2**32 - 1), st.integers(3, 12), st.integers(0, 150))
def test_roc_auc__more_than_two_classes_is_sklearns_macro_one_versus_rest(
    seed: int, classes: int, extra_rows: int
) -> None:
    rng = np.random.default_rng(seed)
    names = [str(number) for number in range(1, classes + 1)]  # the model's order: 1, 2, ..., 10, 11
    truth = [names[i] for i in [*range(classes), *rng.integers(0, classes, extra_rows)]]  # every class
    joined = logged_scores(truth, rng.dirichlet(np.ones(classes), len(truth)), names)
    found, why = labels.roc_auc(joined, "label", labels.positive_probability(joined, "label"))
    scores = joined[[f"proba__{name}" for name in names]].to_numpy(dtype=float)
    per_class = [roc_auc_score(np.asarray(truth) == name, scores[:, i]) for i, name in enumerate(names)]
    assert why == ""
    assert found["roc_auc"] == pytest.approx(np.mean(per_class), abs=5e-5)  # macro: each class alike
    ordered = sorted(names)  # scikit-learn's own multi-class path wants its labels sorted
    reordered = scores[:, [names.index(name) for name in ordered]]
    ovr = roc_auc_score(truth, reordered, multi_class="ovr", labels=ordered)
    assert found["roc_auc"] == pytest.approx(ovr, abs=5e-5)


def test_roc_auc__two_classes_rank_by_the_positive_class_probability() -> None:
    rng = np.random.default_rng(5)
    yes = rng.uniform(size=300)
    truth = np.where(rng.uniform(size=300) < yes, "yes", "no").tolist()
    joined = logged_scores(truth, np.column_stack([1 - yes, yes]), ["no", "yes"])
    positive = labels.positive_probability(joined, "label")
    assert positive is not None
    assert positive.label == "yes"
    found, why = labels.roc_auc(joined, "label", positive)
    expected = roc_auc_score(np.asarray(truth) == "yes", yes.astype(np.float32))
    assert (found["roc_auc"], why) == (pytest.approx(expected, abs=5e-5), "")


THREE = ["a", "b", "c"]
EVEN = np.full((6, 3), 1 / 3)


@pytest.mark.parametrize(
    ("joined", "why"),
    [
        (
            pd.DataFrame({"label": THREE * 2, "prediction": THREE * 2, "confidence": 0.7}),
            "the logs carry no class probabilities",
        ),
        (
            logged_scores(THREE * 2, EVEN, THREE).assign(proba__a=[np.nan, *[1 / 3] * 5]),
            "1 of 6 labelled rows were logged without every class's probability",
        ),
        (
            logged_scores([*THREE, "a", "b", "d"], EVEN, THREE),
            "labels ['d'] are not classes the model scored",
        ),
        (logged_scores(["a", "b"] * 3, EVEN, THREE), "no label of class ['c'] yet"),
        (logged_scores(["a"] * 6, EVEN[:, :2] * 1.5, ["a", "b"]), "every label is 'a'"),
    ],
    ids=[
        "old-log-confidence-only",
        "rows-without-probabilities",
        "unknown-label",
        "class-never-labelled",
        "one-outcome",
    ],
)
def test_roc_auc__absent_says_why(joined: pd.DataFrame, why: str) -> None:
    found, reason = labels.roc_auc(joined, "label", labels.positive_probability(joined, "label"))
    assert found == {}
    assert reason.startswith(why)


def test_read_logs__a_torn_log_is_skipped_and_named(tmp_path: Path) -> None:
    good, torn = tmp_path / "a.predictions.parquet", tmp_path / "b.predictions.parquet"
    pd.DataFrame({"customer_id": ["C1", "C2"], "prediction": ["no", "yes"]}).to_parquet(good)
    torn.write_bytes(good.read_bytes()[:40])
    logs, unreadable = labels.read_logs([good, torn])
    assert logs["customer_id"].tolist() == ["C1", "C2"]
    assert list(unreadable) == [torn.name]
    assert "cannot be read as parquet" in unreadable[torn.name]


def test_monitor__logs_without_class_probabilities_show_roc_auc_absent_and_why(
    results: dict[str, monitor.Comparison],
) -> None:
    """The replay logs predictions only, as a service before class probabilities were logged."""
    result = results["none"].result
    assert result.performance is not None
    if not CLASSIFICATION:
        assert result.performance.roc_auc_absent == ""
        return
    assert "roc_auc" not in result.performance.metrics
    assert result.performance.roc_auc_absent == labels.NO_PROBABILITIES
    assert result.to_dict()["performance"]["roc_auc_absent"] == labels.NO_PROBABILITIES
    assert f"| not measured: {labels.NO_PROBABILITIES} |" in dashboards.markdown(result)
    assert "not measured: the logs carry no class probabilities" in dashboards.page(result, {})


@pytest.mark.skipif(not CLASSIFICATION, reason="class probabilities are a classifier's")
def test_monitor__logged_class_probabilities_give_roc_auc_and_calibration(
    tmp_path: Path, fitted: Fitted
) -> None:
    cfg = configure(tmp_path, fitted.folder)
    folder = Path(cfg.monitoring.prediction_log_dir)
    replay.replay(cfg, predict=lambda rows: np.asarray(fitted.model.predict(rows)))
    rng = np.random.default_rng(1)
    for path in folder.glob("*.predictions.parquet"):  # as a service logging probabilities writes them
        logs = pd.read_parquet(path)
        noisy = np.where(logs["prediction"] == "yes", 0.7, 0.3) + rng.uniform(-0.2, 0.2, len(logs))
        yes = noisy.astype(np.float32)
        logs.assign(proba__no=1 - yes, proba__yes=yes).to_parquet(path)
    result = monitor.monitor(cfg).result
    assert result.performance is not None
    assert result.performance.roc_auc_absent == ""
    logs = pd.concat(pd.read_parquet(path) for path in folder.glob("*.predictions.parquet"))
    truth = pd.read_csv(cfg.monitoring.labels_path)
    joined = logs.merge(truth, on=cfg.data.id_column)
    expected = roc_auc_score(joined[cfg.data.target] == "yes", joined["proba__yes"])
    assert result.performance.metrics["roc_auc"] == pytest.approx(expected, abs=5e-5)
    assert result.performance.calibration is not None
    assert result.performance.calibration.positive_class == "yes"
    assert f"| roc_auc | {result.performance.training['roc_auc']:.3f} |" in dashboards.markdown(result)
