"""Which responder serves an action for a tenant, built from the settings and the stored
credentials each time it is needed (a password changed through the API counts at once).

    targets = Targets(settings, engine)
    responder = targets.responder("lulea", "ad.disable")   # Conflict: nothing set up for lulea
"""

from __future__ import annotations

import os

import sqlalchemy as sa

from norrvakt.config import Settings
from norrvakt.respond.ad import AdResponderConfig
from norrvakt.respond.base import Conflict, Responder
from norrvakt.respond.blocklist import BlockResponderConfig
from norrvakt.respond.credentials import load_ad_password
from norrvakt.respond.entra import EntraResponderConfig
from norrvakt.respond.ticket import TicketResponderConfig
from norrvakt.sources.m365.credentials import CredentialBox, CredentialError
from norrvakt.state.m365 import load_credential


class Targets:
    def __init__(self, settings: Settings, engine: sa.Engine) -> None:
        self.settings = settings
        self.engine = engine
        r = settings.response
        self.secret = r.webhook_secret or os.environ.get("NORRVAKT_RESPONSE_WEBHOOK_SECRET", "")

    def responder(self, tenant: str, action: str) -> Responder:
        kind = action.split(".", 1)[0]
        if kind == "ad":
            return self._ad(tenant)
        if kind == "entra":
            return self._entra(tenant)
        if kind == "block":
            r = self.settings.response
            return BlockResponderConfig(
                self.engine,
                webhook_url=r.firewall_webhooks.get(tenant, ""),
                secret=self.secret,
                timeout_s=r.timeout_s,
                default_hours=r.block_hours,
                max_days=r.block_max_days,
            ).build()
        if kind == "ticket":
            return self._ticket(tenant)
        raise Conflict(f"{action}: no such response action")

    def _ad(self, tenant: str) -> Responder:
        r = self.settings.response
        found = next((a for a in r.ad if a.tenant == tenant), None)
        if found is None:
            raise Conflict(f"no Active Directory is set up for {tenant} ([[response.ad]])")
        try:
            password = load_ad_password(self.engine, self.settings.data_path, tenant)
        except CredentialError as exc:
            raise Conflict(f"{tenant}: the AD service account's password: {exc}") from None
        if password is None:
            raise Conflict(
                f"no AD service-account password stored for {tenant} "
                f"(PUT /api/response/ad-credential/{tenant})"
            )
        return AdResponderConfig(
            url=found.url,
            base_dn=found.base_dn,
            bind_dn=found.bind_dn,
            password=password,
            ca_file=found.ca_file,
            tls_name=found.tls_name,
            timeout_s=r.timeout_s,
            protected_groups=tuple(found.protected_groups),
        ).build()

    def _entra(self, tenant: str) -> Responder:
        source_id = self.settings.response.entra.get(tenant)
        if not source_id:
            raise Conflict(f"no Entra ID is set up for {tenant} (response.entra)")
        src = next((s for s in self.settings.sources if s.id == source_id and s.type == "m365"), None)
        if src is None or src.tenant != tenant:
            raise Conflict(f"response.entra.{tenant}: {source_id!r} is not an m365 source of {tenant}")
        row = load_credential(self.engine, source_id)
        if row is None:
            raise Conflict(f"{source_id}: no credential stored (`norrvakt m365 set-credential`)")
        try:
            cred = CredentialBox.open(self.settings.data_path).unseal(source_id, tenant, row["ciphertext"])
        except CredentialError as exc:
            raise Conflict(str(exc)) from None
        m = src.m365
        return EntraResponderConfig(
            connector=source_id,
            directory_id=m.directory_id,
            client_id=m.client_id,
            credential=cred,
            login_url=m.login_url,
            graph_url=m.graph_url,
            ca_file=m.ca_file,
            timeout_s=self.settings.response.timeout_s,
        ).build()

    def _ticket(self, tenant: str) -> Responder:
        r = self.settings.response
        channel = next((c for c in self.settings.alerts.channels if c.name == r.ticket_channel), None)
        if r.ticket_channel and (channel is None or channel.type != "email"):
            raise Conflict(f"response.ticket_channel {r.ticket_channel!r} is not an e-mail channel")
        return TicketResponderConfig(
            email=channel,
            recipients=tuple(r.ticket_email.get(tenant, ())),
            webhook_url=r.ticket_webhooks.get(tenant, ""),
            secret=self.secret,
            timeout_s=r.timeout_s,
        ).build()
