"""`offboard plan`: discover (read-only) and plan (pure) every vendor of the exit.
"""

from __future__ import annotations

import uuid

from offboard.config import ExitConfig
from offboard.engine.sessions import Sessions
from offboard.plan import Plan, VendorPlan, now_iso


def make_plan(cfg: ExitConfig, sessions: Sessions) -> Plan:
    """Discover (read-only) and plan (pure) every vendor of the exit."""
    vendor_plans = []
    for name, session in sessions.by_vendor.items():
        inventory = session.discover()
        findings = tuple(session.preflight(inventory))
        parts = session.plan(inventory)
        vendor_plans.append(VendorPlan(
            vendor=name,
            display_name=sessions.connectors[name].display_name,
            scope=inventory.scope,
            account=inventory.account,
            inventory_fingerprint=inventory.fingerprint(),
            snapshot=inventory.snapshot,
            findings=findings,
            skipped=parts.skipped,
            steps=parts.steps,
        ))
    customer = cfg.customer
    return Plan(
        plan_id=str(uuid.uuid4()),
        created_at=now_iso(),
        customer=customer.name,
        end_of_service=customer.end_of_service.isoformat() if customer.end_of_service else None,
        approved_by=customer.approved_by,
        ticket=customer.ticket,
        monitoring_after_exit=customer.monitoring_after_exit,
        config_fingerprint=cfg.fingerprint(),
        vendors=tuple(vendor_plans),
    ).sealed()
