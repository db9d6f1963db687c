"""The pre-promotion analysis in the cluster: the release's own image checks its preview color.

Argo Rollouts runs this as a Job (``deploy/kubernetes/base/analysis-template.yaml``) from the
image the Rollout is about to promote, against the preview Service, before any production
traffic moves: readiness, an answer of the service's shape for every row sent, and the p95
latency of a run of requests within the budget. A non-zero exit fails the analysis, and the
active color keeps serving. Beyond the standard library only httpx is imported (in the image
already: BentoML depends on it), so the Job starts in about a second.

    python -m {{ cookiecutter.package_name }}.deployment.probe --url http://svc-preview --request request.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx


class ProbeError(Exception):
    """The preview color failed a check; the message says which and what it answered."""


def client(timeout_s: float = 5.0) -> httpx.Client:
    """The run's one client, each request on a connection of its own.

    Built once: building one loads the CA bundle, tens of milliseconds a timed request must not
    pay. No connection is kept alive, as none was when each request had a client of its own.
    """
    fresh = httpx.Limits(max_keepalive_connections=0)
    return httpx.Client(timeout=timeout_s, limits=fresh, follow_redirects=True)


def call(session: httpx.Client, url: str, body: bytes | None = None) -> tuple[int, bytes, float]:
    """One request: status, body and seconds taken (an HTTP error status is an answer too)."""
    if not url.startswith(("http://", "https://")):
        raise ProbeError(f"{url}: not an http(s) URL")
    headers = {"Content-Type": "application/json"} if body is not None else {}
    started = time.perf_counter()
    try:
        answer = session.request("POST" if body is not None else "GET", url, content=body, headers=headers)
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        raise ProbeError(f"{url}: no answer ({error})") from None
    return answer.status_code, answer.content, time.perf_counter() - started


def ready(session: httpx.Client, url: str, timeout_s: float) -> None:
    """``/readyz`` answers 200 within the timeout (a new color may still be loading its model)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if call(session, f"{url}/readyz")[0] == 200:
                return
        except ProbeError:
            pass
        if time.monotonic() > deadline:
            raise ProbeError(f"{url}/readyz: not ready within {timeout_s:.0f} s")
        time.sleep(1.0)


def answer_problem(status: int, body: bytes, rows: int) -> str | None:
    """What is wrong with one ``/predict`` answer to ``rows`` rows, or None when it has the shape."""
    if status != 200:
        return f"status {status}: {body[:200]!r}"
    try:
        payload: Any = json.loads(body)
    except ValueError:
        return f"not JSON: {body[:200]!r}"
    predictions = payload.get("predictions") if isinstance(payload, dict) else None
    if not isinstance(predictions, list) or len(predictions) != rows:
        return f"expected 'predictions' with {rows} item(s), got {str(payload)[:200]}"
    return None


def run(url: str, request: dict[str, Any], requests: int, p95_ms: float, ready_s: float) -> str:
    """All checks against one color; the one-line verdict, or :class:`ProbeError`."""
    url = url.rstrip("/")
    body = json.dumps(request).encode()
    rows = len(request["rows"])
    took = []
    with client() as session:
        ready(session, url, ready_s)
        for _ in range(requests):
            status, answer, seconds = call(session, f"{url}/predict", body)
            problem = answer_problem(status, answer, rows)
            if problem is not None:
                raise ProbeError(f"{url}/predict: {problem}")
            took.append(seconds * 1000)
    p95 = statistics.quantiles(took, n=20)[18] if len(took) > 1 else took[0]
    if p95 > p95_ms:
        raise ProbeError(f"{url}/predict: p95 {p95:.1f} ms over the {p95_ms:.0f} ms budget")
    return f"{url}: ready, {requests} answers of the right shape, p95 {p95:.1f} ms (budget {p95_ms:.0f} ms)"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the analysis Job: exit 0 when the preview color passes, 1 with the reason."""
    parser = argparse.ArgumentParser(prog="probe", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the color to check, e.g. http://svc-preview")
    parser.add_argument("--request", required=True, type=Path, help='a JSON body {"rows": [...]}')
    parser.add_argument("--requests", type=int, default=50, help="how many /predict calls to time")
    parser.add_argument("--p95-ms", type=float, default=500.0, help="latency budget of those calls")
    parser.add_argument("--ready-s", type=float, default=120.0, help="how long readiness may take")
    args = parser.parse_args(argv)
    try:
        request = json.loads(args.request.read_text())
        print(run(args.url, request, args.requests, args.p95_ms, args.ready_s))
    except (ProbeError, OSError, ValueError, KeyError) as error:
        print(f"probe: FAIL: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
