"""Production monitoring's findings: their kinds, worst first, and the one line that heads the page."""

from __future__ import annotations

from collections.abc import Mapping

from .jsonfile import Json
from .tables import quote

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
    return MONITORING_LINES[kind].format(drift_kind=drift_kind, detail=quote(detail))


def drifted(payload: object) -> bool:
    """True when any record in a report says it drifted."""
    if isinstance(payload, Mapping):
        if any(payload.get(key) is True for key in ("drifted", "drift_detected")):
            return True
        return any(drifted(value) for value in payload.values())
    return isinstance(payload, list) and any(drifted(item) for item in payload)
