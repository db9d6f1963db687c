"""wrk against a real tiny HTTP server: the one Lua script's numbers, color counts and body rotation."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.deployment import load, loopback, router
from {{ cookiecutter.package_name }}.tools import MissingToolError

needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (apt-get install wrk)")


class ColorServer(ThreadingHTTPServer):
    daemon_threads = True
    seen: Counter[str]

    def handle_error(self, *args: object) -> None:
        pass  # wrk resets its connections when it stops


class ColorHandler(BaseHTTPRequestHandler):
    """A POST ``{"color": c}`` gets 200 and ``X-Deploy-Color: c``; ``none`` no header, ``fail`` a 500."""

    protocol_version = "HTTP/1.1"  # keep-alive, as wrk expects
    disable_nagle_algorithm = True  # headers and body go out apart: no 40 ms delayed-ACK stall
    server: ColorServer

    def do_POST(self) -> None:
        color = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["color"]
        self.server.seen[color] += 1
        self.send_response(500 if color == "fail" else 200)
        if color not in {"none", "fail"}:
            self.send_header(router.COLOR_HEADER, color)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[ColorServer]:
    httpd = ColorServer(("127.0.0.1", loopback.free_port()), ColorHandler)
    httpd.seen = Counter()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(httpd: ColorServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}/predict"


def body(color: str) -> str:
    return json.dumps({"color": color})


@needs_wrk
def test_run__rotates_bodies_and_counts_colors(server: ColorServer) -> None:
    server.seen.clear()
    result = load.run(
        url(server), [body("blue"), body("green"), body("none")], clients=4, duration_s=1, threads=2
    )
    assert result.requests > 30
    assert result.errors == 0
    assert result.blue + result.green + result.other == result.requests
    # each thread rotates over the three bodies, so the counts differ by what was in flight at the end
    assert max(result.blue, result.green, result.other) - min(result.blue, result.green, result.other) <= 8
    assert result.blue <= server.seen["blue"] <= result.blue + 4
    assert 0 < result.p50_us <= result.p95_us <= result.p99_us <= result.max_us
    assert 0.9e6 <= result.duration_us <= 3e6
    assert result.requests_per_s == pytest.approx(result.requests / (result.duration_us / 1e6))


@needs_wrk
def test_run__one_body_is_sent_every_time(server: ColorServer) -> None:
    server.seen.clear()
    result = load.run(url(server), body("green"), clients=2, duration_s=1)
    assert result.requests > 10
    assert (result.blue, result.other, result.errors) == (0, 0, 0)
    assert result.green == result.requests
    assert server.seen["green"] >= result.requests
    # the shared server may still answer a few requests the previous test had in flight
    assert sum(count for name, count in server.seen.items() if name != "green") <= 4


@needs_wrk
def test_run__error_answers_are_status_errors(server: ColorServer) -> None:
    result = load.run(url(server), body("fail"), clients=1, duration_s=1)
    assert result.requests > 0
    assert result.status == result.errors == result.requests
    assert (result.blue, result.green, result.other) == (0, 0, 0)


@needs_wrk
def test_run__nothing_listening_is_a_load_error() -> None:
    closed = f"http://127.0.0.1:{loopback.free_port()}/predict"
    with pytest.raises(load.LoadError, match="wrk printed no result: unable to connect to"):
        load.run(closed, body("blue"), clients=2, duration_s=1)


@needs_wrk
def test_background__stop_returns_the_numbers_so_far(server: ColorServer) -> None:
    started = time.monotonic()
    with load.background(url(server), body("blue"), clients=2, duration_s=60) as wrk:
        time.sleep(1.5)
        result = wrk.stop()
        assert wrk.result() == result
        script = Path(wrk.process.args[-2])
        assert script.is_file()
    assert time.monotonic() - started < 60  # stopped: the run's own 60 s did not have to end
    assert result.requests > 0
    assert result.blue == result.requests
    assert not script.exists()  # the script and bodies files are gone with the block


@needs_wrk
def test_background__leaving_early_stops_wrk(server: ColorServer) -> None:
    with load.background(url(server), body("blue"), clients=1, duration_s=60) as wrk:
        time.sleep(0.5)
    assert wrk.process.returncode is not None


def test_run__missing_wrk_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingToolError, match=r"^wrk is not installed .*apt-get install wrk"):
        load.run("http://127.0.0.1:1/predict", body("blue"), clients=1, duration_s=1)


@pytest.mark.parametrize("bodies", [[], ['{"a":\n1}'], [""]])
def test_run__bodies_must_be_single_lines(bodies: list[str]) -> None:
    with pytest.raises(ValueError, match="one line each"):
        load.run("http://127.0.0.1:1/predict", bodies, clients=1, duration_s=1)


@pytest.mark.parametrize(
    ("clients", "threads", "duration_s", "expected"),
    [(1, None, 1.0, ["-t", "1", "-c", "1", "-d", "1s"]), (64, None, 2.5, ["-t", "2", "-c", "64", "-d", "3s"]),
     (64, 1, 0.2, ["-t", "1", "-c", "64", "-d", "1s"]), (2, 8, 5.0, ["-t", "2", "-c", "2", "-d", "5s"])],
)  # fmt: skip
def test_command__threads_and_whole_seconds(
    clients: int, threads: int | None, duration_s: float, expected: list[str]
) -> None:
    command = load.command(
        "http://h/p", Path("s.lua"), clients=clients, duration_s=duration_s, threads=threads
    )
    assert command[1:7] == expected
    assert command[-3:] == ["-s", "s.lua", "http://h/p"]


def test_parse__missing_or_broken_result_is_a_load_error() -> None:
    with pytest.raises(load.LoadError, match="wrk printed no result: unable to connect"):
        load.parse("Running 1s test\n", "unable to connect to host\n")
    numbers = {name: 1 for name in ("requests", "duration_us", "p50_us", "p95_us", "p99_us", "max_us")}
    with pytest.raises(load.LoadError, match="has no 'connect'"):
        load.parse(f"WRK_JSON {json.dumps(numbers)}\n")
    with pytest.raises(load.LoadError, match="unreadable"):
        load.parse('WRK_JSON {"requests": \n')
