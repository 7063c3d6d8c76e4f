"""`offboard plan`: discover (read-only) and plan (pure) every vendor of the exit.

The same planning re-derives a saved plan at apply time: a plan file is a proposal, and what
runs is what the connectors plan now from the config and the live vendor.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime

from offboard.config import ExitConfig
from offboard.engine import listings
from offboard.engine.sessions import Sessions
from offboard.plan import Finding, Inventory, Plan, Skipped, Step, Target, VendorPlan, now_iso
from offboard.text import oddities, one_line

ODD_SHOWN = 5  # objects named in the finding; the count says how many there are


def vendor_plans(sessions: Sessions, live: Mapping[str, Inventory]) -> tuple[VendorPlan, ...]:
    """Each vendor's plan from its inventory (pure: no call is made)."""
    out = []
    for name, session in sessions.by_vendor.items():
        inventory = live[name]
        parts = session.plan(inventory)
        listed = inventory.listed()
        out.append(VendorPlan(
            vendor=name,
            display_name=sessions.connectors[name].display_name,
            scope=inventory.scope,
            account=inventory.account,
            inventory_fingerprint=inventory.fingerprint(),
            listed=listed,
            snapshot=inventory.snapshot,
            findings=(*session.preflight(inventory), *odd_strings(name, inventory, parts.skipped, parts.steps)),
            skipped=parts.skipped,
            steps=parts.steps,
        ))
    return tuple(out)


def odd_strings(vendor: str, inventory: Inventory, skipped: tuple[Skipped, ...], steps: tuple[Step, ...]
                ) -> list[Finding]:
    """Where the vendor's strings hold line breaks or invisible characters: one finding naming each
    object and field, so a person looks at them in the vendor's portal. Every document shows them
    harmlessly (offboard.text.one_line); the finding is so nobody is surprised by what it shows."""
    seen: dict[str, list[str]] = {}

    # Every string of a 10,000-agent inventory passes here, almost none odd: the place (``label``
    # filled with ``parts``, each shown on one line) is spelled out only for one that is.
    def check(value: object, label: str, *parts: object) -> None:
        if isinstance(value, str) and not value.isprintable() and (odd := oddities(value)):
            seen.setdefault(label.format(*map(one_line, parts)), odd)

    looked_at: set[int] = set()  # an action's target is most often its inventory item's own object

    def target(t: Target) -> None:
        if id(t) in looked_at:
            return
        looked_at.add(id(t))
        check(t.id, "{} {}: its id", t.type, t.id)
        check(t.name, "{} {}: its name", t.type, t.id)

    check(inventory.scope, "the scope")
    check(inventory.account, "the account")
    for key, value in inventory.snapshot.items():
        check(value, "the {} the vendor reports", key)
    for item in inventory.items:
        target(item.target)
        for key, value in item.attrs.items():
            check(value, "{} {}: its {}", item.target.type, item.target.id, key)
    for k in skipped:
        target(k.target)
    for step in steps:
        for a in step.actions:
            target(a.target)
            check(a.confirm, "{}: the name to confirm", a.id)
    if not seen:
        return []
    shown = [f"{where} holds {', '.join(odd)}" for where, odd in list(seen.items())[:ODD_SHOWN]]
    more = f" (and {len(seen) - ODD_SHOWN} more)" if len(seen) > ODD_SHOWN else ""
    return [Finding(vendor=vendor, kind="odd_characters", count=len(seen), blocking=False, detail=(
        "; ".join(shown) + more + ": line breaks and invisible characters the vendor sent; every document "
        "shows them as spaces or U+ code points. Look at these objects in the vendor's portal"))]


def discover(sessions: Sessions) -> dict[str, Inventory]:
    """Every vendor's live inventory (read-only)."""
    return discover_timed(sessions)[0]


def discover_timed(sessions: Sessions) -> tuple[dict[str, Inventory], dict[str, float]]:
    """Every vendor's live inventory, and when each one's discovery began (``listings.now``): its
    owner reads are no older than that (the scope guard's --trust-listing counts its age from it)."""
    live, began = {}, {}
    for name, s in sessions.by_vendor.items():
        began[name] = listings.now()
        live[name] = s.discover()
    return live, began


def make_plan(cfg: ExitConfig, sessions: Sessions) -> Plan:
    """Discover (read-only) and plan (pure) every vendor of the exit."""
    customer = cfg.customer
    if sessions.ticket is not None:  # a tenant without an internal visibility is refused before any read
        sessions.ticket.visibility_line = sessions.ticket.visibility()
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
