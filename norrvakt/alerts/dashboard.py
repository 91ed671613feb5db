"""The alert tiles of the dashboards page (``runtime.extras["alert_dashboard"]``): alerts by
severity, the rules that fired most, and response times per tenant and severity."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from norrvakt.alerts import sla
from norrvakt.config import LEVELS
from norrvakt.event import now_us
from norrvakt.state import alerts as alert_rows

COLOURS = {
    "informational": "#90a4ae",
    "low": "#2e7d32",
    "medium": "#b8860b",
    "high": "#d2691e",
    "critical": "#c62828",
}


def alert_dashboard(engine: sa.Engine) -> Callable[[list[str], int], dict[str, Any]]:
    def tiles(scope: list[str], since: int) -> dict[str, Any]:
        with engine.connect() as conn:
            by_rule = alert_rows.counts_by(conn, scope, since, "rule_title")
        levels: Counter[str] = Counter()
        rules: Counter[str] = Counter()
        for title, level, n in by_rule:
            levels[level] += n
            rules[title] += n
        chart = {
            "type": "bar",
            "data": {
                "labels": list(LEVELS),
                "datasets": [
                    {
                        "label": "alerts",
                        "data": [levels[lv] for lv in LEVELS],
                        "backgroundColor": [COLOURS[lv] for lv in LEVELS],
                    }
                ],
            },
            # horizontal and short: five bars beside two lists, not a tall chart of mostly air
            "options": {
                "animation": False,
                "indexAxis": "y",
                "plugins": {"legend": {"display": False}},
                "scales": {"x": {"beginAtZero": True, "ticks": {"precision": 0}}},
            },
        }
        rows = sla.report(engine, scope, since, now_us())
        return {
            "severity_chart": chart,
            "total": sum(levels.values()),
            "top_rules": [{"title": t, "count": n} for t, n in rules.most_common(8)],
            "sla": [
                {
                    "tenant": r["tenant"],
                    "severity": r["severity"],
                    "mtta": sla.human(r["mtta_s"]),
                    "mttr": sla.human(r["mttr_s"]),
                }
                for r in rows
            ],
        }

    return tiles
