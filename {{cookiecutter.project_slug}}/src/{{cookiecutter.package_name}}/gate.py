"""Champion/challenger gate: a pure decision over two scores, recorded for CI to act on."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class GateDecision:
    """Whether the candidate may replace the champion, with the numbers that decided it."""

    promote: bool
    reason: str
    metric: str
    candidate: float
    champion: float | None
    margin: float
    candidate_version: str | None = None
    champion_version: str | None = None

    def write(self, path: str | Path) -> Path:
        """Write the decision as JSON (CI reads ``promote``)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(asdict(self), indent=2))
        return target


def decide(
    metric: str, candidate: float, champion: float | None, margin: float, greater_is_better: bool
) -> GateDecision:
    """Promote when there is no champion yet, or the candidate beats it by at least ``margin``.

    ``margin`` is in the metric's own units; a candidate exactly ``margin`` better passes.
    """
    if champion is None:
        return GateDecision(True, "no champion yet", metric, candidate, None, margin)
    gain = candidate - champion if greater_is_better else champion - candidate
    if gain >= margin:
        reason = f"candidate is better by {gain:.4f} (margin {margin})"
        return GateDecision(True, reason, metric, candidate, champion, margin)
    reason = f"candidate is better by only {gain:.4f}, needs {margin}"
    return GateDecision(False, reason, metric, candidate, champion, margin)
