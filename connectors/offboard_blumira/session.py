"""One opened Blumira MSP credential, for one sub-account: discovery (with the feature
detection the notes ask for), the few API operations, the re-reads, and the checks that
prove the manual items were done."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from offboard.connectors import ActionResult, Artifact, Check, ExitContext, PlanParts, Watched, reread_check
from offboard.errors import BadInput, VendorAuthError, VendorError
from offboard.lifecycle import TERMINAL
from offboard.plan import Action, Finding, Inventory, InventoryItem, Target, VendorPlan
from offboard.wire.http import HttpRecord, Reply, VendorHttp
from offboard.wire.spool import evidence_json

from . import notify, unknowns
from .auth import ClientCredentials
from .client import BlumiraClient
from .models import Account, Webhook
from .ownership import UNKNOWN, listed_owner, owner_of_account
from .settings import BlumiraSettings
from .steps import COMPLETE_FILE, NOTIFY_ITEM, REQUEST_FILE, SUPPORT_ITEM, VENDOR, plan_exit
from .watch import watch as watch_after_exit

# The manual items the API can check, and the list each is checked against.
LIST_CHECKED = {"agents.remove-devices": "device", "agents.remove-keys": "agent_key", "users.remove": "user"}
REFUSED_WRITE = frozenset({400, 403, 405, 422, 501})  # the API path itself is refused: a person does it


def find_uninstall(catalog: Any) -> str | None:
    """The catalog's schema is not published (unknowns.CATALOG_ENTRY_KEYS): look through it for
    an action whose name says uninstall, and use the catalog's own name for it."""
    if isinstance(catalog, str):
        return catalog if "uninstall" in catalog.lower() else None
    if isinstance(catalog, dict):
        for key in unknowns.CATALOG_ENTRY_KEYS:
            v = catalog.get(key)
            if isinstance(v, str) and "uninstall" in v.lower():
                return v
        catalog = list(catalog.values())
    if isinstance(catalog, list):
        for entry in catalog:
            if (found := find_uninstall(entry)) is not None:
                return found
    return None


class BlumiraSession:
    def __init__(self, http: VendorHttp, settings: BlumiraSettings, context: ExitContext | None, *,
                 auth: ClientCredentials | None = None) -> None:
        self.http = http
        self.auth = auth
        self.s = settings
        self.context = context
        self.client = BlumiraClient(http, settings.account_id, settings.page_size)
        self.owner = owner_of_account(settings.account_id)
        self._uninstall: str | None = None
        self._name: str | None = None  # the sub-account's name, as discovery last read it

    def close(self) -> None:
        self.http.close()

    @property
    def calls_made(self) -> int:
        return self.http.calls

    # -- discovery -------------------------------------------------------------------

    def account(self) -> Account:
        try:
            account, _ = self.client.account()
        except VendorAuthError as exc:
            raise VendorAuthError(VENDOR.capitalize(), exc.call, f"HTTP {exc.status}: these credentials may not "
                                  "read the MSP sub-account; MSP API credentials (MSP Portal → Integrations → "
                                  "Generate API Credentials) are needed, not an organization's", exc.status) from None
        if account is None:
            raise BadInput(f"Blumira sub-account {self.s.account_id} was not found, or these MSP credentials "
                           "cannot see it; check [blumira] account_id (MSP Portal → Accounts)")
        if account.account_id != self.s.account_id:
            raise BadInput(f"Blumira answered account {account.account_id} for {self.s.account_id}; "
                           "check [blumira] account_id")
        return account

    def exit_identity(self) -> str:
        """The sub-account as Blumira names it (``GET /msp/accounts/{id}``'s ``account_id``, a UUID:
        one sub-account however it is spelled or whichever MSP credential reaches it). No documented
        call names the MSP account itself, so the sub-account alone keys the lock."""
        return f"blumira sub-account {self.account().account_id.strip().lower()}"

    def discover(self) -> Inventory:
        account = self.account()
        name = account.name or self.s.account_id
        self._name = account.name or ""
        items: list[InventoryItem] = [InventoryItem(
            target=Target(type="account", id=account.account_id, name=name), owner=self.owner,
            attrs={"license": account.license})]
        devices = self._listed("device")
        keys = self._listed("agent_key")
        users = self._listed("user")
        items += devices + keys + users
        hooks, others = self._webhooks(name)
        items += hooks
        items.append(self._detect_uninstall())
        findings_total, _ = self.client.total(self.client.path("findings"))
        snapshot = {
            "account": name,
            "account_id": account.account_id,
            "license": account.license,
            "agent_devices": len(devices),
            "agent_keys": len(keys),
            "users": len(users),
            "findings_total": findings_total,
            "open_findings": account.open_findings,
            "agent_count_used": account.agent_count_used,
            "webhooks_of_other_accounts": others,
        }
        moving = {"no": "", "self": "; moves to self-management", "msp": "; moves to another MSP",
                  "unknown": "; whether it moves is unknown"}[self.s.account_moves_to]
        return Inventory(vendor=VENDOR, scope=f"sub-account {name!r} (id {account.account_id}){moving}",
                         account="MSP API credentials", snapshot=snapshot, items=tuple(items))

    def _listed(self, kind: str) -> list[InventoryItem]:
        """One of the lists a manual item is checked against, as inventory items. Everything
        here was listed under the sub-account's own path; whose it is comes from ownership."""
        def item(target: Target, org_id: str | None, attrs: dict[str, Any]) -> InventoryItem:
            owner, why = listed_owner(self.s.account_id, org_id)
            if org_id is not None:
                attrs["org_id"] = org_id
            if why:
                attrs["why_unknown"] = why
            return InventoryItem(target=target, owner=owner, attrs=attrs)

        if kind == "device":
            return [item(Target(type="device", id=d.device_id, name=d.hostname or d.device_id), d.org_id,
                         {"plat": d.plat, "is_isolated": d.is_isolated, "alive": d.alive})
                    for d in self.client.devices()]
        if kind == "agent_key":
            return [item(Target(type="agent_key", id=k.key_id, name=k.description or k.key_id), k.org_id,
                         {"agent_count": k.agent_count}) for k in self.client.agent_keys()]
        # The notes give users no org_id (vendor-notes §2.4): the path is the only proof there is.
        return [item(Target(type="user", id=u.id, name=u.describe()), None,
                     {"email": u.email.strip().lower(), "administrator": u.is_admin})
                for u in self.client.users()]

    def _webhooks(self, name: str) -> tuple[list[InventoryItem], int]:
        """The MSP's endpoints that concern this customer; the others are only counted, never
        listed in the plan (they are other customers' business)."""
        mine: list[InventoryItem] = []
        others = 0
        for hook in self.client.webhooks():
            if not self._concerns_customer(hook, name):
                others += 1
                continue
            owner = self._hook_owner(hook)
            target = Target(type="webhook", id=hook.id, name=hook.name or hook.url or hook.id)
            attrs: dict[str, Any] = {"mentions_customer": owner != self.owner or _mentions(hook, name)}
            if owner != self.owner:
                attrs["why_not"] = ("names the customer but is not limited to any account: not deleted by API"
                                    if owner == "msp" else
                                    "also serves other sub-accounts: not deleted by API (a manual review item)")
            mine.append(InventoryItem(target=target, owner=owner, attrs=attrs))
        return mine, others

    def _hook_owner(self, hook: Webhook) -> str:
        """Whose a webhook endpoint is: this sub-account's alone, several accounts', or the MSP's."""
        accounts = hook.accounts()
        if accounts is None:
            return "msp"
        return self.owner if accounts == [self.s.account_id] else "accounts:" + ",".join(sorted(accounts))

    def _concerns_customer(self, hook: Webhook, name: str) -> bool:
        accounts = hook.accounts()
        return self.s.account_id in (accounts or []) or (accounts is None and _mentions(hook, name))

    def _detect_uninstall(self) -> InventoryItem:
        """Whether agents can be uninstalled by API (vendor-notes §4 q.2): asked, never assumed.
        Both unknowns must be settled: the catalog must answer these credentials and offer an
        uninstall, and the dispatch body's field must be known (unknowns.DISPATCH_BODY)."""
        call = f"GET {unknowns.ACTION_CATALOG_PATH}"
        found: str | None = None
        try:
            reply = self.client.action_catalog()
        except VendorError as exc:
            why = f"{call} could not be read ({exc}): not offered"
        else:
            if reply.status >= 400:
                why = (f"{call} answered HTTP {reply.status} to these MSP credentials, so it is not offered: "
                       f"{unknowns.ACTION_CATALOG.why}")
            else:
                found = find_uninstall(reply.body)
                why = (f"{call} offers {found!r}" if found else f"{call} lists no uninstall action")
        field = unknowns.DISPATCH_ACTION_FIELD
        if found is not None and field is None:
            why += f", but nothing is sent: {unknowns.DISPATCH_BODY.why}"
        usable = found if found is not None and field is not None else None
        self._uninstall = usable
        return InventoryItem(target=Target(type="capability", id="agent_uninstall", name=usable or "none"),
                             owner="vendor", attrs={"available": usable is not None, "why": why,
                                                    "dispatch_field": field if usable else None})

    def _credentials(self, inventory: Inventory) -> Finding:
        """Whether these credentials may make the planned writes, where the token says so. A write
        Blumira refuses becomes a manual item (the exit still completes), so this informs, never blocks."""
        writes = [a for s in self.plan(inventory).steps for a in s.actions if a.kind == "api" and a.destructive]
        scope = self.auth.scope if self.auth is not None else None
        if scope is None:
            detail = ("the token names no scope: whether MSP credentials may write is found at the first write "
                      "(vendor-notes: unconfirmed); a refused write becomes a manual item")
        elif read_only(scope):
            detail = (f"the token's scope ({scope!r}) is read-only: the {len(writes)} planned write(s) "
                      + (f"(first: {writes[0].call}) " if writes else "")
                      + "will be refused and become manual items, checked by the API when confirmed")
        else:
            detail = f"the token's scope ({scope!r}) allows writes"
        count = len(writes) if scope is not None and read_only(scope) else 0
        return Finding(vendor=VENDOR, kind="credentials", count=count, blocking=False, detail=detail)

    def preflight(self, inventory: Inventory) -> list[Finding]:
        cap = next(i for i in inventory.items if i.target.type == "capability")
        devices = [i for i in inventory.items if i.target.type == "device"]
        findings = [self._credentials(inventory), Finding(
            vendor=VENDOR, kind="agent_uninstall_by_api", count=int(bool(cap.attrs["available"])), blocking=False,
            detail=str(cap.attrs["why"]) + ("; agents are uninstalled by API first" if cap.attrs["available"]
                                           else "; agent devices are a manual item, checked by the device list"))]
        isolated = [d for d in devices if d.attrs.get("is_isolated")]
        findings.append(Finding(
            vendor=VENDOR, kind="isolated_devices", count=len(isolated), blocking=False,
            detail=", ".join(d.target.name for d in isolated[:5]) + ": release isolation before removing them"
            if isolated else "no device is isolated"))
        open_findings = inventory.snapshot.get("open_findings")
        findings.append(Finding(
            vendor=VENDOR, kind="open_findings", count=int(open_findings or 0), blocking=False,
            detail="for information: every finding is exported with its evidence and comments before teardown"))
        return findings

    def plan(self, inventory: Inventory) -> PlanParts:
        return plan_exit(inventory, self.s)

    # -- execution -------------------------------------------------------------------

    def execute(self, action: Action) -> ActionResult:
        op = action.operation
        if op == "draft.notification":
            with self.http.recording() as calls:  # the account's name and licence fill the draft
                account = self.account()
            eml = notify.draft(account.name or self.s.account_id, account.license, self.s, self.context,
                               complete=False)
            return ActionResult("success", f"drafted {REQUEST_FILE} for the license {account.license!r}", None,
                                artifacts=(Artifact(REQUEST_FILE, eml, draft_for=NOTIFY_ITEM, requests=tuple(calls)),))
        if op.startswith("export."):
            return self._export(action)
        if op == "delete_webhook":
            return self._write(action, self.client.delete_webhook(action.target.id), "webhook endpoint deleted")
        if op == "uninstall_device":
            field = unknowns.DISPATCH_ACTION_FIELD
            if self._uninstall is None or field is None:
                return ActionResult("failure", "uninstall by API is not offered now (the catalog or the dispatch "
                                    "body could not be confirmed); remove the device in the portal",
                                    manual_fallback=True)
            # Even a confirmed field may be refused: that is a refused write, and a person does it.
            reply = self.client.dispatch_action(action.target.id, {field: self._uninstall})
            return self._write(action, reply, f"{self._uninstall!r} dispatched to the agent")
        raise BadInput(f"plan action {action.id} has operation {op!r}, which this Blumira connector does not "
                       "know; make a new plan")

    def _write(self, action: Action, reply: Reply, done: str) -> ActionResult:
        if reply.status in REFUSED_WRITE:
            # The notes could not confirm MSP keys may write (vendor-notes §1.3): found out now.
            return ActionResult("failure", f"Blumira refused {action.call} (HTTP {reply.status}); these "
                                "credentials may not make this change by API, so it is a manual item",
                                reply.record, manual_fallback=True)
        if reply.status == 404:
            settled = self.reread(action)
            if settled.outcome == "success":
                return ActionResult("success", "the vendor answered 404; re-read confirms it is gone",
                                    settled.http, already_absent=True)
            return ActionResult("failure", "the vendor answered 404 but it is still listed", reply.record)
        return ActionResult("success", done, reply.record)

    def _export(self, action: Action) -> ActionResult:
        what = action.operation.removeprefix("export.")
        with self.http.recording() as calls:
            data, count = self._exported(action, what)
        # The requests are per file (Artifact.requests): the action's line carries no single call.
        return ActionResult("success", f"{count} record(s) exported", None,
                            artifacts=(Artifact(f"{what}.json", evidence_json(data), requests=tuple(calls)),))

    def _exported(self, action: Action, what: str) -> tuple[Any, int]:
        c = self.client
        if what == "account":
            body, _ = c.one_raw(c.path())
            data: Any = body
            count = 1
        elif what == "findings":
            findings = list(c.list_raw(c.path("findings")))
            for f in findings:  # each finding with what an auditor needs beside it
                fid = f.get("finding_id")  # the notes' name (§2.4); no other is guessed
                if fid is None:
                    continue
                rows, keys, comments = c.finding_extras(str(fid))
                f["evidence"] = {"evidence_keys": keys, "rows": rows}
                f["comments"] = comments
            data, count = findings, len(findings)
        elif what in ("devices", "keys"):
            data = list(c.list_raw(c.path("agents", what)))
            count = len(data)
        elif what == "users":
            data = list(c.list_raw(c.path("users")))
            count = len(data)
        elif what == "detection_rules":
            data = list(c.list_raw(c.path("detection-rules")))
            count = len(data)
        elif what == "webhooks":
            # The name discovery read (apply always discovers before it executes): no second GET.
            name = self._name if self._name is not None else (self.account().name or "")
            data = [w.model_dump() for w in c.webhooks() if self._concerns_customer(w, name)]
            count = len(data)
        else:
            raise BadInput(f"plan action {action.id} exports {what!r}, which this connector does not know")
        return data, count

    # -- the scope guard's read -------------------------------------------------------

    def owner_now(self, action: Action) -> ActionResult:
        """One GET of the action's object alone: the device under the sub-account's own path
        (``/msp/accounts/{account_id}/agents/devices/{id}``: the path is the proof, and an org_id
        that names something else makes it unknown), or the webhook (``/msp/webhooks/{id}``: whose
        it is, from the accounts it names now)."""
        oid = action.target.id
        if action.operation == "uninstall_device":
            device, record = self.client.device(oid)
            if device is None:
                return _gone(record)
            owner, why = listed_owner(self.s.account_id, device.org_id)
            return ActionResult("failure", "the device is listed under the sub-account" + (f" ({why})" if why else ""),
                                record, owner=owner)
        if action.operation == "delete_webhook":
            return self.reread(action)
        return ActionResult("unknown", f"no read of one object for {action.operation}")

    # -- re-reads ----------------------------------------------------------------------

    def reread(self, action: Action) -> ActionResult:
        oid = action.target.id
        if action.operation == "uninstall_device":
            device, record = self.client.device(oid)
            if device is None:
                return _gone(record)
            owner, why = listed_owner(self.s.account_id, device.org_id)
            # The uninstall is asynchronous: a device still listed does not prove an earlier
            # dispatch did not land, so this never licenses a second dispatch (it stays unknown
            # until the device goes, or a person confirms it).
            return ActionResult("unknown", "the device is still listed; an uninstall dispatched earlier may still "
                                "be on its way" + (f" ({why})" if why else ""), record, owner=owner)
        if action.operation == "delete_webhook":
            hook, record = self.client.webhook(oid)
            if hook is None:
                return _gone(record)
            return ActionResult("failure", "the webhook endpoint is still listed", record,
                                owner=self._hook_owner(hook))
        return ActionResult("unknown", f"no re-read for {action.operation}")

    # -- verification ----------------------------------------------------------------

    def verify(self, vendor_plan: VendorPlan | None, inventory: Inventory) -> list[Check]:
        """With a plan: re-read each object its API actions removed (the manual items are
        re-read when they are confirmed). Without one (`offboard verify`): whether devices,
        keys and users are gone, from the lists."""
        if vendor_plan is None:
            return [self._list_check(op, list(inventory.items)) for op in LIST_CHECKED]
        checks = []
        for action in (a for s in vendor_plan.steps for a in s.actions if a.kind == "api" and a.destructive):
            checks.append(reread_check(action, self.reread(action)))
        # A list the plan had no item for (empty when planned) must still be empty: what shows up
        # since counts against "stopped" too.
        covered = {a.operation for s in vendor_plan.steps for a in s.actions if a.kind == "manual"}
        checks += [self._list_check(op, list(inventory.items)) for op in LIST_CHECKED if op not in covered]
        return checks

    def watch(self, since: datetime) -> list[Watched]:
        return watch_after_exit(self, since)

    def documents(self, vendor_plan: VendorPlan, states: Mapping[str, str]) -> tuple[Artifact, ...]:
        """The notice that de-provisioning is complete ("De-provisioning complete? yes", the
        document's template filled again), once every removal step of the plan is done or
        confirmed; before that there is nothing to send but the request, kept as evidence."""
        removals = [a for s in vendor_plan.steps if s.phase == "removal" for a in s.actions]
        if not all(states.get(a.id) in TERMINAL for a in removals):
            return ()
        snap = vendor_plan.snapshot
        eml = notify.draft(str(snap.get("account") or self.s.account_id), snap.get("license"), self.s, self.context,
                           complete=True)
        return (Artifact(COMPLETE_FILE, eml, draft_for=SUPPORT_ITEM),)

    def check_manual(self, action: Action) -> Check | None:
        if action.operation in ("uninstall_device", "delete_webhook"):  # an API action a person did instead
            return reread_check(action, self.reread(action))
        if action.operation in LIST_CHECKED:
            listed = self._listed(LIST_CHECKED[action.operation])
            check = self._list_check(action.operation, listed)
            return Check(check.name, check.passed, check.detail, http=self.http.last_call, action_id=action.id)
        return None

    def _list_check(self, op: str, listed: list[InventoryItem]) -> Check:
        """Fails closed: everything the sub-account's list holds counts, whoever it can be
        attributed to; an object whose owner is unknown is named as such."""
        def under_account(kind: str) -> list[InventoryItem]:
            return [i for i in listed if i.target.type == kind]

        base = self.client.path()
        if op == "agents.remove-devices":
            left = under_account("device")
            return Check("no agent device listed", not left,
                         f"GET {base}/agents/devices lists {len(left)} device(s)" + _named(left))
        if op == "agents.remove-keys":
            left = under_account("agent_key")
            return Check("no agent key listed", not left,
                         f"GET {base}/agents/keys lists {len(left)} key(s)" + _named(left))
        users = under_account("user")
        extra = [i for i in users if i.owner == UNKNOWN or i.attrs.get("email") not in self.s.keep_users]
        return Check("only the users to keep remain", not extra, f"GET {base}/users lists {len(users)} user(s)"
                     + (", of which not to keep" + _named(extra, by_email=True) if extra else ", all in keep_users"))


def _named(items: list[InventoryItem], *, by_email: bool = False, most: int = 5) -> str:
    """": A, B (owner unknown: …), …" for a check's detail; every unknown owner is named."""
    if not items:
        return ""
    shown = items[:most] + [i for i in items[most:] if i.owner == UNKNOWN]

    def one(i: InventoryItem) -> str:
        name = str(i.attrs.get("email") or i.target.name) if by_email else i.target.name
        return name + (f" (owner unknown: {i.attrs.get('why_unknown', 'not attributed')})"
                       if i.owner == UNKNOWN else "")

    more = len(items) - len(shown)
    return ": " + ", ".join(one(i) for i in shown) + (f" and {more} more" if more > 0 else "")


def read_only(scope: str) -> bool:
    """A scope every part of which reads and none writes (e.g. "read", "findings:read")."""
    parts = [p.lower() for p in scope.replace(",", " ").split()]
    return bool(parts) and all("read" in p and "write" not in p and p != "*" for p in parts)


def _gone(record: HttpRecord) -> ActionResult:
    return ActionResult("success", "re-read answers 404: gone", record, already_absent=True)


def _mentions(hook: Webhook, name: str) -> bool:
    needle = name.strip().lower()
    return bool(needle) and needle in f"{hook.name} {hook.url}".lower()
