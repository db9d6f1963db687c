"""HAProxy config and runtime API, against a real haproxy fronting two tiny loopback servers."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

import reaper
from {{ cookiecutter.package_name }}.config import PROJECT_ROOT, compose, resolve
from {{ cookiecutter.package_name }}.deployment import local, router
from {{ cookiecutter.package_name }}.deployment.loopback import alive, free_ports, stop_process
from {{ cookiecutter.package_name }}.deployment.state import Release, Router, parse
from raw_http import headers_only

needs_haproxy = pytest.mark.skipif(
    shutil.which("haproxy") is None, reason="haproxy not installed (apt-get install haproxy)"
)


class Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def do_POST(self) -> None:
        self.do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def loopback(tmp_path: Path) -> Iterator[tuple[local.LocalTarget, Router]]:
    port, preview, blue, green = free_ports(4)
    servers = [ThreadingHTTPServer(("127.0.0.1", p), Answer) for p in (blue, green)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    target = local.LocalTarget("test", tmp_path / ".deploy", tmp_path)
    desired = parse(
        {
            "environment": "test",
            "live": "blue",
            "colors": {
                "blue": {"bento": "a:1", "model_version": "1"},
                "green": {"bento": "b:2", "model_version": "2"},
            },
            "traffic": {"blue": 100, "green": 0},
            "router": {"port": port, "preview_port": preview, "blue_port": blue, "green_port": green},
        }
    )
    actual = local.Actual(weights={"blue": 100, "green": 0})
    target.ensure_router(actual, desired)
    target.save(actual)
    yield target, desired.router
    target.stop_all(target.load())  # what the test left recorded (a restarted router, too)
    for server in servers:
        server.shutdown()


def kept_alive(port: int) -> httpx.Client:
    """A client of the router on ``port`` that keeps its connection open between requests."""
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5, trust_env=False)


def colors_seen(port: int, requests: int, headers: dict[str, str] | None = None) -> Counter[str]:
    seen: Counter[str] = Counter()
    with kept_alive(port) as client:
        for _ in range(requests):
            response = client.get("/readyz", headers=headers or {})
            seen[response.headers.get(router.COLOR_HEADER, "none")] += 1
    return seen


def test_router__config_names_both_colors_and_the_socket(tmp_path: Path) -> None:
    text = router.render(
        "production",
        Router(8080, 8081, 3001, 3002),
        {"blue": 100, "green": 0},
        tmp_path / "s.sock",
        keys_map=tmp_path / "keys.map",
    )
    observed = "check observe layer4 error-limit 1 on-error mark-down"
    assert f"server blue 127.0.0.1:3001 weight 100 {observed}" in text
    assert f"server green 127.0.0.1:3002 weight 0 {observed}" in text
    # the failover: backups in the production backend itself, where a retry is redispatched
    assert "server green-fallback 127.0.0.1:3002 weight 0 backup track green" in text
    assert "option allbackups" in text
    assert "option redispatch 1" in text
    assert f"stats socket {tmp_path / 's.sock'}" in text
    assert "bind 127.0.0.1:8080" in text
    assert "bind 127.0.0.1:8081" in text


@pytest.mark.slow
@needs_haproxy
def test_router__weights_move_keep_alive_traffic(loopback: tuple[local.LocalTarget, Router]) -> None:
    target, ports = loopback
    api = target.api()
    assert colors_seen(ports.port, 20) == Counter({"blue": 20})
    api.set_weights({"blue": 0, "green": 100})
    assert api.weights() == {"blue": 0, "green": 100}
    assert colors_seen(ports.port, 20) == Counter({"green": 20})
    api.set_weights({"blue": 50, "green": 50})
    assert set(colors_seen(ports.port, 40)) == {"blue", "green"}
    stats = {s.color: s for s in api.stats()}
    assert stats["green"].requests >= 20
    assert stats["blue"].failures == 0


@pytest.mark.slow
@needs_haproxy
def test_router__no_weighted_color_up_fails_over_to_the_fallback_only(
    loopback: tuple[local.LocalTarget, Router],
) -> None:
    target, ports = loopback
    api = target.api()
    api.set_fallback("green")
    assert api.fallback() == {"blue": 0, "green": 100}
    assert colors_seen(ports.port, 10) == Counter({"blue": 10})  # the live color is up: no failover
    api.set_weights({"blue": 0, "green": 0})  # what a dead live color leaves: nothing weighted is up
    assert colors_seen(ports.port, 10) == Counter({"green": 10})
    api.set_fallback(None)
    with kept_alive(ports.port) as client:
        assert client.get("/readyz").status_code == 503  # no warm previous color: nothing to fail over to


@pytest.mark.slow
@needs_haproxy
def test_router__oversized_body_is_refused_before_a_color_reads_it(
    loopback: tuple[local.LocalTarget, Router],
) -> None:
    target, ports = loopback
    before = {s.color: s.requests for s in target.api().stats()}
    limit = int(ports.max_body_mb * 1e6)
    announced = {"Content-Type": "application/json", "Content-Length": str(limit + 1)}  # never sent
    status, body = headers_only(ports.port, "/predict", announced)
    assert status == 413
    assert b"split the rows" in body
    assert {s.color: s.requests for s in target.api().stats()} == before  # no color saw it
    assert colors_seen(ports.port, 5) == Counter({"blue": 5})  # a normal request still passes


@pytest.mark.slow
@needs_haproxy
def test_router__a_chunked_body_is_refused_it_has_no_length_to_cap(
    loopback: tuple[local.LocalTarget, Router],
) -> None:
    target, ports = loopback
    before = {s.color: s.requests for s in target.api().stats()}
    chunked = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}  # no chunk follows
    for port in (ports.port, ports.preview_port):
        assert headers_only(port, "/predict", chunked) == (411, b"send Content-Length")
    assert {s.color: s.requests for s in target.api().stats()} == before


@pytest.mark.slow
@needs_haproxy
def test_router__preview_reaches_the_candidate_only(loopback: tuple[local.LocalTarget, Router]) -> None:
    target, ports = loopback
    target.api().set_weights({"blue": 0, "green": 100}, backend=router.PREVIEW)
    target.wait_router_sees("green", backend=router.PREVIEW)
    assert colors_seen(ports.preview_port, 10, target.operator_headers()) == Counter({"green": 10})
    assert colors_seen(ports.port, 10) == Counter({"blue": 10})
    assert {s.color: s.requests for s in target.api().stats()}["green"] == 0


@pytest.mark.slow
@needs_haproxy
def test_router__non_json_posts_are_refused_at_the_edge(loopback: tuple[local.LocalTarget, Router]) -> None:
    _, ports = loopback
    with kept_alive(ports.port) as client:
        for content_type, status in (
            ("multipart/form-data", 415),
            ("application/jsonx", 415),  # a prefix is not the type
            ("application/json", 200),
            ("Application/JSON; charset=utf-8", 200),
        ):
            response = client.post("/predict", content=b"{}", headers={"Content-Type": content_type})
            assert response.status_code == status, content_type
        response = client.post("/livez", content=b"x", headers={"Content-Type": "text/plain"})
    assert response.headers.get(router.COLOR_HEADER) == "blue"  # a GET route's 405 is the color's to give


@pytest.mark.slow
@needs_haproxy
def test_router__a_killed_router_is_restarted_by_its_supervisor_with_the_weights_it_had(
    loopback: tuple[local.LocalTarget, Router],
) -> None:
    target, ports = loopback
    actual = target.load()
    desired = parse(
        {
            "environment": "test",
            "live": "green",
            "colors": {
                "blue": {"bento": "a:1", "model_version": "1"},
                "green": {"bento": "b:2", "model_version": "2"},
            },
            "traffic": {"blue": 30, "green": 70},
            "router": dataclasses.asdict(ports),
        }
    )
    actual.weights = {"blue": 30, "green": 70}
    target.api().set_weights(actual.weights)
    target.write_router_config(actual, desired)  # what every weight change does (promotion._set)
    target.save(actual)
    killed_pid = target.pid_of(local.ROUTER)
    os.kill(killed_pid or 0, signal.SIGKILL)  # no operator, no `promote`: supervisord restarts it
    killed = time.monotonic()
    while time.monotonic() - killed < 30 and colors_seen_or_none(ports.port) is None:
        time.sleep(0.02)
    print(f"killed HAProxy answered again after {time.monotonic() - killed:.2f} s")
    assert target.pid_of(local.ROUTER) not in (None, killed_pid)
    assert target.api().weights() == {"blue": 30, "green": 70}
    assert set(colors_seen(ports.port, 40)) == {"blue", "green"}


def colors_seen_or_none(port: int) -> Counter[str] | None:
    """The colors of one answer through the router, or None while nothing answers there."""
    try:
        return colors_seen(port, 1)
    except httpx.HTTPError:
        return None


@needs_haproxy
def test_router__refused_command_raises(loopback: tuple[local.LocalTarget, Router]) -> None:
    target, _ = loopback
    with pytest.raises(router.RouterError, match="refused"):
        target.api().change("set weight colors/purple 10")


@pytest.mark.slow
@needs_haproxy
def test_router__state_survives_a_new_tooling_process(loopback: tuple[local.LocalTarget, Router]) -> None:
    target, _ = loopback
    again = local.LocalTarget("test", target.dir.parent, target.serve_dir)
    actual = again.load()
    assert again.router_running(actual)
    assert again.api().weights() == {"blue": 100, "green": 0}


@pytest.mark.slow
@needs_haproxy
def test_router__found_through_another_path_to_the_same_state(
    loopback: tuple[local.LocalTarget, Router], tmp_path: Path
) -> None:
    target, _ = loopback
    elsewhere = tmp_path / "linked-state"
    elsewhere.symlink_to(target.dir.parent)
    again = local.LocalTarget("test", elsewhere, target.serve_dir)
    assert again.router_running(again.load())


def test_local__spawned_process_sees_its_working_directory_as_pwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service resolves its profile directory against PWD: never the launcher's directory."""
    monkeypatch.setenv("PWD", str(tmp_path / "where-the-tooling-was-started"))
    serve_dir = tmp_path / "serve"
    serve_dir.mkdir()
    target = local.LocalTarget("test", tmp_path / "state", serve_dir)
    probe = "import os, pathlib; pathlib.Path('pwd.txt').write_text(os.environ['PWD'])"
    target._spawn([sys.executable, "-c", probe], "probe")
    assert _written(serve_dir / "pwd.txt") == str(serve_dir.resolve())


def _written(path: Path) -> str:
    """What a spawned probe wrote to ``path``, once it has."""
    for _ in range(200):
        if path.is_file() and path.read_text():
            break
        time.sleep(0.05)
    return path.read_text()


def test_local__each_environment_profiles_into_its_own_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SERVING_PROFILE_DIR", raising=False)
    staging = local.LocalTarget("staging", tmp_path, tmp_path)
    assert staging.profile_dir() == str(tmp_path.resolve() / "profiles" / "staging")
    production = local.LocalTarget("production", tmp_path, PROJECT_ROOT)
    # monitor reads production's folder, and only it
    assert production.profile_dir() == str(resolve(compose().monitoring.profile_dir).resolve())
    monkeypatch.setenv("SERVING_PROFILE_DIR", "s3://bucket/profiles/")
    assert production.profile_dir() == "s3://bucket/profiles/production"


def test_local__colors_get_the_real_folders_behind_a_workspace_s_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the production host a job's workspace links its stores to a folder that outlives it."""
    monkeypatch.delenv("SERVING_PROFILE_DIR", raising=False)
    home, workspace = tmp_path / "deploy-home", tmp_path / "workspace"
    for store in (".deploy", "profiles", ".bentoml"):
        (home / store).mkdir(parents=True)
    workspace.mkdir()
    for store in (".deploy", "profiles", ".bentoml"):
        (workspace / store).symlink_to(home / store)
    monkeypatch.setenv("BENTOML_HOME", str(workspace / ".bentoml"))
    target = local.LocalTarget("production", workspace / ".deploy", workspace)
    assert target.dir == home.resolve() / ".deploy" / "production"
    assert target.profile_dir() == str(home.resolve() / "profiles" / "production")
    probe = "import os, pathlib; pathlib.Path('bentoml_home.txt').write_text(os.environ['BENTOML_HOME'])"
    target._spawn([sys.executable, "-c", probe], "probe")
    assert _written(workspace / "bentoml_home.txt") == str(home.resolve() / ".bentoml")


def test_local__processes_outlive_the_runner_s_end_of_job_reaper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner kills what carries the job's RUNNER_TRACKING_ID; a color must not carry it."""
    tracking_id = f"github_{time.time_ns()}"
    monkeypatch.setenv("RUNNER_TRACKING_ID", tracking_id)
    target = local.LocalTarget("production", tmp_path / "state", tmp_path)
    color = target._spawn([sys.executable, "-c", "import time; time.sleep(60)"], "color")
    job_leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # the control
    try:
        assert reaper.reap(tracking_id) == [job_leftover.pid]
        assert job_leftover.wait(timeout=10) == -signal.SIGKILL
        assert alive(color, "")
    finally:
        stop_process(color)
        job_leftover.kill()


def test_local__supervised_processes_outlive_the_runner_s_end_of_job_reaper_and_their_deaths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job starts supervisord; nothing it keeps carries the job's mark, and what dies is restarted."""
    tracking_id = f"github_{time.time_ns()}"
    monkeypatch.setenv("RUNNER_TRACKING_ID", tracking_id)
    target = local.LocalTarget("production", tmp_path / "state", tmp_path)
    target.ensure_supervisor()
    try:
        target.supervisor.put("color", [sys.executable, "-c", "import time; time.sleep(60)"], {})
        first = _pid_once_running(target, "color", None)
        assert reaper.reap(tracking_id) == []  # neither supervisord nor its programs carry the mark
        os.kill(first, signal.SIGKILL)
        assert _pid_once_running(target, "color", first) != first  # restarted, no one asked
        assert "RUNNER_TRACKING_ID" not in target.supervisor.unit.read_text()
    finally:
        target.stop_all(target.load())
    assert not target.supervisor.running()


def _pid_once_running(target: local.LocalTarget, program: str, other_than: int | None) -> int:
    for _ in range(200):
        pid = target.pid_of(program)
        if pid is not None and pid != other_than:
            return pid
        time.sleep(0.05)
    raise AssertionError(f"{program} not running after 10 s")


def test_local__a_program_restarts_and_stops_after_the_deploying_workspace_is_gone(tmp_path: Path) -> None:
    """A CI job's workspace may be deleted after the job: what supervisord restarts must not need it."""
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    target = local.LocalTarget("production", tmp_path / "home" / ".deploy", workspace)
    target.ensure_supervisor()
    try:
        target.supervisor.put("color", [sys.executable, "-c", "import time; time.sleep(60)"], {})
        first = _pid_once_running(target, "color", None)
        shutil.rmtree(workspace)
        os.kill(first, signal.SIGKILL)
        assert _pid_once_running(target, "color", first) != first
    finally:
        target.stop_all(target.load())
    assert not target.supervisor.running()


def test_local__the_systemd_unit_keeps_supervisord_and_stops_cleanly(tmp_path: Path) -> None:
    """On a production host systemd restarts supervisord when it dies, not after `deploy stop`."""
    target = local.LocalTarget("production", tmp_path / "state", tmp_path)
    target.supervisor.write_config({"BENTOML_HOME": "/srv/churn/.bentoml"})
    unit = target.supervisor.unit.read_text()
    assert "Restart=on-failure" in unit
    assert f"-m supervisor.supervisord --nodaemon --configuration {target.supervisor.config}" in unit
    assert 'Environment="BENTOML_HOME=/srv/churn/.bentoml"' in unit
    assert f"systemctl link {target.supervisor.unit}" in unit


def test_local__an_image_release_runs_in_the_foreground_and_is_recognised_by_its_port(tmp_path: Path) -> None:
    target = local.LocalTarget("staging", tmp_path / "state", tmp_path)
    name = target.container_name("green")
    command = target.container_command("podman", "ghcr.io/o/svc:abc", name, 3102, "staging-green-1")
    assert command[command.index("--name") + 1] == "staging-green"
    assert command[:3] == ["podman", "run", "--rm"]
    assert "-d" not in command  # the tooling's own process: stopping it stops the container
    assert command[-5:] == ["ghcr.io/o/svc:abc", "--host", "127.0.0.1", "--port", "3102"]
    profiles = tmp_path / "profiles" / "staging"
    assert f"{profiles}:{profiles}" in command
    assert f"SERVING_PROFILE_DIR={profiles}" in command
    assert "SERVING_INSTANCE=staging-green-1" in command  # readiness waits for this name
    assert {"--read-only", "--cap-drop=all", "--security-opt=no-new-privileges"} <= set(command)
    assert command[command.index("--tmpfs") + 1] == "/tmp"  # BentoML's home moves there
    assert command[command.index("--user") + 1] == f"{local.IMAGE_UID}:{os.getgid()}"  # never root
    assert "--cap-add" not in " ".join(command)
    assert profiles.stat().st_mode & 0o7777 == 0o2775  # the container user writes it through the group


def test_local__signed_images_need_podman_and_the_signer_s_key(tmp_path: Path) -> None:
    """The refusals before any pull (the real pull, signed and not, is the template's image test)."""
    target = local.LocalTarget("production", tmp_path / ".deploy", tmp_path)
    image = "ghcr.io/o/svc@sha256:" + "0" * 64
    with pytest.raises(local.DeployError, match="docker does not verify image signatures"):
        target.pull_signed("docker", image, tmp_path / "release.asc")
    with pytest.raises(local.DeployError, match=r"release\.asc not found; export the signer's key"):
        target.pull_signed("podman", image, tmp_path / "release.asc")


def test_local__admin_socket_of_a_deep_project_stays_within_haproxys_limit(tmp_path: Path) -> None:
    deep = tmp_path / ("a-project-folder-with-a-long-name-" * 3) / ".deploy" / "staging"
    socket_path = local.admin_socket(deep)
    assert len(str(socket_path)) <= local.SOCKET_PATH_MAX
    assert local.admin_socket(deep) == socket_path  # every tooling process finds the same one
    assert local.admin_socket(tmp_path) == tmp_path.resolve() / "haproxy.sock"  # short paths stay put


def test_local__a_taken_port_is_named_and_nothing_starts(tmp_path: Path) -> None:
    """An orphan answering on the color's port is never taken for the release the tooling starts."""
    (port,) = free_ports(1)
    orphan = ThreadingHTTPServer(("127.0.0.1", port), Answer)
    threading.Thread(target=orphan.serve_forever, daemon=True).start()
    target = local.LocalTarget("production", tmp_path / "state", tmp_path)
    try:
        with pytest.raises(
            local.DeployError, match=rf"port {port} \(router.green_port in deploy/production.yaml\)"
        ):
            target.start_color("green", Release("svc:1", "1"), port, timeout_s=5)
    finally:
        orphan.shutdown()
    assert not (target.dir / "logs" / "green.log").exists()  # refused before anything was spawned


def test_local__a_slow_start_says_every_so_often_that_it_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = local.LocalTarget("staging", tmp_path / "state", tmp_path)
    (target.dir / "logs").mkdir(parents=True)
    (target.dir / "logs" / "green.log").write_text("loading the model\n")
    monkeypatch.setattr(local, "PROGRESS_EVERY_S", 0.3)
    ready_at = time.monotonic() + 2.0
    target._wait(lambda: time.monotonic() >= ready_at, "green", timeout_s=10)
    lines = capsys.readouterr().out.splitlines()
    assert 2 <= len(lines) <= 7  # every 0.3 s or so, and none once ready
    for line in lines:
        assert re.fullmatch(r"\[staging\] green: starting, \d s of 10 s; its log: loading the model", line)
