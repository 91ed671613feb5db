"""Alerts and cases: the SOC workflow after detection.

    detection ─► AlertInput ─► AlertService.ingest ─► dedupe (count, not new alerts)
                                      │                 └► grouping ─► case
                                      └► new alerts ─► routing ─► channels (webhook, e-mail, syslog)
    SOC ─► CaseService: acknowledge, investigate, resolve; merge, split, move; NIS2 times

``model`` (the records), ``errors``, ``intake`` (events → inputs), ``dedupe`` (keys, the open
alert index), ``service`` (ingest), ``grouping`` and ``casebook`` (cases from alerts),
``workflow`` (statuses), ``cases`` (the SOC's operations), ``records`` (rows → records),
``nis2`` and ``sla`` (the times), ``evidence`` (what retention must keep), ``notify/``
(channels), ``routing``, ``dispatcher``, ``escalation``, ``journaling`` (history → audit
trail), ``dashboard`` (tiles), ``soc`` (everything wired to a runtime).
SQL lives in ``norrvakt/state`` (``alerts.py``, ``cases.py``, …), never here.
"""
