"""Service health from BentoML's Prometheus exposition: counts, error rate, latency, alerts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.config import compose
from {{ cookiecutter.package_name }}.monitoring import health

CAPTURED = Path(__file__).parent / "data" / "bentoml_metrics.txt"


def summary(*sources: str, max_error_rate: float = 0.01, budget_ms: float = 50.0) -> health.Health:
    cfg = compose(
        [
            f"monitoring.metrics_sources=[{','.join(sources)}]",
            f"monitoring.max_error_rate={max_error_rate}",
            f"monitoring.latency_budget_ms={budget_ms}",
        ]
    )
    found = health.collect(cfg.monitoring)
    assert found is not None
    return found


def test_collect__real_bentoml_metrics_counts_requests_and_errors() -> None:
    found = summary(str(CAPTURED))
    assert found.requests == 32
    assert (found.server_errors, found.client_errors) == (1, 1)
    assert found.error_rate == pytest.approx(1 / 32, abs=1e-4)
    assert found.by_endpoint == {"/predict": {"200": 30, "500": 1, "400": 1}}
    assert found.latency_ms["p50"] < found.latency_ms["p99"]
    assert found.alerts == ["service: error rate 3.12% > 1.00%"]


def test_collect__two_sources_add_up_and_probes_are_not_traffic(tmp_path: Path) -> None:
    probe = tmp_path / "probe.txt"
    probe.write_text(
        "# TYPE bentoml_service_request counter\n"
        'bentoml_service_request_total{endpoint="/readyz",http_response_code="200"} 500.0\n'
    )
    other_worker = tmp_path / "worker-2.txt"
    other_worker.write_text(CAPTURED.read_text())
    found = summary(str(CAPTURED), str(other_worker), str(probe), max_error_rate=0.05)
    assert found.requests == 64
    assert found.alerts == []


def test_collect__latency_over_budget_is_an_alert() -> None:
    found = summary(str(CAPTURED), max_error_rate=1.0, budget_ms=1.0)
    assert found.alerts == [f"service: p95 latency {found.latency_ms['p95']:.1f} ms > budget 1 ms"]


def test_collect__failed_profile_writes_of_every_color_add_up_to_one_service_alert(tmp_path: Path) -> None:
    """The counter the service keeps (serving/service.py) is an alert: monitoring cannot see that traffic."""
    for color in ("blue", "green"):
        (tmp_path / f"{color}.txt").write_text(
            "# HELP profile_write_failures_total Profile writes that failed\n"
            "# TYPE profile_write_failures_total counter\n"
            "profile_write_failures_total 3.0\n"
        )
    colors = [str(tmp_path / f"{color}.txt") for color in ("blue", "green")]
    found = summary(str(CAPTURED), *colors, max_error_rate=1.0)
    assert found.profile_write_failures == 6
    assert found.alerts == [f"service: {health.profile_failures_line(6)}"]
    assert "free disk space under the profiles folder" in found.alerts[0]


def test_collect__no_sources_means_no_health_section() -> None:
    assert health.collect(compose().monitoring) is None


@pytest.mark.parametrize(
    ("quantile", "buckets", "expected"),
    [
        (0.5, {0.1: 50.0, 0.2: 100.0, float("inf"): 100.0}, 0.1),
        (0.75, {0.1: 50.0, 0.2: 100.0, float("inf"): 100.0}, 0.15),
        (0.99, {0.1: 0.0, 0.2: 10.0, float("inf"): 100.0}, 0.2),
    ],
)
def test_histogram_quantile__interpolates_inside_the_bucket(
    quantile: float, buckets: dict[float, float], expected: float
) -> None:
    assert health.histogram_quantile(quantile, buckets) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("http://127.0.0.1:9/metrics", "metrics not reachable"),
        ("/nonexistent/metrics.txt", "no such metrics file"),
    ],
)
def test_read_source__failures_name_the_source(source: str, message: str) -> None:
    with pytest.raises(health.MetricsError, match=message):
        health.read_source(source, timeout_s=2)


def test_summarize__garbage_is_a_metrics_error_naming_the_source() -> None:
    with pytest.raises(health.MetricsError, match=re.escape("saved.txt: not Prometheus text")):
        health.summarize({"saved.txt": "this is { not metrics"}, 0.01, 50.0)
