"""Desired state: ``deploy/<environment>.yaml`` read, validated and written back.

The file is the GitOps contract. A promotion pull request edits ``deploy/production.yaml``:
it puts the candidate's bento tag and model version on the idle color and makes that color
live. Deployment then reconciles the running system to the file. Every field is checked
here, once, and a bad file fails with the field's dotted name and what would fix it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ..errors import PipelineError

COLORS = ("blue", "green")
Fill = TypeVar("Fill")
HEADER = (
    "# Desired state of the {environment} environment. A promotion pull request edits this file;\n"
    "# `nox -s {session}` reconciles the running system to it. Field reference: README.md.\n"
)


class StateError(PipelineError, ValueError):
    """A desired-state file is missing, unparsable, or has a field with a bad value."""


@dataclass(frozen=True)
class Release:
    """What one color serves: the bento ``bentoml serve`` runs and the model version inside."""

    bento: str
    model_version: str


@dataclass(frozen=True)
class LatencyCheck:
    """Latency budget held at a fixed concurrency, measured with wrk."""

    p95_ms: float = 200.0
    p99_ms: float = 500.0
    concurrency: int = 4
    duration_s: float = 5.0
    rows_per_request: int = 1


@dataclass(frozen=True)
class PostSwitch:
    """How long and how hard the new color is watched after it receives traffic."""

    window_s: float = 3.0
    max_error_rate: float = 0.0
    p95_ms: float = 1000.0
    probe_concurrency: int = 2
    min_requests: int = 20


@dataclass(frozen=True)
class Checks:
    """Thresholds of the staging sanity checks and the promotion gate."""

    gate: bool = True
    readiness_timeout_s: float = 300.0
    latency: LatencyCheck = field(default_factory=LatencyCheck)
    schemathesis_examples: int = 20
    parity_tolerance: float = 0.0
    post_switch: PostSwitch = field(default_factory=PostSwitch)


@dataclass(frozen=True)
class Router:
    """Loopback ports: HAProxy's front door, its candidate-only preview door, one per color."""

    port: int = 8080
    preview_port: int = 8081
    blue_port: int = 3001
    green_port: int = 3002

    def color_port(self, color: str) -> int:
        """The port the given color's ``bentoml serve`` listens on."""
        return self.blue_port if color == "blue" else self.green_port


@dataclass(frozen=True)
class DesiredState:
    """One environment's desired state."""

    environment: str
    live: str
    colors: dict[str, Release | None]
    traffic: dict[str, int]
    canary_steps: tuple[int, ...] = ()
    router: Router = field(default_factory=Router)
    checks: Checks = field(default_factory=Checks)

    @property
    def idle(self) -> str:
        """The color that is not live: where the next release is deployed."""
        return other(self.live)

    @property
    def empty(self) -> bool:
        """Nothing released yet: a new project before its first ``nox -s package``."""
        return all(release is None for release in self.colors.values())

    def release(self, color: str) -> Release | None:
        """The release a color should serve, or None for an empty color."""
        return self.colors.get(color)


def other(color: str) -> str:
    """The opposite color."""
    return "green" if color == "blue" else "blue"


def load(path: str | Path) -> DesiredState:
    """Read and validate a desired-state file; errors name the file and the field."""
    source = Path(path)
    if not source.is_file():
        raise StateError(
            f"{source}: desired-state file not found (see deploy/production.yaml for the format)"
        )
    try:
        raw = yaml.safe_load(source.read_text())
    except yaml.YAMLError as error:
        raise StateError(f"{source}: not valid YAML: {error}") from error
    try:
        return parse(raw)
    except StateError as error:
        raise StateError(f"{source}: {error}") from None


def parse(raw: object) -> DesiredState:
    """Validate a parsed YAML document into a :class:`DesiredState`."""
    doc = _mapping(raw, "top level")
    _no_extra(doc, {"environment", "live", "colors", "traffic", "canary_steps", "router", "checks"}, "")
    live = _color(doc.get("live"), "live")
    colors = _colors(doc.get("colors"))
    state = DesiredState(
        environment=_text(doc.get("environment"), "environment"),
        live=live,
        colors=colors,
        traffic=_traffic(doc.get("traffic")),
        canary_steps=_canary(doc.get("canary_steps", [])),
        router=_router(doc.get("router", {})),
        checks=_checks(doc.get("checks", {})),
    )
    _consistent(state)
    return state


def dump(state: DesiredState, path: str | Path, session: str) -> Path:
    """Write a desired state back in the same layout :func:`load` reads."""
    target = Path(path)
    doc: dict[str, Any] = {
        "environment": state.environment,
        "live": state.live,
        "colors": {c: (asdict(r) if r else None) for c, r in ((c, state.colors.get(c)) for c in COLORS)},
        "traffic": {color: state.traffic[color] for color in COLORS},
        "canary_steps": list(state.canary_steps),
        "router": asdict(state.router),
        "checks": asdict(state.checks),
    }
    text = HEADER.format(environment=state.environment, session=session) + yaml.safe_dump(
        doc, sort_keys=False
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.replace(target)
    return target


def with_release(state: DesiredState, release: Release) -> DesiredState:
    """The promotion edit: the release goes to the idle color, which becomes live."""
    target = state.idle
    colors = dict(state.colors) | {target: release}
    return replace(state, colors=colors, live=target, traffic={target: 100, other(target): 0})


def _consistent(state: DesiredState) -> None:
    if not state.empty and state.release(state.live) is None:
        raise StateError(
            f"live: color {state.live!r} has no release; set colors.{state.live}.bento and model_version"
        )
    for color, weight in state.traffic.items():
        if weight > 0 and not state.empty and state.release(color) is None:
            raise StateError(f"traffic.{color}: {weight}% goes to a color with no release; set it to 0")
    if state.traffic[state.live] < state.traffic[other(state.live)]:
        raise StateError(
            f"traffic: the live color {state.live!r} must carry the larger share, got {state.traffic}"
        )
    ports = [value for name, value in asdict(state.router).items() if name.endswith("port")]
    if len(set(ports)) != len(ports):
        raise StateError(f"router: port, preview_port, blue_port and green_port must all differ, got {ports}")


def _mapping(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise StateError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _no_extra(doc: dict[str, Any], allowed: set[str], prefix: str) -> None:
    extra = sorted(set(doc) - allowed)
    if extra:
        raise StateError(f"{prefix}{extra[0]}: unknown field; allowed: {', '.join(sorted(allowed))}")


def _text(value: object, where: str) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise StateError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _color(value: object, where: str) -> str:
    if value not in COLORS:
        raise StateError(f"{where}: expected 'blue' or 'green', got {value!r}")
    return str(value)


def _colors(value: object) -> dict[str, Release | None]:
    doc = _mapping(value, "colors")
    _no_extra(doc, set(COLORS), "colors.")
    colors: dict[str, Release | None] = {}
    for color in COLORS:
        entry = doc.get(color)
        if entry is None:
            colors[color] = None
            continue
        spec = _mapping(entry, f"colors.{color}")
        _no_extra(spec, {"bento", "model_version"}, f"colors.{color}.")
        colors[color] = Release(
            bento=_text(spec.get("bento"), f"colors.{color}.bento"),
            model_version=_text(spec.get("model_version"), f"colors.{color}.model_version"),
        )
    return colors


def _percent(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise StateError(f"{where}: expected a whole percentage 0-100, got {value!r}")
    return value


def _traffic(value: object) -> dict[str, int]:
    doc = _mapping(value, "traffic")
    _no_extra(doc, set(COLORS), "traffic.")
    traffic = {color: _percent(doc.get(color, 0), f"traffic.{color}") for color in COLORS}
    if sum(traffic.values()) != 100:
        raise StateError(f"traffic: weights must add up to 100, got {traffic}")
    return traffic


def _canary(value: object) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise StateError(f"canary_steps: expected a list of percentages like [2, 25, 75], got {value!r}")
    steps = tuple(_percent(step, f"canary_steps[{i}]") for i, step in enumerate(value))
    if list(steps) != sorted(set(steps)) or 0 in steps:
        raise StateError(f"canary_steps: expected strictly increasing percentages above 0, got {list(steps)}")
    return steps


def _number(value: object, where: str, whole: bool = False) -> float:
    kinds: tuple[type, ...] = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or float(value) < 0:  # type: ignore[arg-type]
        kind = "a whole number" if whole else "a number"
        raise StateError(f"{where}: expected {kind} >= 0, got {value!r}")
    return value  # type: ignore[return-value]


def _fill(cls: type[Fill], value: object, where: str) -> Fill:
    """Build a flat dataclass of numbers/bools from a mapping, checking every field's type."""
    doc = _mapping(value, where)
    defaults: Any = cls()
    _no_extra(doc, set(asdict(defaults)), f"{where}.")
    values: dict[str, Any] = {}
    for name, default in asdict(defaults).items():
        if name not in doc:
            continue
        if isinstance(default, bool):
            if not isinstance(doc[name], bool):
                raise StateError(f"{where}.{name}: expected true or false, got {doc[name]!r}")
            values[name] = doc[name]
        elif not isinstance(default, dict):
            values[name] = _number(doc[name], f"{where}.{name}", whole=isinstance(default, int))
    filled: Fill = replace(defaults, **values)
    return filled


def _router(value: object) -> Router:
    router = _fill(Router, value, "router")
    for name, port in asdict(router).items():
        if name.endswith("port") and not 1024 <= port <= 65535:
            raise StateError(f"router.{name}: expected an unprivileged port 1024-65535, got {port}")
    return router


def _checks(value: object) -> Checks:
    doc = dict(_mapping(value, "checks"))
    latency = _fill(LatencyCheck, doc.pop("latency", {}), "checks.latency")
    post_switch = _fill(PostSwitch, doc.pop("post_switch", {}), "checks.post_switch")
    flat: Checks = _fill(Checks, doc, "checks")
    if latency.concurrency < 1:
        raise StateError("checks.latency.concurrency: expected at least 1 client")
    return replace(flat, latency=latency, post_switch=post_switch)
