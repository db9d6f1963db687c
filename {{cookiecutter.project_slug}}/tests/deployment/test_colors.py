"""Colors started by the local target from a real bento: each keeps its own metrics, and a body
of too many rows is refused before it is parsed while other clients are served."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import quick_forest
from crowning import crown
from {{ cookiecutter.package_name }}.config import compose
from {{ cookiecutter.package_name }}.data import load_table
from {{ cookiecutter.package_name }}.deployment import local
from {{ cookiecutter.package_name }}.deployment.loopback import free_ports
from {{ cookiecutter.package_name }}.deployment.state import Release
from {{ cookiecutter.package_name }}.headers import CLIENT_HEADER

pytestmark = pytest.mark.slow
OUR_COUNTERS = ("predicted_rows_total{", "batch_rows_count ")  # moved by requests alone, not by a timer
BIG_ROWS = 58_900  # 14.6-15.1 MB compact: under the 16 MB byte limit, far over the 10,000-row limit


@dataclass
class Bento:
    root: Path
    release: Release
    rows: list[dict[str, Any]]
    ports: list[int]

    def target(self, environment: str) -> local.LocalTarget:
        return local.LocalTarget(environment, self.root / ".deploy", self.root)

    def headers(self, target: local.LocalTarget) -> dict[str, str]:
        """What a caller of a color's own port needs (the environment's operator key)."""
        return target.operator_headers()


@pytest.fixture(scope="module")
def bento(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bento]:
    """A quick model packaged into a throwaway bento store, which every color here serves."""
    root = tmp_path_factory.mktemp("colors")
    overrides = [*quick_forest(root), f"serving.report_dir={root}/reports"]
    cfg = compose(overrides)
    from {{ cookiecutter.package_name }}.training import train  # noqa: PLC0415

    train.train(cfg)
    version = crown(cfg)
    env = {"BENTOML_HOME": str(root / "bentoml")}
    package = str(Path(sys.executable).with_name("package"))
    built = subprocess.run(
        [package, *overrides], env=os.environ | env, capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr
    tag = json.loads((root / "reports" / "package.json").read_text())["bento_tag"]
    rows = json.loads(load_table(cfg.data.path).drop(columns=[cfg.data.target]).to_json(orient="records"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENTOML_HOME", env["BENTOML_HOME"])
        patch.setenv("SERVING_PROFILE_DIR", str(root / "profiles"))
        started = Bento(root, Release(tag, version), rows, free_ports(3))
        try:
            yield started
        finally:
            for environment in ("production", "staging"):
                target = started.target(environment)
                target.stop_all(target.load())


def start(bento: Bento, target: local.LocalTarget, color: str, port: int) -> local.ColorProcess:
    actual = target.load()
    process = target.start_color(color, bento.release, port, 300.0)
    actual.colors[color] = process
    target.save(actual)
    return process


def our_metrics(port: int, headers: dict[str, str]) -> list[str]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=30).text
    return sorted(line for line in text.splitlines() if line.startswith(OUR_COUNTERS))


def test_start_color__starting_any_color_leaves_every_other_color_s_metrics_unchanged(bento: Bento) -> None:
    production, staging = bento.target("production"), bento.target("staging")
    blue = start(bento, production, "blue", bento.ports[0])
    for _ in range(3):
        answer = httpx.post(
            f"http://127.0.0.1:{blue.port}/predict",
            json={"rows": bento.rows[:5]},
            headers=bento.headers(production),
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
    before = our_metrics(blue.port, bento.headers(production))
    assert any(line.startswith("batch_rows_count ") for line in before), before

    green = start(bento, production, "green", bento.ports[1])
    green_before = our_metrics(green.port, bento.headers(production))
    start(bento, staging, "blue", bento.ports[2])

    assert our_metrics(blue.port, bento.headers(production)) == before  # another color, another environment
    assert our_metrics(green.port, bento.headers(production)) == green_before
    folders = {production.metrics_dir("blue"), production.metrics_dir("green"), staging.metrics_dir("blue")}
    assert len(folders) == 3
    assert all(any(folder.iterdir()) for folder in folders)  # each server writes its own


def test_start_color__a_color_answers_the_environment_s_operator_key_only(bento: Bento) -> None:
    """A local caller on its port without this environment's key (none, a forged name, another's): 401."""
    production, staging = bento.target("production"), bento.target("staging")
    process = production.load().colors.get("blue") or start(bento, production, "blue", bento.ports[0])
    url = f"http://127.0.0.1:{process.port}/predict"
    for headers in ({}, {CLIENT_HEADER: "operator"}, staging.operator_headers()):
        answer = httpx.post(url, json={"rows": bento.rows[:1]}, headers=headers, timeout=30)
        assert answer.status_code == 401, (headers.keys(), answer.text)
    assert httpx.post(
        url, json={"rows": bento.rows[:1]}, headers=bento.headers(production), timeout=30
    ).is_success


def small_latencies_ms(
    url: str, body: dict[str, Any], headers: dict[str, str], stop: threading.Event
) -> list[float]:
    """One client sending small predictions back to back until ``stop``; each one's latency."""
    latencies = []
    with httpx.Client(headers=headers, timeout=60) as client:
        while not stop.is_set():
            started = time.perf_counter()
            assert client.post(url, json=body).status_code == 200
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def post_raw(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, float, float, str]:
    """POST over a plain socket: status, ms in all, ms from the last byte sent to the answer, text.

    The second time is the server's (the rest of the body read, the rows counted): an HTTP
    client library reports only the first, upload included.
    """
    sent_headers = headers | {"Content-Type": "application/json", "Content-Length": str(len(body))}
    head = "".join(f"{name}: {value}\r\n" for name, value in sent_headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
        started = time.perf_counter()
        connection.sendall(f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n".encode() + body)
        sent = time.perf_counter()
        answer = connection.recv(65536)
        answered = time.perf_counter()
        while chunk := connection.recv(65536):  # the refusal closes the connection
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    text = answer.partition(b"\r\n\r\n")[2].decode()
    return status, (answered - started) * 1000, (answered - sent) * 1000, text


def test_body_limit__too_many_rows_are_refused_before_parsing_and_others_are_served(bento: Bento) -> None:
    """A 15 MB body of 58,900 rows: 413 without the whole parse, a small client beside it unaffected.

    The small client's latencies are compared side by side: alone, then while big bodies are
    refused one after the other. Before, each big body held the worker 1.5-1.9 s.
    """
    production = bento.target("production")
    actual = production.load()
    process = actual.colors.get("blue") or start(bento, production, "blue", bento.ports[0])
    url, headers = f"http://127.0.0.1:{process.port}/predict", bento.headers(production)
    big = json.dumps(
        {"rows": (bento.rows * (BIG_ROWS // len(bento.rows) + 1))[:BIG_ROWS]}, separators=(",", ":")
    ).encode()
    assert len(big) < 16e6  # under the byte limit (15.1 MB, a regressor's rows 14.6 MB): rows must refuse it
    small = {"rows": bento.rows[:1]}

    def measured_small(during_big: bool) -> tuple[list[float], list[tuple[int, float, float, str]]]:
        stop, found = threading.Event(), []
        worker = threading.Thread(target=lambda: found.append(small_latencies_ms(url, small, headers, stop)))
        worker.start()
        refused = []
        for _ in range(8):
            if during_big:
                refused.append(post_raw(process.port, big, headers))
            else:
                time.sleep(0.3)
        stop.set()
        worker.join()
        return found[0], refused

    alone, _ = measured_small(during_big=False)
    beside, refused = measured_small(during_big=True)
    print(
        f"\n413 after {[round(ms, 1) for _, ms, _, _ in refused]} ms in all, "
        f"{[round(ms, 1) for _, _, ms, _ in refused]} ms after the last byte; small requests: "
        f"alone p50 {statistics.median(alone):.1f} max {max(alone):.1f} ms ({len(alone)}), "
        f"beside the big bodies p50 {statistics.median(beside):.1f} max {max(beside):.1f} ms ({len(beside)})"
    )
    assert {status for status, _, _, _ in refused} == {413}
    assert all(
        "more than 10000 rows" in text and "serving.max_rows_per_request" in text for _, _, _, text in refused
    )
    # Side by side, not against a fixed budget: each whole parse held the small client 1.5-1.9 s
    # (~200x its time alone); now it waits for a chunk or the prefix's count (2-3x on a busy host)
    assert statistics.median(beside) < 8 * statistics.median(alone)
