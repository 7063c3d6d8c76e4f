"""The Huntress customer-exit runbook as planned steps (shared/seeds/002, vendor-notes §4).

Pure functions: inventory in, steps out. No call is made here.
Runbook order: 1 confirm scope (the plan header), 2 export evidence, 3 remove endpoint
coverage, 4 cloud integrations, 5 routing and automation, 6 billing, 7 closure note.
This slice plans step 3 for EDR agents.
"""

from __future__ import annotations

from datetime import UTC, datetime

from offboard.connectors import PlanParts
from offboard.plan import Action, Inventory, InventoryItem, Skipped, Step, Target

from .models import ISOLATED

VENDOR = "huntress"
STEP_EDR = "remove-endpoint-coverage"
STALE_AFTER_DAYS = 21  # the portal's default for "unresponsive" (vendor-notes §3.2)


def owner_of_org(org_id: int) -> str:
    return f"organization:{org_id}"


def agent_target(agent_id: int, hostname: str) -> Target:
    return Target(type="agent", id=str(agent_id), name=hostname or f"agent {agent_id}")


def days_since(ts: str | None, now: datetime) -> int | None:
    if not ts:
        return None
    try:
        then = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return (now - then).days


def _agent_summary(item: InventoryItem, now: datetime) -> str:
    a = item.attrs
    text = f"uninstall EDR agent ({a.get('platform') or '?'}, {a.get('os') or '?'})"
    if a.get("firewall_status") in ISOLATED:
        text += " — host is isolated"
    idle = days_since(a.get("last_callback_at"), now)
    if idle is not None and idle >= STALE_AFTER_DAYS:
        text += f" — no callback for {idle} days: removing it closes its incidents and stops billing"
    return text


def plan_exit(inventory: Inventory, org_id: int, now: datetime | None = None) -> PlanParts:
    now = now or datetime.now(UTC)
    owner = owner_of_org(org_id)
    actions: list[Action] = []
    skipped: list[Skipped] = []
    for item in sorted(inventory.items, key=lambda i: (i.target.name.lower(), int(i.target.id))):
        if item.target.type != "agent":
            continue
        if item.owner != owner:
            # The listing was filtered by organization, yet this came back: never touch it.
            skipped.append(Skipped(vendor=VENDOR, target=item.target,
                                   reason=f"belongs to {item.owner}, not {owner} (scope guard)"))
            continue
        actions.append(Action(
            id=f"{VENDOR}.edr.agent.{item.target.id}",
            vendor=VENDOR,
            step=STEP_EDR,
            kind="api",
            operation="uninstall_agent",
            target=item.target,
            summary=_agent_summary(item, now),
            call=f"DELETE /v1/agents/{item.target.id}",
            owner=owner,
        ))
    steps = (Step(
        id=STEP_EDR,
        vendor=VENDOR,
        title="Remove endpoint coverage (EDR agents)",
        why="Runbook step 3: remote-uninstall every agent; a wiped host's agent is removed from "
            "the dashboard the same way, which closes its incidents and stops billing.",
        actions=tuple(actions),
    ),)
    return PlanParts(steps=steps, skipped=tuple(skipped))
