"""The job's own checks, which have no JSON report: pytest's JUnit XML and the linters' findings."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from xml.etree import ElementTree

from .jsonfile import LINT
from .tables import quote, table

MYPY_LINE = re.compile(r"^(?P<where>[^:\s]+:\d+): error: (?P<message>.*?)(?:  \[(?P<code>[\w-]+)\])?$")
LINT_ROWS = 20  # findings listed on the page; the rest are counted


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
            rows.append(["ruff", where, finding.get("code") or "", quote(finding["message"])])
    if mypy.is_file():
        ran.append("mypy")
        suite = ElementTree.parse(mypy).getroot()  # noqa: S314 - our own mypy's output, not untrusted input
        for failure in suite.iter("failure"):
            for line in (failure.text or "").splitlines():
                if found := MYPY_LINE.match(line.strip()):
                    rows.append(["mypy", found["where"], found["code"] or "", quote(found["message"])])
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
