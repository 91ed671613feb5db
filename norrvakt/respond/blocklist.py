"""Block an address: an entry on the tenant's blocklist (served to its firewalls as a threat
feed, :mod:`norrvakt.respond.feed`) with an expiry, and — when the tenant has a firewall with
an API — a signed webhook telling it of the block and, on undo, of the unblock.

    block = BlockResponderConfig(engine, webhook_url="https://fw.lulea.se/norrvakt", secret="…").build()
    await block.run(ActionRequest(7, "lulea", "block.address", "203.0.113.7", params={"hours": 24}))
    → Outcome(True, "203.0.113.7/32 on lulea's blocklist until 2026-12-03 10:00:00 UTC (entry 3)")

Networks wider than /16 (IPv4) or /32 (IPv6) are refused: one click must not cut a whole
region off. The entry is added once per action (a retry after a failed webhook does not add a
second). Undo removes the action's entries at once; expired ones leave the feed by themselves.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import dataclass, field

import sqlalchemy as sa

from norrvakt.event import now_us
from norrvakt.respond.base import ActionRequest, Outcome
from norrvakt.respond.signed import post_signed
from norrvakt.state import response_actions as store

HOUR_US = 3600 * 1_000_000
WIDEST = {4: 16, 6: 32}


def parse_address(text: str) -> str:
    """``203.0.113.7`` → ``203.0.113.7/32``; a network in CIDR form stays one (host bits cleared).
    ValueError naming the value when it is no address or too wide."""
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address or CIDR network") from None
    if net.prefixlen < WIDEST[net.version]:
        raise ValueError(f"{text!r}: wider than /{WIDEST[net.version]} is not blocked from Norrvakt")
    return str(net)


def _when(us: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(us / 1e6))


@dataclass(frozen=True)
class BlockResponderConfig:
    """A tenant's blocklist (in the state database) and, optionally, its firewall's webhook."""

    engine: sa.Engine
    webhook_url: str = ""
    secret: str = field(default="", repr=False)
    timeout_s: float = 15.0
    default_hours: float = 24.0
    max_days: int = 90

    def build(self) -> BlockResponder:
        return BlockResponder(self)


class BlockResponder:
    actions: tuple[str, ...] = ("block.address",)

    def __init__(self, config: BlockResponderConfig) -> None:
        self.config = config

    def _hours(self, req: ActionRequest) -> float:
        hours = float(req.params.get("hours") or self.config.default_hours)
        if not 0 < hours <= self.config.max_days * 24:
            raise ValueError(f"hours {hours}: more than 0, at most {self.config.max_days * 24}")
        return hours

    async def run(self, req: ActionRequest) -> Outcome:
        try:
            address = parse_address(req.target)
            hours = self._hours(req)
        except ValueError as exc:
            return Outcome(False, str(exc))
        engine = self.config.engine
        now = now_us()
        expires = now + int(hours * HOUR_US)
        active = await asyncio.to_thread(store.active_blocks, engine, req.tenant, now)
        if req.dry_run:
            return Outcome(
                True,
                f"dry run: would put {address} on {req.tenant}'s blocklist until {_when(expires)} "
                f"({len(active)} entries on it now)"
                + (f"; and tell {self.config.webhook_url.split('?')[0]}" if self.config.webhook_url else ""),
            )
        mine = [r for r in active if r["action_id"] == req.action_id]
        if mine:
            entry, expires = int(mine[0]["id"]), int(mine[0]["expires_at"])
        else:
            entry = await asyncio.to_thread(
                store.add_block,
                engine,
                {
                    "tenant": req.tenant,
                    "address": address,
                    "action_id": req.action_id,
                    "case_id": req.case_id,
                    "reason": str(req.params.get("reason", ""))[:2000],
                    "added_by": req.actor,
                    "added_at": now,
                    "expires_at": expires,
                },
            )
        said = f"{address} on {req.tenant}'s blocklist until {_when(expires)} (entry {entry})"
        if not self.config.webhook_url:
            return Outcome(True, said)
        told = await self._tell(req, "block", address, expires)
        if not told.ok:
            return Outcome(False, f"{said}; but the firewall was not told: {told.detail}", told.retry)
        return Outcome(True, f"{said}; {told.detail}")

    async def undo(self, req: ActionRequest) -> Outcome:
        removed = await asyncio.to_thread(
            store.remove_blocks, self.config.engine, req.tenant, req.action_id, req.actor
        )
        entries = "1 entry" if removed == 1 else f"{removed} entries"
        said = f"{entries} for {req.target} taken off {req.tenant}'s blocklist"
        if not self.config.webhook_url:
            return Outcome(True, said)
        told = await self._tell(req, "unblock", parse_address(req.target), None)
        if not told.ok:
            return Outcome(False, f"{said}; but the firewall was not told: {told.detail}", told.retry)
        return Outcome(True, f"{said}; {told.detail}")

    async def _tell(self, req: ActionRequest, what: str, address: str, expires: int | None) -> Outcome:
        payload = {
            "source": "norrvakt",
            "kind": f"response.{what}",
            "tenant": req.tenant,
            "address": address,
            "expires_at": expires,
            "action_id": req.action_id,
            "case_id": req.case_id,
            "by": req.actor,
        }
        return await post_signed(self.config.webhook_url, self.config.secret, payload, self.config.timeout_s)
