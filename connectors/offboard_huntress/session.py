"""One opened Huntress account: discovery, preflight gates, every runbook operation,
the re-reads that settle an uncertain write, verification, and manual-item checks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from offboard.connectors import ActionResult, Artifact, Check, PlanParts, Watched, reread_check
from offboard.errors import BadInput, VendorAuthError
from offboard.plan import Action, Finding, Inventory, InventoryItem, Target, VendorPlan
from offboard.wire.http import HttpRecord, Reply, VendorHttp
from offboard.wire.spool import RecordSpool, evidence_json

from .client import HuntressClient
from .models import (
    ISOLATED,
    Actor,
    Agent,
    Escalation,
    IncidentReport,
    IncidentWithRemediations,
    Membership,
    Organization,
    PlatformAction,
    SummaryReport,
    UnwantedAccessRule,
    billed_counts,
    parse,
)
from .settings import HuntressSettings
from .steps import (
    UNKNOWN_OWNER,
    VENDOR,
    agent_target,
    billed_products,
    owner_of_org,
    owner_of_rule,
    plan_exit,
)
from .watch import watch as watch_after_exit

# Manual items the organization's own fields can confirm, and what each check is called.
MANUAL_CHECKS = {"itdr.unmap-tenant": "ITDR tenant unmapped", "siem.disconnect-sources": "SIEM sources disconnected",
                 "billing.account-manager": "nothing billed for the products removed"}
OPEN_INCIDENT_STATUSES = ("sent", "auto_remediating")  # vendor-notes §3.3
OPEN_ESCALATION_STATUSES = ("open", "overdue")  # vendor-notes §3.4
NEEDS_USER_KEY = ("a user-based Huntress API key whose user may make this change is needed "
                  "(the account's default key is read-only): create one under API Credentials → "
                  "User API Credentials, then `offboard auth set huntress`")


class HuntressSession:
    def __init__(self, http: VendorHttp, settings: HuntressSettings) -> None:
        self.http = http
        self.s = settings
        self.client = HuntressClient(http, settings.account_id)
        self.org_id = settings.organization_id
        self.owner = owner_of_org(self.org_id)
        self._actor: Actor | None = None
        # The organization as exit_identity read it a moment ago (for the exit lock, just before
        # discovery): the discovery that follows takes it instead of asking again (once).
        self._org_just_read: list[tuple[dict[str, Any] | None, tuple[HttpRecord, ...]]] = []
        # Lists and objects the last discovery and preflight read, kept as the vendor sent them until
        # the evidence export of the same run takes them (once): an exit reads each list once.
        self._fresh: dict[str, Any] = {}
        # Once the agents' evidence export has run, a later discovery (the scope guard's listing re-taken
        # during the writes, verification's) is not spooled for it: nothing of this run exports them again
        # (one that did would read them anew), and spooling is a third of such a discovery's CPU.
        self._agents_exported = False
        # The plan just made of an inventory, until the credentials gate of the same inventory takes it
        # (the engine plans, then preflights): a 10,000-agent exit is planned once, not twice.
        self._just_planned: tuple[Inventory, PlanParts] | None = None
        c = self.client
        # operation -> (the one write call, what success means); every one is settled the same way.
        self._writes: dict[str, tuple[Callable[[int], Reply], str]] = {
            "uninstall_agent": (c.uninstall_agent, "uninstall tasked; the agent left the account"),
            "release_isolation": (c.release_isolation, "isolation release requested (Pending Release)"),
            "delete_membership": (c.delete_membership, "membership removed (the user record is kept)"),
            "delete_unwanted_access_rule": (c.delete_unwanted_access_rule, "rule deleted"),
            "clear_report_recipients": (lambda _id: c.clear_report_recipients(self.org_id),
                                        "report_recipients cleared"),
            "delete_organization": (lambda _id: c.delete_organization(self.org_id),
                                    "organization deletion accepted (202); its agents are queued for uninstall "
                                    "and every product removed"),
            "stop_auto_renew": (c.stop_auto_renew, "auto_renew turned off; the subscription ends at its term"),
        }

    def close(self) -> None:
        self.http.close()

    @property
    def calls_made(self) -> int:
        return self.http.calls

    # -- discovery -------------------------------------------------------------------

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

    def exit_identity(self) -> str:
        """The organization id and the account it belongs to, as Huntress says: the organization's
        own record (``account_id``), or, when it cannot be read or does not say, ``/v1/actor``'s
        account (the key's), else the configured reseller ``account_id``: each names the one account
        the organization belongs to (discovery refuses a configured account_id it contradicts)."""
        with self.http.recording() as calls:
            body, _ = self.client.organization_raw(self.org_id)
        self._org_just_read[:] = [(body, tuple(calls))]
        org = None if body is None else parse(Organization, body, f"GET /v1/organizations/{self.org_id}")
        account = org.account_id if org is not None else None
        if account is None:
            actor = self.actor()
            account = actor.account.id if actor.account is not None else self.s.account_id
        return f"huntress account {account if account is not None else '?'} organization {self.org_id}"

    def organization_now(self) -> tuple[dict[str, Any] | None, tuple[HttpRecord, ...]]:
        """The organization's record and the request that read it: the one ``exit_identity`` read a
        moment ago, before the exit's lock was taken (read once, not twice), else read now."""
        if self._org_just_read:
            return self._org_just_read.pop()
        with self.http.recording() as recorded:
            body, _ = self.client.organization_raw(self.org_id)
        return body, tuple(recorded)

    def discover(self) -> Inventory:
        return self._discover()

    def owners(self) -> dict[tuple[str, str], str]:
        """Each listed object's owner, as ``discover()``'s inventory names it (``owner_of``), from the
        same reads, but with the agents not built into the inventory: the scope guard's listing,
        re-taken every 300 s under --trust-listing, where building 10,000 agents was a third of its CPU."""
        agents: list[tuple[tuple[str, str], str]] = []
        inventory = self._discover(agent_owners=agents)
        return fold_owners([*(((i.target.type, i.target.id), i.owner) for i in inventory.items), *agents])

    def _discover(self, agent_owners: list[tuple[tuple[str, str], str]] | None = None) -> Inventory:
        """The inventory; with ``agent_owners``, each agent's (type, id) and owner go there instead
        of into it, and nothing is spooled for the export."""
        actor = self.actor()
        self._fresh = {}
        org_body, org_calls = self.organization_now()
        org = None if org_body is None else parse(Organization, org_body, f"GET /v1/organizations/{self.org_id}")
        if org is None:
            if self.s.delete_organization:
                # The plan deletes it; once gone, there is nothing left to discover.
                return Inventory(vendor=VENDOR, scope=f"organization {self.org_id} (deleted)",
                                 account=actor.describe(), snapshot={"organization_deleted": True})
            raise BadInput(f"Huntress organization {self.org_id} was not found, or these credentials "
                           f"cannot see it ({actor.describe()}); check [huntress] organization_id")
        if self.s.account_id and org.account_id not in (None, self.s.account_id):
            raise BadInput(f"Huntress organization {self.org_id} belongs to account {org.account_id}, "
                           f"not the configured account_id {self.s.account_id}; check [huntress]")
        # The reply answers for the organization asked for; one that names another id is not read as ours.
        org_owner = self.owner if org.id in (None, self.org_id) else UNKNOWN_OWNER
        items: list[InventoryItem] = [InventoryItem(
            target=Target(type="organization", id=str(self.org_id), name=org.name or f"organization {self.org_id}"),
            owner=org_owner, attrs={"report_recipients": len(org.report_recipients or []),
                                    "identity_provider_tenant_id": org.identity_provider_tenant_id})]
        tenant = org.identity_provider_tenant_id
        if tenant and "itdr" in self.s.scope:
            # An object of the exit in its own right (a person unmaps it in the portal): a plan made while
            # it was mapped is stale once it is not, and says so by name.
            items.append(InventoryItem(target=Target(type="itdr_tenant", id=str(tenant),
                                                     name=f"ITDR tenant mapping {tenant}"), owner=org_owner))
        # Each list read once: the evidence export takes these same replies (see _fresh), kept on
        # disk meanwhile (wire.spool), not in memory; with the requests that read them.
        raw_agents = None if self._agents_exported or agent_owners is not None else RecordSpool()
        # The loop parses as the pages stream in (nothing is held but the spool); it makes no other request.
        with self.http.recording() as agent_calls:
            listed = self.client.list_raw("agents", organization_id=self.org_id)
            for n, raw in enumerate(listed if raw_agents is None else raw_agents.extend(listed), 1):
                a = parse(Agent, raw, "GET /v1/agents")
                owner = owner_of_org(a.organization_id) if a.id is not None and a.organization_id is not None \
                    else UNKNOWN_OWNER
                if agent_owners is not None:
                    agent_owners.append((("agent", str(a.id) if a.id is not None else f"?{n}"), owner))
                    continue
                items.append(InventoryItem(
                    target=agent_target(a.id, a.hostname) if a.id is not None
                    else _unaddressable("agent", n, a.hostname),
                    owner=owner, attrs={"platform": a.platform, "os": a.os, "firewall_status": a.firewall_status,
                                        "last_callback_at": a.last_callback_at}))
        with self.http.recording() as member_calls:
            raw_members = list(self.client.list_raw("memberships", organization_id=self.org_id))
        self._fresh = {"organization": (org_body, tuple(org_calls)), "memberships": (raw_members, tuple(member_calls))}
        if raw_agents is not None:
            self._fresh["agents"] = (raw_agents, tuple(agent_calls))
        for n, m in enumerate((parse(Membership, r, "GET /v1/memberships") for r in raw_members), 1):
            who = m.user.email if m.user and m.user.email else f"membership {m.id}"
            target = Target(type="membership", id=str(m.id), name=who) if m.id is not None \
                else _unaddressable("membership", n, m.user.email if m.user else "")
            items.append(InventoryItem(target=target, owner=_membership_owner(m) if m.id is not None
                                       else UNKNOWN_OWNER, attrs={"permissions": m.permissions}))
        for n, r in enumerate(self.client.unwanted_access_rules(self.org_id), 1):
            what = f"{r.type} {r.category} {r.country_code or r.vpn or r.ip_address or '?'}".strip()
            target = Target(type="unwanted_access_rule", id=str(r.id), name=what) if r.id is not None \
                else _unaddressable("unwanted_access_rule", n, what)
            items.append(InventoryItem(target=target, owner=_rule_owner(r) if r.id is not None else UNKNOWN_OWNER,
                                       attrs={"describe": what}))
        for sub_id in self.s.stop_renewing_subscriptions:
            sub, _ = self.client.subscription(sub_id)
            if sub is None:
                raise BadInput(f"Huntress subscription {sub_id} was not found; check [huntress] "
                               "stop_renewing_subscriptions")
            account = sub.account.id if sub.account else None
            items.append(InventoryItem(target=Target(type="subscription", id=str(sub_id),
                                                     name=f"{sub.product} subscription {sub_id}"),
                                       owner=UNKNOWN_OWNER if account is None else f"account:{account}",
                                       attrs={"product": sub.product, "auto_renew": sub.auto_renew}))
        items = _one_owner_each(items)
        products = "all products" if self.s.whole_exit else "products " + ", ".join(self.s.scope)
        deletion = "; the organization is deleted at the end" if self.s.delete_organization else ""
        return Inventory(vendor=VENDOR, scope=f"organization {org.name!r} (id {self.org_id}), {products}{deletion}",
                         account=actor.describe(), snapshot=_snapshot(org), items=tuple(items))

    def preflight(self, inventory: Inventory) -> list[Finding]:
        findings: list[Finding] = [self._credentials_gate(inventory)]
        # One list each, every status (the export keeps them all); the open ones are picked here.
        org = self.org_id
        with self.http.recording() as incident_calls:
            every_incident = list(self.client.list_raw("incident_reports", organization_id=org))
        with self.http.recording() as escalation_calls:
            every_escalation = list(self.client.list_raw("escalations", organization_id=org))
        self._fresh["incident_reports"] = (every_incident, tuple(incident_calls))
        self._fresh["escalations"] = (every_escalation, tuple(escalation_calls))
        incidents = [parse(IncidentReport, i, "GET /v1/incident_reports") for i in every_incident
                     if i.get("status") in OPEN_INCIDENT_STATUSES]
        findings.append(_open_ones("open_incident_reports", incidents,
                                   "no incident report is sent or auto-remediating"))
        escalations = [parse(Escalation, e, "GET /v1/escalations") for e in every_escalation
                       if e.get("status") in OPEN_ESCALATION_STATUSES]
        findings.append(_open_ones("open_escalations", escalations, "no escalation is open or overdue"))
        isolated = [i for i in inventory.items if i.target.type == "agent"
                    and i.owner == self.owner and i.attrs.get("firewall_status") in ISOLATED]
        findings.append(Finding(
            vendor=VENDOR, kind="isolated_hosts", count=len(isolated), blocking=bool(isolated),
            detail=", ".join(f"{i.target.name} ({i.attrs['firewall_status']})" for i in isolated[:5])
            or "no host is isolated"))
        actions = [parse(PlatformAction, p, "GET /v1/platform_actions")
                   for p in self.client.list_raw("platform_actions", organization_id=org)
                   if p.get("status") in OPEN_ESCALATION_STATUSES]
        findings.append(Finding(
            vendor=VENDOR, kind="open_platform_actions", count=len(actions), blocking=False,
            detail="for information (they often name integrations still configured): "
                   + (", ".join(f"#{_ref(p.id)} {p.subject}" for p in actions[:5]) or "none")))
        return findings

    def _credentials_gate(self, inventory: Inventory) -> Finding:
        """The account's default key is read-only (vendor-notes §1): with it every planned write
        would answer 403. Found before the run starts, and no override passes it."""
        actor = self.actor()
        just, self._just_planned = self._just_planned, None
        parts = just[1] if just is not None and just[0] is inventory else plan_exit(inventory, self.s)
        writes = [a for s in parts.steps for a in s.actions if a.kind == "api" and a.destructive]
        read_only = actor.user is None and actor.reseller is None
        if not read_only or not writes:
            why = "no write is planned" if not writes else f"{len(writes)} write(s) planned"
            return Finding(vendor=VENDOR, kind="credentials", count=0, blocking=False, overridable=False,
                           detail=f"{actor.describe()}; {why}")
        return Finding(vendor=VENDOR, kind="credentials", count=len(writes), blocking=True, overridable=False,
                       detail=f"the {actor.describe()} cannot make the {len(writes)} planned write(s) (first: "
                              f"{writes[0].call}): {NEEDS_USER_KEY}")

    def plan(self, inventory: Inventory) -> PlanParts:
        parts = plan_exit(inventory, self.s)
        self._just_planned = (inventory, parts)
        return parts

    # -- execution -------------------------------------------------------------------

    def execute(self, action: Action) -> ActionResult:
        if action.operation.startswith("export."):
            return self._export(action)
        write = self._writes.get(action.operation)
        if write is None:
            raise BadInput(f"plan action {action.id} has operation {action.operation!r}, "
                           "which this Huntress connector does not know; make a new plan")
        call, done = write
        try:
            return self._removed(action, call(int(action.target.id)), done)
        except VendorAuthError as exc:
            raise VendorAuthError("Huntress", exc.call, f"HTTP {exc.status}: {NEEDS_USER_KEY}", exc.status) from None

    def _removed(self, action: Action, reply: Reply, done: str) -> ActionResult:
        if reply.status == 404:
            # 404 can also mean "no permission to see it" (§5.5): only a re-read can say gone.
            settled = self.reread(action)
            if settled.outcome == "success":
                return ActionResult("success", "the vendor answered 404; re-read confirms it is gone",
                                    settled.http, already_absent=True)
            return ActionResult("failure", f"the vendor answered 404 but it is still visible: {NEEDS_USER_KEY}",
                                reply.record)
        return ActionResult("success", done, reply.record)

    def _export(self, action: Action) -> ActionResult:
        what = action.operation.removeprefix("export.")
        org = self.org_id
        files: list[Artifact] = []
        count: int
        # What this run's discovery or preflight just read, if it did, with the requests that read it.
        fresh, read_by = self._fresh.pop(what, (None, ()))
        self._agents_exported |= what == "agents"
        with self.http.recording() as calls:
            if what == "organization":
                body = fresh if fresh is not None else self.client.organization_raw(org)[0]
                files.append(Artifact("organization.json", evidence_json(body), requests=(*read_by, *calls)))
                count = 1
            elif what == "incident_reports":
                reports = fresh if fresh is not None else list(self.client.list_raw("incident_reports",
                                                                                     organization_id=org))
                for r in reports:  # the list carries the first 10 remediations; fetch the rest
                    parsed = parse(IncidentWithRemediations, r, "GET /v1/incident_reports")
                    if parsed.id is not None and parsed.remediations is not None and parsed.remediations.has_more:
                        r["remediations"] = {**r["remediations"], "items": self.client.remediations(parsed.id),
                                             "has_more": False}
                files.append(Artifact("incident_reports.json", evidence_json(reports), requests=(*read_by, *calls)))
                count = len(reports)
            elif what == "reports":
                reports = self.client.summary_reports(org)
                files.append(Artifact("reports.json", evidence_json(reports), requests=tuple(calls)))
                for n, r in enumerate(reports, 1):
                    report = parse(SummaryReport, r, "GET /v1/reports")
                    if report.url:
                        with self.http.recording() as download:
                            pdf = self.client.download(report)
                        files.append(Artifact(f"reports/{_ref(report.id, n)}-{report.type or 'report'}.pdf", pdf,
                                              requests=tuple(download)))
                count = len(reports)
            elif what in ("agents", "signals", "escalations", "identities", "memberships"):
                if isinstance(fresh, RecordSpool):  # the agents, as discovery spooled them
                    content, count = fresh.json_array(), fresh.count
                else:
                    items = fresh if fresh is not None else list(self.client.list_raw(what, organization_id=org))
                    content, count = evidence_json(items), len(items)
                files.append(Artifact(f"{what}.json", content, requests=(*read_by, *calls)))
            elif what == "invoices":
                items = list(self.client.list_raw("invoices"))
                files.append(Artifact("invoices.json", evidence_json(items), requests=tuple(calls)))
                count = len(items)
            else:
                raise BadInput(f"plan action {action.id} exports {what!r}, which this connector does not know")
        # The requests are per file (Artifact.requests): the action's line carries no single call.
        return ActionResult("success", f"{count} record(s) exported", None, artifacts=tuple(files))

    # -- the scope guard's read -------------------------------------------------------

    def owner_now(self, action: Action) -> ActionResult:
        """One GET of the action's object alone (``/v1/agents/{id}``, ``/v1/memberships/{id}``,
        ``/v1/unwanted_access_rules/{id}``, ``/v1/reseller/subscriptions/{id}``, the organization):
        its owner as its own record names it, never as a listing did."""
        op = action.operation
        if op in ("clear_report_recipients", "delete_organization"):
            body, record = self.client.organization_raw(self.org_id)
            if body is None:
                # 404 is "doesn't exist or no permission" (the spec's words): not proof of anything.
                return ActionResult("unknown", f"GET organization {self.org_id} answers 404, which Huntress says "
                                    "means it does not exist or these credentials may not see it", record)
            org = parse(Organization, body, f"GET {self.client.path('organizations', self.org_id)}")
            return ActionResult("failure", "the organization is there", record, owner=self._org_owner(org))
        settled = self.reread(action)
        if settled.already_absent or op not in ("uninstall_agent", "release_isolation", "delete_membership",
                                                "delete_unwanted_access_rule", "stop_auto_renew"):
            return settled
        return replace(settled, owner=settled.owner or UNKNOWN_OWNER)

    def _org_owner(self, org: Organization) -> str:
        """The organization's own record names itself, and (with a reseller's account_id) its account."""
        if org.id not in (None, self.org_id):
            return UNKNOWN_OWNER
        if self.s.account_id and org.account_id not in (None, self.s.account_id):
            return f"account:{org.account_id}"
        return self.owner

    # -- re-reads ----------------------------------------------------------------------

    def reread(self, action: Action) -> ActionResult:
        op, oid = action.operation, action.target.id
        if op in ("uninstall_agent", "release_isolation"):
            agent, record = self.client.agent(int(oid))
            if agent is None:
                return ActionResult("success", f"GET agent {oid} answers 404: gone", record, already_absent=True)
            owner = UNKNOWN_OWNER if agent.organization_id is None else owner_of_org(agent.organization_id)
            if op == "release_isolation" and agent.firewall_status not in ISOLATED:
                return ActionResult("success", f"firewall_status is {agent.firewall_status}", record, owner=owner)
            return ActionResult("failure", "the agent is still present"
                                + (" and isolated" if op == "release_isolation" else ""), record, owner=owner)
        if op == "delete_membership":
            m, record = self.client.membership(int(oid))
            return _gone(m is None, record, owner=_membership_owner(m) if m else None)
        if op == "delete_unwanted_access_rule":
            r, record = self.client.unwanted_access_rule(int(oid))
            return _gone(r is None, record, owner=_rule_owner(r) if r else None)
        if op == "stop_auto_renew":
            sub, record = self.client.subscription(int(oid))
            if sub is None:
                return ActionResult("success", "the subscription is gone", record, already_absent=True)
            owner = f"account:{sub.account.id}" if sub.account and sub.account.id is not None else UNKNOWN_OWNER
            if sub.auto_renew is False:
                return ActionResult("success", "auto_renew is false", record, owner=owner)
            return ActionResult("failure", "auto_renew is still on", record, owner=owner)
        if op in ("clear_report_recipients", "delete_organization"):
            body, record = self.client.organization_raw(self.org_id)
            if op == "delete_organization":
                return _gone(body is None, record, owner=self.owner)
            recipients = (body or {}).get("report_recipients") or []
            if not recipients:
                return ActionResult("success", "report_recipients is empty", record, owner=self.owner)
            return ActionResult("failure", f"{len(recipients)} recipient(s) remain", record, owner=self.owner)
        return ActionResult("unknown", f"no re-read for {op}")

    # -- verification ----------------------------------------------------------------

    def verify(self, vendor_plan: VendorPlan | None, inventory: Inventory) -> list[Check]:
        """Checks for the products in scope. With a plan: also re-read each object it removed.
        Without one (`offboard verify`): also the facts that manual items should have changed.

        Fails closed: "stopped" is proven only by the vendor listing nothing of the customer's.
        Whatever it lists under the organization that cannot be attributed counts against it."""
        snap = inventory.snapshot
        checks: list[Check] = []
        org = self.org_id
        calls = {"agent": f"GET {self.client.path('agents')}?organization_id={org}",
                 "membership": f"GET {self.client.path('memberships')}?organization_id={org}",
                 "unwanted_access_rule": f"GET /v1/unwanted_access_rules?organization_id={org}"}
        deleted = self._deleted_only_if_ours()
        if snap.get("organization_deleted"):
            checks.append(Check("organization is deleted", True, f"GET /v1/organizations/{org} → 404",
                                acknowledged_by=deleted))
        else:
            if "edr" in self.s.scope:
                checks += [Check("organization agents_count is 0", snap.get("agents_count") == 0,
                                 f"GET /v1/organizations/{org} reports agents_count={snap.get('agents_count')}"),
                           self._nothing_listed(inventory, "agent", "no agent listed for the organization",
                                                calls["agent"])]
            if self.s.whole_exit:  # the organization's memberships go only when the whole customer does
                checks.append(self._nothing_listed(inventory, "membership", "no membership listed for the "
                                                   "organization", calls["membership"]))
            if "itdr" in self.s.scope:
                checks.append(self._nothing_listed(inventory, "unwanted_access_rule", "no organization-scoped "
                                                   "ITDR rule listed", calls["unwanted_access_rule"]))
        if vendor_plan is None:
            for product, op in (("itdr", "itdr.unmap-tenant"), ("siem", "siem.disconnect-sources")):
                if product in self.s.scope:
                    check = self._manual_check(op)
                    if check is not None:
                        checks.append(check)
            return checks
        # The fresh listing already proves most removals: one object read each only for what has
        # no listing (10,000 agents must not cost 10,000 more calls).
        present = {(i.target.type, i.target.id): i.owner for i in inventory.items}
        kinds = {"uninstall_agent": "agent", "delete_membership": "membership",
                 "delete_unwanted_access_rule": "unwanted_access_rule"}
        org_item = next((i for i in inventory.items if i.target.type == "organization"), None)
        org = self.org_id
        for action in (a for s in vendor_plan.steps for a in s.actions if a.kind == "api" and a.destructive):
            if action.operation == "release_isolation":
                continue  # the uninstall that follows is what is verified
            kind = kinds.get(action.operation, "")
            name = f"{action.summary}: {action.target.name}"
            if snap.get("organization_deleted") and action.operation != "stop_auto_renew":
                checks.append(Check(name, True, f"the organization is deleted (GET /v1/organizations/{org} → 404)",
                                    target=action.target, action_id=action.id, acknowledged_by=deleted))
            elif action.operation == "clear_report_recipients" and org_item is not None:
                left = org_item.attrs.get("report_recipients")
                checks.append(Check(f"{action.summary}: {action.target.name}", left == 0,
                                    f"GET /v1/organizations/{org} lists {left} report recipient(s)",
                                    target=action.target, action_id=action.id))
            elif kind and (kind, action.target.id) not in present:
                count = f"; agents_count={snap.get('agents_count')}" if kind == "agent" else ""
                checks.append(Check(name, True, f"no longer listed ({calls[kind]}){count}", target=action.target,
                                    action_id=action.id))
            elif kind:
                # Still listed under the organization, whoever it now says it belongs to: not gone.
                owner = present[(kind, action.target.id)]
                checks.append(Check(name, False, f"still listed ({calls[kind]}), owner {owner}",
                                    target=action.target, action_id=action.id))
            else:
                checks.append(reread_check(action, self.reread(action)))
        return checks

    def _deleted_only_if_ours(self) -> tuple[str, str]:
        """A 404 on the organization is "deleted" only where this exit's own DELETE was accepted:
        Huntress's 404 is "either it doesn't exist, or your account does not hold correct
        permissions to access it" (the spec's error table)."""
        return (f"{VENDOR}.delete_organization.{self.org_id}",
                f"GET /v1/organizations/{self.org_id} answers 404, which Huntress says means \"either it doesn't "
                "exist, or your account does not hold correct permissions to access it\"; this run's audit log holds "
                "no accepted deletion of it by this exit, so nothing proves it was deleted")

    def _nothing_listed(self, inventory: Inventory, kind: str, name: str, call: str) -> Check:
        """Whether the listing under the organization holds nothing of the customer's: its own objects
        and those whose owner cannot be established count against the stop; another scope's (a
        neighbour's, the whole account's, an identity's) are named and left, as the plan left them."""
        listed = [i for i in inventory.items if i.target.type == kind]
        ours = [i for i in listed if i.owner == self.owner]
        unknown = [i for i in listed if i.owner == UNKNOWN_OWNER]
        others = [i for i in listed if i not in ours and i not in unknown]
        label = kind.replace("_", " ")
        parts = [f"{call} lists {len(listed)} {label}(s)"]
        for group, what in ((ours, "the organization's"), (unknown, "owner unknown, counted as not stopped"),
                            (others, "another scope's, left untouched")):
            if group:
                shown = ", ".join(f"{i.target.name} ({i.owner})" if group is others else i.target.name
                                  for i in group[:20])
                parts.append(f"{what}: {shown}" + (f" and {len(group) - 20} more" if len(group) > 20 else ""))
        return Check(name, not ours and not unknown, "; ".join(parts))

    def watch(self, since: datetime) -> list[Watched]:
        return watch_after_exit(self, since)

    def documents(self, vendor_plan: VendorPlan, states: Mapping[str, str]) -> tuple[Artifact, ...]:
        return ()  # the closure note is the core's; Huntress's runbook asks for no other document

    def check_manual(self, action: Action) -> Check | None:
        check = self._manual_check(action.operation)
        return None if check is None else replace(check, action_id=action.id)

    def _manual_check(self, op: str) -> Check | None:
        name = MANUAL_CHECKS.get(op)
        if name is None:
            return None
        billed = billed_products(self.s.scope)
        if op == "billing.account-manager" and not billed:
            return None  # nothing this exit removed is billed by usage: nothing for the API to reconcile
        body, record = self.client.organization_raw(self.org_id)  # every check reads the organization once
        if body is None:
            return Check(name, True, "the organization is deleted")
        org = parse(Organization, body, "GET organization")
        usages = org.actual_usages or {}
        if op == "itdr.unmap-tenant":
            itdr = usages.get("itdr") or []
            identities, _ = self.client.identities_count(self.org_id)
            ok = org.identity_provider_tenant_id is None and not itdr and identities == 0
            detail = (f"identity_provider_tenant_id={org.identity_provider_tenant_id}, "
                      f"actual_usages.itdr has {len(itdr)} tenant(s), identities listed: {identities}")
        elif op == "siem.disconnect-sources":
            billable = (usages.get("siem") or {}).get("billable_log_sources_count") or 0
            ok = org.logs_sources_count == 0 and billable == 0
            detail = f"logs_sources_count={org.logs_sources_count}, billable_log_sources_count={billable}"
        else:  # billing.account-manager: what the exit removed, product by product
            counts = {k: v for p in billed for k, v in billed_counts(org, p).items()}
            ok = all(v == 0 for v in counts.values())
            detail = ", ".join(f"{k}={v}" for k, v in counts.items())
        return Check(name, ok, detail, http=record)


def _membership_owner(m: Membership) -> str:
    # An organization's membership (the spec's example also names its account), or the whole
    # account's (§3.11); one that names neither id is nobody's we know.
    if m.organization is not None and m.organization.id is not None:
        return owner_of_org(m.organization.id)
    if m.organization is None and m.account is not None and m.account.id is not None:
        return f"account:{m.account.id}"
    return UNKNOWN_OWNER


def _open_ones(kind: str, found: Sequence[IncidentReport | Escalation], none: str) -> Finding:
    """A blocking finding while any is open: the first five named by id, status and subject."""
    return Finding(vendor=VENDOR, kind=kind, count=len(found), blocking=bool(found),
                   detail=", ".join(f"#{_ref(x.id)} {x.status} {x.subject}".strip() for x in found[:5]) or none)


def _ref(obj_id: int | None, n: int | None = None) -> str:
    return str(obj_id) if obj_id is not None else (f"n{n}" if n is not None else "?")


def _unaddressable(kind: str, n: int, name: str) -> Target:
    """An object listed without an id: nothing can be sent to it, and it cannot be proven gone."""
    label = kind.replace("_", " ")
    return Target(type=kind, id=f"?{n}", name=f"{label} without an id (#{n} listed){': ' + name if name else ''}")


def fold_owners(listed: Iterable[tuple[tuple[str, str], str]]) -> dict[tuple[str, str], str]:
    """Each object's owner as ``_one_owner_each`` leaves it: the one its every listing names, else unknown."""
    owners: dict[tuple[str, str], str] = {}
    for key, owner in listed:
        owners[key] = owners.get(key, owner) if owners.get(key, owner) == owner else UNKNOWN_OWNER
    return owners


def _one_owner_each(items: list[InventoryItem]) -> list[InventoryItem]:
    """One item per object; an id listed twice with different owners has no owner we can trust."""
    at: dict[tuple[str, str], int] = {}
    out: list[InventoryItem] = []
    for i in items:
        key = (i.target.type, i.target.id)
        n = at.setdefault(key, len(out))
        if n == len(out):
            out.append(i)
        elif i.owner != out[n].owner and out[n].owner != UNKNOWN_OWNER:
            out[n] = out[n].model_copy(update={"owner": UNKNOWN_OWNER})
    return out


def _rule_owner(rule: UnwantedAccessRule) -> str:
    applied = rule.applied_to
    return owner_of_rule(applied.type, applied.id) if applied else UNKNOWN_OWNER


def _gone(gone: bool, record: HttpRecord, owner: str | None) -> ActionResult:
    if gone:
        return ActionResult("success", "re-read answers 404: gone", record, already_absent=True)
    return ActionResult("failure", "still present", record, owner=owner)


def _snapshot(org: Organization) -> dict[str, Any]:
    """The billing-relevant counts, before and after (the runbook's agent count snapshot)."""
    usages = org.actual_usages or {}
    edr = usages.get("edr") or {}
    siem = usages.get("siem") or {}
    return {
        "organization": f"{org.name} (id {org.id})",
        "agents_count": org.agents_count,
        "billable_agents_count": edr.get("billable_agents_count"),
        "isolated_agents_count": edr.get("isolated_agents_count"),
        "incident_reports_count": org.incident_reports_count,
        "itdr_tenants": len(usages.get("itdr") or []),
        "billable_identity_count": org.billable_identity_count,
        "logs_sources_count": org.logs_sources_count,
        "siem_billable_log_sources_count": siem.get("billable_log_sources_count"),
        "sat_learner_count": org.sat_learner_count,
    }
