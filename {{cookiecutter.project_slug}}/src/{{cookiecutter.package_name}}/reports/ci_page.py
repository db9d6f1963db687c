"""The whole CI page, verdict first, then each report once; ``nox -s summary`` publishes it."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from .checks import checks_failing, junit_counts, lint_findings, lint_section, tests_section
from .generic import generic_section
from .jsonfile import KNOWN, Json, failures, load, reports_in, title_of
from .monitoring import MONITORING_LINES, alert_kinds, drifted
from .tables import quote, table
from .training import training_section
from .validation import validation_section
from .verdict import verdict

MARKER = "<!-- mlops-report -->"  # finds the one PR comment to update instead of adding another
SUMMARY_FILE = "summary.md"
SBOM = ".cdx.json"  # CycloneDX software bill of materials
REQUEST = "request.json"  # the body `package` made from a real row (serving/example.py)


def failure_section(failed: list[Json]) -> str:
    """Each failed stage with its error and when."""
    rows = [[f.get("stage"), quote(str(f.get("error"))), f.get("at")] for f in failed]
    return "\n\n".join(["### Failed stages", table(["stage", "error and remedy", "at"], rows)])


def request_section(relative: str, payload: object) -> str:
    """The request body as the JSON it is: as a table, one column a feature ran past GitHub's width."""
    body = json.dumps(payload, indent=1, ensure_ascii=False)
    intro = f"A body the packaged model answers (`curl -d @{relative}`):"
    return f"### Request\n\n{intro}\n\n```json\n{body}\n```"


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
        elif relative.endswith(REQUEST):
            found.append(request_section(f"{root.name}/{relative}", payload))
        elif relative not in KNOWN:
            found.append(own_markdown(root / relative) or generic_section(title_of(relative), payload))
    return found


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
