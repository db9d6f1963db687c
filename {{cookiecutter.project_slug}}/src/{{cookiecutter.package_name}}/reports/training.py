"""The training section: metrics, breakdowns, lineage and the gate's candidate-versus-champion table."""

from __future__ import annotations

from .jsonfile import RECORDED, Json
from .tables import fmt, number, quote, table


def training_section(train: Json | None, gate: Json | None) -> str:
    """Training metrics, the candidate-versus-champion decision and the lineage behind them."""
    parts = ["### Training"]
    if train:
        parts.append(table(["metric", "test"], sorted(train.get("metrics", {}).items())))
        parts += breakdown_tables(train.get("breakdown") or {})
        parts.append(lineage_table(train))
    if gate:
        parts.append(gate_section(gate))
    return "\n\n".join(parts)


def breakdown_tables(breakdown: Json) -> list[str]:
    """Per class and the confusion matrix (rows: actual), or the residuals; then per segment."""
    parts = []
    if per_class := breakdown.get("per_class"):
        rows = [
            [label, m.get("precision"), m.get("recall"), m.get("f1"), m.get("rows")]
            for label, m in per_class.items()
        ]
        parts.append(table(["class (test split)", "precision", "recall", "f1", "rows"], rows))
    if confusion := breakdown.get("confusion"):
        classes = [str(c) for c in confusion.get("classes", [])]
        header = ["actual \\ predicted", *classes]
        parts.append(
            table(
                header,
                ([label, *counts] for label, counts in zip(classes, confusion.get("rows", []), strict=False)),
            )
        )
    for column, levels in (breakdown.get("segments") or {}).items():
        metrics = [key for key in next(iter(levels.values()), {}) if key != "rows"]
        rows = [
            [level, values.get("rows"), *(values.get(m) for m in metrics)] for level, values in levels.items()
        ]
        parts.append(table([f"{column} (test split)", "rows", *metrics], rows))
    if residuals := breakdown.get("residuals"):
        parts.append(table(["residual (actual - predicted, test split)", "value"], list(residuals.items())))
    return parts


def lineage_table(train: Json) -> str:
    """Where the candidate came from: run, code, data."""
    keys = (
        "model_name",
        "model_version",
        "estimator",
        "run_id",
        "git_commit",
        "data_path",
        "data_digest",
        "cv_mean",
    )
    return table(["lineage", "value"], ([key, train.get(key)] for key in keys if key in train))


def gate_section(gate: Json) -> str:
    """Live (champion) beside proposed (candidate) on the same held-out rows, the change, the decision.

    Where the live score is the one ``deploy/production.yaml`` records (a pull request's registry
    has no champion), the column says so, and a sentence says whether its rows were these.
    """
    verdict = "PROMOTE ✅" if gate.get("promote") else "KEEP CHAMPION ⛔"
    metric = str(gate.get("metric"))
    live, proposed = number(gate.get("champion")), number(gate.get("candidate"))
    if live is not None and proposed is not None:
        change = f"{proposed - live:+.4f}"
    else:
        change = "no live score recorded" if gate.get("champion_version") is not None else "no live model yet"
    recorded = gate.get("champion_source") == RECORDED
    proposed_version = _version(gate.get("candidate_version"))
    if recorded and proposed_version:  # numbered by this job's own registry, not production's
        proposed_version += " (this job's registry)"
    rows: list[list[object]] = [
        ["model version", _version(gate.get("champion_version")), proposed_version, ""],
        [f"{metric} ({held_out_rows(gate)})", live, proposed, f"{change} (margin {fmt(gate.get('margin'))})"],
    ]
    parts = [f"#### Gate: {verdict}", quote(str(gate.get("reason")))]
    # No chart: two bars from zero hide the one number that decides, the change, which the table states.
    header = "live (recorded scores)" if recorded else "live (champion)"
    parts.append(table(["", header, "proposed (candidate)", "change"], rows))
    if recorded:
        parts.append(recorded_line(gate))
    return "\n\n".join(parts)


def same_rows(gate: Json) -> bool:
    """Whether the live score was measured on this job's test rows (equal digests, or scored here)."""
    if gate.get("champion_source") != RECORDED:
        return True
    return gate.get("champion_test_digest") is not None and gate.get("champion_test_digest") == gate.get(
        "test_digest"
    )


def held_out_rows(gate: Json) -> str:
    """The metric row's note: both scores on the same held-out rows, or not."""
    return "same held-out rows" if same_rows(gate) else "other held-out rows"


def recorded_line(gate: Json) -> str:
    """What the live column is when it was read from ``deploy/production.yaml``, and on which rows."""
    ours, digest = gate.get("test_rows"), _short(gate.get("test_digest"))
    source = (
        "Live column: the held-out scores `deploy/production.yaml` records for "
        f"v{gate.get('champion_version')}, the model production serves, measured by the release that "
        f"proposed it on {gate.get('champion_test_rows')} test rows"
    )
    if same_rows(gate):
        return f"{source}; this job's {ours} test rows are the same rows (SHA-256 {digest})."
    return (
        f"{source} (SHA-256 {_short(gate.get('champion_test_digest'))}); this job's {ours} test rows are "
        f"other rows (SHA-256 {digest}): the data or its split changed, so the "
        "change is not the models' alone."
    )


def _short(digest: object) -> str:
    """A digest's first 12 hex digits, enough to tell two apart on a page."""
    return f"{str(digest)[:12]}…"


def _version(version: object) -> str | None:
    """``v3``, or None (shown as a dash) when there is no such model."""
    return f"v{version}" if version is not None else None
