"""Promotion on the local target, for real: bentoml serve processes behind a real HAProxy.

The services are small BentoML services in ``tests/deployment/services/`` serving a model these tests
train and register; broken ones (slow, wrong output format, crashing, failing after switch)
must never keep production traffic.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import joblib
import pytest

from conftest import quick_forest
from {{ cookiecutter.package_name }} import registry
from {{ cookiecutter.package_name }}.config import Config, compose
from {{ cookiecutter.package_name }}.deployment import checks, load, local, loopback, promotion, router, state
from {{ cookiecutter.package_name }}.deployment.loopback import client, free_ports
from {{ cookiecutter.package_name }}.training import train

SERVICES = Path(__file__).parent / "services"
pytestmark = pytest.mark.skipif(
    shutil.which("haproxy") is None or shutil.which("wrk") is None,
    reason="needs haproxy and wrk (apt-get install haproxy wrk)",
)


@pytest.mark.parametrize(
    ("current", "desired", "canary", "steps"),
    [
        ({"blue": 100, "green": 0}, {"blue": 100, "green": 0}, (), []),
        ({"blue": 100, "green": 0}, {"blue": 0, "green": 100}, (), [{"blue": 0, "green": 100}]),
        (
            {"blue": 100, "green": 0},
            {"blue": 0, "green": 100},
            (2, 25, 75),
            [
                {"green": 2, "blue": 98},
                {"green": 25, "blue": 75},
                {"green": 75, "blue": 25},
                {"blue": 0, "green": 100},
            ],
        ),
        (
            {"blue": 0, "green": 100},
            {"blue": 100, "green": 0},
            (50,),
            [{"blue": 50, "green": 50}, {"blue": 100, "green": 0}],
        ),
    ],
)
def test_weight_steps__all_at_once_or_through_canary_steps(
    current: dict[str, int], desired: dict[str, int], canary: tuple[int, ...], steps: list[dict[str, int]]
) -> None:
    assert promotion.weight_steps(current, desired, canary) == steps


def test_exclusive__second_promotion_is_refused(tmp_path: Path) -> None:
    target = local.LocalTarget("production", tmp_path, tmp_path)
    with (
        local.exclusive(target),
        pytest.raises(local.DeployError, match="another promotion"),
        local.exclusive(target),
    ):
        pass
    with local.exclusive(target):  # released: the next one goes ahead
        pass


@dataclass
class Trained:
    cfg: Config
    version: str


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A small forest trained and registered in a throwaway store, saved for the test services."""
    root = tmp_path_factory.mktemp("promotion")
    cfg = compose(quick_forest(root))
    result = train.train(cfg)
    registry.connect(cfg.mlflow)
    joblib.dump(registry.load(cfg.mlflow.model_name, registry.CANDIDATE), root / "model.joblib")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STANDIN_MODEL", str(root / "model.joblib"))
    assert result.model_version is not None
    return Trained(cfg, result.model_version)


def desired_doc(blue: str, green: str | None, version: str) -> dict[str, Any]:
    port, preview_port, blue_port, green_port = free_ports(4)
    return {
        "environment": "production",
        "live": "blue",
        "colors": {
            "blue": {"bento": f"{blue}:Service", "model_version": version},
            "green": {"bento": f"{green}:Service", "model_version": version} if green else None,
        },
        "traffic": {"blue": 100, "green": 0},
        "router": {
            "port": port,
            "preview_port": preview_port,
            "blue_port": blue_port,
            "green_port": green_port,
        },
        "checks": {
            "gate": True,
            "readiness_timeout_s": 90,
            "latency": {"p95_ms": 800, "p99_ms": 2000, "concurrency": 4, "duration_s": 1, "min_requests": 10},
            "schemathesis_examples": 5,
            # The stand-ins take any JSON rows and publish no contract to hold them to; the real
            # service meets every check (tests/serving/test_service.py and the gate tests).
            "schemathesis_checks": "not_a_server_error",
            "post_switch": {"window_s": 2.0, "p95_ms": 2000, "min_requests": 5},
        },
    }


@dataclass
class Env:
    target: local.LocalTarget
    trained: Trained
    reports: Path
    desired: state.DesiredState

    def promoter(self, desired: state.DesiredState, **kwargs: Any) -> promotion.Promoter:
        return promotion.Promoter(
            desired=desired,
            target=self.target,
            journal=promotion.Journal("production", self.target.dir / "decisions.jsonl"),
            holdout=lambda version: checks.load_holdout(self.trained.cfg, version),
            report_dir=self.reports,
            **kwargs,
        )

    def candidate(self, service: str) -> state.DesiredState:
        """The promotion edit: ``service`` on green, green live."""
        return state.with_release(self.desired, state.Release(f"{service}:Service", self.trained.version))

    def router_stats(self) -> dict[str, Any]:
        return {s.color: s for s in self.target.api().stats()}


@pytest.fixture
def env(trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    """Blue serves the good service and takes all traffic; green is empty."""
    monkeypatch.setenv(
        "STANDIN_MODEL", str(Path(str(trained.cfg.mlflow.artifact_dir)).parent / "model.joblib")
    )
    monkeypatch.setenv("STANDIN_FAIL_FLAG", str(tmp_path / "fail"))
    target = local.LocalTarget("production", tmp_path / ".deploy", SERVICES)
    desired = state.parse(desired_doc("good", None, trained.version))
    env = Env(target, trained, tmp_path / "reports", desired)
    try:
        first = env.promoter(replace(desired, checks=replace(desired.checks, gate=False))).apply()
        assert first.status == "promoted", first.decisions
        yield env
    finally:
        target.stop_all(target.load())


@pytest.mark.slow
def test_promotion__good_candidate_goes_live_and_rollback_restores(env: Env) -> None:
    candidate = env.candidate("good")
    outcome = env.promoter(candidate).apply()
    assert outcome.status == "promoted", outcome.decisions
    assert env.target.api().weights() == {"blue": 0, "green": 100}
    assert all(report.passed for report in outcome.reports)
    report = json.loads((env.reports / "production-green.json").read_text())
    assert {r["name"] for r in report["results"]} == {
        "health",
        "output_format",
        "schemathesis",
        "metric_parity",
        "latency",
    }
    # a fresh tooling process (new objects, same state dir) finds the warm blue and rolls back
    again = local.LocalTarget("production", env.target.dir.parent, SERVICES)
    env.target = again
    back = env.promoter(candidate).rollback()
    assert back.status == "rolled_back"
    assert again.api().weights() == {"blue": 100, "green": 0}
    assert again.load().live == "blue"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("service", "failing_check"),
    [("slow", "latency"), ("wrong_format", "output_format"), ("crashing", "output_format")],
)
def test_promotion__broken_candidate_is_refused(env: Env, service: str, failing_check: str) -> None:
    outcome = env.promoter(env.candidate(service)).apply()
    assert outcome.status == "refused"
    assert failing_check in {result.name for result in outcome.reports[0].failures()}
    assert env.target.api().weights() == {"blue": 100, "green": 0}
    assert env.router_stats()["green"].requests == 0  # not one production request reached it
    assert env.target.load().live == "blue"


@pytest.mark.slow
def test_promotion__a_new_color_is_warmed_up_before_checks_and_traffic(env: Env) -> None:
    candidate = env.candidate("good")
    outcome = env.promoter(replace(candidate, checks=replace(candidate.checks, warm_up_requests=7))).apply()
    assert outcome.status == "promoted", outcome.decisions
    steps = [d.step for d in outcome.decisions]
    assert steps.index("warm green") < steps.index("gate green") < steps.index("switch")
    warm = outcome.decisions[steps.index("warm green")]
    assert (warm.numbers["requests"], warm.numbers["failures"]) == (7, 0)


@pytest.mark.slow
def test_promotion__a_two_percent_canary_step_is_judged_on_enough_answers(env: Env) -> None:
    candidate = replace(env.candidate("good"), canary_steps=(2,))
    outcome = env.promoter(candidate).apply()
    assert outcome.status == "promoted", outcome.decisions
    watches = [d for d in outcome.decisions if d.step == "watch green"]
    assert [d.outcome for d in watches] == ["healthy", "healthy"]  # at 2 %, then at 100 %
    assert all(d.numbers["probes"] >= candidate.checks.post_switch.min_requests for d in watches)


@pytest.mark.slow
def test_promotion__failure_after_switch_rolls_back(env: Env, tmp_path: Path) -> None:
    flag = tmp_path / "fail"
    outcome = env.promoter(env.candidate("flaky"), on_switch=lambda weights: flag.touch()).apply()
    assert outcome.status == "rolled_back", outcome.decisions
    assert env.target.api().weights() == {"blue": 100, "green": 0}
    watch = next(d for d in outcome.decisions if d.step == "watch green")
    assert watch.outcome == "unhealthy"
    steps = [d.step for d in outcome.decisions]
    assert steps.index("rollback") > steps.index("switch")


def answering_color(env: Env, body: bytes) -> str | None:
    """The color that answered one request through the front door; None for a failed request."""
    address = f"http://127.0.0.1:{env.desired.router.port}/predict"
    try:
        response = client().post(address, content=body, headers=router.JSON_HEADERS, timeout=5)
    except httpx.HTTPError:
        return None
    return response.headers.get(router.COLOR_HEADER) if response.status_code == 200 else None


def one_row(env: Env) -> str:
    """A request body of one held-out row."""
    holdout = checks.load_holdout(env.trained.cfg, env.trained.version)
    return json.dumps(checks.request_body(holdout.x_test.head(1)))


class Answers:
    """Who answered the front door, request by request, in a thread beside the load."""

    def __init__(self, env: Env, body: str) -> None:
        self.seen: list[tuple[float, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._probe, args=(env, body.encode()), daemon=True)

    def __enter__(self) -> Answers:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _probe(self, env: Env, body: bytes) -> None:
        while not self._stop.is_set():
            self.seen.append((time.monotonic(), answering_color(env, body)))
            time.sleep(0.01)

    def first(self, color: str, after: float) -> float:
        """Seconds from ``after`` to the first answer by ``color`` (inf if none came)."""
        times = [at - after for at, seen in self.seen if at >= after and seen == color]
        return min(times, default=float("inf"))


class Failover:
    """When HAProxy first sent a request to a color's backup server (its ``stot`` counter moved)."""

    def __init__(self, env: Env, color: str) -> None:
        self.api, self.server, self.at = env.target.api(), f"{color}{router.FALLBACK}", float("inf")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> Failover:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.is_set() and self.at == float("inf"):
            rows = [r for r in self.api.rows() if r["svname"] == self.server]
            if rows and int(rows[0]["stot"] or 0) > 0:
                self.at = time.monotonic()
            time.sleep(0.005)


def kill_tree(pid: int | None) -> float:
    """kill -9 a process and everything below it (a color's arbiter and workers); when it was done."""
    assert pid is not None
    for each in loopback.process_tree(pid):
        os.kill(each, signal.SIGKILL)
    return time.monotonic()


def wait_for(condition: Callable[[], bool], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "not so after 120 s"
        time.sleep(0.1)


@pytest.mark.slow
def test_promotion__killed_live_color_under_load_loses_no_request_and_comes_back(env: Env) -> None:
    """kill -9 of the live color under wrk -c64: retried and redispatched to the warm previous color."""
    assert env.promoter(env.candidate("good")).apply().status == "promoted"  # green live, blue warm
    assert env.target.api().fallback() == {"blue": 100, "green": 0}
    body, url = one_row(env), f"http://127.0.0.1:{env.desired.router.port}/predict"
    with (
        load.background(url, body, clients=64, duration_s=10) as wrk,
        Answers(env, body) as answers,
        Failover(env, "blue") as failover,
    ):
        time.sleep(2)
        killed_pid = env.target.pid_of("green")
        killed = kill_tree(killed_pid)  # no warning, no rollback by anyone
        wait_for(lambda: env.target.pid_of("green") not in (None, killed_pid))  # supervisord restarted it
        result = wrk.result()
    wait_for(lambda: answering_color(env, body.encode()) == "green")  # healed: green live again
    healed, first_answer = time.monotonic() - killed, answers.first("blue", killed)
    print(f"wrk -c64: {result.requests} requests, {result.errors} failed; blue took its first request "
          f"{failover.at - killed:.3f} s after the kill (a client's first answer from blue: "
          f"{first_answer:.2f} s); green live again {healed:.1f} s after it")  # fmt: skip
    assert result.errors == 0, result
    assert result.blue > 0  # the warm previous color took the dead one's requests
    assert env.target.load().previous == "blue"


@pytest.mark.slow
def test_promotion__killed_router_under_load_answers_again_by_itself(env: Env) -> None:
    body, url = one_row(env), f"http://127.0.0.1:{env.desired.router.port}/predict"
    with load.background(url, body, clients=64, duration_s=6) as wrk, Answers(env, body) as answers:
        time.sleep(2)
        killed_pid = env.target.pid_of(local.ROUTER)
        killed = kill_tree(killed_pid)
        wait_for(lambda: env.target.pid_of(local.ROUTER) not in (None, killed_pid))
        wait_for(lambda: loopback.listening(env.desired.router.port))
        listening = time.monotonic() - killed
        wait_for(lambda: loopback.ready(env.desired.router.port, timeout_s=10, path="/livez"))
        healthy = time.monotonic() - killed  # a color's health through the new HAProxy
        wait_for(lambda: any(at > killed and seen == "blue" for at, seen in answers.seen))
        result = wrk.result()
    answered = answers.first("blue", killed)
    print(f"wrk -c64: {result.requests} requests, {result.connect} connections refused and {result.read} "
          f"reads cut while HAProxy was down, {result.status} error statuses; HAProxy listening again "
          f"{listening:.2f} s after kill -9, /livez answered through it {healthy:.2f} s after, "
          f"a prediction {answered:.2f} s after")  # fmt: skip
    after = [seen for at, seen in answers.seen if at >= killed + answered]
    assert set(after) == {"blue"}, after  # once back, every request is answered
    # wrk's errors are its reconnections refused while no HAProxy listened, counted as fast as they fail
    assert env.target.api().weights() == {"blue": 100, "green": 0}


@pytest.mark.slow
def test_promotion__killed_idle_color_is_restarted_and_rollback_still_works(env: Env) -> None:
    candidate = env.candidate("good")
    assert env.promoter(candidate).apply().status == "promoted"  # green live, blue warm
    killed_pid = env.target.pid_of("blue")
    killed = kill_tree(killed_pid)
    wait_for(lambda: env.target.pid_of("blue") not in (None, killed_pid))
    blue = env.target.load().colors["blue"]
    wait_for(lambda: env.target.color_answering(blue))  # the same release, the same instance
    print(f"killed idle color serving again {time.monotonic() - killed:.1f} s after kill -9")
    env.target.supervisor.call("stopProcess", "blue")  # as if supervisord had given up on it
    again = env.promoter(candidate).apply()  # restarts it: the same release, still the fallback
    assert [d.outcome for d in again.decisions if d.step == "deploy blue"] == ["starting", "ready"]
    assert env.target.load().previous == "blue"
    assert env.target.api().fallback() == {"blue": 100, "green": 0}
    body, url = one_row(env), f"http://127.0.0.1:{env.desired.router.port}/predict"
    with load.background(url, body, clients=64, duration_s=4) as wrk:
        time.sleep(1)
        back = env.promoter(candidate).rollback()
        result = wrk.result()
    assert back.status == "rolled_back"
    assert env.target.api().weights() == {"blue": 100, "green": 0}
    assert result.errors == 0, result


@pytest.mark.slow
def test_promotion__a_live_color_that_stays_down_is_gated_again_before_traffic(env: Env) -> None:
    candidate = env.candidate("good")
    assert env.promoter(candidate).apply().status == "promoted"  # green live, blue warm
    env.target.supervisor.call("stopProcess", "green")  # supervisord gave up on the live color
    wait_for(lambda: answering_color(env, one_row(env).encode()) == "blue")  # the fallback serves
    outcome = env.promoter(candidate).apply()
    steps = [d.step for d in outcome.decisions]
    assert outcome.status == "promoted", outcome.decisions
    order = ["take out", "deploy green", "gate green", "switch"]
    assert [steps.index(step) for step in order] == sorted(steps.index(step) for step in order)
    assert env.target.api().weights() == {"blue": 0, "green": 100}
    assert env.target.load().previous == "blue"


@pytest.mark.slow
def test_promotion__refused_candidate_on_the_warm_color_is_no_fallback_nor_rollback_target(env: Env) -> None:
    promoted = env.candidate("good")
    assert env.promoter(promoted).apply().status == "promoted"  # green live, blue warm
    refused = state.with_release(promoted, state.Release("slow:Service", env.trained.version))  # onto blue
    assert env.promoter(refused).apply().status == "refused"
    assert env.target.api().weights() == {"blue": 0, "green": 100}
    assert env.target.api().fallback() == {"blue": 0, "green": 0}
    with pytest.raises(promotion.PromotionError, match="no warm previous color"):
        env.promoter(refused).rollback()
    assert env.target.api().weights() == {"blue": 0, "green": 100}
