"""Stage reports on disk: strict JSON written by each stage, read back by the page."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Json = dict[str, Any]
FAILURES = "failures"  # reports/failures/<stage>.json: what failed, its error and the remedy
LINT = "lint"  # ruff's JSON and mypy's JUnit XML (`nox -s lint typecheck`): read by lint_section
RECORDED = "recorded"  # a gate's champion_source: the live score is the one deploy/production.yaml records
REFERENCE = "reference"  # the folder monitoring fetches the training reference into
KNOWN = ("validation/validation.json", "training/train.json", "training/gate.json")


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


def reports_in(root: Path) -> list[tuple[str, Json]]:
    """Every readable stage report (relative path, payload), failure records left out.

    So is a ``reference/`` folder: the training reference monitoring fetched beside its report
    (its metrics and model name), an input the monitoring section already names, not a report.
    """
    found = []
    for path in sorted(root.rglob("*.json")):
        relative = path.relative_to(root).as_posix()
        if relative.startswith((f"{FAILURES}/", f"{LINT}/")) or f"/{REFERENCE}/" in f"/{relative}":
            continue
        if (payload := load(path)) is not None:
            found.append((relative, payload))
    return found


def title_of(relative: str) -> str:
    """``staging/checks.json`` -> ``Staging: checks``."""
    folder, _, stem = relative.removesuffix(".json").rpartition("/")
    if not folder or folder == stem:  # validation/validation.json -> Validation
        return stem.replace("_", " ").capitalize()
    return f"{folder.replace('/', ' / ').capitalize()}: {stem.replace('_', ' ')}"
