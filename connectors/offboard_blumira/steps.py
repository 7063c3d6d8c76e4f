"""The Blumira MSP de-provisioning document as planned steps (shared/seeds/000, vendor-notes §3).

Pure functions: inventory in, steps out. No call is made here. The document's order:
0 notify Blumira first, then (after the evidence export that must precede any
teardown) sensors, cloud connectors, agent devices and keys, scheduled reports, users;
webhooks that point at the customer; and last Blumira support's confirmation. The
public API removes almost nothing, so most steps are manual items that say where to
click, what done looks like, and which API re-read proves it.
"""

from __future__ import annotations

from functools import partial

from offboard.connectors import PlanParts
from offboard.errors import BadInput
from offboard.plan import Action, Inventory, InventoryItem, Manual, Removal, Skipped, Step, Target, manual_item

from .ownership import UNKNOWN, owner_of_account
from .settings import BlumiraSettings

VENDOR = "blumira"
SUPPORT = "support@blumira.com"
MSP_TEAM = "msp@blumira.com"
# One file per meaning: the request sent before any change (kept as evidence of the notice), and
# the notice that de-provisioning is complete, drafted once it is (the run's documents).
REQUEST_FILE = "blumira-exit-request.eml"
COMPLETE_FILE = "blumira-exit-complete.eml"
NOTIFY_ITEM = f"{VENDOR}.notify.sent"
SUPPORT_ITEM = f"{VENDOR}.support.confirmation"


_manual = partial(manual_item, VENDOR)


class _Planner:
    def __init__(self, inventory: Inventory, settings: BlumiraSettings) -> None:
        self.inv = inventory
        self.s = settings
        self.owner = owner_of_account(settings.account_id)
        self.skipped: list[Skipped] = []
        account = next((i for i in inventory.items if i.target.type == "account"), None)
        self.name = account.target.name if account else settings.account_id
        self.portal = (f"app.blumira.com → MSP Portal → Accounts → {self.name!r} (open the sub-account) → ")

    def _sorted(self, kind: str) -> list[InventoryItem]:
        return sorted((i for i in self.inv.items if i.target.type == kind),
                      key=lambda i: (i.target.name.lower(), i.target.id))

    def of(self, kind: str) -> list[InventoryItem]:
        """Objects of this kind that belong to the exit; the others are recorded as skipped."""
        out = []
        for item in self._sorted(kind):
            if item.owner == UNKNOWN:
                self.skipped.append(Skipped(vendor=VENDOR, target=item.target, reason=(
                    f"owner unknown ({item.attrs.get('why_unknown') or 'not attributed'}): never changed by API; "
                    "it still counts until it is gone")))
                continue
            if item.owner != self.owner:
                self.skipped.append(Skipped(vendor=VENDOR, target=item.target, reason=item.attrs.get(
                    "why_not") or f"belongs to {item.owner}, not {self.owner} (scope guard)"))
                continue
            out.append(item)
        return out

    def unattributed(self, kind: str) -> list[InventoryItem]:
        """Listed under the sub-account, owner not proven: for a person to check, never for the API."""
        return [i for i in self._sorted(kind) if i.owner == UNKNOWN]

    def capability(self, name: str) -> InventoryItem | None:
        return next((i for i in self.inv.items if i.target.type == "capability" and i.target.id == name), None)

    # -- the document, in order ------------------------------------------------------------

    def steps(self) -> list[Step]:
        self.guard_last_administrator()
        steps = [self.notify(), self.evidence(), self.sensors(), self.cloud_connectors(), self.agents(),
                 self.reports(), self.users(), self.webhooks(), self.support()]
        return [s for s in steps if s.actions]

    def guard_last_administrator(self) -> None:
        """The document: at least one customer Administrator must be on the sub-account
        before it is separated from the MSP. Refuse a plan that would remove the last one."""
        if self.s.account_moves_to != "self":
            return
        admins = [u for u in self.of("user") if u.attrs.get("administrator")]
        kept = [u for u in admins if u.attrs.get("email") in self.s.keep_users]
        if not kept:
            now = ", ".join(str(u.attrs.get("email") or u.target.name) for u in admins) or "none"
            raise BadInput(f"Blumira: the account moves to self-management, but no Administrator would remain "
                           f"(current Administrators: {now}); add a customer Administrator's email to [blumira] "
                           "keep_users, or add one in the portal (Settings > Users) and plan again")

    def notify(self) -> Step:
        sid = "notify-blumira"
        draft = Action(id=f"{VENDOR}.draft.notification", vendor=VENDOR, step=sid, kind="api",
                       operation="draft.notification", target=Target(type="document", id="notification",
                                                                     name="notification email draft"),
                       summary=f"draft the de-provisioning email to {SUPPORT} (CC {MSP_TEAM}) from the account "
                               "detail and the config", call=f"GET /msp/accounts/{self.s.account_id}",
                       owner=self.owner, destructive=False)
        moving = {"no": "the account closes", "self": "the customer takes the account over",
                  "msp": "another MSP takes the account over", "unknown": "whether it moves is not known yet"}
        sent = _manual("notify.sent", "notification to Blumira",
                       f"Send the drafted email ({moving[self.s.account_moves_to]}) to {SUPPORT} with {MSP_TEAM} "
                       "copied" + (", and the incoming MSP and the customer copied"
                                   if self.s.account_moves_to == "msp" else ""),
                       f"your mail client: the run folder → evidence/{VENDOR}/{REQUEST_FILE}",
                       f"the email is sent to {SUPPORT} with {MSP_TEAM} in CC", step=sid,
                       record="when it was sent, and Blumira's ticket number if one came back", gate=True)
        return Step(id=sid, vendor=VENDOR, phase="scope", title="0. Notify Blumira first",
                    why="Blumira needs the account owner's notice before any change to subscriptions and billing; "
                        "the document says to notify first.", actions=(draft, sent))

    def evidence(self) -> Step:
        sid = "export-evidence"
        base = f"/msp/accounts/{self.s.account_id}"

        def export(what: str, label: str, call: str) -> Action:
            return Action(id=f"{VENDOR}.export.{what}", vendor=VENDOR, step=sid, kind="api",
                          operation=f"export.{what}", target=Target(type="evidence", id=what, name=label),
                          summary=f"export {label}", call=call, owner=self.owner, destructive=False)

        actions = [
            export("account", "account detail (name, license, counts)", f"GET {base}"),
            export("findings", "findings, all statuses, with evidence and comments", f"GET {base}/findings"),
            export("devices", "agent devices", f"GET {base}/agents/devices"),
            export("keys", "agent installation keys", f"GET {base}/agents/keys"),
            export("users", "users and their roles", f"GET {base}/users"),
            export("detection_rules", "detection rules", f"GET {base}/detection-rules"),
        ]
        if self.of("webhook") or [i for i in self.inv.items if i.target.type == "webhook"
                                  and i.attrs.get("mentions_customer")]:
            actions.append(export("webhooks", "the webhook endpoints that concern this customer",
                                  "GET /msp/webhooks"))
        return Step(id=sid, vendor=VENDOR, phase="evidence", title="1. Export retained evidence",
                    why="Before any teardown. Removal is held back if an export fails.", actions=tuple(actions))

    def sensors(self) -> Step:
        sid = "remove-sensors"
        return Step(id=sid, vendor=VENDOR, title="2. Remove sensors",
                    why="Blumira's API has no sensor endpoint: done in the portal, recorded by the person who did it.",
                    actions=(_manual("sensors.remove", "sensors", "Remove every sensor of the customer",
                                     self.portal + "Settings > Sensors > View details → Remove Sensor (each sensor)",
                                     "Settings > Sensors lists no sensor", step=sid,
                                     record="how many sensors were removed",
                                     removes=Removal(one="Blumira sensor", many="Blumira sensors", verb="removed",
                                                     count=None)),),
                    stops_updating=("Blumira sensors: no more log collection from the customer's network",))

    def cloud_connectors(self) -> Step:
        sid = "remove-cloud-connectors"
        return Step(id=sid, vendor=VENDOR, title="3. Remove cloud connectors",
                    why="Blumira's API has no cloud connector endpoint: done in the portal, recorded by the person "
                        "who did it.",
                    actions=(_manual("cloud-connectors.remove", "cloud connectors",
                                     "Remove every cloud connector of the customer",
                                     self.portal + "Settings > Cloud Connectors > Edit Cloud Connector → Remove",
                                     "Settings > Cloud Connectors lists no connector", step=sid,
                                     record="which connectors were removed",
                                     removes=Removal(one="Blumira cloud connector", many="Blumira cloud connectors",
                                                     verb="removed", count=None)),),
                    stops_updating=("Cloud connectors (Microsoft 365, firewalls, …): no more cloud logs",))

    def agents(self) -> Step:
        sid = "remove-agent-devices"
        devices = self.of("device")
        keys = self.of("agent_key")
        odd_devices = self.unattributed("device")
        odd_keys = self.unattributed("agent_key")
        actions: list[Action] = []
        uninstall = self.capability("agent_uninstall")
        where = self.portal + "Blumira Agent > Devices > Device details → Remove"
        if devices and uninstall is not None and uninstall.attrs.get("available"):
            for d in devices:
                actions.append(Action(
                    id=f"{VENDOR}.uninstall_device.{d.target.id}", vendor=VENDOR, step=sid, kind="api",
                    operation="uninstall_device", target=d.target,
                    summary=f"uninstall the Blumira Agent ({d.attrs.get('plat') or '?'}) by the "
                            f"{uninstall.target.name!r} action",
                    call=f"POST /msp/accounts/{self.s.account_id}/agents/devices/{d.target.id}/actions",
                    owner=self.owner,
                    manual=Manual(portal_path=where, done_when=f"{d.target.name} is no longer listed",
                                  verify_hint="GET the device answers 404"),
                    removes=Removal(one="Blumira Agent", many="Blumira Agents", verb="uninstalled")))
        if devices or odd_devices:
            listed = devices + odd_devices
            names = ", ".join(d.target.name for d in listed[:8]) + (" …" if len(listed) > 8 else "")
            actions.append(_manual("agents.remove-devices", "agent devices",
                                   f"Remove the {len(listed)} agent device(s): {names}" + _check_first(odd_devices),
                                   where, "Blumira Agent > Devices lists no device", step=sid,
                                   verify="the API lists no agent device for the account",
                                   removes=Removal(one="Blumira agent device", many="Blumira agent devices",
                                                   verb="removed from Blumira", count=len(listed))))
        if keys or odd_keys:
            actions.append(_manual("agents.remove-keys", "agent installation keys",
                                   f"Remove the {len(keys) + len(odd_keys)} agent installation key(s) so no new "
                                   "agent can enroll" + _check_first(odd_keys),
                                   self.portal + "Blumira Agent > Keys → remove each key",
                                   "Blumira Agent > Keys lists no key", step=sid,
                                   verify="the API lists no agent key for the account",
                                   removes=Removal(one="Blumira agent installation key",
                                                   many="Blumira agent installation keys", verb="removed",
                                                   count=len(keys) + len(odd_keys))))
        return Step(id=sid, vendor=VENDOR, title="4. Remove agent devices and keys",
                    why="Blumira's API cannot remove devices or keys: done in the portal; the API's device and key "
                        "lists prove it."
                        + (" The agent action catalog offers an uninstall action: it runs first." if uninstall
                           and uninstall.attrs.get("available") else ""),
                    actions=tuple(actions),
                    stops_updating=("Blumira Agent: no endpoint telemetry or response actions for these hosts",))

    def reports(self) -> Step:
        sid = "delete-scheduled-reports"
        return Step(id=sid, vendor=VENDOR, title="5. Delete scheduled reports",
                    why="Blumira's API has no report endpoint: done in the portal, recorded by the person who did it.",
                    actions=(_manual("reports.delete-scheduled", "scheduled reports",
                                     "Delete every scheduled report of the customer",
                                     self.portal + "Settings > Reporting > Scheduled Reports → delete each",
                                     "no scheduled report is listed", step=sid,
                                     record="which reports were deleted",
                                     removes=Removal(one="scheduled Blumira report", many="scheduled Blumira reports",
                                                     verb="deleted", count=None)),),
                    stops_updating=("Scheduled Blumira reports are no longer emailed",))

    def users(self) -> Step:
        sid = "remove-users"
        users = self.of("user")
        leaving = [u for u in users if u.attrs.get("email") not in self.s.keep_users]
        if not leaving:
            return Step(id=sid, vendor=VENDOR, title="6. Remove users", actions=())
        names = ", ".join(str(u.attrs.get("email") or u.target.name) for u in leaving)
        keep = ", ".join(self.s.keep_users) or "nobody"
        return Step(id=sid, vendor=VENDOR, title="6. Remove users who do not need access",
                    why="Removing users also stops their notifications. Blumira's API cannot remove users: done in the "
                        "portal; the API's user list proves it.",
                    actions=(_manual("users.remove", "users without access",
                                     f"Remove {len(leaving)} user(s): {names} (keep: {keep})",
                                     self.portal + "Settings > Users → the trash icon next to each → Delete",
                                     f"Settings > Users lists only: {keep}", step=sid,
                                     verify="the API lists only the users in keep_users",
                                     removes=Removal(one="Blumira user", many="Blumira users", verb="removed",
                                                     count=len(leaving))),),
                    stops_updating=("Blumira notifications to the removed users stop",))

    def webhooks(self) -> Step:
        sid = "remove-webhooks"
        actions: list[Action] = []
        for item in self.of("webhook"):
            actions.append(Action(
                id=f"{VENDOR}.delete_webhook.{item.target.id}", vendor=VENDOR, step=sid, kind="api",
                operation="delete_webhook", target=item.target,
                summary="delete the webhook endpoint limited to this customer's account",
                call=f"DELETE /msp/webhooks/{item.target.id}", owner=self.owner,
                manual=Manual(portal_path="MSP Portal → Integrations → Webhooks → the endpoint → Delete",
                              done_when=f"{item.target.name} is no longer listed",
                              verify_hint="GET /msp/webhooks/{id} answers 404"),
                removes=Removal(one="webhook for your findings", many="webhooks for your findings",
                                verb="deleted")))
        for item in self.inv.items:
            if item.target.type == "webhook" and item.attrs.get("mentions_customer") and item.owner != self.owner:
                actions.append(_manual(
                    f"webhook.review.{item.target.id}", f"webhook {item.target.name}",
                    f"Review webhook {item.target.name!r}: it names the customer but is not limited to their "
                    "account alone, so it is not deleted by API; delete it, or remove the customer from it",
                    "MSP Portal → Integrations → Webhooks", "no webhook delivers this customer's events",
                    step=sid, record="what was changed",
                    removes=Removal(one="shared webhook", many="shared webhooks",
                                    verb="changed to stop sending your findings")))
        return Step(id=sid, vendor=VENDOR, title="7. Remove webhooks that point at the customer",
                    why="Only an endpoint explicitly limited to this account is deleted by API; one that serves "
                        "other accounts is never touched.", actions=tuple(actions),
                    stops_updating=("Webhook deliveries of this customer's findings stop",))

    def support(self) -> Step:
        sid = "support-confirmation"
        return Step(id=sid, vendor=VENDOR, phase="closure", title="8. Blumira support confirms",
                    why="The document's last step: support confirms the full de-provisioning and the end date.",
                    actions=(_manual("support.confirmation", "Blumira support's confirmation",
                                     "Send the completion notice, then record Blumira support's confirmation "
                                     "that de-provisioning is complete",
                                     f"your mail client: the run folder → documents/{VENDOR}/{COMPLETE_FILE} "
                                     f"(drafted once every removal is done); then the reply from {SUPPORT}",
                                     "support confirmed completion and the date service ends", step=sid,
                                     record="the confirmation (ticket or email date) and the service end date"),))


def _check_first(odd: list[InventoryItem]) -> str:
    if not odd:
        return ""
    return ("; listed under this sub-account but with an owner the API does not prove, so never touched by API: "
            + ", ".join(f"{i.target.name} (org_id {i.attrs.get('org_id')!r})" for i in odd)
            + ": check each is the customer's before removing it")


def plan_exit(inventory: Inventory, settings: BlumiraSettings) -> PlanParts:
    planner = _Planner(inventory, settings)
    steps = planner.steps()
    return PlanParts(steps=tuple(steps), skipped=tuple(planner.skipped))
