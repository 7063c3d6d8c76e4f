"""One Example Backup account, opened: discovery, execution, re-reads and verification.

Every call goes through offboard's ``VendorHttp`` (retries, the rate budget, the audit record
of each call); every reply is parsed into a model before it is used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from offboard.connectors import ActionResult, Artifact, Check, PlanParts, reread_check
from offboard.errors import BadInput
from offboard.plan import Action, Finding, Inventory, InventoryItem, Target, VendorPlan
from offboard.wire.http import VendorHttp
from offboard.wire.replies import parse_reply

from . import steps
from .models import Customer, Device, DeviceList
from .settings import ExampleSettings

NAME = "Example Backup"


class ExampleSession:
    def __init__(self, http: VendorHttp, settings: ExampleSettings) -> None:
        self.http = http
        self.s = settings

    def close(self) -> None:
        self.http.close()

    @property
    def calls_made(self) -> int:
        return self.http.calls

    # -- reads -------------------------------------------------------------------------

    def _customer(self) -> Customer:
        call = f"/customers/{self.s.customer_id}"
        return parse_reply(NAME, Customer, self.http.get(call).body, f"GET {call}")

    def _devices(self) -> list[Device]:
        reply = self.http.get("/devices", params={"customer_id": self.s.customer_id})
        return parse_reply(NAME, DeviceList, reply.body, "GET /devices").devices

    def _device(self, device_id: str) -> tuple[Device | None, ActionResult]:
        """A device as the vendor has it now, or None (404: gone); and the read, for the log."""
        reply = self.http.get(f"/devices/{device_id}", allow=frozenset({404}))
        if reply.status == 404:
            return None, ActionResult("success", "404 Not Found: the device is gone", reply.record,
                                      already_absent=True)
        device = parse_reply(NAME, Device, reply.body, f"GET /devices/{device_id}")
        return device, ActionResult("failure", "the device is still there", reply.record,
                                    owner=steps.owner_of(device.customer_id))

    def discover(self) -> Inventory:
        customer = self._customer()
        items = tuple(InventoryItem(target=Target(type="device", id=d.id, name=d.hostname),
                                    owner=steps.owner_of(d.customer_id)) for d in self._devices())
        return Inventory(vendor=steps.VENDOR, scope=f"customer {customer.name!r} (id {customer.id})",
                         account=f"API token at {self.s.base_url}",
                         snapshot={"devices": len(items), "plan_status": customer.plan_status}, items=items)

    def preflight(self, inventory: Inventory) -> list[Finding]:
        return []  # nothing at this vendor stops an exit from starting

    def plan(self, inventory: Inventory) -> PlanParts:
        return steps.plan(self.s, inventory)

    # -- the scope guard and the exit lock ------------------------------------------------

    def owner_now(self, action: Action) -> ActionResult:
        """The device alone, immediately before its write: its own record names its customer."""
        if action.operation != "retire_device":
            return ActionResult("unknown", f"no single-object read for {action.operation}")
        return self._device(action.target.id)[1]

    def exit_identity(self) -> str:
        """The customer as the vendor names it (its id from its own record), not as the config spells the URL."""
        return f"example-backup customer {self._customer().id}"

    # -- writes ------------------------------------------------------------------------

    def execute(self, action: Action) -> ActionResult:
        if action.operation == "export.devices":
            listed = [d.model_dump() for d in self._devices()]
            return ActionResult("success", f"{len(listed)} device(s) exported", self.http.last_call,
                                artifacts=(Artifact("devices.json", json.dumps(listed, indent=1).encode()),))
        if action.operation == "retire_device":
            # A lost reply or a 5xx raises AmbiguousWrite in the wire: the engine re-reads (below)
            # before anything is sent again. A 404 is a device already gone: re-read to be sure.
            reply = self.http.request("DELETE", f"/devices/{action.target.id}", allow=frozenset({404}))
            if reply.status == 404:
                return self.reread(action)
            return ActionResult("success", "device retired", reply.record)
        raise BadInput(f"plan action {action.id} has operation {action.operation!r}, which this connector does "
                       "not know; make a new plan")

    def reread(self, action: Action) -> ActionResult:
        """'success' when the device is gone; 'failure' (with its owner) while it is still there."""
        if action.operation != "retire_device":
            return ActionResult("unknown", f"no re-read for {action.operation}")
        return self._device(action.target.id)[1]

    # -- proof -------------------------------------------------------------------------

    def verify(self, vendor_plan: VendorPlan | None, inventory: Inventory) -> list[Check]:
        """Each device the plan retired, re-read; and whatever is listed under the customer now
        (a device that appeared since the plan counts against "stopped" too)."""
        checks = [reread_check(a, self.reread(a)) for s in (vendor_plan.steps if vendor_plan else ())
                  for a in s.actions if a.kind == "api" and a.destructive]
        left = [i.target.name for i in inventory.items if i.target.type == "device"]
        checks.append(Check("no device listed under the customer", not left,
                            f"{len(left)} device(s) still listed" + (f": {', '.join(left[:5])}" if left else "")))
        return checks

    def check_manual(self, action: Action) -> Check | None:
        if action.operation != steps.CANCEL_PLAN:
            return None
        customer = self._customer()
        return Check("the customer's plan is cancelled", customer.plan_status == "cancelled",
                     f"plan_status={customer.plan_status}", target=action.target, http=self.http.last_call,
                     action_id=action.id)

    def documents(self, vendor_plan: VendorPlan, states: Mapping[str, str]) -> tuple[Artifact, ...]:
        return ()  # this vendor's process asks for no notice
