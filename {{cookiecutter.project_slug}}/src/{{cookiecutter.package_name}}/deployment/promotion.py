"""Reconcile an environment to its desired state: deploy, gate, switch, watch, roll back.

A promotion is a change to ``deploy/production.yaml`` (the idle color gets the candidate and
becomes live). :func:`apply` makes the running system match it: start the candidate on the
idle color, wait for readiness, run the sanity checks against that color alone, then move
traffic through HAProxy (all at once, or through ``canary_steps``), watching the new color
after every step. The old color stays warm, so a failed watch, or ``nox -s rollback``, puts
traffic back in one runtime-API call. A candidate that fails a check never gets a request
from the router. One lock file per environment (``fcntl``) keeps two promotions apart, and
every decision is printed, appended to ``.deploy/<env>/decisions.jsonl`` and reported.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import resolve
from ..errors import PipelineError
from ..reports import jsonfile, tables
from . import checks, router, watch
from .local import Actual, DeployError, LocalTarget, exclusive
from .state import COLORS, DesiredState, other

Weights = dict[str, int]
HoldoutFn = Callable[[str], checks.Holdout]


class PromotionError(PipelineError, RuntimeError):
    """A promotion or rollback cannot go ahead; the message says why and what to do."""


@dataclass(frozen=True)
class Decision:
    """One thing the tooling decided, with its reason and numbers."""

    at: float
    step: str
    outcome: str
    detail: str = ""
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass
class Journal:
    """Every decision of one run: printed as it happens, appended to the environment's log."""

    environment: str
    log_file: Path
    decisions: list[Decision] = field(default_factory=list)
    echo: Callable[[str], None] = print

    def record(self, step: str, outcome: str, detail: str = "", **numbers: object) -> Decision:
        """Record and print one decision."""
        decision = Decision(time.time(), step, outcome, detail, numbers)
        self.decisions.append(decision)
        self.echo(f"[{self.environment}] {step}: {outcome}" + (f" ({detail})" if detail else ""))
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("a") as log:
            log.write(json.dumps(asdict(decision)) + "\n")
        return decision


@dataclass
class Outcome:
    """How a run ended: ``unchanged``, ``deployed``, ``promoted``, ``refused`` or ``rolled_back``."""

    status: str
    live: str | None
    weights: Weights
    decisions: list[Decision]
    reports: list[checks.Report] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the environment now matches its desired state."""
        return self.status in {"unchanged", "deployed", "promoted"}

    @property
    def serving(self) -> str:
        """What serves now, in words: ``blue live (blue 100 %, green 0 %)``."""
        return f"{self.live or 'no color'} live ({weights_text(self.weights)})"

    def write(self, directory: str | Path, name: str) -> Path:
        """Write the run's decisions and check results as JSON and Markdown."""
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        doc = {
            "status": self.status,
            "matches_desired_state": self.ok,
            "live": self.live,
            "weights": self.weights,
        }
        doc |= {
            "decisions": [asdict(d) for d in self.decisions],
            "checks": [asdict(r) | {"passed": r.passed} for r in self.reports],
        }
        jsonfile.write_json(doc, target / f"{name}.json")
        steps = [(d.step, d.outcome, d.detail) for d in self.decisions]
        lines = [
            f"## {name}: {self.status}",
            "",
            f"Now: {self.serving}",
            "",
            tables.table(["step", "outcome", "detail"], steps),
        ]
        # Each gated color's checks are a report of their own beside this one (<env>-<color>.md).
        (target / f"{name}.md").write_text("\n".join(lines) + "\n")
        return target / f"{name}.json"


def weights_text(weights: Weights) -> str:
    """Traffic shares as a reader says them: ``blue 90 %, green 10 %``."""
    return ", ".join(f"{color} {weights.get(color, 0)} %" for color in COLORS)


def weight_steps(current: Weights, desired: Weights, canary: tuple[int, ...]) -> list[Weights]:
    """The weights to pass through, from ``current`` to ``desired``; canary steps only on a color flip."""
    if current == desired:
        return []
    gaining = max(COLORS, key=lambda color: desired[color] - current[color])
    steps = [s for s in canary if current[gaining] < s < desired[gaining]]
    return [{gaining: s, other(gaining): 100 - s} for s in steps] + [dict(desired)]


@dataclass
class Promoter:
    """Everything one run needs: the environment, its journal, and where checks get their data."""

    desired: DesiredState
    target: LocalTarget
    journal: Journal
    holdout: HoldoutFn
    report_dir: Path
    on_switch: Callable[[Weights], None] | None = None
    reports: list[checks.Report] = field(default_factory=list)
    _holdouts: dict[str, checks.Holdout] = field(default_factory=dict)

    def holdout_of(self, color: str) -> checks.Holdout:
        """The held-out data of the model a color serves (loaded once per model version)."""
        release = self.desired.release(color)
        if release is None:
            raise PromotionError(f"colors.{color}: no release to check")
        if release.model_version not in self._holdouts:
            self._holdouts[release.model_version] = self.holdout(release.model_version)
        return self._holdouts[release.model_version]

    def apply(self) -> Outcome:
        """Reconcile the environment to its desired state (see the module docstring)."""
        with exclusive(self.target):
            actual = self.target.load()
            if self.desired.empty:
                self.journal.record(
                    "plan",
                    "nothing to deploy",
                    "no color has a release yet: `nox -s package`, then `deploy propose`",
                )
                return self._finish(actual, "unchanged")
            self.target.ensure_router(actual, self.desired)
            self.target.save(actual)
            self._apply_access()
            started = self._deploy_colors(actual)
            gaining = [c for c in COLORS if self.desired.traffic[c] > actual.weights.get(c, 0)]
            if self.desired.checks.gate:
                for color in [c for c in gaining if c in started or actual.weights.get(c, 0) == 0]:
                    if not self._gate(color, actual):
                        return self._finish(actual, "refused")
            return self._switch(actual, started)

    def rollback(self) -> Outcome:
        """Send all traffic back to the previous color, which was kept warm for this."""
        with exclusive(self.target):
            actual = self.target.load()
            back = actual.previous
            if back is None or not self.target.color_running(actual.colors.get(back)):
                env = self.target.environment
                raise PromotionError(
                    f"{env}: no warm previous color to roll back to ({self.target.state_file}); "
                    "a rollback returns to the release the last promotion replaced, while it still "
                    f"runs. To go further back, revert deploy/{env}.yaml in git and run `nox -s promote`"
                )
            if not self._ready(back, actual):
                raise PromotionError(
                    f"{self.target.environment}: previous color {back!r} is not ready; nothing was changed"
                )
            self._set(actual, {back: 100, other(back): 0}, "rollback", "on demand")
            actual.live, actual.previous = back, None  # undone: the abandoned color is no fallback
            self.target.save(actual)
            self.journal.record(
                "git",
                "note",
                f"deploy/{self.target.environment}.yaml says {self.desired.live!r} is live: "
                "`deploy rollback` rewrites it to what serves, for a pull request back to main",
            )
            return self._finish(actual, "rolled_back")

    def _deploy_colors(self, actual: Actual) -> set[str]:
        started: set[str] = set()
        for color in COLORS:
            release = self.desired.release(color)
            running = actual.colors.get(color)
            if release is None or (
                self.target.color_running(running) and running and running.release == release
            ):
                continue
            if actual.weights.get(color, 0) > 0 and self.target.color_running(running):
                raise PromotionError(
                    f"colors.{color}: would replace {running.bento if running else '?'} while it serves "
                    f"{actual.weights[color]}% of traffic; put the new release on the idle color instead"
                )
            self._take_out_dead(actual, color)
            self.target.stop_color(actual, color)
            if actual.previous == color and (running is None or running.release != release):
                actual.previous = None  # the warm previous release is replaced; the same one restarted stays
            self.journal.record(
                f"deploy {color}", "starting", f"{release.bento} (model v{release.model_version})"
            )
            try:
                process = self.target.start_color(
                    color,
                    release,
                    self.desired.router.color_port(color),
                    self.desired.checks.readiness_timeout_s,
                    signed_by=resolve(self.desired.signed_by) if self.desired.signed_by else None,
                )
            except DeployError as error:
                self.target.save(actual)
                self.journal.record(f"deploy {color}", "failed", str(error).splitlines()[0])
                raise PromotionError(
                    f"{color} did not become ready; production traffic was not touched:\n{error}"
                ) from error
            actual.colors[color] = process
            self.target.save(actual)
            self.journal.record(f"deploy {color}", "ready", f"pid {process.pid} on port {process.port}")
            self._warm_up(color, process.port)
            started.add(color)
        return started

    def _take_out_dead(self, actual: Actual, color: str) -> None:
        """A color that carries traffic but no longer runs (supervisord gave up on it) goes to weight 0.

        Restarted, it then gains traffic like any candidate: gated and watched, not put straight
        back at its old weight after a warm-up. Meanwhile its requests go to the fallback.
        """
        if actual.weights.get(color, 0) > 0:
            weights = actual.weights | {color: 0}
            self._set(actual, weights, "take out", f"{color} does not run: {weights_text(weights)}")

    def _warm_up(self, color: str, port: int) -> None:
        """Its first requests before any check or client sees the new color (the numbers are logged)."""
        count = self.desired.checks.warm_up_requests
        if count:
            sample = self.holdout_of(color).x_test.head(1)
            numbers = watch.warm_up(port, sample, count, self.target.operator_headers())
            self.journal.record(f"warm {color}", "done", f"{count} requests on port {port}", **numbers)

    def _apply_access(self) -> None:
        """The front door's keys as the file lists them (a map swap: no restart, no request lost)."""
        self.target.apply_access(self.desired)
        granted = self.desired.access
        detail = "open: no key asked" if granted is None else f"{len(granted.clients)} keys"
        self.journal.record("access", "applied", detail)

    def _gate(self, color: str, actual: Actual) -> bool:
        """The checks on the candidate alone (preview door); latency is judged beside the live color."""
        holdout = self.holdout_of(color)
        live = actual.colors.get(actual.live or "")
        live_port = live.port if live and actual.live != color and self.target.color_answering(live) else None
        self.target.api().set_weights({color: 100, other(color): 0}, backend=router.PREVIEW)
        self.target.wait_router_sees(color, backend=router.PREVIEW)
        port = self.desired.router.preview_port
        report = checks.Report(
            self.target.environment, f"{color}, {self.desired.colors[color]}", f"http://127.0.0.1:{port}"
        )
        checks.run_all(
            port,
            holdout,
            self.desired.checks,
            report,
            log=self.journal.echo,
            stop_on_failure=True,
            live_port=live_port,
            key=self.target.operator_key(),
        )
        report.write(self.report_dir, f"{self.target.environment}-{color}")
        self.reports.append(report)
        failed = ", ".join(result.name for result in report.failures())
        self.journal.record(
            f"gate {color}", "passed" if report.passed else "refused", failed and f"failed: {failed}"
        )
        return report.passed

    def _switch(self, actual: Actual, started: set[str]) -> Outcome:
        before = dict(actual.weights)
        steps = weight_steps(before, self.desired.traffic, self.desired.canary_steps)
        if not steps:
            actual.live = self.desired.live
            self.target.save(actual)
            return self._finish(actual, "deployed" if started else "unchanged")
        for color in [c for c in COLORS if self.desired.traffic[c] > 0]:
            self.target.wait_router_sees(color)
        for weights in steps:
            self._set(actual, weights, "switch", weights_text(weights))
            if self.on_switch:
                self.on_switch(weights)
            gaining = max(COLORS, key=lambda c: weights[c] - before.get(c, 0))
            sample = self.holdout_of(gaining).x_test.head(1)
            watched = watch.watch(
                self.target,
                self.desired.router.color_port(gaining),
                gaining,
                self.desired.checks.post_switch,
                sample,
            )
            self.journal.record(
                f"watch {gaining}",
                "healthy" if watched.passed else "unhealthy",
                watched.detail,
                **watched.numbers,
            )
            if not watched.passed:
                self._set(actual, before, "rollback", f"automatic: {watched.detail}")
                return self._finish(actual, "rolled_back")
        if actual.live != self.desired.live:
            actual.previous = actual.live
        actual.live = self.desired.live
        self.target.save(actual)
        return self._finish(actual, "promoted")

    def _set(self, actual: Actual, weights: Weights, step: str, detail: str) -> None:
        started = time.perf_counter()
        self.target.api().set_weights(weights)
        actual.weights = dict(weights)
        self.target.save(actual)
        self.target.write_router_config(actual, self.desired)  # what a restarted HAProxy starts from
        self.journal.record(
            step, "weights set", detail, seconds=round(time.perf_counter() - started, 4), weights=weights
        )

    def _ready(self, color: str, actual: Actual) -> bool:
        return self.target.color_answering(actual.colors[color])

    def _finish(self, actual: Actual, status: str) -> Outcome:
        self.target.save(actual)
        if self.target.router_running(actual):  # failover follows the warm previous color
            self.target.api().set_fallback(actual.previous)
            self.target.write_router_config(actual, self.desired)
        serving = f"{actual.live or 'no color'} live, fallback {actual.previous or 'none'}"
        detail = f"{serving}; {weights_text(actual.weights)}"
        self.journal.record("result", status, detail)
        return Outcome(
            status, actual.live, dict(actual.weights), list(self.journal.decisions), list(self.reports)
        )
