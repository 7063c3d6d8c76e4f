"""The Huntress customer-exit runbook as planned steps (shared/seeds/002, vendor-notes §4).

Pure functions: inventory in, steps out. No call is made here. The runbook's order:
1 confirm scope, 2 export evidence (before anything is removed), 3 endpoint coverage,
4 cloud integrations, 5 routing and automation, then the optional whole-organization
deletion (a technical removal too), 6 billing handoff ("after technical removal... remove
agents, mappings and services first, then reconcile"), 7 the closure note, last. A partial
exit plans only the product paths in scope; a step with no API is a manual item, never a
silent gap.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

from offboard.connectors import PlanParts
from offboard.connectors.psa import RECORD_SCOPE  # offboard posts it itself when the exit has a [psa] ticket
from offboard.plan import Action, Inventory, InventoryItem, Removal, Skipped, Step, Target, manual_item

from .client import MIRRORED
from .models import ISOLATED
from .settings import HuntressSettings

VENDOR = "huntress"
PORTAL = "Huntress portal"


UNKNOWN_OWNER = "unknown"  # the reply does not say whose it is: never written to, never counted as gone
# What an unwanted-access rule's ``applied_to.type`` may name (the spec's example spells it
# "Organization"; the list filter says "organization"): compared without case.
RULE_SCOPES = frozenset({"organization", "account", "identity"})


# What each product is billed on, as the organization reports it (vendor-notes §3.1): the billing
# handoff reconciles the products the exit removed, and only those. psa and api are not billed.
BILLED_ON: dict[str, str] = {
    "edr": "agents_count and actual_usages.edr.billable_agents_count are 0",
    "itdr": "billable_identity_count and actual_usages.itdr billable identities are 0",
    "sat": "sat_learner_count and actual_usages.sat.learners_count are 0",
    "siem": "logs_sources_count and actual_usages.siem.billable_log_sources_count are 0",
}


def billed_products(scope: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(p for p in scope if p in BILLED_ON)


def owner_of_org(org_id: int) -> str:
    return f"organization:{org_id}"


def owner_of_rule(kind: str | None, scope_id: int | None) -> str:
    """``organization:<id>``, ``account:<id>`` or ``identity:<id>``; unknown when the reply
    names no id or a scope this code does not know."""
    scope = (kind or "").strip().lower()
    if scope not in RULE_SCOPES or scope_id is None:
        return UNKNOWN_OWNER
    return f"{scope}:{scope_id}"


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


_manual = partial(manual_item, VENDOR)


def _api(op: str, target: Target, summary: str, call: str, owner: str, *, step: str,
         destructive: bool = True, confirm: str | None = None, removes: Removal | None = None) -> Action:
    return Action(id=f"{VENDOR}.{op}.{target.id}", vendor=VENDOR, step=step, kind="api", operation=op,
                  target=target, summary=summary, call=call, owner=owner, destructive=destructive,
                  confirm=confirm, removes=removes)


# What each removal is called in the customer's closure note.
UNINSTALLED = Removal(one="EDR agent", many="EDR agents", verb="uninstalled")
STALE_REMOVED = Removal(one="wiped or stale EDR agent", many="wiped or stale EDR agents",
                        verb="removed from the dashboard")


class _Planner:
    def __init__(self, inventory: Inventory, settings: HuntressSettings, now: datetime) -> None:
        self.inv = inventory
        self.s = settings
        self.now = now
        self.owner = owner_of_org(settings.organization_id)
        self.scope = settings.scope
        self.skipped: list[Skipped] = []
        # Each kind's objects in name order, sorted once: a 10,000-agent inventory is asked for five kinds.
        self._of_kind: dict[str, list[InventoryItem]] = {}
        for item in sorted(inventory.items, key=lambda i: (i.target.name.lower(), i.target.id)):
            self._of_kind.setdefault(item.target.type, []).append(item)
        listed = next((i for i in inventory.items if i.target.type == "organization"), None)
        self.org_name = listed.target.name if listed else f"organization {settings.organization_id}"
        # Written to (report recipients, deletion) only when the reply is surely the organization asked for.
        self.org = next(iter(self.mine("organization")), None)

    def mine(self, kind: str, owner: str | None = None) -> list[InventoryItem]:
        """Objects of this kind that belong to the exit; the others are recorded as skipped."""
        owner = owner or self.owner
        out = []
        for item in self._of_kind.get(kind, ()):
            if item.owner == UNKNOWN_OWNER:
                self.skipped.append(Skipped(vendor=VENDOR, target=item.target,
                                            reason="owner unknown: the vendor's reply does not say whose it is "
                                                   "(scope guard; never touched, never counted as gone)"))
                continue
            if item.owner != owner:
                # The listing was filtered by organization, yet this came back: never touch it.
                self.skipped.append(Skipped(vendor=VENDOR, target=item.target,
                                            reason=f"belongs to {item.owner}, not {owner} (scope guard)"))
                continue
            out.append(item)
        return out

    def call(self, method: str, resource: str, *rest: object) -> str:
        base = f"/v1/accounts/{self.s.account_id}" if self.s.account_id and resource in MIRRORED else "/v1"
        return f"{method} " + "/".join([base, resource, *(str(r) for r in rest)])

    # -- the runbook, in order ------------------------------------------------------------

    def steps(self) -> list[Step]:
        deleting = self.s.delete_organization and self.s.whole_exit and self.org is not None
        # Deleting the organization queues every agent for uninstall (vendor-notes §2.1): one call
        # instead of one per agent, so the per-agent removals are not planned then.
        steps = [self.confirm_scope(), self.evidence(), *([] if deleting else self.endpoints()), self.cloud(),
                 self.routing()]
        if deleting:
            self.mine("agent")  # agents listed for another scope are still named as not touched
            steps.append(self.delete_org())
        # Billing follows technical state: after every removal, the organization's deletion included.
        steps += [self.billing(), self.closure()]
        return [s for s in steps if s.actions]

    def confirm_scope(self) -> Step:
        sid = "confirm-scope"
        what = "the whole customer (every product)" if self.s.whole_exit else ", ".join(self.scope)
        return Step(id=sid, vendor=VENDOR, phase="scope", title="1. Confirm exit scope",
                    why="Runbook step 1: whole-organization deletion is a different risk from removing one mapping.",
                    actions=(_manual(RECORD_SCOPE, "exit scope recorded in the PSA ticket",
                                     f"Record in the PSA ticket that the exit covers {what}"
                                     + (" and deletes the whole organization" if self.s.delete_organization
                                        else ""),
                                     "your PSA → the customer's exit ticket",
                                     "the ticket states the products in scope and whether the organization "
                                     "is deleted", record="the ticket number", step=sid),))

    def evidence(self) -> Step:
        sid = "export-evidence"
        org_t = f"organization {self.s.organization_id}"

        def export(what: str, label: str, call: str) -> Action:
            return _api(f"export.{what}", Target(type="evidence", id=what, name=label),
                        f"export {label}", call, self.owner, step=sid, destructive=False)

        org = self.s.organization_id
        actions = [
            export("organization", f"{org_t} with actual usages", self.call("GET", "organizations", org)),
            export("agents", "agent inventory", self.call("GET", "agents") + f"?organization_id={org}"),
            export("incident_reports", "incident reports, all statuses, with remediations",
                   self.call("GET", "incident_reports") + f"?organization_id={org}"),
            export("signals", "SOC signals", f"GET /v1/signals?organization_id={org}"),
            export("escalations", "escalations", f"GET /v1/escalations?organization_id={org}"),
            export("reports", "summary reports and their PDFs", f"GET /v1/reports?organization_id={org}"),
            export("identities", "ITDR identities", f"GET /v1/identities?organization_id={org}"),
            export("memberships", "portal memberships", self.call("GET", "memberships") + f"?organization_id={org}"),
            export("invoices", "account invoices", "GET /v1/invoices"),
            _manual("evidence.billing-detail-report", "Billing Detail Report",
                    "Keep the latest Billing Detail Report (emailed monthly; no API)",
                    "the Billing Emails inbox set under ☰ → Settings (the report is emailed, not downloadable)",
                    "the report for the last billing period is filed with the exit ticket", step=sid,
                    record="where the file was stored"),
        ]
        if "itdr" in self.scope:
            actions.append(_manual(
                "evidence.identity-security-assessment", "Identity Security Assessment",
                "Keep the Identity Security Assessment report(s) (no API)",
                "the assessment email sent after the ITDR integration, or the portal's ITDR reports",
                "the assessment PDF is filed with the exit ticket", step=sid, record="where the file was stored"))
        if "sat" in self.scope:
            actions.append(_manual(
                "evidence.sat-results", "SAT results",
                "Export the SAT results the contract says the customer keeps (Managed SAT portal; no REST API here)",
                "mycurricula.com → Reports (separate login)", "the results export is filed with the exit ticket",
                step=sid, record="which reports were exported and where"))
        return Step(id=sid, vendor=VENDOR, phase="evidence", title="2. Export retained evidence",
                    why="Runbook step 2: before anything is removed. Removal is held back if an export fails.",
                    actions=tuple(actions))

    def endpoints(self) -> list[Step]:
        if "edr" not in self.scope:
            return []
        live: list[tuple[InventoryItem, int | None]] = []
        stale: list[tuple[InventoryItem, int | None]] = []
        for item in self.mine("agent"):
            idle = days_since(item.attrs.get("last_callback_at"), self.now)
            (stale if idle is not None and idle >= self.s.stale_after_days else live).append((item, idle))
        steps = []
        for sid, title, why, group in (
            ("remove-endpoint-coverage", "3. Remove endpoint coverage (EDR agents)",
             "Runbook step 3: remote uninstall; an isolated host is released first so it is not left cut off.",
             live),
            ("remove-stale-agents", "3b. Remove wiped/stale agents from the dashboard",
             f"No callback for {self.s.stale_after_days}+ days: removing them closes their incidents and stops "
             "billing (billing counts agents present on the last day of the cycle).", stale),
        ):
            actions: list[Action] = []
            for item, idle in group:
                a = item.attrs
                if a.get("firewall_status") in ISOLATED:
                    actions.append(_api("release_isolation", item.target,
                                        "release network isolation before uninstall",
                                        self.call("DELETE", "agents", item.target.id, "isolation"),
                                        self.owner, step=sid))
                summary = f"uninstall EDR agent ({a.get('platform') or '?'}, {a.get('os') or '?'})"
                removes = UNINSTALLED
                if idle is not None and idle >= self.s.stale_after_days:
                    summary = f"remove from dashboard: no callback for {idle} days"
                    removes = STALE_REMOVED
                actions.append(_api("uninstall_agent", item.target, summary,
                                    self.call("DELETE", "agents", item.target.id), self.owner, step=sid,
                                    removes=removes))
            steps.append(Step(id=sid, vendor=VENDOR, phase="removal", title=title, why=why, actions=tuple(actions),
                              stops_updating=("EDR: no endpoint monitoring, incident reports or Managed AV "
                                              "reporting for these hosts",)))
        return steps

    def cloud(self) -> Step:
        sid = "remove-cloud-integrations"
        actions: list[Action] = []
        stops: list[str] = []
        if "itdr" in self.scope:
            tenant = self.org.attrs.get("identity_provider_tenant_id") if self.org else None
            actions.append(_manual(
                "itdr.unmap-tenant", "ITDR tenant mapping",
                f"Unmap the customer's tenant ({tenant or 'none mapped'}) from the identity provider integration, "
                "or delete the integration when no other customer uses it",
                "☰ → Integrations → Identity Provider Integration (Microsoft 365 / Google Workspace) → Manage "
                "Existing Integrations", "the integration no longer shows the customer's tenant",
                verify="organization identity_provider_tenant_id is null, actual_usages.itdr is empty, "
                       "no identity is listed", record="who approved the Microsoft 365 consent removal", step=sid,
                removes=Removal(one="ITDR mapping of your Microsoft 365 / Google tenant",
                                many="ITDR mappings of your Microsoft 365 / Google tenant", verb="removed")))
            for item in self.mine_rules():
                actions.append(_api("delete_unwanted_access_rule", item.target,
                                    f"delete organization-scoped ITDR rule ({item.attrs.get('describe', '')})",
                                    f"DELETE /v1/unwanted_access_rules/{item.target.id}", self.owner, step=sid,
                                    removes=Removal(one="ITDR access rule", many="ITDR access rules",
                                                    verb="deleted")))
            stops.append("ITDR: no identity threat detection for the customer's tenant")
        if "sat" in self.scope:
            actions.append(_manual(
                "sat.close-campaigns", "SAT campaigns",
                "Let running phishing campaigns end (they close 10 days after the last email) and record their "
                "final status; deactivate learners; remove SAT routing/allowlisting notes from the runbook",
                "mycurricula.com → Phishing Campaigns, and Learners → Actions → Change Learner Status → Inactive",
                "no active campaign remains for the customer", record="each campaign's final status", step=sid,
                removes=Removal(one="security awareness campaign", many="security awareness campaigns",
                                verb="closed and their learners deactivated", count=None)))
            stops.append("Security Awareness Training: no new assignments or phishing campaigns")
        if "siem" in self.scope:
            where = self.s.siem_logs_continue_at or "not recorded (set siem_logs_continue_at)"
            actions.append(_manual(
                "siem.disconnect-sources", "Managed SIEM log sources",
                f"Disconnect every log source of the customer; logs continue to live at: {where}",
                "left navigation → SIEM → Source Management (the customer's organization)",
                "no source is listed for the customer and no new data arrives",
                verify="organization logs_sources_count is 0 and no billable log source remains", step=sid,
                removes=Removal(one="SIEM log source", many="SIEM log sources", verb="disconnected", count=None)))
            stops.append("Managed SIEM: logs stop arriving; retained logs follow SIEM retention"
                         + (f"; the customer's logs now go to {self.s.siem_logs_continue_at}"
                            if self.s.siem_logs_continue_at else ""))
        return Step(id=sid, vendor=VENDOR, phase="removal", title="4. Remove cloud integrations",
                    why="Runbook step 4: ITDR, SAT and SIEM have no removal API; the API verifies where it can.",
                    actions=tuple(actions), stops_updating=tuple(stops))

    def mine_rules(self) -> list[InventoryItem]:
        return self.mine("unwanted_access_rule")

    def routing(self) -> Step:
        sid = "close-routing-and-automation"
        actions: list[Action] = []
        stops: list[str] = []
        if "psa" in self.scope and self.org is not None and self.org.attrs.get("report_recipients"):
            actions.append(_api("clear_report_recipients", self.org.target,
                                f"stop branded report emails to {self.org.attrs['report_recipients']} recipient(s)",
                                self.call("PATCH", "organizations", self.org.target.id) + " {report_recipients: []}",
                                self.owner, step=sid,
                                removes=Removal(one="recipient of the emailed summary reports",
                                                many="recipients of the emailed summary reports", verb="removed",
                                                count=int(self.org.attrs["report_recipients"]))))
            stops.append("Branded monthly and quarterly summary reports are no longer emailed")
        if self.s.whole_exit:
            for item in self.mine("membership"):
                actions.append(_api("delete_membership", item.target,
                                    f"remove portal access ({item.attrs.get('permissions', '?')})",
                                    self.call("DELETE", "memberships", item.target.id), self.owner, step=sid,
                                    removes=Removal(one="portal user's access", many="portal users' access",
                                                    verb="removed")))
        if "psa" in self.scope:
            actions += [
                _manual("psa.remove-mapping", "PSA company mapping",
                        "Remove the organization's company mapping and billing-sync mapping in the PSA integration",
                        "☰ → Integrations → ✏️ next to the PSA integration → mapping and billing tabs",
                        "a test incident or the mapping view no longer targets the customer", step=sid,
                        record="which mappings were removed",
                        removes=Removal(one="PSA company mapping", many="PSA company and billing mappings",
                                        verb="removed", count=None)),
                _manual("psa.email-routing", "email incident routing",
                        "Remove the customer's email incident routing and ticket rules",
                        "☰ → Integrations → the email alert integration",
                        "no route sends the customer's incidents anywhere", step=sid, record="what was removed",
                        removes=Removal(one="email incident route", many="email incident routes and ticket rules",
                                        verb="removed", count=None)),
                _manual("psa.webhooks", "webhook endpoints",
                        "Delete webhook endpoints used only for this customer",
                        "☰ → Integrations → Webhooks → ⋯ → Delete",
                        "no endpoint delivers this customer's events", step=sid, record="which endpoints",
                        removes=Removal(one="webhook endpoint", many="webhook endpoints for your events",
                                        verb="deleted", count=None)),
            ]
            stops.append("PSA tickets and email alerts for this customer stop")
        if "api" in self.scope:
            actions.append(_manual(
                "api.revoke-credentials", "API and MCP credentials",
                "Revoke or rotate API keys and MCP access used by customer-specific automations; rotate shared keys "
                "the customer had access to", "☰ → API Credentials (<subdomain>.huntress.io/account/api_credentials)",
                "the secret store and the API Credentials page match", step=sid,
                record="which keys were revoked or rotated",
                removes=Removal(one="API key", many="API keys and MCP access used for you", verb="revoked or rotated",
                                count=None)))
        return Step(id=sid, vendor=VENDOR, phase="removal", title="5. Close routing and automation",
                    why="Runbook step 5: PSA mapping, email routing, webhooks and API keys are portal-only.",
                    actions=tuple(actions), stops_updating=tuple(stops))

    def billing(self) -> Step:
        sid = "billing-handoff"
        account_owner = f"account:{self.s.account_id}"
        renewals = [_api("stop_auto_renew", item.target, f"turn auto_renew off ({item.attrs.get('product', '?')})",
                         f"PATCH /v1/reseller/subscriptions/{item.target.id} {{auto_renew: false}}", account_owner,
                         step=sid, removes=Removal(one="subscription", many="subscriptions",
                                                   verb="set not to renew at the end of its term"))
                    for item in self.mine("subscription", account_owner)]
        return Step(id=sid, vendor=VENDOR, phase="closure", title="6. Confirm billing and account-manager handoff",
                    why="Runbook step 6: billing follows technical state; attach the proof of stop. There is no "
                        "cancel endpoint: only auto_renew can be turned off by API, and only when configured.",
                    actions=(*renewals, _manual(
                        "billing.account-manager", "billing handoff",
                        "Tell the Huntress account manager the customer has left"
                        + ("" if self.s.whole_exit else f" {', '.join(self.scope)}")
                        + ", update the PSA contract, and attach the run's report.md as proof that the service "
                          "stopped",
                        "your Huntress account manager, and the customer's contract in your PSA",
                        "the account manager acknowledged and the contract is updated",
                        verify=self.billing_verify(), record="who acknowledged, and when", step=sid),))

    def billing_verify(self) -> str:
        if self.s.delete_organization:
            return "the organization is deleted"
        billed = billed_products(self.scope)
        if not billed:
            return ""  # nothing of this exit is billed by usage: the API has nothing to reconcile
        return "for the products this exit removed: " + "; ".join(f"{p}: {BILLED_ON[p]}" for p in billed)

    def delete_org(self) -> Step:
        sid = "delete-organization"
        assert self.org is not None
        agents = [i for i in self.inv.items if i.target.type == "agent" and i.owner == self.owner]
        isolated = sum(1 for i in agents if i.attrs.get("firewall_status") in ISOLATED)
        per_agent = len(agents) + isolated
        return Step(id=sid, vendor=VENDOR, phase="removal", title="5b. Delete the whole organization",
                    why="Removes every product of the organization at Huntress and queues its "
                        f"{len(agents)} agent(s) for uninstall: 1 call instead of {per_agent} per-agent call(s) "
                        "(which are therefore not planned). Irreversible; needs --confirm.",
                    actions=(_api("delete_organization", self.org.target,
                                  f"delete the whole organization {self.org_name!r} and everything in it",
                                  self.call("DELETE", "organizations", self.org.target.id), self.owner, step=sid,
                                  confirm=self.org_name,
                                  removes=Removal(one="organization, with every product and agent in it",
                                                  many="organizations, with every product and agent in them",
                                                  verb="deleted")),),
                    stops_updating=("EDR: no endpoint monitoring or incident reports for any host of the organization",
                                    "Every Huntress product for the organization; its data is deleted"))

    def closure(self) -> Step:
        sid = "closure-note"
        return Step(id=sid, vendor=VENDOR, phase="closure", title="7. Send the closure note",
                    why="Runbook step 7: the customer and the MSP agree on what ended.",
                    actions=(_manual("closure.send-note", "closure note",
                                     "Send the run's closure-note.md to the customer",
                                     "the run folder → closure-note.md, by your usual customer channel",
                                     "the customer received the note", record="to whom and how it was sent",
                                     step=sid),))


def plan_exit(inventory: Inventory, settings: HuntressSettings, now: datetime | None = None) -> PlanParts:
    planner = _Planner(inventory, settings, now or datetime.now(UTC))
    steps = planner.steps()
    return PlanParts(steps=tuple(steps), skipped=tuple(planner.skipped))
