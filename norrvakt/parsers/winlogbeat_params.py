"""Winlogbeat's names for unnamed event data, read as the EVTX record's ``Data``.

    {"winlog":{"channel":"Application","event_id":"18456","provider_name":"MSSQL$SQLEXPRESS","event_data":{"param1":"sa","param2":" Reason: Password did not match.","param3":" [CLIENT: 203.0.113.7]"}}}

Windows writes some events' ``<Data>`` without names; Winlogbeat calls them ``param1``,
``param2``, ... in ``winlog.event_data``. From an EVTX record Norrvakt reads them as ``Data_1``,
``Data_2``, ... and ``Data`` (all of them, one per line), which is what SigmaHQ's
``Data|contains`` rules match, so a Winlogbeat event with ``param1``.. and no ``Data`` gets
those too. The ``paramN`` fields stay as sent. (Some providers name their data ``param1``..
themselves; for them ``Data`` is an extra field that no rule of theirs reads.)
"""  # noqa: E501 - the sample line is kept whole

from __future__ import annotations


def add_unnamed_data(fields: dict[str, str]) -> None:
    """``Data_1``.. and ``Data`` from ``param1``, ``param2``, ... (consecutive from 1)."""
    if "Data" in fields or "param1" not in fields:
        return
    texts: list[str] = []
    while (text := fields.get(f"param{len(texts) + 1}")) is not None:
        texts.append(text)
    for i, text in enumerate(texts, start=1):
        fields.setdefault(f"Data_{i}", text)
    fields["Data"] = "\n".join(texts)
