"""Enrichment: who and what an event is about, next to the raw values.

At ingest, for what is stable (:mod:`norrvakt.enrich.ingest`): Windows codes in words
(:mod:`~norrvakt.enrich.windows_codes`), country and AS of public addresses
(:mod:`~norrvakt.enrich.ip`), the tenant's named networks (:mod:`~norrvakt.enrich.networks`).
At alert intake and view, for what changes: the tenant's assets (:mod:`~norrvakt.enrich.assets`)
and directory accounts (:mod:`~norrvakt.enrich.directory`).
"""
