"""The post-switch watch: after traffic moves, the new color proves itself under real traffic.

For ``post_switch.window_s`` seconds, probe threads send requests to the watched color on its own
port, whatever share of traffic the router gives it, while HAProxy's own counters show failures
seen by real clients. A failure rate over ``max_error_rate`` or a p95 over
``p95_ms`` ends the watch at once; too few answers fail it too. The promoter rolls back on failure.
Probes keep their connections alive, as real clients do, so a probe's latency is the color's
answer, not a new connection's.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import httpx
import numpy as np
import pandas as pd

from . import access, checks
from .local import LocalTarget
from .router import OPERATOR_HEADERS
from .state import PostSwitch


@dataclass
class _Probes:
    """Probe requests sent straight to the color being watched, and how they went."""

    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, ok: bool, latency_ms: float) -> None:
        with self.lock:
            self.latencies_ms.append(latency_ms)
            self.failures += 0 if ok else 1


def kept_alive(port: int, timeout_s: float) -> httpx.Client:
    """A client of the color on ``port`` whose connections stay open between requests.

    One pooled connection per thread that uses it at once, every one kept; httpx drops a
    connection that failed and the next request opens a new one. No proxy from the environment:
    the color is local.
    """
    kept = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=timeout_s, trust_env=False, limits=kept)


def _probe(client: httpx.Client, body: bytes, probes: _Probes, headers: dict[str, str]) -> None:
    """One predict request on a kept-alive connection; a failed one is dropped (the next reconnects)."""
    started = time.perf_counter()
    try:
        response = client.post(checks.PREDICT_PATH, content=body, headers=headers)
        probes.add(response.status_code == 200, (time.perf_counter() - started) * 1000)
    except httpx.HTTPError:
        probes.add(False, (time.perf_counter() - started) * 1000)


def _probe_loop(
    client: httpx.Client, body: bytes, probes: _Probes, stop: threading.Event, headers: dict[str, str]
) -> None:
    while not stop.is_set():
        _probe(client, body, probes, headers)


def _verdict(probes: _Probes, router_failures: int, limits: PostSwitch) -> tuple[bool | None, str]:
    """True/False once decided, None while undecided; a failure decides at once."""
    with probes.lock:
        count, failed = len(probes.latencies_ms), probes.failures + router_failures
        p95 = float(np.percentile(probes.latencies_ms, 95)) if count else 0.0
    total = max(count, 1)
    if failed / total > limits.max_error_rate and failed:
        return False, f"error rate {failed}/{count} over {limits.max_error_rate:.1%}"
    if count >= limits.min_requests and p95 > limits.p95_ms:
        return False, f"p95 {p95:.1f} ms over {limits.p95_ms:g} ms"
    return None, ""


def operator_headers(target: LocalTarget) -> dict[str, str]:
    """The tooling's headers with the environment's operator key, which its colors ask for."""
    return OPERATOR_HEADERS | access.bearer(access.operator_key(target.dir))


def warm_up(
    color_port: int, sample: pd.DataFrame, requests: int, headers: dict[str, str] = OPERATOR_HEADERS
) -> dict[str, float | int]:
    """Send ``requests`` predictions to a color that is ready but has had no traffic yet.

    A fresh color's first answers pay for lazy imports and the first model calls: measured at
    p95 4.3 s on a busy host, which the watch then judged as the release's latency and rolled
    back. Nothing is judged here; the numbers go to the decisions log. ``headers`` carry the
    operator key a color started by the tooling asks for (:func:`operator_headers`).
    """
    body = json.dumps(checks.request_body(sample)).encode()
    probes = _Probes()
    with kept_alive(color_port, timeout_s=30.0) as client:
        for _ in range(requests):
            _probe(client, body, probes, headers)
            if probes.failures:  # the checks judge a failing color; a dead one costs a timeout each
                break
    latencies = probes.latencies_ms or [0.0]
    return {
        "requests": len(probes.latencies_ms),
        "failures": probes.failures,
        "first_ms": round(latencies[0], 2),
        "p95_ms": round(float(np.percentile(latencies, 95)), 2),
    }


def watch(
    target: LocalTarget, color_port: int, color: str, limits: PostSwitch, sample: pd.DataFrame
) -> checks.CheckResult:
    """Watch ``color`` for ``window_s``: probe it on its own port and read HAProxy's counters.

    Probing the color directly, not through the router, judges a 2 % canary step on as many
    answers as a full switch (through the router only 2 % of the probes would reach it); what
    real clients saw through the router comes from HAProxy's per-color failure counters.
    """
    body = json.dumps(checks.request_body(sample)).encode()
    api = target.api()
    baseline = {s.color: s.failures for s in api.stats()}
    probes, stop = _Probes(), threading.Event()
    client = kept_alive(color_port, timeout_s=5.0)
    threads = [
        threading.Thread(
            target=_probe_loop, args=(client, body, probes, stop, operator_headers(target)), daemon=True
        )
        for _ in range(limits.probe_concurrency)
    ]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    verdict: bool | None = None
    reason = ""
    router_failures = 0
    try:
        while verdict is None and time.monotonic() - started < limits.window_s:
            time.sleep(0.1)
            router_failures = sum(
                s.failures - baseline.get(s.color, 0) for s in api.stats() if s.color == color
            )
            verdict, reason = _verdict(probes, router_failures, limits)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=6.0)
        if not any(thread.is_alive() for thread in threads):  # one still in a request keeps it
            client.close()
    if verdict is None:  # answers that arrived while the threads stopped count too
        verdict, reason = _verdict(probes, router_failures, limits)
    with probes.lock:
        count = len(probes.latencies_ms)
        p95 = float(np.percentile(probes.latencies_ms, 95)) if count else 0.0
    numbers: dict[str, float | int | str] = {
        "probes": count,
        "probe_failures": probes.failures,
        "router_failures": router_failures,
        "p95_ms": round(p95, 2),
        "seconds": round(time.monotonic() - started, 3),
    }
    if verdict is None and count < limits.min_requests:
        reason = f"only {count} probe answers in {limits.window_s:g}s (need {limits.min_requests})"
        return checks.CheckResult("watch", False, numbers, reason)
    return checks.CheckResult(
        "watch", verdict is not False, numbers, reason or "no errors, latency within budget"
    )
