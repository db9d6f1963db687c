"""CI dashboards: the JSON reports every stage writes, rendered as one Markdown page.

Each stage leaves JSON under ``reports/`` (validation, training, gate, tests, staging checks,
promotion, monitoring). This module turns whatever is there into one page, verdict first: a
stage that failed is the first line, with its error and remedy (``reports/failures/``, written
by the stage itself). Then each report once: the stage's own Markdown where it wrote one beside
its JSON, else tables and Mermaid ``xychart-beta`` charts, which GitHub renders natively in job
summaries and PR comments, so nothing has to be hosted. A missing report is simply a missing
section: each job shows the stages it ran. Only ``nox -s summary`` writes the job summary.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

MARKER = "<!-- mlops-report -->"  # finds the one PR comment to update instead of adding another
SUMMARY_FILE = "summary.md"
PERCENTILE = re.compile(r"^p\d{1,2}(\.\d+)?(_ms)?$")
DRIFTED = {True: "⚠️ yes", False: "no"}  # not pass/fail marks: drift is a signal, not an error
KNOWN = ("validation/validation.json", "training/train.json", "training/gate.json")
LINT = "lint"  # ruff's JSON and mypy's JUnit XML (`nox -s lint typecheck`): read by lint_section
LINT_ROWS = 20  # findings listed on the page; the rest are counted
CHART_BARS = 8  # bars one chart draws, the largest; its table lists every row
CHART_FROM = 0.5  # a drift chart is drawn once some column reaches this share of its threshold
LABEL_CHARS = 20  # longer chart labels are cut in the middle, so the bars keep the width
MYPY_LINE = re.compile(r"^(?P<where>[^:\s]+:\d+): error: (?P<message>.*?)(?:  \[(?P<code>[\w-]+)\])?$")
SBOM = ".cdx.json"  # CycloneDX software bill of materials
FAILURES = "failures"  # reports/failures/<stage>.json: what failed, its error and the remedy
RECORDED = "recorded"  # a gate's champion_source: the live score is the one deploy/production.yaml records
VERDICTS = {"passed", "healthy", "ready", "promote"}  # booleans that mean pass or fail
# A promotion or rollback report's status, as the page's first line: what serves now.
OUTCOMES = {
    "refused": "**⛔ {title}: refused**, `{live}` still serves: {detail}",
    "rolled_back": "**↩️ {title}: rolled back**, `{live}` serves: {detail}",
    "promoted": "**✅ {title}: promoted**, `{live}` serves",
    "deployed": "**✅ {title}: deployed**, `{live}` serves",
    "unchanged": "**✅ {title}: unchanged**, `{live}` serves",
}
EPOCH = (1e9, 4e9)  # seconds since 1970 in this range are timestamps (2001 to 2096)
TIME_KEY = re.compile(r"(^|_)(at|time|timestamp|started|finished|ended)$")
Json = dict[str, Any]


def fmt(value: object) -> str:
    """One table cell: booleans as words, floats to four significant digits."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1e5 else f"{value:.4g}"  # timestamps, counts: every digit
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table; numbers right-aligned so they line up."""
    body = [list(row) for row in rows]
    numeric = [
        all(isinstance(r[i], int | float) and not isinstance(r[i], bool) for r in body)
        for i in range(len(header))
    ]
    align = ["---:" if num and body else "---" for num in numeric]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(fmt(cell) for cell in row) + " |" for row in body]
    return "\n".join(lines)


def bar_chart(
    title: str,
    labels: Sequence[str],
    bars: Sequence[float],
    axis: str,
    threshold: float | None = None,
) -> str:
    """A Mermaid ``xychart-beta`` horizontal bar chart of the first ``CHART_BARS`` bars.

    Horizontal, so that each label has a row of its own: under upright bars, ten column names
    overlap into one unreadable strip at the 1012 px of a job summary. Callers put the bars that
    matter first and keep every row in a table. ``threshold`` is drawn as a line across the bars.
    """
    shown = [float(value) for value in bars[:CHART_BARS]]
    quoted = ", ".join(json.dumps(label, ensure_ascii=False) for label in short_labels(labels[:CHART_BARS]))
    top = max([*shown, threshold or 0.0, 0.0]) * 1.1 or 1.0
    chart = [
        "```mermaid",
        "---",  # the height follows the bars, so three bars are not drawn half a page tall
        f"config: {json.dumps({'xyChart': {'height': 100 + 40 * len(shown)}})}",
        "---",
        "xychart-beta horizontal",
        f"    title {json.dumps(_label(title), ensure_ascii=False)}",
        f"    x-axis [{quoted}]",
        f"    y-axis {json.dumps(_label(axis), ensure_ascii=False)} 0 --> {top:.4g}",
        f"    bar [{', '.join(f'{v:.4g}' for v in shown)}]",
    ]
    if threshold is not None:
        chart.append(f"    line [{', '.join(f'{threshold:.4g}' for _ in shown)}]")
    return "\n".join([*chart, "```"])


def short_labels(labels: Sequence[str]) -> list[str]:
    """Labels of at most ``LABEL_CHARS``, still distinct: Mermaid draws equal labels as one bar.

    A long name is cut in the middle, as its start and its end (``_2024``, ``_ratio``) are what
    tell similar columns apart.
    """
    found: list[str] = []
    for text in map(_label, labels):
        label = short = text if len(text) <= LABEL_CHARS else f"{text[: LABEL_CHARS - 7]}…{text[-6:]}"
        copies = 1
        while label in found:
            copies += 1
            label = f"{short[: LABEL_CHARS - len(str(copies)) - 2]} #{copies}"
        found.append(label)
    return found


def _label(text: str) -> str:
    """Mermaid labels cannot hold double quotes."""
    return text.replace('"', "'")


def validation_section(report: Json) -> str:
    """Data gate: verdict, violations and per-column drift against the reference profile."""
    verdict = "passed ✅" if report.get("passed") else "FAILED ❌"
    parts = [f"### Data validation: {verdict}", f"`{report.get('path')}`: {report.get('rows')} rows"]
    if violations := report.get("violations"):
        parts.append(
            table(["column", "rule", "detail"], ([v["column"], v["rule"], v["detail"]] for v in violations))
        )
    if drift := report.get("drift"):
        parts.append(drift_table(drift))
        if chart := drift_chart("Drift against the reference profile", drift):
            parts.append(chart)
    return "\n\n".join(parts)


def drift_table(rows: Sequence[Json]) -> str:
    """Per-column distances with their thresholds."""
    header = ["column", "kind", "distance", "threshold", "drifted"]
    return table(
        header,
        (
            [
                d.get("column"),
                d.get("kind"),
                d.get("statistic"),
                d.get("threshold"),
                DRIFTED[bool(d.get("drifted"))],
            ]
            for d in rows
        ),
    )


def drift_chart(title: str, rows: Sequence[Json]) -> str | None:
    """The columns nearest their thresholds as bars, in % of each one's threshold, which is a line.

    Thresholds differ by column, so each distance is drawn as a share of its own. While every
    column stays under ``CHART_FROM`` of its threshold, bars near zero would only repeat the
    table's "drifted" column: one sentence names the closest column instead. None when no row
    has both numbers.
    """
    shares = sorted(
        ((share, str(d.get("column"))) for d in rows if (share := threshold_share(d)) is not None),
        key=lambda found: (-found[0], found[1]),
    )
    if not shares:
        return None
    closest, column = shares[0]
    if closest < CHART_FROM:
        return f"No column is near its drift threshold: the closest, {_quote(column)}, is at {closest:.1%}."
    more = f" ({CHART_BARS} nearest of {len(shares)} columns)" if len(shares) > CHART_BARS else ""
    return bar_chart(
        f"{title}{more}",
        [name for _, name in shares],
        [100 * share for share, _ in shares],
        "% of the column's threshold",
        threshold=100.0,
    )


def threshold_share(row: Json) -> float | None:
    """A drift row's distance over its threshold, or None where either is not a number."""
    statistic, threshold = _score(row.get("statistic")), _score(row.get("threshold"))
    if statistic is None or threshold is None or threshold <= 0:
        return None
    return statistic / threshold


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
    live, proposed = _score(gate.get("champion")), _score(gate.get("candidate"))
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
    parts = [f"#### Gate: {verdict}", _quote(str(gate.get("reason")))]
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


def _score(value: object) -> float | None:
    """A metric value, or None where the model or the number is missing."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _version(version: object) -> str | None:
    """``v3``, or None (shown as a dash) when there is no such model."""
    return f"v{version}" if version is not None else None


def junit_counts(junit: Path) -> dict[str, float]:
    """Test counts and seconds from pytest's JUnit XML (``nox -s tests -- --junitxml=...``)."""
    root = ElementTree.parse(junit).getroot()  # noqa: S314 - our own pytest's output, not untrusted input
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts: dict[str, float] = {
        key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")
    }
    return counts | {"seconds": sum(float(s.get("time", 0.0)) for s in suites)}


def tests_failed(counts: Mapping[str, float]) -> bool:
    """Whether a test run had failures or errors."""
    return counts["failures"] + counts["errors"] > 0


def tests_section(counts: Mapping[str, float]) -> str:
    """The test counts of one JUnit file, verdict first."""
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    verdict = "FAILED ❌" if tests_failed(counts) else "passed ✅"
    rows = [
        ["passed", int(passed)],
        ["failed", int(counts["failures"])],
        ["errors", int(counts["errors"])],
        ["skipped", int(counts["skipped"])],
    ]
    seconds = counts["seconds"]
    return "\n\n".join([f"### Tests: {verdict}", table(["tests", "count"], rows), f"{seconds:.1f} s"])


def lint_findings(root: Path) -> tuple[list[str], list[list[str]]] | None:
    """Which linters reported, and their findings as (tool, where, rule, message); None if none ran."""
    ruff, mypy = root / LINT / "ruff.json", root / LINT / "mypy.xml"
    if not ruff.is_file() and not mypy.is_file():
        return None
    ran, rows = [], []
    if ruff.is_file():
        ran.append("ruff")
        for finding in json.loads(ruff.read_text() or "[]"):
            where = f"{_relative(finding['filename'])}:{finding['location']['row']}"
            rows.append(["ruff", where, finding.get("code") or "", _quote(finding["message"])])
    if mypy.is_file():
        ran.append("mypy")
        suite = ElementTree.parse(mypy).getroot()  # noqa: S314 - our own mypy's output, not untrusted input
        for failure in suite.iter("failure"):
            for line in (failure.text or "").splitlines():
                if found := MYPY_LINE.match(line.strip()):
                    rows.append(["mypy", found["where"], found["code"] or "", _quote(found["message"])])
    return ran, rows


def _relative(filename: str) -> str:
    """A path as the project sees it (ruff reports absolute ones)."""
    path = Path(filename)
    return path.relative_to(Path.cwd()).as_posix() if path.is_relative_to(Path.cwd()) else filename


def lint_section(ran: list[str], rows: list[list[str]]) -> str:
    """The lint job's findings: where and what, the first few, and how to see them all."""
    verdict = "passed ✅" if not rows else f"FAILED ❌, {len(rows)} finding(s)"
    parts = [f"### Lint ({' + '.join(ran)}): {verdict}"]
    if rows:
        parts.append(table(["tool", "where", "rule", "message"], rows[:LINT_ROWS]))
        if len(rows) > LINT_ROWS:
            parts.append(f"…and {len(rows) - LINT_ROWS} more: `nox -s lint typecheck` lists them all.")
    return "\n\n".join(parts)


def checks_failing(
    junits: list[dict[str, float]], lint: tuple[list[str], list[list[str]]] | None
) -> list[str]:
    """The job's own checks that failed: its tests (JUnit) and its linters."""
    failing = ["Tests"] if any(tests_failed(counts) for counts in junits) else []
    if lint is not None and lint[1]:
        failing.append("Lint")
    return failing


def meaning(key: str, value: object) -> object:
    """A scalar shown by what it means: pass/fail for verdicts, ISO UTC for epoch timestamps."""
    name = key.rsplit(".", 1)[-1]
    if isinstance(value, bool) and name in VERDICTS:
        return "pass ✅" if value else "FAIL ❌"
    if isinstance(value, int | float) and not isinstance(value, bool):
        stamp = float(value)
        if TIME_KEY.search(name) and EPOCH[0] <= stamp <= EPOCH[1]:
            return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return value


def generic_section(title: str, payload: object) -> str:
    """Any other stage report: scalars and record lists as tables, percentiles and drift as charts."""
    parts = [f"### {title}"]
    scalars = [(key, meaning(key, value)) for key, value in flatten(payload)]
    if scalars:
        parts.append(table(["field", "value"], scalars))
    for name, records in record_lists(payload):
        parts.append(
            f"**{name}**\n\n"
            + table(list(records[0]), ([meaning(k, r.get(k)) for k in records[0]] for r in records))
        )
        if all("statistic" in r and "threshold" in r for r in records) and (
            chart := drift_chart(f"{name}: drift per column", records)
        ):
            parts.append(chart)
    for name, percentiles in percentile_maps(payload):
        labels, values = list(percentiles), [float(v) for v in percentiles.values()]
        parts.append(bar_chart(f"{name} percentiles", labels, values, "ms"))
    return "\n\n".join(parts)


def flatten(payload: object, prefix: str = "") -> Iterable[tuple[str, object]]:
    """Scalar leaves as dotted keys; lists are left to :func:`record_lists`."""
    if isinstance(payload, Mapping):
        for key, value in payload.items():
            yield from flatten(value, f"{prefix}{key}.")
    elif not isinstance(payload, list) and prefix:
        yield prefix.rstrip("."), payload


def record_lists(payload: object, name: str = "records") -> Iterable[tuple[str, list[Json]]]:
    """Every non-empty list of objects, wherever it sits, with the key that holds it."""
    if isinstance(payload, Mapping):
        for key, value in payload.items():
            yield from record_lists(value, str(key))
    elif isinstance(payload, list) and payload and all(isinstance(item, Mapping) for item in payload):
        yield name, [{k: v for k, v in item.items() if not isinstance(v, dict | list)} for item in payload]


def percentile_maps(payload: object, name: str = "latency") -> Iterable[tuple[str, dict[str, float]]]:
    """Latency percentiles (``p50``, ``p95``, ``p99_ms``...) wherever two or more sit side by side."""
    if isinstance(payload, list):
        for item in payload:
            yield from percentile_maps(item, name)
        return
    if not isinstance(payload, Mapping):
        return
    numbers = {
        str(k): float(v)
        for k, v in payload.items()
        if PERCENTILE.match(str(k)) and isinstance(v, int | float) and not isinstance(v, bool)
    }
    if len(numbers) >= 2:
        yield str(payload.get("name", name)), numbers
    for key, value in payload.items():
        yield from percentile_maps(value, str(payload.get("name", key)))


def write_json(payload: object, path: str | Path) -> Path:
    """Write one stage report as strict JSON: NaN and infinities become null, folders are made.

    A metric can be undefined (ROC AUC with one class in the test split); ``json.dumps`` would
    write a bare ``NaN``, which no strict JSON reader (``jq``, JavaScript) accepts.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(_finite(payload), indent=2, default=str, allow_nan=False))
    return target


def _finite(value: object) -> object:
    """``value`` with every non-finite float, at any depth, replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def load(path: Path) -> Json | None:
    """A report, or None when the stage did not run in this job (or left unreadable output)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else {"value": data}


def record_failure(root: Path, stage: str, error: str) -> Path:
    """Leave a failed stage's error (which names the remedy) where the job's summary finds it."""
    return write_json(
        {"stage": stage, "error": error, "at": datetime.now(UTC).isoformat(timespec="seconds")},
        root / FAILURES / f"{stage}.json",
    )


def failures(root: Path) -> list[Json]:
    """The stages that failed in this job, in the order they failed."""
    found = [load(path) for path in (root / FAILURES).glob("*.json")]
    return sorted((f for f in found if f), key=lambda f: str(f.get("at")))


def verdict(found: list[tuple[str, Json]], failed: list[Json], checks: Sequence[str] = ()) -> str:
    """The page's first line: what happened in this job, in words, the worst news first.

    ``checks`` are the job's own checks that failed (tests, lint), which have no JSON report.
    """
    outcomes = [
        outcome_line(relative, payload) for relative, payload in found if payload.get("status") in OUTCOMES
    ]
    failing = [
        *checks,
        *(title_of(relative) for relative, payload in found if payload.get("passed") is False),
    ]
    gate = dict(found).get(KNOWN[2])
    monitoring = [payload for relative, payload in found if relative.startswith("monitoring/")]
    lines = [
        failed_line(failed),
        next((line for line in outcomes if "⛔" in line), None),
        f"**❌ Did not pass: {', '.join(failing)}**: the sections below say what failed" if failing else None,
        next((line for line in outcomes if "↩️" in line), None),
        monitoring_line(monitoring),  # production's news outranks a candidate's gate
        gate_line(gate) if gate is not None else None,  # a release: the decision, before staging's deploy
        next(iter(outcomes), None),
    ]
    return next((line for line in lines if line), "**✅ Every stage in this job passed.**")


def failed_line(failed: list[Json]) -> str | None:
    """The first failed stage with its error (which names the remedy), if any failed."""
    if not failed:
        return None
    more = f" ({len(failed) - 1} more below)" if len(failed) > 1 else ""
    return f"**❌ {failed[0].get('stage')} failed**{more}: {_quote(str(failed[0].get('error')))}"


MONITORING_LINES = {  # a monitoring report's worst kind of finding (monitoring/monitor.py ALERT_KINDS)
    "drift": "**⚠️ Production drift ({drift_kind})**: {detail}; see the monitoring section",
    "data-quality": "**⚠️ Production data-quality alert** (no drift): {detail}; see the monitoring section",
    "unreadable": "**⚠️ Unreadable production profiles** (no drift): {detail}; see the monitoring section",
    "service": "**⚠️ Production service alert**: {detail}; see the monitoring section",
}


def alert_kinds(payload: Json) -> list[str]:
    """A monitoring report's kinds of finding, worst first; ``drift`` when it only says it drifted."""
    kinds = [str(kind) for kind in payload.get("alert_kinds") or [] if kind in MONITORING_LINES]
    return kinds or (["drift"] if drifted(payload) else [])


def monitoring_line(monitoring: list[Json]) -> str | None:
    """The worst monitoring finding in one line, the realised metric's drop first when there is one."""
    worst = [(kinds[0], payload) for payload in monitoring if (kinds := alert_kinds(payload))]
    if not worst:
        return None
    kind, payload = min(worst, key=lambda found: list(MONITORING_LINES).index(found[0]))
    alerts = [str(alert) for alert in payload.get("alerts") or []]
    detail = next((a for a in alerts if a.startswith("performance:")), alerts[0] if alerts else "drifted")
    drift_kind = payload.get("drift_kind") if payload.get("drift_kind") not in (None, "none") else "drift"
    return MONITORING_LINES[kind].format(drift_kind=drift_kind, detail=_quote(detail))


def gate_line(gate: Json) -> str:
    """The gate's decision and its reason."""
    decision = "promote ✅" if gate.get("promote") else "keep the champion ⛔"
    return f"**Gate: {decision}**: {_quote(str(gate.get('reason')))}"


def outcome_line(relative: str, payload: Json) -> str:
    """A promotion or rollback report in one line: how it ended, what serves, why."""
    decisions = payload.get("decisions") or []
    result = next((d for d in reversed(decisions) if isinstance(d, dict) and d.get("step") == "result"), {})
    kind, _, environment = Path(relative).stem.partition("-")  # promotion-production, rollback-staging
    title = f"{kind.capitalize()} of {environment}" if environment else kind.capitalize()
    return OUTCOMES[str(payload["status"])].format(
        title=title, live=payload.get("live"), detail=_quote(str(result.get("detail", "")))
    )


def reports_in(root: Path) -> list[tuple[str, Json]]:
    """Every readable stage report (relative path, payload), failure records left out."""
    found = []
    for path in sorted(root.rglob("*.json")):
        relative = path.relative_to(root).as_posix()
        if not relative.startswith((f"{FAILURES}/", f"{LINT}/")) and (payload := load(path)) is not None:
            found.append((relative, payload))
    return found


def _quote(text: str) -> str:
    """User and error text on one line, unable to open Markdown of its own."""
    flat = " ".join(text.split())
    return flat.replace("|", "\\|").replace("<", "&lt;").replace("#", "\\#")


def failure_section(failed: list[Json]) -> str:
    """Each failed stage with its error and when."""
    rows = [[f.get("stage"), _quote(str(f.get("error"))), f.get("at")] for f in failed]
    return "\n\n".join(["### Failed stages", table(["stage", "error and remedy", "at"], rows)])


def own_markdown(path: Path) -> str | None:
    """The Markdown a stage wrote beside its JSON report (``checks.json`` -> ``checks.md``)."""
    beside = path.with_suffix(".md")
    return beside.read_text().strip() if beside.is_file() else None


def sections(
    root: Path,
    reported: list[tuple[str, Json]],
    failed: list[Json],
    junits: list[dict[str, float]],
    lint: tuple[list[str], list[list[str]]] | None,
) -> list[str]:
    """Every section whose report exists: failures, known stages, then every other report once."""
    found: list[str] = []
    known = dict(reported)
    if failed:
        found.append(failure_section(failed))
    if (validation := known.get(KNOWN[0])) is not None:
        found.append(validation_section(validation))
    train, gate = known.get(KNOWN[1]), known.get(KNOWN[2])
    if train or gate:
        found.append(training_section(train, gate))
    found += [tests_section(counts) for counts in junits]
    if lint is not None:
        found.append(lint_section(*lint))
    for relative, payload in reported:
        if relative.endswith(SBOM):  # evidence to keep, not a table to read: one line
            count = len(payload.get("components", []))
            found.append(
                f"### SBOM\n\n{count} packages (CycloneDX) in `{relative}`, kept with the release evidence"
            )
        elif relative not in KNOWN:
            found.append(own_markdown(root / relative) or generic_section(title_of(relative), payload))
    return found


def title_of(relative: str) -> str:
    """``staging/checks.json`` -> ``Staging: checks``."""
    folder, _, stem = relative.removesuffix(".json").rpartition("/")
    if not folder or folder == stem:  # validation/validation.json -> Validation
        return stem.replace("_", " ").capitalize()
    return f"{folder.replace('/', ' / ').capitalize()}: {stem.replace('_', ' ')}"


def render(root: Path) -> str:
    """The whole page, starting with the marker that identifies the PR comment.

    Every report is read once, here, for both the verdict and the sections.
    """
    reported, failed, lint = reports_in(root), failures(root), lint_findings(root)
    junits = [junit_counts(path) for path in sorted(root.glob("tests/*.xml"))]
    found = sections(root, reported, failed, junits, lint)
    if not found:
        return (
            "\n\n".join([MARKER, "## MLOps report", f"No stage reports under `{root.name}/` in this job."])
            + "\n"
        )
    headline = verdict(reported, failed, checks_failing(junits, lint))
    return "\n\n".join([MARKER, "## MLOps report", headline, *found]) + "\n"


def signals(root: Path) -> dict[str, str]:
    """Decisions later jobs branch on, as ``$GITHUB_OUTPUT`` values: ``promote``, ``drift``, ``alerts``.

    ``drift`` starts retraining; ``alerts`` (kinds, worst first) opens an issue, which for
    data-quality and unreadable files alone is not drift.
    """
    found: dict[str, str] = {}
    if (gate := load(root / KNOWN[2])) is not None:
        found["promote"] = str(bool(gate.get("promote"))).lower()
    monitoring = [load(path) for path in sorted(root.glob("monitoring/*.json"))]
    if any(report is not None for report in monitoring):
        found["drift"] = str(any(drifted(report) for report in monitoring)).lower()
        kinds = {kind for report in monitoring if report is not None for kind in alert_kinds(report)}
        found["alerts"] = ",".join(kind for kind in MONITORING_LINES if kind in kinds)
    return found


def drifted(payload: object) -> bool:
    """True when any record in a report says it drifted."""
    if isinstance(payload, Mapping):
        if any(payload.get(key) is True for key in ("drifted", "drift_detected")):
            return True
        return any(drifted(value) for value in payload.values())
    return isinstance(payload, list) and any(drifted(item) for item in payload)


def publish(root: Path, environ: Mapping[str, str] = os.environ) -> Path:
    """Write ``<root>/summary.md``; append it to the job summary and set outputs when run by CI."""
    markdown = render(root)
    root.mkdir(parents=True, exist_ok=True)
    target = root / SUMMARY_FILE
    target.write_text(markdown)
    if step_summary := environ.get("GITHUB_STEP_SUMMARY"):
        with Path(step_summary).open("a") as handle:
            handle.write(markdown)
    if outputs := environ.get("GITHUB_OUTPUT"):
        with Path(outputs).open("a") as handle:
            handle.writelines(f"{key}={value}\n" for key, value in signals(root).items())
    return target
