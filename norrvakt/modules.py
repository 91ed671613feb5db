"""What each municipality subscribes to.

Log collection (collect, keep, search, integrity) is the base every tenant has. On top:

- ``detection`` — the rules run on the tenant's events and raise alerts;
- ``soc_notification`` — the 24/7 SOC is paged: new alerts and escalations of the tenant go
  to the notification channels (without it alerts and cases still exist, for the tenant's
  own officers to read, but nobody is woken up);
- ``followup`` — systematic log follow-up (loggkontroll) plans and rounds;
- ``response`` — response actions on the municipality's own systems (disable an AD or Entra ID
  account, block an address, open a ticket; norrvakt/respond/).

Admins set this per tenant (console *Administration*, ``PUT /api/admin/modules/{tenant}``);
no recorded choice means subscribed — except for the opt-in modules (``response``: Norrvakt
changes nothing in a municipality's systems until it has said yes). The choices are cached in
memory — they are asked for on every stored batch. :meth:`TenantModules.set` reloads its own
node's cache at once and bumps the ``tenant_modules`` version in the same transaction
(:mod:`norrvakt.state.versions`); every other node on the state database looks at that
version at most once a second and reloads when it moved, so a change made through one web
node reaches the others (their detection and notification included) within about a second.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa

from norrvakt.event import now_us
from norrvakt.state.db import tenant_modules
from norrvakt.state.versions import CHECK_EVERY_S, TENANT_MODULES, VersionWatch, bump

if TYPE_CHECKING:
    from norrvakt.node.runtime import Runtime

BASE = "collection"
MODULES: dict[str, str] = {
    "detection": "Detection rules raise alerts on the tenant's events",
    "soc_notification": "The SOC is notified around the clock (alerts and escalations)",
    "followup": "Systematic log follow-up (loggkontroll)",
    "response": "Response actions on the tenant's own systems (AD, Entra ID, firewalls, service desk)",
}
OPT_IN = frozenset({"response"})  # off until an admin switches it on


class UnknownModule(ValueError):
    pass


class TenantModules:
    def __init__(self, engine: sa.Engine, every_s: float = CHECK_EVERY_S) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._off: set[tuple[str, str]] = set()
        self._on: set[tuple[str, str]] = set()
        self.watch = VersionWatch(engine, TENANT_MODULES, every_s)  # before the first load
        self.reload()

    def reload(self) -> None:
        with self.engine.connect() as conn:
            rows = list(conn.execute(sa.select(tenant_modules)))
        off = {(str(r.tenant), str(r.module)) for r in rows if not r.enabled}
        on = {(str(r.tenant), str(r.module)) for r in rows if r.enabled}
        with self._lock:
            self._off, self._on = off, on

    def enabled(self, tenant: str, module: str) -> bool:
        """Does ``tenant`` subscribe to ``module``? (Collection always.)"""
        if module == BASE:
            return True
        if self.watch.moved():  # changed through another node (or this one)
            self.reload()
        if module in OPT_IN:
            return (tenant, module) in self._on
        return (tenant, module) not in self._off

    __call__ = enabled  # what LiveDetection and the dispatcher take: (tenant, module) → bool

    def table(self, tenants: Sequence[str]) -> dict[str, dict[str, bool]]:
        return {t: {m: self.enabled(t, m) for m in MODULES} for t in tenants}

    def set(self, tenant: str, choices: Mapping[str, bool], actor: str) -> dict[str, bool]:
        unknown = sorted(set(choices) - set(MODULES))
        if unknown:
            raise UnknownModule(f"unknown module(s) {', '.join(unknown)}; one of {', '.join(MODULES)}")
        at = now_us()
        with self.engine.begin() as conn:
            for module, on in choices.items():
                conn.execute(
                    tenant_modules.delete().where(
                        tenant_modules.c.tenant == tenant, tenant_modules.c.module == module
                    )
                )
                conn.execute(
                    tenant_modules.insert().values(
                        tenant=tenant, module=module, enabled=bool(on), updated_by=actor, updated_at=at
                    )
                )
            bump(conn, TENANT_MODULES)
        self.reload()
        return {m: self.enabled(tenant, m) for m in MODULES}


EXTRAS_KEY = "tenant_modules"


def modules_for(runtime: Runtime) -> TenantModules:
    """The runtime's module table, made on first use."""
    found = runtime.extras.get(EXTRAS_KEY)
    if not isinstance(found, TenantModules):
        found = TenantModules(runtime.state)
        runtime.extras[EXTRAS_KEY] = found
    return found
