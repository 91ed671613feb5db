"""Demo follow-up plans, so `make run` shows the log follow-up with something to draw.

Luleå gets a monthly plan for the social-services system and one for student health, with
the demo's admin as the named reviewer (in production the reviewer is a named officer of the
municipality). Made once; an existing plan for the system is left alone.
"""

from __future__ import annotations

from typing import Any

from norrvakt.followup.service import PlanInput, followup_for
from norrvakt.state.accounts import Principal

DEMO_PLANS = [
    ("lulea", "socialtjanst.record_access", "Månadskontroll socialtjänstens akter"),
    ("lulea", "health.record_access", "Månadskontroll elevhälsans journaler"),
]


def seed_followup_plans(runtime: Any) -> int:
    service = followup_for(runtime)
    admin = Principal(username="admin", role="admin", tenants=None)
    existing = {(p["tenant"], p["dataset"]) for p in service.plans(runtime.tenants)}
    made = 0
    for tenant, dataset, title in DEMO_PLANS:
        if tenant in runtime.tenants and (tenant, dataset) not in existing:
            service.create_plan(
                admin,
                runtime.tenants,
                PlanInput(tenant=tenant, dataset=dataset, reviewer="admin", title=title, random_sample=15),
            )
            made += 1
    return made
