"""Example Backup's exit runbook as planned steps: pure, inventory in, steps out, no call made.

The vendor's order: export the device list (evidence, before anything is removed), retire every
device of the customer, then cancel the customer's plan, which has no API (a manual item with
the portal path and what "done" looks like).
"""

from __future__ import annotations

from offboard.connectors import PlanParts
from offboard.plan import Action, Inventory, Skipped, Step, Target, manual_item

from .settings import ExampleSettings

VENDOR = "example"
CANCEL_PLAN = "cancel-plan"


def owner_of(customer_id: str) -> str:
    """The scope an object must belong to when it is touched (the scope guard compares it)."""
    return f"customer:{customer_id}"


def plan(settings: ExampleSettings, inventory: Inventory) -> PlanParts:
    owner = owner_of(settings.customer_id)
    devices = [i for i in inventory.items if i.target.type == "device"]
    ours = [i for i in devices if i.owner == owner]
    # Listed under the customer, but the device itself names someone else: never touched.
    skipped = tuple(Skipped(vendor=VENDOR, target=i.target, reason=f"the vendor says it belongs to {i.owner}")
                    for i in devices if i.owner != owner)
    steps = [
        Step(id="evidence", vendor=VENDOR, title="Export the customer's device list", phase="evidence",
             why="what was protected, kept before anything is removed",
             actions=(Action(id=f"{VENDOR}.evidence.devices", vendor=VENDOR, step="evidence", kind="api",
                             operation="export.devices", target=Target(type="export", id="devices",
                                                                       name="device list"),
                             summary="Export the device list", destructive=False,
                             call=f"GET /devices?customer_id={settings.customer_id}"),)),
        Step(id="devices", vendor=VENDOR, title="Retire the customer's devices", phase="removal",
             why="a retired device stops backing up and frees its licence",
             stops_updating=("backups of the customer's devices",),
             actions=tuple(Action(id=f"{VENDOR}.devices.{i.target.id}", vendor=VENDOR, step="devices", kind="api",
                                  operation="retire_device", target=i.target, owner=owner,
                                  summary=f"Retire device {i.target.name}", call=f"DELETE /devices/{i.target.id}")
                           for i in ours)),
    ]
    if inventory.snapshot.get("plan_status") != "cancelled":
        steps.append(Step(id="closure", vendor=VENDOR, title="Cancel the customer's plan", phase="closure",
                          actions=(manual_item(
                              VENDOR, CANCEL_PLAN, "the customer's plan", "Cancel the customer's plan (no API)",
                              "Example Backup portal → Customers → the customer → Plan → Cancel",
                              "the plan shows Cancelled", step="closure",
                              verify="GET /customers/{id}: plan_status is cancelled"),)))
    return PlanParts(tuple(s for s in steps if s.actions), skipped)
