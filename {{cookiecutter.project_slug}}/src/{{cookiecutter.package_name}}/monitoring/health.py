"""Service health from BentoML's Prometheus metrics: traffic, errors, latency, resources.

BentoML exposes ``bentoml_service_request_total`` (a counter by endpoint and HTTP code) and
``bentoml_service_request_duration_seconds`` (a histogram) at ``/metrics``. The counters are
cumulative since each worker started, so a report shows the service's life so far, read from a
live URL or from a file saved by a scheduled job. Latency percentiles are interpolated inside
histogram buckets the way Prometheus' ``histogram_quantile`` does. The service's own
``profile_write_failures_total`` counts the traffic profiles it could not write (a full disk, a
profiles folder it cannot write to): served rows then wait in memory, unseen by monitoring, and
that is an alert too, of the ``service`` kind, which never retrains.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ..config import MonitoringConfig, resolve
from ..errors import PipelineError

REQUESTS = "bentoml_service_request"
DURATION = "bentoml_service_request_duration_seconds"
# Probes and scrapes are not traffic: they would dilute the error rate and the latency.
NOT_TRAFFIC = ("/metrics", "/healthz", "/livez", "/readyz")
RESOURCES = {
    "process_resident_memory_bytes": "memory_mb",
    "process_cpu_seconds_total": "cpu_seconds",
    "bentoml_service_request_in_progress": "in_progress",
    "bentoml_service_adaptive_batch_size": "adaptive_batch_size",
}
PROFILE_FAILURES = "profile_write_failures_total"  # serving/service.py's PROFILE_FAILURES


class MetricsError(PipelineError, ValueError):
    """The metrics source cannot be read or parsed; the message names it.

    Not a ``DataError``: that one lives beside pandas and scikit-learn, and ``deploy status``
    reads each color's metrics here in about a second.
    """


@dataclass(frozen=True)
class Health:
    """What the service did: requests by endpoint and code, error rate, latency, resources."""

    sources: list[str]
    requests: int
    server_errors: int
    client_errors: int
    error_rate: float
    latency_ms: dict[str, float]
    by_endpoint: dict[str, dict[str, int]]
    resources: dict[str, float] = field(default_factory=dict)
    alerts: list[str] = field(default_factory=list)
    profile_write_failures: int = 0


def read_source(source: str, timeout_s: float = 5.0) -> str:
    """The exposition text of a ``http(s)://`` URL or of a saved file."""
    if source.startswith(("http://", "https://")):
        try:
            answer = httpx.get(source, timeout=timeout_s, follow_redirects=True)
            answer.raise_for_status()
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            raise MetricsError(
                f"{source}: metrics not reachable ({error}); is the service running?"
            ) from None
        return answer.text
    path = resolve(source)
    if not path.is_file():
        raise MetricsError(f"{path}: no such metrics file; check monitoring.metrics_sources")
    return path.read_text()


def samples(text: str, source: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample, with an error naming the source on bad text."""
    try:
        return [
            (s.name, s.labels, s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]
    except ValueError as error:
        raise MetricsError(f"{source}: not Prometheus text exposition ({error})") from None


def histogram_quantile(quantile: float, buckets: dict[float, float]) -> float:
    """Linear interpolation inside the bucket holding the quantile (cumulative counts by ``le``)."""
    edges = sorted(buckets)
    total = buckets[edges[-1]] if edges else 0.0
    if not total:
        return float("nan")
    rank, lower, below = quantile * total, 0.0, 0.0
    for edge in edges:
        if buckets[edge] >= rank:
            if edge == float("inf"):
                return lower
            inside = buckets[edge] - below
            return lower + (edge - lower) * ((rank - below) / inside if inside else 0.0)
        lower, below = edge, buckets[edge]
    return lower


@dataclass
class Tally:
    """Samples added up across sources: counts by endpoint and code, latency buckets, gauges."""

    counts: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    buckets: dict[float, float] = field(default_factory=lambda: defaultdict(float))
    resources: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    profile_failures: float = 0.0

    def add(self, name: str, labels: dict[str, str], value: float) -> None:
        """Count one sample where it belongs; probes and scrapes are skipped."""
        endpoint = labels.get("endpoint", "")
        if name == PROFILE_FAILURES:
            self.profile_failures += value
        elif name in RESOURCES:
            scale = 1 / 2**20 if name.endswith("_bytes") else 1.0
            self.resources[RESOURCES[name]] += value * scale
        elif endpoint.startswith(NOT_TRAFFIC):
            return
        elif name == f"{REQUESTS}_total":
            self.counts[endpoint][labels.get("http_response_code", "")] += int(value)
        elif name == f"{DURATION}_bucket":
            self.buckets[float(labels["le"])] += value

    def responses(self, first_digit: str) -> int:
        """Requests answered with a status code of one class (``"5"``: server errors)."""
        return sum(
            n for codes in self.counts.values() for code, n in codes.items() if code.startswith(first_digit)
        )


def summarize(texts: dict[str, str], max_error_rate: float, latency_budget_ms: float) -> Health:
    """Combine every source (workers, colors) into one health summary with alerts."""
    tally = Tally()
    for source, text in texts.items():
        for name, labels, value in samples(text, source):
            tally.add(name, labels, value)
    total = sum(sum(codes.values()) for codes in tally.counts.values())
    latency = {f"p{round(q * 100)}": histogram_quantile(q, tally.buckets) * 1000 for q in (0.5, 0.95, 0.99)}
    health = Health(
        sources=list(texts),
        requests=total,
        server_errors=tally.responses("5"),
        client_errors=tally.responses("4"),
        error_rate=round(tally.responses("5") / total, 4) if total else 0.0,
        latency_ms={name: round(value, 2) for name, value in latency.items() if not math.isnan(value)},
        by_endpoint={endpoint: dict(codes) for endpoint, codes in tally.counts.items()},
        resources=dict(tally.resources),
        profile_write_failures=int(tally.profile_failures),
    )
    health.alerts.extend(_alerts(health, max_error_rate, latency_budget_ms))
    return health


def _alerts(health: Health, max_error_rate: float, latency_budget_ms: float) -> list[str]:
    """Error rate above its ceiling, p95 latency above the budget, profiles the service could not write."""
    alerts = []
    if health.error_rate > max_error_rate:
        alerts.append(f"service: error rate {health.error_rate:.2%} > {max_error_rate:.2%}")
    p95 = health.latency_ms.get("p95", 0.0)
    if p95 > latency_budget_ms:
        alerts.append(f"service: p95 latency {p95:.1f} ms > budget {latency_budget_ms:.0f} ms")
    if health.profile_write_failures:
        alerts.append(f"service: {profile_failures_line(health.profile_write_failures)}")
    return alerts


def profile_failures(text: str, source: str) -> int:
    """The service's failed profile writes in one exposition text (0 when it counts none)."""
    return int(sum(value for name, _, value in samples(text, source) if name == PROFILE_FAILURES))


def profile_failures_line(failures: int, folder: str = "the profiles folder (SERVING_PROFILE_DIR)") -> str:
    """What failing profile writes mean and what to do, for the monitoring page and ``deploy status``.

    The service keeps the unwritten rows in memory and writes them with the next window that can
    be written (``serving/traffic.py``), so nothing is lost yet, but monitoring sees none of that
    traffic until then. The counter only grows while the process lives: compare two readings to
    see whether writes still fail.
    """
    return (
        f"{failures} profile writes failed since the service started (profile_write_failures_total): "
        f"unwritten rows wait in memory, unseen by monitoring; free disk space under {folder} "
        "(the service's log names the error)"
    )


def collect(cfg: MonitoringConfig) -> Health | None:
    """Read and summarise every ``metrics_sources`` entry; None when none is configured."""
    if not cfg.metrics_sources:
        return None
    texts = {source: read_source(source) for source in cfg.metrics_sources}
    return summarize(texts, cfg.max_error_rate, cfg.latency_budget_ms)
