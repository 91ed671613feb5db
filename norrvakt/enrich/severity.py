"""Assets and directory accounts at alert intake and view: severity moved, context shown.

At intake (:meth:`AlertContext.adjust`, the AlertService's ``level_hook``), a new match's level
moves by the asset's criticality (norrvakt.enrich.assets.SHIFT) and one level up when its user
is privileged (a member of ``enrich.privileged_groups``) or a disabled or departed account that
is still active. The alert keeps why, in its entities: ``norrvakt.level.rule`` (the rule's
level) and ``norrvakt.level.reason`` ("asset treserva-db01: critical; user adm-anna: privileged
(Domain Admins)"). At view (:meth:`AlertContext.describe`) the asset and account are looked up
as they are now: owner, system, criticality, groups, marks.

Both lists are kept in memory per process and reloaded when their version moves (checked at
most every second), so an edit reaches every node's intake within a second.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from norrvakt.alerts.model import LEVEL_RANK, AlertInput
from norrvakt.config import LEVELS
from norrvakt.enrich.assets import SHIFT, asset_of
from norrvakt.enrich.directory_match import account_of
from norrvakt.state import assets as asset_rows
from norrvakt.state import directory as directory_rows
from norrvakt.state.assets import Asset
from norrvakt.state.directory import Account
from norrvakt.state.versions import VersionWatch

RULE_LEVEL = "norrvakt.level.rule"
LEVEL_REASON = "norrvakt.level.reason"
# what ingest added about the alert's addresses, kept with its entities (shown beside them)
ADDRESS_FIELDS = tuple(
    f"{side}.{name}"
    for side in ("source", "destination")
    for name in ("geo.country_iso_code", "as.number", "as.organization.name", "network.name")
)


def with_address_context(inp: AlertInput) -> AlertInput:
    """``inp`` with its event's address enrichment (country, AS, named network) in its entities."""
    if inp.event is None:
        return inp
    fields = inp.event.fields
    found = {
        k: fields[k] for k in ADDRESS_FIELDS if fields.get(k) and k.split(".", 1)[0] + ".ip" in inp.entities
    }
    if not found:
        return inp
    return replace(inp, entities={**inp.entities, **found})


class AlertContext:
    """The tenants' assets and directory accounts, fresh within a second."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._asset_watch = VersionWatch(engine, asset_rows.ASSETS)
        self._account_watch = VersionWatch(engine, directory_rows.DIRECTORY)
        self._assets: dict[str, dict[str, Asset]] = {}
        self._accounts: dict[str, dict[str, Account]] = {}
        self._load(assets=True, accounts=True)

    def _load(self, *, assets: bool, accounts: bool) -> None:
        with self.engine.connect() as conn:
            if assets:
                self._assets = asset_rows.all_by_tenant(conn)
            if accounts:
                self._accounts = directory_rows.all_by_tenant(conn)

    def _fresh(self) -> None:
        moved_assets = self._asset_watch.moved()
        moved_accounts = self._account_watch.moved()
        if moved_assets or moved_accounts:
            with self._lock:
                self._load(assets=moved_assets, accounts=moved_accounts)

    def asset(self, tenant: str, entities: Mapping[str, str]) -> Asset | None:
        self._fresh()
        return asset_of(self._assets.get(tenant, {}), entities)

    def account(self, tenant: str, entities: Mapping[str, str]) -> Account | None:
        self._fresh()
        return account_of(self._accounts.get(tenant, {}), entities)

    # -- intake ---------------------------------------------------------------------------

    def adjust(self, inp: AlertInput) -> AlertInput:
        """``inp`` with its level moved by its asset and user (unchanged when neither is known), and
        its event's address enrichment among its entities."""
        inp = with_address_context(inp)
        self._fresh()
        if not self._assets and not self._accounts:
            return inp
        shift = 0
        reasons: list[str] = []
        asset = self.asset(inp.tenant, inp.entities)
        if asset is not None and SHIFT[asset.criticality]:
            shift += SHIFT[asset.criticality]
            reasons.append(f"asset {asset.host}: {asset.criticality}")
        account = self.account(inp.tenant, inp.entities)
        if account is not None:
            marks = _marks(account)
            if marks:
                shift += 1
                reasons.append(f"user {account.username}: {', '.join(marks)}")
        if not reasons or inp.level not in LEVEL_RANK:
            return inp
        rank = max(0, min(len(LEVELS) - 1, LEVEL_RANK[inp.level] + shift))
        entities = {**inp.entities, RULE_LEVEL: inp.level, LEVEL_REASON: "; ".join(reasons)}
        return replace(inp, level=LEVELS[rank], entities=entities)

    # -- view -----------------------------------------------------------------------------

    def describe(self, tenant: str, entities: Mapping[str, str]) -> dict[str, Any]:
        """What the console shows beside an alert's entities: its asset and account as they are now."""
        out: dict[str, Any] = {}
        asset = self.asset(tenant, entities)
        if asset is not None:
            out["asset"] = asset.as_dict()
        account = self.account(tenant, entities)
        if account is not None:
            out["account"] = {**account.as_dict(), "marks": _marks(account)}
        if entities.get(LEVEL_REASON):
            out["level"] = {"rule": entities.get(RULE_LEVEL, ""), "reason": entities[LEVEL_REASON]}
        return out


def _marks(account: Account) -> list[str]:
    marks = []
    if account.privileged:
        marks.append("privileged")
    if account.disabled:
        marks.append("disabled")
    if account.departed:
        marks.append("departed")
    return marks
