"""The page's first line: what happened in this job, in words, the worst news first."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .jsonfile import KNOWN, Json, title_of
from .monitoring import monitoring_line
from .tables import quote

# A promotion or rollback report's status, as the page's first line: what serves now.
OUTCOMES = {
    "refused": "**⛔ {title}: refused**, `{live}` still serves: {detail}",
    "rolled_back": "**↩️ {title}: rolled back**, `{live}` serves: {detail}",
    "promoted": "**✅ {title}: promoted**, `{live}` serves",
    "deployed": "**✅ {title}: deployed**, `{live}` serves",
    "unchanged": "**✅ {title}: unchanged**, `{live}` serves",
}


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
    return f"**❌ {failed[0].get('stage')} failed**{more}: {quote(str(failed[0].get('error')))}"


def gate_line(gate: Json) -> str:
    """The gate's decision and its reason."""
    decision = "promote ✅" if gate.get("promote") else "keep the champion ⛔"
    return f"**Gate: {decision}**: {quote(str(gate.get('reason')))}"


def outcome_line(relative: str, payload: Json) -> str:
    """A promotion or rollback report in one line: how it ended, what serves, why."""
    decisions = payload.get("decisions") or []
    result = next((d for d in reversed(decisions) if isinstance(d, dict) and d.get("step") == "result"), {})
    kind, _, environment = Path(relative).stem.partition("-")  # promotion-production, rollback-staging
    title = f"{kind.capitalize()} of {environment}" if environment else kind.capitalize()
    return OUTCOMES[str(payload["status"])].format(
        title=title, live=payload.get("live"), detail=quote(str(result.get("detail", "")))
    )
