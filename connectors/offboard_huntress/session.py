"""One opened Huntress account: discovery, preflight gates, removal, re-reads, verification."""

from __future__ import annotations

from typing import Any

from offboard.connectors import ActionResult, Check, PlanParts
from offboard.errors import BadInput, VendorAuthError
from offboard.http import VendorHttp
from offboard.plan import Action, Finding, Inventory, InventoryItem, VendorPlan

from .client import HuntressClient
from .models import ISOLATED, Actor
from .steps import VENDOR, agent_target, owner_of_org, plan_exit

OPEN_INCIDENT_STATUSES = ("sent", "auto_remediating")  # vendor-notes §3.3
OPEN_ESCALATION_STATUSES = ("open", "overdue")  # vendor-notes §3.4
NEEDS_USER_KEY = ("a user-based Huntress API key whose user may uninstall agents is needed "
                  "(the account's default key is read-only): create one under API Credentials → "
                  "User API Credentials, then `offboard auth set huntress`")


class HuntressSession:
    def __init__(self, http: VendorHttp, organization_id: int) -> None:
        self.http = http
        self.client = HuntressClient(http)
        self.org_id = organization_id
        self.owner = owner_of_org(organization_id)
        self._actor: Actor | None = None

    def close(self) -> None:
        self.http.close()

    # -- discovery ---------------------------------------------------------------

    def actor(self) -> Actor:
        if self._actor is None:
            try:
                self._actor = self.client.actor()
            except VendorAuthError as exc:
                raise VendorAuthError("Huntress", exc.call,
                                      "the API key and secret were refused (HTTP "
                                      f"{exc.status}); check them with `offboard auth set huntress` "
                                      "or the OFFBOARD_HUNTRESS_API_KEY/_API_SECRET variables",
                                      exc.status) from None
        return self._actor

    def discover(self) -> Inventory:
        actor = self.actor()
        org = self.client.organization(self.org_id)
        if org is None:
            raise BadInput(f"Huntress organization {self.org_id} was not found, or these credentials "
                           f"cannot see it ({actor.describe()}); check [huntress] organization_id")
        items = tuple(
            InventoryItem(
                target=agent_target(a.id, a.hostname),
                owner=owner_of_org(a.organization_id),
                attrs={"platform": a.platform, "os": a.os, "firewall_status": a.firewall_status,
                       "last_callback_at": a.last_callback_at},
            )
            for a in self.client.agents(self.org_id)
        )
        edr = (org.actual_usages or {}).get("edr") or {}
        snapshot: dict[str, Any] = {
            "organization": f"{org.name} (id {org.id})",
            "agents_count": org.agents_count,
            "billable_agents_count": edr.get("billable_agents_count"),
            "isolated_agents_count": edr.get("isolated_agents_count"),
            "incident_reports_count": org.incident_reports_count,
        }
        return Inventory(vendor=VENDOR, scope=f"organization {org.name!r} (id {org.id})",
                         account=actor.describe(), snapshot=snapshot, items=items)

    def preflight(self, inventory: Inventory) -> list[Finding]:
        findings: list[Finding] = []
        incidents = [i for s in OPEN_INCIDENT_STATUSES for i in self.client.incident_reports(self.org_id, s)]
        findings.append(Finding(
            vendor=VENDOR, kind="open_incident_reports", count=len(incidents), blocking=bool(incidents),
            detail=", ".join(f"#{i.id} {i.status} {i.subject}".strip() for i in incidents[:5])
            or "no incident report is sent or auto-remediating"))
        escalations = [e for s in OPEN_ESCALATION_STATUSES for e in self.client.escalations(self.org_id, s)]
        findings.append(Finding(
            vendor=VENDOR, kind="open_escalations", count=len(escalations), blocking=bool(escalations),
            detail=", ".join(f"#{e.id} {e.status} {e.subject}".strip() for e in escalations[:5])
            or "no escalation is open or overdue"))
        isolated = [i for i in inventory.items
                    if i.owner == self.owner and i.attrs.get("firewall_status") in ISOLATED]
        findings.append(Finding(
            vendor=VENDOR, kind="isolated_hosts", count=len(isolated), blocking=bool(isolated),
            detail=", ".join(f"{i.target.name} ({i.attrs['firewall_status']})" for i in isolated[:5])
            or "no host is isolated"))
        return findings

    def plan(self, inventory: Inventory) -> PlanParts:
        return plan_exit(inventory, self.org_id)

    # -- removal -----------------------------------------------------------------

    def execute(self, action: Action) -> ActionResult:
        if action.operation != "uninstall_agent":
            raise BadInput(f"plan action {action.id} has operation {action.operation!r}, "
                           "which this Huntress connector does not know; make a new plan")
        agent_id = int(action.target.id)
        try:
            reply = self.client.uninstall_agent(agent_id)
        except VendorAuthError as exc:
            raise VendorAuthError("Huntress", exc.call, f"HTTP {exc.status}: {NEEDS_USER_KEY}",
                                  exc.status) from None
        if reply.status == 404:
            # 404 can also mean "no permission to see it" (§5.5): only a re-read can say gone.
            settled = self.reread(action)
            if settled.outcome == "success":
                return ActionResult("success", "DELETE answered 404; re-read confirms the agent is gone",
                                    settled.http, already_absent=True)
            return ActionResult("failure", "DELETE answered 404 but the agent is still visible: "
                                f"the key may lack uninstall permission; {NEEDS_USER_KEY}", reply.record)
        return ActionResult("success", "uninstall tasked; the agent left the account", reply.record)

    def reread(self, action: Action) -> ActionResult:
        agent, record = self.client.agent(int(action.target.id))
        if agent is None:
            return ActionResult("success", f"GET /v1/agents/{action.target.id} answers 404: gone",
                                record, already_absent=True)
        return ActionResult("failure", "the agent is still present", record,
                            owner=owner_of_org(agent.organization_id))

    # -- verification --------------------------------------------------------------

    def verify(self, vendor_plan: VendorPlan | None, inventory: Inventory) -> list[Check]:
        count = inventory.snapshot.get("agents_count")
        listed = [i for i in inventory.items if i.owner == self.owner]
        checks = [
            Check("organization agents_count is 0", count == 0,
                  f"GET /v1/organizations/{self.org_id} reports agents_count={count}"),
            Check("no agent listed for the organization", not listed,
                  f"GET /v1/agents?organization_id={self.org_id} lists {len(listed)} agent(s)"
                  + (": " + ", ".join(i.target.name for i in listed[:5]) if listed else "")),
        ]
        if vendor_plan is not None:
            for action in (a for s in vendor_plan.steps for a in s.actions if a.kind == "api"):
                agent, record = self.client.agent(int(action.target.id))
                checks.append(Check(
                    f"agent {action.target.name} is gone", agent is None,
                    "404 Not Found" if agent is None else
                    f"still present in organization {agent.organization_id}",
                    target=action.target, http=record))
        return checks
