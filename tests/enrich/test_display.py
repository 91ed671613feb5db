"""The enrichment next to the raw value: the event view's rows and an alert's context lines,
rendered from the real templates and locale texts."""

from __future__ import annotations

from typing import Any

from norrvakt.enrich.display import beside
from norrvakt.web.i18n import translate
from norrvakt.web.templating import TEMPLATES

FIELDS = {
    "LogonType": "3",
    "SubStatus": "0xC000006A",
    "winlog.logon.type_name": "Network",
    "winlog.logon.failure.sub_status": "Bad password (the user name is correct)",
    "source.geo.country_iso_code": "SE",
    "source.as.number": "1257",
    "source.as.organization.name": "Tele2 Sverige AB",
    "source.network.name": "VPN-pool",
}
ECS = {"source.ip": "83.255.1.1", "event.code": "4625"}


def _t(lang: str) -> Any:
    return lambda key: translate(lang, key)


def test_beside_names_the_raw_fields() -> None:
    b = beside(ECS, FIELDS)
    assert b["source.ip"] == "SE · AS1257 Tele2 Sverige AB · VPN-pool"
    assert b["LogonType"] == "Network"
    assert b["SubStatus"] == "Bad password (the user name is correct)"
    assert "event.code" not in b and beside({}, {}) == {}
    kerberos = beside({}, {"Status": "0x18", "winlog.kerberos.result": "KDC_ERR_PREAUTH_FAILED",
                           "event.reason": "Pre-authentication failed (bad password)"})  # fmt: skip
    assert kerberos["Status"] == "KDC_ERR_PREAUTH_FAILED · Pre-authentication failed (bad password)"


def test_event_view_shows_the_words_next_to_the_value() -> None:
    event = {"tenant": "lulea", "seq": 4, "message": "m", "raw": "{}", "@timestamp": "t", "source": "s",
             "peer": "p", "ecs": ECS, "fields": FIELDS}  # fmt: skip
    html = TEMPLATES.env.get_template("_event.html").render(
        event=event, t=_t("sv"), tenant_name=lambda x: x, beside=beside
    )
    row = html.split('<th scope="row" class="orig">LogonType</th>')[1].split("</tr>")[0]
    assert "3" in row and '<span class="enrich"' in row and "Network" in row
    assert "Berikning" in html  # the Swedish title of the enrichment
    ip_row = html.split('<th scope="row">source.ip</th>')[1].split("</tr>")[0]
    assert "83.255.1.1" in ip_row and "AS1257 Tele2 Sverige AB" in ip_row


def test_alert_context_lines_in_both_languages() -> None:
    alert = {"context": {
        "asset": {"host": "treserva-db01", "criticality": "critical", "system": "Treserva", "owner": "IT"},
        "account": {"username": "adm-anna", "display_name": "Anna", "marks": ["privileged", "departed"],
                    "groups": ["Domain Admins"]},
        "level": {"rule": "medium", "reason": "asset treserva-db01: critical"},
    }}  # fmt: skip
    tpl = TEMPLATES.env.get_template("_alert_context.html")
    en = tpl.render(a=alert, t=_t("en"))
    sv = tpl.render(a=alert, t=_t("sv"))
    assert "Asset: treserva-db01" in en and "sev-critical" in en and "Treserva" in en
    assert "privileged" in en and "departed" in en and "Domain Admins" in en
    assert "Tillgång: treserva-db01" in sv and "privilegierad" in sv and "avslutad" in sv
    assert "Severity moved: asset treserva-db01: critical" in en
    assert tpl.render(a={"context": {}}, t=_t("en")).strip() == ""
