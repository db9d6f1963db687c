"""Promotion on the local target, for real: bentoml serve processes behind a real HAProxy.

The services are small BentoML services in ``tests/deployment/services/`` serving a model these tests
train and register; broken ones (slow, wrong output format, crashing, failing after switch)
must never keep production traffic.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import joblib
import pytest

from conftest import quick_forest
from {{ cookiecutter.package_name }} import registry
from {{ cookiecutter.package_name }}.config import Config, compose
from {{ cookiecutter.package_name }}.deployment import checks, local, loopback, promotion, router, state
from {{ cookiecutter.package_name }}.deployment.loopback import free_ports
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
    connection = http.client.HTTPConnection("127.0.0.1", env.desired.router.port, timeout=5)
    try:
        connection.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.getheader(router.COLOR_HEADER) if response.status == 200 else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


@pytest.mark.slow
def test_promotion__killed_live_color_fails_over_to_the_warm_previous_one(env: Env) -> None:
    assert env.promoter(env.candidate("good")).apply().status == "promoted"  # green live, blue warm
    assert env.target.api().weights(router.FALLBACK) == {"blue": 100, "green": 0}
    body = json.dumps(
        checks.request_body(checks.load_holdout(env.trained.cfg, env.trained.version).x_test.head(1))
    )
    for pid in loopback.process_tree(env.target.load().colors["green"].pid):  # kill -9, no warning
        os.kill(pid, signal.SIGKILL)
    killed, answers = time.monotonic(), []
    while time.monotonic() - killed < 30 and answers[-20:] != ["blue"] * 20:
        answers.append(answering_color(env, body.encode()))
    assert answers[-20:] == ["blue"] * 20, answers  # traffic is back without anyone running rollback
    assert "green" not in answers[answers.index("blue") :]


@pytest.mark.slow
def test_promotion__refused_candidate_on_the_warm_color_is_no_fallback_nor_rollback_target(env: Env) -> None:
    promoted = env.candidate("good")
    assert env.promoter(promoted).apply().status == "promoted"  # green live, blue warm
    refused = state.with_release(promoted, state.Release("slow:Service", env.trained.version))  # onto blue
    assert env.promoter(refused).apply().status == "refused"
    assert env.target.api().weights() == {"blue": 0, "green": 100}
    assert env.target.api().weights(router.FALLBACK) == {"blue": 0, "green": 0}
    with pytest.raises(promotion.PromotionError, match="no warm previous color"):
        env.promoter(refused).rollback()
    assert env.target.api().weights() == {"blue": 0, "green": 100}
