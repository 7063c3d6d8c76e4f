"""`offboard plan`: discover (read-only) and plan (pure) every vendor of the exit.

The same planning re-derives a saved plan at apply time: a plan file is a proposal, and what
runs is what the connectors plan now from the config and the live vendor.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime

from offboard.config import ExitConfig
from offboard.engine.sessions import Sessions
from offboard.plan import Inventory, Plan, VendorPlan, now_iso


def vendor_plans(sessions: Sessions, live: Mapping[str, Inventory]) -> tuple[VendorPlan, ...]:
    """Each vendor's plan from its inventory (pure: no call is made)."""
    out = []
    for name, session in sessions.by_vendor.items():
        inventory = live[name]
        parts = session.plan(inventory)
        out.append(VendorPlan(
            vendor=name,
            display_name=sessions.connectors[name].display_name,
            scope=inventory.scope,
            account=inventory.account,
            inventory_fingerprint=inventory.fingerprint(),
            snapshot=inventory.snapshot,
            findings=tuple(session.preflight(inventory)),
            skipped=parts.skipped,
            steps=parts.steps,
        ))
    return tuple(out)


def discover(sessions: Sessions) -> dict[str, Inventory]:
    """Every vendor's live inventory (read-only)."""
    return {name: s.discover() for name, s in sessions.by_vendor.items()}


def make_plan(cfg: ExitConfig, sessions: Sessions) -> Plan:
    """Discover (read-only) and plan (pure) every vendor of the exit."""
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
        exit_definition=cfg.definition(),
        vendors=vendor_plans(sessions, discover(sessions)),
    ).sealed()


def end_of_service_warning(end_of_service: date | None, today: date | None = None) -> str | None:
    """The vendors' processes ask that logs and alerts stop before the end-of-service date; a
    plan made after it is late, and the operator should know before removing anything."""
    today = today or datetime.now(UTC).date()
    if end_of_service is None or today <= end_of_service:
        return None
    days = (today - end_of_service).days
    return (f"warning: the customer's end of service was {end_of_service.isoformat()}, {days} day(s) ago; "
            "the vendors ask that logs and alerts stop before it — until this exit is applied the customer "
            "may still be monitored and billed (the report states both dates)")
