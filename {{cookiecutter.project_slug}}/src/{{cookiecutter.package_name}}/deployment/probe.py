"""The pre-promotion analysis in the cluster: the release's own image checks its preview color.

Argo Rollouts runs this as a Job (``deploy/kubernetes/base/analysis-template.yaml``) from the
image the Rollout is about to promote, against the preview Service, before any production
traffic moves: readiness, an answer of the service's shape for every row sent, and the p95
latency of a run of requests within the budget. A non-zero exit fails the analysis, and the
active color keeps serving. Only the standard library is imported, so the Job starts in a second.

    python -m {{ cookiecutter.package_name }}.deployment.probe --url http://svc-preview --request request.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class ProbeError(Exception):
    """The preview color failed a check; the message says which and what it answered."""


def call(url: str, body: bytes | None = None, timeout_s: float = 5.0) -> tuple[int, bytes, float]:
    """One request: status, body and seconds taken (an HTTP error status is an answer too)."""
    if not url.startswith(("http://", "https://")):
        raise ProbeError(f"{url}: not an http(s) URL")
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")  # noqa: S310
    if body is not None:
        request.add_header("Content-Type", "application/json")
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (checked above)
            return response.status, response.read(), time.perf_counter() - started
    except urllib.error.HTTPError as error:
        return error.code, error.read(), time.perf_counter() - started
    except (urllib.error.URLError, OSError) as error:
        raise ProbeError(f"{url}: no answer ({error})") from None


def ready(url: str, timeout_s: float) -> None:
    """``/readyz`` answers 200 within the timeout (a new color may still be loading its model)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if call(f"{url}/readyz")[0] == 200:
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
    ready(url, ready_s)
    body = json.dumps(request).encode()
    rows = len(request["rows"])
    took = []
    for _ in range(requests):
        status, answer, seconds = call(f"{url}/predict", body)
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
