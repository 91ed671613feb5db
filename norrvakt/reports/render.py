"""The periodic reports as HTML and PDF, in Swedish or English, with their charts as images.

html = render_html(figures, "sv", zone)      # a tenant's or the region's figures
pdf = render_pdf(html)                        # WeasyPrint
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from norrvakt.alerts.sla import human
from norrvakt.reports.charts import EVENTS_COLOUR, SEVERITY_COLOURS, data_uri, day_bars, hbars, pair_bars
from norrvakt.reports.figures import SEVERITIES, TACTICS
from norrvakt.reports.labels import labels
from norrvakt.reports.subject_access import TEMPLATES

TACTIC_COLOUR = "#5d4037"


def _when(zone: str) -> Any:
    def fmt(us: int | None, with_time: bool = True) -> str:
        if not us:
            return "–"
        t = dt.datetime.fromtimestamp(us / 1_000_000, ZoneInfo(zone))
        return t.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")

    return fmt


def _pct(value: float | None, new_word: str, language: str) -> str:
    """+12.5 % (Swedish: +12,5 %); ``new_word`` when there was nothing before."""
    if value is None:
        return new_word
    text = f"{value:+.1f} %"
    return text.replace(".", ",") if language == "sv" else text


def _tactic_label(t: str) -> str:
    return "–" if t == "none" else t.replace("_", " ").title()


def _charts(f: dict[str, Any], words: dict[str, str]) -> dict[str, str]:
    days = f["events"]["daily"]
    before = f["events"]["previous_total"]
    n_prev_days = max(1, (f["previous"]["end_us"] - f["previous"]["start_us"]) // 86_400_000_000)
    reference = before / n_prev_days if before else None
    severity = [(words[lv], f["alerts"]["by_severity"][lv], SEVERITY_COLOURS[lv]) for lv in SEVERITIES]
    tactics = [
        (_tactic_label(t), n, TACTIC_COLOUR) for t, n in f["alerts"]["by_tactic"].items() if t in TACTICS
    ]
    return {
        "events_per_day": data_uri(
            day_bars([(d["day"][8:], d["count"]) for d in days], colour=EVENTS_COLOUR, reference=reference)
        ),
        "alerts_by_severity": data_uri(hbars(severity)),
        "alerts_by_tactic": data_uri(hbars(tactics)) if tactics else "",
    }


def render_html(figures: dict[str, Any], language: str, zone: str) -> str:
    words = labels(language)
    common = {
        "t": words,
        "lang": language,
        "when": _when(zone),
        "human": human,
        "pct": lambda v: _pct(v, words["new_source"], language),
        "tactic_label": _tactic_label,
        "severities": SEVERITIES,
    }
    if figures["kind"] == "region":
        region = figures
        charts = {
            "events_per_day": data_uri(
                day_bars([(d["day"][8:], d["count"]) for d in region["trend"]["daily"]])
            ),
            "per_municipality": data_uri(
                pair_bars([(r["tenant_name"], r["events"], r["events_previous"]) for r in region["rows"]])
            ),
            "alerts_by_severity": data_uri(
                hbars(
                    [
                        (words[lv], region["trend"]["by_severity"][lv], SEVERITY_COLOURS[lv])
                        for lv in SEVERITIES
                    ]
                )
            ),
        }
        return TEMPLATES.get_template("region_report.html").render(f=region, charts=charts, **common)
    return TEMPLATES.get_template("periodic_report.html").render(
        f=figures, charts=_charts(figures, words), **common
    )


def render_pdf(html: str) -> bytes:
    import logging

    from weasyprint import HTML

    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)  # seven INFO lines per PDF

    return bytes(HTML(string=html).write_pdf())
