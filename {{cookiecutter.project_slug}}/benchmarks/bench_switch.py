"""Switch benchmark (``nox -s bench-switch``): blue/green flips under continuous load.

Both colors serve staging's live release on a throwaway ``bench`` environment (its own
loopback ports and state). Six measurements, printed as a table and written to
``reports/checks/bench-switch.{json,md}``:

1. flips: ``--switches`` weight flips while wrk keeps ``--clients`` connections busy for at
   least ``--requests`` requests; every failed request is counted, and each switch is timed
   from the runtime-API command until a fresh request is answered by the new color;
2. refusal: a candidate held to an impossible latency budget is refused by the gate, and
   HAProxy's counters prove it received no production request;
3. undo after refusal: ``rollback`` right after that refusal leaves traffic on the release that
   serves, never on the refused candidate;
4. canary: a ``[2, 25, 75]`` canary under load completes, each step watched, no request failed;
5. rollback: the new color is killed right after a switch, under load; the time from the
   kill until the watch has put traffic back is measured;
6. failover: ``kill -9`` of the live color's processes under load, outside any promotion; the
   seconds until the warm previous color answers and the requests lost on the way.

Each measurement from 3 on starts from blue live with both colors serving (:meth:`Bench.reset`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import httpx

from {{ cookiecutter.package_name }}.config import Config, compose, resolve, use_project_store
from {{ cookiecutter.package_name }}.deployment import checks, cli, load, local, loopback, promotion, router, state
from {{ cookiecutter.package_name }}.errors import PipelineError
from {{ cookiecutter.package_name }}.reports import tables


@dataclass
class Row:
    """One line of the result table."""

    measure: str
    target: str
    value: str
    passed: bool


def counters(result: load.LoadResult) -> dict[str, Any]:
    """The numbers of a wrk run, plus ``failed``: every error wrk counts, and any 200 naming no color."""
    return asdict(result) | {"failed": result.errors + result.other}


def observe_switch(port: int, body: bytes, color: str, timeout_s: float = 10.0) -> float:
    """Seconds until a fresh connection's request is answered by ``color``."""
    started = time.perf_counter()
    address = f"http://127.0.0.1:{port}{checks.PREDICT_PATH}"
    fresh = loopback.client()  # a connection per request: each one is routed afresh
    while time.perf_counter() - started < timeout_s:
        try:
            response = fresh.post(address, content=body, headers=router.JSON_HEADERS, timeout=timeout_s)
        except httpx.HTTPError:
            continue  # the load's own counters report failures; this only times the switch
        if response.headers.get(router.COLOR_HEADER) == color:
            return time.perf_counter() - started
    return math.inf


def bench_desired(source: state.DesiredState, release: state.Release) -> state.DesiredState:
    """Both colors on the release, blue live, on fresh ports, gate off (the flips measure the router)."""
    port, preview, blue, green = loopback.free_ports(4)
    post_switch = replace(source.checks.post_switch, window_s=3.0, min_requests=5, p95_ms=10_000.0)
    return replace(
        source,
        environment="bench",
        live="blue",
        colors={"blue": release, "green": release},
        traffic={"blue": 100, "green": 0},
        canary_steps=(),
        router=replace(source.router, port=port, preview_port=preview, blue_port=blue, green_port=green),
        checks=replace(source.checks, gate=False, post_switch=post_switch),
    )


@dataclass
class Bench:
    """The bench environment and its promoter factory."""

    cfg: Config
    desired: state.DesiredState
    target: local.LocalTarget
    body: str
    flip_numbers: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The router's predict URL: the production door, where the flips happen."""
        return f"http://127.0.0.1:{self.desired.router.port}{checks.PREDICT_PATH}"

    def promoter(
        self, desired: state.DesiredState, on_switch: Callable[[dict[str, int]], None] | None = None
    ) -> promotion.Promoter:
        """A promoter on the bench environment, quiet (the table is the output)."""
        return promotion.Promoter(
            desired=desired,
            target=self.target,
            journal=promotion.Journal("bench", self.target.dir / "decisions.jsonl", echo=lambda line: None),
            holdout=lambda version: checks.load_holdout(self.cfg, version),
            report_dir=resolve(self.cfg.deploy.report_dir) / "bench",
            on_switch=on_switch,
        )

    def flips(self, clients: int, requests: int, switches: int) -> list[Row]:
        """Flip the live color ``switches`` times while wrk runs; count failures, time each switch."""
        rate = load.run(self.url, self.body, clients=clients, duration_s=3.0)
        duration = max(10.0, 1.3 * requests / max(rate.requests / 3.0, 1.0))
        api, timings, commands = self.target.api(), [], []
        with load.background(self.url, self.body, clients=clients, duration_s=duration) as wrk:
            for i in range(switches):
                time.sleep(duration / (switches + 1))
                color = "green" if i % 2 == 0 else "blue"
                started = time.perf_counter()
                api.set_weights({color: 100, state.other(color): 0})
                commands.append(time.perf_counter() - started)
                timings.append(
                    time.perf_counter()
                    - started
                    + observe_switch(self.desired.router.port, self.body.encode(), color)
                )
            numbers = counters(wrk.result())
        self.flip_numbers = numbers | {"switch_s": timings, "command_s": commands}
        return [
            Row(
                "requests under load",
                f">= {requests:,}",
                f"{numbers['requests']:,.0f} ({clients} clients)",
                numbers["requests"] >= requests,
            ),
            Row(
                "answered by blue / green",
                "both",
                f"{numbers['blue']:,.0f} / {numbers['green']:,.0f}",
                min(numbers["blue"], numbers["green"]) > 0,
            ),
            Row("switches", f">= {switches}", str(len(timings)), len(timings) >= switches),
            Row("failed requests", "0", f"{numbers['failed']:.0f}", numbers["failed"] == 0),
            Row(
                "switch time (max)",
                "<= 1 s",
                f"{max(timings):.3f} s (runtime API {max(commands) * 1000:.1f} ms)",
                max(timings) <= 1.0,
            ),
            Row("p99 latency during flips", "report", f"{numbers['p99_us'] / 1000:.1f} ms", True),
        ]

    def refusal(self) -> list[Row]:
        """A candidate failing a check (latency budget 0.001 ms, no cap above it) never gets a request."""
        impossible = replace(  # over budget, and no leeway beside the live color (same release: same speed)
            self.desired.checks.latency, p95_ms=0.001, relative_to_live=0.0, cap_p95_ms=0.001, duration_s=2.0
        )
        strict = replace(self.desired.checks, gate=True, latency=impossible, schemathesis_examples=5)
        self.target.api().set_weights({"blue": 100, "green": 0})
        actual = self.target.load()
        actual.weights, actual.live = {"blue": 100, "green": 0}, "blue"
        self.target.save(actual)
        candidate = replace(self.desired, live="green", traffic={"blue": 0, "green": 100}, checks=strict)
        before = {s.color: s.requests for s in self.target.api().stats()}["green"]
        outcome = self.promoter(candidate).apply()
        after = {s.color: s.requests for s in self.target.api().stats()}["green"]
        return [
            Row("failing candidate refused", "refused", outcome.status, outcome.status == "refused"),
            Row("production requests to it", "0", str(after - before), after == before),
        ]

    def reset(self) -> None:
        """Blue live with all traffic and both colors serving (a dead one is started again)."""
        outcome = self.promoter(self.desired).apply()
        if self.target.api().weights() != {"blue": 100, "green": 0}:
            raise PipelineError(f"bench: blue is not live again after {outcome.status}")

    def green(self, canary_steps: tuple[int, ...] = ()) -> state.DesiredState:
        """The promotion of green (both colors serve the same release: the router is measured)."""
        return replace(
            self.desired, live="green", traffic={"blue": 0, "green": 100}, canary_steps=canary_steps
        )

    def requests_to(self, color: str) -> int:
        """Requests HAProxy has sent to ``color`` so far (production backend)."""
        return {s.color: s.requests for s in self.target.api().stats()}[color]

    def undo_after_refusal(self) -> list[Row]:
        """Right after a refused promotion, rollback must not hand traffic to the refused color."""
        before = self.requests_to("green")
        try:
            status = self.promoter(self.desired).rollback().status
        except PipelineError as error:  # nothing to undo: the refused color is no rollback target
            status = f"refused ({str(error).split(': ')[-1].split(' (')[0]})"
        weights = self.target.api().weights()
        stayed = weights == {"blue": 100, "green": 0} and self.requests_to("green") == before
        return [Row("rollback after a refused promotion", "serving release keeps all traffic",
                    f"{weights}, rollback {status}", stayed)]  # fmt: skip

    def canary(self, clients: int, steps: tuple[int, ...] = (2, 25, 75)) -> list[Row]:
        """A canary through ``steps`` under load: every step watched, nothing lost, promoted."""
        self.reset()
        with load.background(self.url, self.body, clients=clients, duration_s=300.0) as wrk:
            time.sleep(1.0)
            started = time.perf_counter()
            outcome = self.promoter(self.green(steps)).apply()
            took = time.perf_counter() - started
            numbers = counters(wrk.stop())
        watched = [d.outcome for d in outcome.decisions if d.step == "watch green"]
        return [
            Row(f"canary {list(steps)} under load", "promoted", f"{outcome.status} in {took:.1f} s",
                outcome.status == "promoted"),
            Row("canary steps watched healthy", str(len(steps) + 1), str(watched.count("healthy")),
                watched == ["healthy"] * (len(steps) + 1)),
            Row("requests failed during the canary", "0",
                f"{numbers['failed']:.0f} of {numbers['requests']:,.0f}", numbers["failed"] == 0),
        ]  # fmt: skip

    def failover(self, clients: int) -> list[Row]:
        """``kill -9`` of the live color under load; HAProxy fails over to the warm previous one."""
        self.promoter(self.green()).apply()
        self.reset()  # blue live again, green its warm previous color
        with load.background(self.url, self.body, clients=clients, duration_s=300.0) as wrk:
            time.sleep(2.0)
            for pid in loopback.process_tree(self.target.load().colors["blue"].pid):
                os.kill(pid, signal.SIGKILL)
            seconds = observe_switch(self.desired.router.port, self.body.encode(), "green", timeout_s=60.0)
            time.sleep(2.0)
            numbers = counters(wrk.stop())
        return [
            Row("kill -9 of the live color: previous answers", "<= 10 s", f"{seconds:.1f} s",
                seconds <= 10.0),
            Row("requests lost to the kill", "report",
                f"{numbers['failed']:.0f} of {numbers['requests']:,.0f} ({clients} clients)", True),
        ]  # fmt: skip

    def rollback(self, clients: int) -> list[Row]:
        """Kill the new color right after the switch, under load; time the automatic rollback."""
        killed: dict[str, float] = {}

        def kill(weights: dict[str, int]) -> None:
            process = self.target.load().colors["green"]
            for pid in loopback.process_tree(process.pid):
                os.kill(pid, signal.SIGKILL)
            killed["at"] = time.time()

        self.reset()
        candidate = self.green()
        with load.background(self.url, self.body, clients=clients, duration_s=10.0) as wrk:
            time.sleep(2.0)
            outcome = self.promoter(candidate, on_switch=kill).apply()
            numbers = counters(wrk.result())
        back = next((d.at for d in outcome.decisions if d.step == "rollback"), math.inf)
        seconds = back - killed.get("at", math.inf)
        return [
            Row(
                "post-switch failure rolled back",
                "rolled_back",
                outcome.status,
                outcome.status == "rolled_back",
            ),
            Row("failure to rollback", "<= 5 s", f"{seconds:.3f} s", seconds <= 5.0),
            Row(
                "requests failed meanwhile",
                "report",
                f"{numbers['failed']:.0f} of {numbers['requests']:,.0f}",
                True,
            ),
        ]


def table(rows: list[Row]) -> str:
    """The result table as Markdown."""
    cells = [(r.measure, r.target, r.value, "yes" if r.passed else "**NO**") for r in rows]
    return tables.table(["measure", "target", "measured", "pass"], cells)


def run(cfg: Config, source: state.DesiredState, release: state.Release, args: argparse.Namespace) -> int:
    """Run the six measurements on a throwaway environment and print the table."""
    desired = bench_desired(source, release)
    target = local.LocalTarget("bench", resolve(cfg.deploy.state_dir), resolve(cfg.deploy.serve_dir))
    sample = checks.load_holdout(cfg, release.model_version).x_test.head(1)
    bench = Bench(cfg, desired, target, json.dumps(checks.request_body(sample)))
    try:
        print(f"bench-switch: serving {release.bento} on both colors (ports {desired.router})", flush=True)
        bench.promoter(desired).apply()
        rows = bench.flips(args.clients, args.requests, args.switches)
        rows += bench.refusal()
        rows += bench.undo_after_refusal()
        rows += bench.canary(args.clients)
        rows += bench.rollback(args.clients)
        rows += bench.failover(args.clients)
    finally:
        target.stop_all(target.load())
    text = table(rows)
    print(text)
    report = resolve(cfg.deploy.report_dir)
    report.mkdir(parents=True, exist_ok=True)
    (report / "bench-switch.md").write_text("## Blue/green switch benchmark\n\n" + text + "\n")
    doc = {
        "rows": [r.__dict__ for r in rows],
        "flips": bench.flip_numbers,
        "passed": all(r.passed for r in rows),
    }
    (report / "bench-switch.json").write_text(json.dumps(doc, indent=2, default=str))
    return 0 if doc["passed"] else 1


def main(argv: list[str] | None = None) -> int:
    """``nox -s bench-switch -- --clients 64``: staging's live release (else the newest bento)."""
    parser = argparse.ArgumentParser(prog="bench-switch", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--switches", type=int, default=6)
    given = sys.argv[1:] if argv is None else argv
    overrides = [word for word in given if "=" in word and not word.startswith("-")]
    args = parser.parse_args([word for word in given if word not in overrides])
    use_project_store()
    cfg = compose(overrides)
    try:
        source = state.load(resolve(cfg.deploy.desired_dir) / "staging.yaml")
        release = source.release(source.live) or cli.latest_release(cfg)
        if release is None:
            raise state.StateError(
                "nothing to benchmark: run `nox -s package` (and `nox -s deploy-staging`) first"
            )
        return run(cfg, source, release, args)
    except PipelineError as error:
        print(f"bench-switch: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
