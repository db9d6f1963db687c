"""Desired state: ``deploy/<environment>.yaml`` read, validated and written back.

The file is the GitOps contract. A promotion pull request edits ``deploy/production.yaml``:
it puts the candidate's bento tag and model version on the idle color and makes that color
live. Deployment then reconciles the running system to the file. Every field is checked
here, once, and a bad file fails with the field's dotted name and what would fix it.

The checks are declarative: each field's type says what it accepts (strictly: ``"3"`` is not a
port), cross-field rules sit on the model they constrain. The models are pydantic dataclasses, not
``BaseModel``, so callers keep positional construction and :func:`dataclasses.replace` (re-validated).
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Mapping
from ipaddress import IPv4Address
from pathlib import Path
from typing import Annotated, Any, get_args, get_type_hints

import yaml
from pydantic import (
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass
from pydantic_core import ErrorDetails, PydanticCustomError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from ..errors import PipelineError

COLORS = ("blue", "green")
NULL, FLOAT = "tag:yaml.org,2002:null", "tag:yaml.org,2002:float"
HEADER = (
    "# Desired state of the {environment} environment. A promotion pull request edits this file;\n"
    "# `nox -s {session}` reconciles the running system to it. Field reference: README.md.\n"
)
NOTES = {  # the comment over a section that a round-trip edit adds to an existing file
    "scores": (
        "Held-out test scores per model version, written by the release that proposed it (rows and\n"
        "their SHA-256 say which test split); a pull request's `nox -s compare` gates against the live one's."
    ),
}
# Strictness is set per field type below: a model-wide strict=True would refuse the nested
# sections, which arrive from YAML as mappings rather than instances.
MODEL = ConfigDict(extra="forbid", allow_inf_nan=False)


class StateError(PipelineError, ValueError):
    """A desired-state file is missing, unparsable, or has a field with a bad value."""


def _expect(what: str) -> WrapValidator:
    """Replace pydantic's wording for a field type with what the file's editor should write."""

    def check(value: object, handler: ValidatorFunctionWrapHandler) -> object:
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError("expected", f"expected {what}, got {value!r}") from None

    return WrapValidator(check)


def _rule(message: str) -> PydanticCustomError:
    """A broken cross-field rule, worded as the fix (no pydantic "Value error," prefix)."""
    return PydanticCustomError("rule", message)


# YAML reads `model_version: 3` as an int; the version is still the text "3".
Text = Annotated[str, Field(pattern=r"\S", coerce_numbers_to_str=True), _expect("a non-empty string")]
Color = Annotated[str, Field(strict=True, pattern=f"^({'|'.join(COLORS)})$"), _expect("'blue' or 'green'")]
Percent = Annotated[int, Field(strict=True, ge=0, le=100), _expect("a whole percentage 0-100")]
Step = Annotated[int, Field(strict=True, ge=1, le=99), _expect("a whole percentage 1-99")]
Port = Annotated[int, Field(strict=True, ge=1024, le=65535), _expect("an unprivileged port 1024-65535")]
Count = Annotated[int, Field(strict=True, ge=0), _expect("a whole number >= 0")]
Clients = Annotated[int, Field(strict=True, ge=1), _expect("a whole number >= 1")]
Amount = Annotated[float, Field(strict=True, ge=0), _expect("a number >= 0")]  # strict floats take ints too
Flag = Annotated[bool, Field(strict=True), _expect("true or false")]
CheckNames = Annotated[
    str,
    Field(strict=True, pattern=r"^[a-z_]+(,[a-z_]+)*$"),
    _expect("schemathesis check names, comma-separated: all, or e.g. not_a_server_error"),
]
Address = Annotated[IPv4Address, _expect("an IPv4 address such as 127.0.0.1 or 0.0.0.0")]
Name = Annotated[
    str,
    Field(strict=True, pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$"),
    _expect("a lowercase name like 'web-app'"),
]
Metric = Annotated[
    str, Field(strict=True, pattern=r"^[a-z][a-z0-9_]*$"), _expect("a metric name such as f1_macro")
]
Score = Annotated[float, Field(strict=True), _expect("a finite number")]  # MODEL refuses NaN and inf
Rows = Annotated[int, Field(strict=True, ge=1), _expect("a whole number of rows >= 1")]
Digest = Annotated[
    str,
    Field(strict=True, pattern=r"^[0-9a-f]{64}$"),
    _expect("the test split's SHA-256 in 64 lowercase hex digits (`nox -s compare` computes it)"),
]
KeyHash = Annotated[
    str,
    Field(strict=True, pattern=r"^[0-9a-f]{64}$"),
    _expect("a key's SHA-256 in 64 lowercase hex digits (`nox -s add-key` writes it)"),
]


@dataclass(frozen=True, config=MODEL)
class Release:
    """What one color serves: the bento, the model version inside, and the bento's image if built.

    With an image the color runs that image (the artifact staging checked is the one production
    runs); without one, ``bentoml serve`` runs the bento from the local store.
    """

    bento: Text
    model_version: Text
    image: Text | None = None

    def __str__(self) -> str:
        """How reports and logs name it: ``svc:abc (model v3)``, never the dataclass repr."""
        return f"{self.bento} (model v{self.model_version})"


@dataclass(frozen=True, config=MODEL)
class Scores:
    """A model's scores on its held-out test split, and which rows those were.

    The release that proposes a model records them here (``nox -s propose-promotion``), so that a
    pull request, whose job has neither the registry nor its secrets, can still gate its own model
    against the one production serves: same rows when ``test_digest`` matches its own split.
    """

    metrics: dict[Metric, Score]
    test_rows: Rows
    test_digest: Digest

    @field_validator("metrics")
    @classmethod
    def _some(cls, metrics: dict[str, float]) -> dict[str, float]:
        """A record without a single score compares nothing."""
        if not metrics:
            raise _rule("expected at least one metric, e.g. {f1_macro: 0.83}")
        return metrics


@dataclass(frozen=True, config=MODEL)
class LatencyCheck:
    """Latency budget held at a fixed concurrency, measured with wrk.

    ``p95_ms``/``p99_ms`` are the budget. When the live color is measured in the same window (the
    promotion gate), a candidate over it still passes with a p95 within ``relative_to_live`` times
    the live color's and under ``cap_p95_ms``: a busy host slows both, a slow release only one.
    """

    p95_ms: Amount = 200.0
    p99_ms: Amount = 500.0
    concurrency: Clients = 4
    duration_s: Amount = 5.0
    rows_per_request: Count = 1
    min_requests: Count = 20
    relative_to_live: Amount = 1.5
    cap_p95_ms: Amount = 2000.0


@dataclass(frozen=True, config=MODEL)
class PostSwitch:
    """How long and how hard the new color is watched after it receives traffic."""

    window_s: Amount = 3.0
    max_error_rate: Amount = 0.0
    p95_ms: Amount = 1000.0
    probe_concurrency: Count = 2
    min_requests: Count = 20


@dataclass(frozen=True, config=MODEL)
class Checks:
    """Thresholds of the staging sanity checks and the promotion gate."""

    gate: Flag = True
    readiness_timeout_s: Amount = 300.0
    warm_up_requests: Count = 20
    latency: LatencyCheck = Field(default_factory=LatencyCheck)
    schemathesis_examples: Count = 20
    schemathesis_checks: CheckNames = "all"
    parity_tolerance: Amount = 0.0
    post_switch: PostSwitch = Field(default_factory=PostSwitch)


@dataclass(frozen=True, config=MODEL)
class Router:
    """Ports (front door, candidate-only preview door, one per color), front door address, body limit.

    Only the front door may listen beyond loopback (``address``); the preview door and the colors
    are the operators' side and stay on 127.0.0.1.
    """

    port: Port = 8080
    preview_port: Port = 8081
    blue_port: Port = 3001
    green_port: Port = 3002
    max_body_mb: Amount = 16.0
    address: Address = IPv4Address("127.0.0.1")

    @model_validator(mode="after")
    def _distinct(self) -> Router:
        """Two listeners cannot share a port; the second would fail to bind only at deploy time."""
        ports = [self.port, self.preview_port, self.blue_port, self.green_port]
        if len(set(ports)) < len(ports):
            raise _rule(f"port, preview_port, blue_port and green_port must all differ, got {ports}")
        return self

    def color_port(self, color: str) -> int:
        """The port the given color's ``bentoml serve`` listens on."""
        return self.blue_port if color == "blue" else self.green_port


@dataclass(frozen=True, config=MODEL)
class Client:
    """One caller of the front door: its name, the SHA-256 of its key, its request-rate limit.

    The name goes with every request it sends to the colors (``X-Client``), so profiles say who
    sent each row. The key itself is never stored: the router hashes what a caller presents.
    """

    name: Name
    key_sha256: KeyHash
    requests_per_s: Count = 0  # 0: no limit


RESERVED_CLIENTS = ("anonymous", "operator")
"""Names the router gives traffic itself: keyless callers while access is open, and the preview door."""


@dataclass(frozen=True, config=MODEL)
class Access:
    """Who may call the front door: with this section, only holders of a listed key (health aside).

    A client may hold several keys at once, which is how a key is rotated: add the new one, move
    the client to it, revoke the old one. Every change applies at the next reconcile without a
    restart.
    """

    clients: tuple[Client, ...] = ()

    @field_validator("clients")
    @classmethod
    def _distinct(cls, clients: tuple[Client, ...]) -> tuple[Client, ...]:
        """One key, one client; the router's own names stay its own."""
        hashes = [client.key_sha256 for client in clients]
        if len(set(hashes)) < len(hashes):
            raise _rule("the same key_sha256 is listed twice; each key belongs to one client")
        reserved = sorted({c.name for c in clients} & set(RESERVED_CLIENTS))
        if reserved:
            raise _rule(f"{reserved[0]!r} is the router's own name for traffic; choose another client name")
        return clients


@dataclass(frozen=True, config=MODEL)
class DesiredState:
    """One environment's desired state."""

    environment: Text
    live: Color
    colors: dict[Color, Release | None]
    traffic: dict[Color, Percent]
    canary_steps: tuple[Step, ...] = ()
    router: Router = Field(default_factory=Router)
    checks: Checks = Field(default_factory=Checks)
    access: Access | None = None
    signed_by: Text | None = None
    scores: dict[Text, Scores] = Field(default_factory=dict)  # by model version: see Scores

    @field_validator("colors")
    @classmethod
    def _both_colors(cls, colors: dict[str, Release | None]) -> dict[str, Release | None]:
        """A color left out is empty; keeping both, in order, makes a dumped file list both."""
        return {color: colors.get(color) for color in COLORS}

    @field_validator("traffic")
    @classmethod
    def _whole(cls, traffic: dict[str, int]) -> dict[str, int]:
        """HAProxy weights are shares of every request: a missing color gets 0, the sum is 100."""
        weights = {color: traffic.get(color, 0) for color in COLORS}
        if sum(weights.values()) != 100:
            raise _rule(f"weights must add up to 100, got {weights}")
        return weights

    @field_validator("canary_steps")
    @classmethod
    def _increasing(cls, steps: tuple[int, ...]) -> tuple[int, ...]:
        """Each canary step must widen the new color's share, or the rollout would go backwards."""
        if list(steps) != sorted(set(steps)):
            raise _rule(f"expected strictly increasing percentages like [2, 25, 75], got {list(steps)}")
        return steps

    @model_validator(mode="after")
    def _servable(self) -> DesiredState:
        """Traffic only goes to a color with a release (an empty state, before the first package, aside)."""
        live, weights = self.live, self.traffic
        unreleased = [] if self.empty else [c for c in COLORS if self.colors[c] is None]
        starved = [f"traffic.{c}: {weights[c]}%" for c in unreleased if weights[c] > 0]
        if live in unreleased:
            raise _rule(f"live: color {live!r} has no release; set colors.{live}.bento and model_version")
        if starved:
            raise _rule(f"{starved[0]} goes to a color with no release; set it to 0")
        if weights[live] < weights[self.idle]:
            raise _rule(f"traffic: the live color {live!r} must carry the larger share, got {weights}")
        return self

    @model_validator(mode="after")
    def _signed(self) -> DesiredState:
        """A signature is a property of an image: with ``signed_by`` every release must run one."""
        unsigned = [c for c, release in self.colors.items() if release is not None and release.image is None]
        if self.signed_by is not None and unsigned:
            raise _rule(
                f"colors.{unsigned[0]} runs a bento, not an image, and signed_by asks for signed images: "
                "package an image (`nox -s containerize`) or set signed_by: null"
            )
        return self

    @model_validator(mode="after")
    def _guarded(self) -> DesiredState:
        """A front door beyond loopback needs an access section: anyone who reaches it could call it."""
        if self.access is None and not self.router.address.is_loopback:
            raise _rule(
                f"router.address {self.router.address} reaches beyond this host, and access is null: "
                "list the callers under access.clients (`nox -s add-key`)"
            )
        return self

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

    def live_scores(self) -> tuple[str, Scores | None] | None:
        """The live model's version and its recorded scores (None: not recorded); None if nothing is live."""
        release = self.release(self.live)
        return None if release is None else (release.model_version, self.scores.get(release.model_version))


STATE = TypeAdapter(DesiredState)
RELEASE = TypeAdapter(Release)
SCORES = TypeAdapter(Scores)
CLIENT = TypeAdapter(Client)
HINTS = {  # pydantic error types not already worded by a field type's _expect
    "missing": "required field is missing; add it",
    "dataclass_type": "expected a mapping of fields",
    "dict_type": "expected a mapping of blue/green to a value",
    "tuple_type": "expected a list of percentages like [2, 25, 75]",
}


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
    """Validate a parsed YAML document into a :class:`DesiredState`.

    Raises:
        StateError: one line for the first bad field (the count of further ones appended),
            never pydantic's multi-line report: it ends up in a CI log next to a pull request.
    """
    try:
        return STATE.validate_python(raw)
    except ValidationError as error:
        first, *rest = error.errors()
        more = f" (and {len(rest)} more)" if rest else ""
        raise StateError(_describe(first) + more) from None


def dump(state: DesiredState, path: str | Path, session: str) -> Path:
    """Write a desired state back, atomically: an existing file keeps its comments and layout.

    Only the values that changed are replaced in the file as it was (a round-trip edit), so a
    promotion pull request's diff is the release, the live color and the traffic, nothing else.
    """
    target = Path(path)
    document = STATE.dump_python(state, mode="json")
    for release in document["colors"].values():  # a release without an image reads as before
        if release is not None and release.get("image") is None:
            release.pop("image", None)
    if not document["scores"]:  # staging, and production before its first recorded release
        document.pop("scores")
    edited = round_trip(target.read_text(), document) if target.is_file() else None
    header = HEADER.format(environment=state.environment, session=session)
    text = edited if edited is not None else header + yaml.safe_dump(document, sort_keys=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.replace(target)
    return target


def round_trip(existing: str, document: Mapping[str, Any]) -> str | None:
    """``existing`` with ``document``'s values put in place; None when it is not a mapping to edit.

    The Kubernetes overlays are edited the same way, so their comments survive a promotion too.
    """
    editor = YAML()  # round-trip: comments, key order and quoting survive
    editor.width = 4096
    editor.indent(mapping=2, sequence=4, offset=2)  # lists indented under their key, as these files are
    # the values it writes read back the same with PyYAML, which load() uses (YAML 1.1)
    editor.representer.add_representer(type(None), lambda r, _: r.represent_scalar(NULL, "null"))
    editor.representer.add_representer(float, lambda r, v: r.represent_scalar(FLOAT, _yaml11_float(v)))
    try:
        tree = editor.load(existing)
    except Exception:
        return None
    if not isinstance(tree, CommentedMap):
        return None
    added = [key for key in document if key not in tree]
    # a section that empties stays, as {}, under its comment: dropping the key would orphan the comment
    kept: dict[str, object] = {key: {} for key in NOTES if key in tree and key not in document}
    _update(tree, {**document, **kept})
    for key in added:  # a section a file gains is explained where it first appears, as the others are
        if key in NOTES:
            tree.yaml_set_comment_before_after_key(key, before=NOTES[key])
    out = io.StringIO()
    editor.dump(tree, out)
    return out.getvalue()


def _yaml11_float(value: float) -> str:
    """A float as PyYAML writes it: the shortest repr, with a dot before any exponent."""
    text = repr(value).lower()
    return text.replace("e", ".0e", 1) if "." not in text and "e" in text else text


def _update(tree: CommentedMap, new: Mapping[str, Any]) -> None:
    """Make ``tree`` hold ``new``, touching only the keys whose values differ."""
    for key in [key for key in tree if key not in new]:
        del tree[key]
    for key, value in new.items():
        current = tree.get(key)
        if isinstance(value, Mapping) and isinstance(current, CommentedMap):
            _update(current, value)
        elif key not in tree or type(current) is not type(value) or current != value:
            tree[key] = value  # ruamel's own scalar types (a float read back) are rewritten plainly


def release_of(bento: str, model_version: str, image: str | None = None) -> Release:
    """A release named on the command line or read from the bento store, held to the file's rules."""
    try:
        return RELEASE.validate_python({"bento": bento, "model_version": model_version, "image": image})
    except ValidationError as error:
        raise StateError(f"release: {_describe(error.errors()[0])}") from None


def client_of(name: str, key_sha256: str, requests_per_s: int) -> Client:
    """A front door client named on the command line, held to the file's rules."""
    try:
        return CLIENT.validate_python(
            {"name": name, "key_sha256": key_sha256, "requests_per_s": requests_per_s}
        )
    except ValidationError as error:
        raise StateError(f"client: {_describe(error.errors()[0])}") from None


def rolled_back(state: DesiredState) -> DesiredState:
    """The rollback edit: the idle color, which keeps the previous release, takes all traffic again.

    A GitOps target rolls back by this edit in a pull request; the cluster follows git.
    """
    previous = state.idle
    if state.release(previous) is None:
        raise StateError(
            f"deploy/{state.environment}.yaml: the idle color {previous} holds no release, "
            "so there is nothing to roll back to"
        )
    return dataclasses.replace(state, live=previous, traffic={previous: 100, other(previous): 0})


def with_release(state: DesiredState, release: Release, scores: Scores | None = None) -> DesiredState:
    """The promotion edit: the release goes to the idle color, which becomes live.

    ``scores`` are the release's held-out scores, recorded beside it; the file keeps those of the
    models its colors serve, so a rollback to the warm color finds that model's scores too.
    """
    target = state.idle
    colors = dict(state.colors) | {target: release}
    served = {r.model_version for r in colors.values() if r is not None}
    kept = {version: record for version, record in state.scores.items() if version in served}
    recorded = (kept | {release.model_version: scores}) if scores is not None else kept
    traffic = {target: 100, other(target): 0}
    return dataclasses.replace(state, colors=colors, live=target, traffic=traffic, scores=recorded)


def scores_of(gate: Mapping[str, Any], model_version: str) -> Scores | None:
    """The scores ``nox -s compare`` measured for ``model_version`` (its ``gate.json``), if it did.

    None when the gate report describes another model (a release proposed by hand) or predates
    these fields: the promotion then records nothing, and says so, rather than the wrong numbers.
    """
    if str(gate.get("candidate_version")) != model_version or "test_digest" not in gate:
        return None
    metrics = {
        name: float(value)
        for name, value in (gate.get("candidate_metrics") or {}).items()
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    }  # an undefined metric (ROC AUC of one class) was written as null: not a score
    try:
        return SCORES.validate_python(
            {"metrics": metrics, "test_rows": gate.get("test_rows"), "test_digest": gate.get("test_digest")}
        )
    except ValidationError as error:
        raise StateError(f"gate.json: {_describe(error.errors()[0])}") from None


def _describe(error: ErrorDetails) -> str:
    """One pydantic error as ``dotted.field[index]: what would fix it``."""
    loc = tuple(part for part in error["loc"] if part != "[key]")
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    if error["type"] == "unexpected_keyword_argument":
        hint = f"unknown field; allowed: {', '.join(_fields_at(loc[:-1]))}"
    else:
        hint = HINTS.get(error["type"], error["msg"])
    return f"{where}: {hint}" if where else hint


def _fields_at(path: tuple[int | str, ...]) -> list[str]:
    """The field names valid at ``path``: walk the models (and the per-color mappings) down to it."""
    node: Any = DesiredState
    for key in path:
        node = get_type_hints(node)[str(key)] if dataclasses.is_dataclass(node) else get_args(node)[-1]
    model = next(kind for kind in (node, *get_args(node)) if dataclasses.is_dataclass(kind))
    return [field.name for field in dataclasses.fields(model)]
