"""A test double of the Blumira public API for MSPs (a Starlette app). NOT Blumira.

It answers as the vendor notes document (vendor-notes §1, §2), and only as far as they do:
OAuth2 client credentials at ``/oauth/token`` (JSON or form body with exactly the notes'
four fields, ``audience`` must be ``public-api``) giving a bearer token with ``expires_in``;
``/public-api/v1/msp/accounts/{account_id}/…`` lists in the ``{status, data, meta, links}``
envelope with 1-based ``page`` and ``page_size`` ≤ 200; single objects in ``{status, data}``;
evidence with ``evidence_keys`` beside the rows; comments as a bare array; objects with the
field names (and case) of §2.4; 10 requests per second per key answering 429 (without
Retry-After unless told: the notes could not confirm it). No endpoint removes sensors,
connectors, devices, keys, reports or users: as at Blumira, only the portal can.

Where the notes are silent the double says so and stays strict: the agent action catalog is
an organization endpoint and refuses MSP credentials unless told otherwise; the agent action
dispatch accepts no body field unless a test names one (``dispatch_action_field``), so a
guessed field fails; a write carrying a field the notes do not name is a 400. Webhook
endpoint and detection rule fields are not published: the double's are invented and marked.

Which sub-account an object is listed under is kept beside it (``_account``, never sent),
not read from its ``org_id``: the notes never say the two are equal.

Seeded with a demo customer (Acme Dental: agent devices and keys, users, findings with
evidence and comments, detection rules, a webhook limited to it) and a neighbouring
sub-account of the same MSP that an exit of Acme must never touch or even list.
``/_sandbox/portal/…`` stands in for the person doing the portal-only steps.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from offboard.connectors.sandboxing import Fault, Logged, SandboxBase

__all__ = ["BlumiraSandbox", "Fault", "Logged"]

API_PREFIX = "/public-api/v1"
TOKEN_PATH = "/oauth/token"
DEMO_CLIENT_ID = "sandbox-msp-client-id"
DEMO_SECRET = "blu_sandbox_client_secret_not_real"
CUSTOMER_ACCOUNT = "6a1f5c2e-0c1d-4b8e-9d40-acme00000001"
NEIGHBOUR_ACCOUNT = "9b7e3d41-5f2a-4c6b-8e19-bright000002"
KEEP_USER = "it-admin@acme.example"


def keep_user_of(account: str) -> str:
    """The administrator each sandbox customer keeps (a batch's other customers have their own)."""
    return KEEP_USER if account == CUSTOMER_ACCOUNT else f"it-admin@c{account[-4:]}.example"
ACCOUNT = "_account"  # which sub-account lists the object: the double's bookkeeping, never sent

TOKEN_FIELDS = frozenset({"grant_type", "client_id", "client_secret", "audience"})  # vendor-notes §1.2
LIST_PARAMS = frozenset({"page", "page_size", "order_by", "limit"})  # vendor-notes §1.5
FINDING_FILTERS = frozenset({"status", "priority", "category", "name", "blocked", "created", "modified",
                             "created_by", "modified_by", "resolution", "type", "status_modified_by"})  # §1.6
FINDING_SHORTCUTS = frozenset({"created_after", "created_before", "modified_after", "modified_before"})
FILTER = re.compile(r"^(?P<field>[a-z_]+)(\.(?P<op>!?(eq|in|contains|regex|gt|lt)))?$")
# Role ids: the notes' mock shows only 40 / "responder" (vendor-notes §2.4); the others are invented.
ROLES = {"administrator": 10, "manager": 20, "monitor": 30, "responder": 40}


@dataclass
class BlumiraSandbox(SandboxBase):
    time_scale: float = 1.0
    customer_devices: int = 8
    customer_findings: int = 25
    rate_limit: int = 10
    send_retry_after: bool = False
    token_lifetime: int = 3600
    offers_uninstall: bool = False  # the catalog lists an uninstall action (unverified at Blumira)
    # The catalog is an organization endpoint (vendor-notes §2.3 #44): MSP credentials are
    # refused unless a test says otherwise (200), or refused another way (e.g. 401, 404, 501).
    catalog_status: int = 403
    # The dispatch body's field names are not published (vendor-notes §2.2 #15): the double
    # accepts no field at all unless a test names the one that carries the action.
    dispatch_action_field: str | None = None
    webhook_writes: bool = True  # False: MSP keys are read-only (vendor-notes §1.3)
    # An uninstall is asynchronous (202 + command id): the agent acts later. True: the device
    # stays listed after the dispatch until a test removes it, as a slow agent would.
    uninstall_is_slow: bool = False
    extra_clients: dict[str, str] = field(default_factory=dict)  # more client id -> secret pairs
    token_scope: str | None = None  # a scope in the token reply (unconfirmed at Blumira: none by default)
    # More sub-accounts of the same MSP (a batch exit): account id -> agent devices. Each has one key,
    # a few findings, the user to keep and one to remove, and no webhook.
    more_accounts: dict[str, int] = field(default_factory=dict)
    requests: list[Logged] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)  # every write body the double accepted
    base_window = 1.0

    def __post_init__(self) -> None:
        self._init_gate()
        self.tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self.issued: list[str] = []  # every token ever minted (tests grep outputs for them)
        self.clients = {DEMO_CLIENT_ID: DEMO_SECRET, **self.extra_clients}
        self.accounts: dict[str, dict[str, Any]] = {}
        self.devices: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.findings: dict[str, dict[str, Any]] = {}
        self.rules: list[dict[str, Any]] = []
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.portal_state: dict[str, dict[str, int]] = {}  # what the API cannot see: sensors, connectors, reports
        self._seed()
        p = API_PREFIX + "/msp/accounts/{account_id}"
        routes = [
            Route(TOKEN_PATH, self._token, methods=["POST"]),
            Route(API_PREFIX + "/msp/accounts", self._accounts),
            Route(p, self._account),
            Route(p + "/findings", self._findings),
            Route(p + "/findings/{finding_id}/evidence", self._evidence),
            Route(p + "/findings/{finding_id}/comments", self._comments),
            Route(p + "/agents/devices", self._devices),
            Route(p + "/agents/devices/{device_id}", self._device),
            Route(p + "/agents/devices/{device_id}/actions", self._dispatch, methods=["POST"]),
            Route(p + "/agents/keys", self._keys),
            Route(p + "/users", self._users),
            Route(p + "/detection-rules", self._rules),
            Route(API_PREFIX + "/msp/webhooks", self._webhooks),
            Route(API_PREFIX + "/msp/webhooks/{id}", self._webhook, methods=["GET", "DELETE"]),
            Route(API_PREFIX + "/org/agents/actions", self._catalog),
            Route("/_sandbox/portal/{item}", self._portal, methods=["POST"]),
            Route("/_sandbox/watch/{what}", self._after_exit, methods=["POST"]),
        ]
        routes += self.control_routes()
        self.app = self.gated(Starlette(routes=routes))

    # -- seed data: the notes' field names and example values (vendor-notes §2.4) --------------

    def _seed(self) -> None:
        for acct, name, devices, findings in (
            (CUSTOMER_ACCOUNT, "Acme Dental", self.customer_devices, self.customer_findings),
            (NEIGHBOUR_ACCOUNT, "Bright Smiles Orthodontics", 5, 10),
            *((a, f"Customer {a[-4:]}", n, 3) for a, n in self.more_accounts.items()),
        ):
            # "PRO" is the only license value the notes show (the mock of /msp/accounts/{id}).
            self.accounts[acct] = {"account_id": acct, "name": name, "open_findings": 0, "license": "PRO",
                                   "agent_count_available": 50, "agent_count_used": 0, "user_count": 0}
            self.portal_state[acct] = {"sensors": 2, "cloud_connectors": 3, "scheduled_reports": 4}
            short = acct[-4:]
            for k in range(2 if acct == CUSTOMER_ACCOUNT else 1):
                kid = f"key-{short}-{k}"
                self.keys[kid] = {ACCOUNT: acct, "key_id": kid, "description": f"{name} install key {k + 1}",
                                  "agent_count": 0, "agent_seat_count": 50, "org_id": acct,
                                  "created": "2025-01-10T09:00:00.000", "modified": "2025-01-10T09:00:00.000"}
            for d in range(devices):
                did = f"dev-{short}-{d:03d}"
                key = f"key-{short}-{d % (2 if acct == CUSTOMER_ACCOUNT else 1)}"
                self.keys[key]["agent_count"] += 1
                self.devices[did] = {
                    ACCOUNT: acct, "device_id": did, "hostname": f"{name.split()[0].upper()}-PC{d:02d}",
                    "arch": "x64", "plat": ("windows", "macos", "linux")[d % 3], "description": "",
                    "is_domain_controller": False, "is_excluded": False, "is_isolated": False,
                    "is_sleeping": False, "isolation_requested": False, "key_id": key,
                    "keyname": self.keys[key]["description"], "org_id": acct,
                    "alive": "2026-11-20T08:00:00.000", "created": "2025-02-01T09:00:00.000",
                    "modified": "2026-11-20T08:00:00.000"}
            for f in range(findings):
                fid = f"fnd-{short}-{f:04d}"
                status = 10 if f % 5 == 0 else 40  # 10 = Open (vendor-notes §2.4); 40 is invented
                self.findings[fid] = {
                    ACCOUNT: acct, "finding_id": fid, "short_id": f"F{f:04d}",
                    "name": ("Suspicious PowerShell", "Login from new country", "Honeypot access")[f % 3],
                    "analysis": "<p>Reviewed by the SOC.</p>", "status": status,
                    "status_name": "Open" if status == 10 else "Resolved", "priority": 1 + f % 5,
                    "type_name": "Threat", "org_id": acct, "org_name": name,
                    "created": f"2026-{1 + f % 10:02d}-15T10:00:00.000",
                    "modified": f"2026-{1 + f % 10:02d}-16T10:00:00.000"}
                if status == 10:
                    self.accounts[acct]["open_findings"] += 1
            # Detection rule fields are not published (vendor-notes §2.2 #20): invented.
            self.rules += [{ACCOUNT: acct, "rule_id": f"rule-{short}-{r}", "name": f"Detector {r}",
                            "enabled": True} for r in range(3)]
        c, n = CUSTOMER_ACCOUNT, NEIGHBOUR_ACCOUNT
        for uid, acct, email, first, role in (
            ("u-1", c, KEEP_USER, "Ada", "administrator"), ("u-2", c, "frontdesk@acme.example", "Ben", "monitor"),
            ("u-3", c, "tech@sandbox-msp.example", "Cy", "responder"),
            ("u-4", c, "former-it@acme.example", "Dee", "administrator"),
            ("u-5", n, "owner@brightsmiles.example", "Eve", "administrator")):
            # A user carries no org_id in the notes (vendor-notes §2.4): only the list it is under says whose.
            self.users[uid] = {ACCOUNT: acct, "id": uid, "email": email, "first_name": first, "last_name": "Test",
                               "org_roles": [{"role_id": ROLES[role], "role_name": role}]}
        for acct in self.more_accounts:  # a batch's other customers: the user to keep and a leaver each
            for uid, email, role in ((f"u-{acct[-4:]}-1", keep_user_of(acct), "administrator"),
                                     (f"u-{acct[-4:]}-2", f"leaver@c{acct[-4:]}.example", "monitor")):
                self.users[uid] = {ACCOUNT: acct, "id": uid, "email": email, "first_name": "Test",
                                   "last_name": "User", "org_roles": [{"role_id": ROLES[role], "role_name": role}]}
        # Webhook endpoint fields are not published (vendor-notes §2.4): invented. "account_ids"
        # is one of the fields the connector looks for (unknowns.WEBHOOK_ACCOUNT_LIST_FIELDS).
        self.webhooks = {
            "wh-1": {"id": "wh-1", "name": "Acme Dental findings → PSA", "url": "https://psa.example/hooks/acme",
                     "account_ids": [c], "enabled": True},
            "wh-2": {"id": "wh-2", "name": "Bright Smiles → PSA", "url": "https://psa.example/hooks/bright",
                     "account_ids": [n], "enabled": True},
            "wh-3": {"id": "wh-3", "name": "All accounts → SIEM", "url": "https://siem.example/ingest",
                     "enabled": True},
        }

    def of(self, store: dict[str, dict[str, Any]], account: str) -> list[dict[str, Any]]:
        """The objects listed under a sub-account (as the double keeps them, bookkeeping included)."""
        return [v for v in store.values() if v.get(ACCOUNT) == account]

    def put(self, store: dict[str, dict[str, Any]], account: str, obj: dict[str, Any], key: str) -> None:
        """List ``obj`` under ``account`` exactly as given (a test's own object, fields and all)."""
        store[key] = {**obj, ACCOUNT: account}

    # -- gate hooks -------------------------------------------------------------------

    def unauthenticated(self, path: str) -> bool:
        return path == TOKEN_PATH or super().unauthenticated(path)

    def authorize(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        expiry = self.tokens.get(token)
        return "msp" if expiry is not None and time.monotonic() < expiry else None

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        # The error body's shape was not found; the notes guess RFC 7807 (vendor-notes §1.7).
        return JSONResponse({"type": "about:blank", "title": _TITLES.get(status, "Error"), "status": status,
                             "detail": message}, status_code=status, headers=headers)

    def expire_tokens(self) -> None:
        """Every issued token stops working (as when it expires early or is revoked)."""
        self.tokens.clear()

    # -- what the double receives -----------------------------------------------------

    def _unknown_params(self, request: Request, allowed: Callable[[str], bool]) -> Response | None:
        bad = sorted(k for k in request.query_params if not allowed(k))
        return self.error(400, f"unknown query parameter(s): {', '.join(bad)}") if bad else None

    async def _body(self, request: Request, allowed: Iterable[str]) -> tuple[dict[str, Any] | None, Response | None]:
        """A write's JSON object body, refused when it is not one or names a field the notes do not."""
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            return None, self.error(400, "the body is not JSON")
        if not isinstance(body, dict):
            return None, self.error(400, "the body must be a JSON object")
        unknown = sorted(set(body) - set(allowed))
        if unknown:
            return None, self.error(400, f"unknown field(s): {', '.join(unknown)}")
        self.received.append({"path": request.url.path, "body": body})
        return body, None

    # -- routes -----------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip().startswith(b"{") else {
                k: v[0] for k, v in parse_qs(raw.decode()).items()}
        except ValueError:
            body = {}
        if not isinstance(body, dict) or set(body) - TOKEN_FIELDS:
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        if body.get("grant_type") != "client_credentials" or body.get("audience") != "public-api":
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        secret = self.clients.get(str(body.get("client_id")))
        if secret is None or body.get("client_secret") != secret:
            return JSONResponse({"error": "access_denied"}, status_code=401)
        token = "eyJsandbox." + secrets.token_urlsafe(24)
        self.tokens[token] = time.monotonic() + self.token_lifetime
        self.issued.append(token)
        reply: dict[str, Any] = {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime}
        if self.token_scope is not None:
            reply["scope"] = self.token_scope
        return JSONResponse(reply)

    def _acct(self, request: Request) -> str | None:
        acct = str(request.path_params["account_id"])
        return acct if acct in self.accounts else None

    def _listing(self, request: Request, of_account: Callable[[str], list[dict[str, Any]]],
                 allowed: Callable[[str], bool] = LIST_PARAMS.__contains__) -> Response:
        acct = self._acct(request)
        if acct is None:
            return self.error(404, "Account not found")
        return self._unknown_params(request, allowed) or _page(request, of_account(acct), self)

    def _single(self, obj: dict[str, Any]) -> Response:
        return JSONResponse({"status": "OK", "data": public(obj)})

    async def _accounts(self, request: Request) -> Response:
        # The list item carries only these three (vendor-notes §2.4); the detail adds the rest.
        return self._unknown_params(request, LIST_PARAMS.__contains__) or _page(
            request, [{k: a[k] for k in ("account_id", "name", "open_findings")} for a in self.accounts.values()],
            self)

    async def _account(self, request: Request) -> Response:
        acct = self._acct(request)
        if acct is None:
            return self.error(404, "Account not found")
        a = dict(self.accounts[acct])
        for count, store in (("agent_count_used", self.devices), ("user_count", self.users)):
            if count in a:  # live, unless a test's own account object leaves the field out
                a[count] = len(self.of(store, acct))
        return self._single(a)

    async def _findings(self, request: Request) -> Response:
        return self._listing(request, lambda acct: self.of(self.findings, acct), _finding_param)

    def _finding(self, request: Request) -> dict[str, Any] | None:
        acct = self._acct(request)
        f = self.findings.get(request.path_params["finding_id"])
        return f if f is not None and acct is not None and f[ACCOUNT] == acct else None

    async def _evidence(self, request: Request) -> Response:
        f = self._finding(request)
        if f is None:
            return self.error(404, "Finding not found")
        if (refused := self._unknown_params(request, LIST_PARAMS.__contains__)) is not None:
            return refused
        rows = [{"timestamp": f"2026-10-0{i + 1}T10:00:00", "src_ip": f"10.0.0.{i + 1}", "user": "jdoe"}
                for i in range(3)]
        resp = _page(request, rows, self)
        if resp.status_code != 200:
            return resp
        body = json.loads(bytes(resp.body))
        # The notes' example: {"data":[…],"evidence_keys":[…],"meta":{…},"status":"OK"} (vendor-notes §1.5).
        return JSONResponse({"status": body["status"], "data": body["data"],
                             "evidence_keys": ["timestamp", "src_ip", "user"], "meta": body["meta"]})

    async def _comments(self, request: Request) -> Response:
        f = self._finding(request)
        if f is None:
            return self.error(404, "Finding not found")
        comments = [{"id": f"c-{f['finding_id']}", "body": "<p>Reviewed by the SOC.</p>", "age": 3600,
                     "sender": {"id": "u-3", "email": "tech@sandbox-msp.example", "first_name": "Cy",
                                "last_name": "Test"}}]
        return JSONResponse(comments)  # a bare array, as the notes' mocks show

    async def _devices(self, request: Request) -> Response:
        return self._listing(request, lambda acct: self.of(self.devices, acct))

    def _listed_device(self, request: Request) -> dict[str, Any] | None:
        acct = self._acct(request)
        d = self.devices.get(request.path_params["device_id"])
        return d if d is not None and acct is not None and d[ACCOUNT] == acct else None

    async def _device(self, request: Request) -> Response:
        d = self._listed_device(request)
        return self.error(404, "Device not found") if d is None else self._single(d)

    async def _dispatch(self, request: Request) -> Response:
        d = self._listed_device(request)
        if d is None:
            return self.error(404, "Device not found")
        allowed = {self.dispatch_action_field} if self.dispatch_action_field else set()
        body, refused = await self._body(request, allowed)
        if refused is not None or body is None:
            return refused or self.error(400, "no body")
        action = body.get(self.dispatch_action_field or "")
        key = next(k for k, v in self.devices.items() if v is d)
        if action == "uninstall" and self.offers_uninstall:
            if not self.uninstall_is_slow:
                del self.devices[key]  # the agent uninstalls and its device record goes
            return JSONResponse({"status": "OK", "data": {"command_id": secrets.token_hex(6)}}, status_code=202)
        if action in ("isolate", "unisolate"):
            d["is_isolated"] = action == "isolate"
            return JSONResponse({"status": "OK", "data": {"command_id": secrets.token_hex(6)}}, status_code=202)
        return self.error(400, f"unknown action {action!r}")

    async def _keys(self, request: Request) -> Response:
        return self._listing(request, lambda acct: self.of(self.keys, acct))

    async def _users(self, request: Request) -> Response:
        return self._listing(request, lambda acct: self.of(self.users, acct))

    async def _rules(self, request: Request) -> Response:
        return self._listing(request, lambda acct: [r for r in self.rules if r[ACCOUNT] == acct])

    async def _webhooks(self, request: Request) -> Response:
        return JSONResponse({"status": "OK", "data": [public(h) for h in self.webhooks.values()]})

    async def _webhook(self, request: Request) -> Response:
        hook = self.webhooks.get(request.path_params["id"])
        if hook is None:
            return self.error(404, "Webhook endpoint not found")
        if request.method == "DELETE":
            if (await request.body()).strip():
                return self.error(400, "DELETE takes no body")
            if not self.webhook_writes:
                return self.error(403, "This API key is read-only")
            del self.webhooks[request.path_params["id"]]
            return Response(status_code=204)
        return self._single(hook)

    async def _catalog(self, request: Request) -> Response:
        if self.catalog_status != 200:
            return self.error(self.catalog_status, "these credentials may not use /org endpoints")
        # The catalog's schema (action_catalog, one property) is not published: invented.
        actions = [{"name": "isolate"}, {"name": "unisolate"}]
        if self.offers_uninstall:
            actions.append({"name": "uninstall"})
        return JSONResponse({"status": "OK", "data": {"actions": actions}})

    async def _portal(self, request: Request) -> Response:
        """Not Blumira: what a person would do in the portal for a manual item (demo and tests).
        ``?leave=N`` leaves N objects behind (an operator who missed some)."""
        item = request.path_params["item"]
        if item not in self.PORTAL_ITEMS:
            return self.error(404, f"no portal step {item!r} in this sandbox; one of {', '.join(self.PORTAL_ITEMS)}")
        which = request.query_params.get("account", CUSTOMER_ACCOUNT)
        # ``all``: every customer an exit of this sandbox serves (a batch's), never the neighbour
        accounts = [CUSTOMER_ACCOUNT, *self.more_accounts] if which == "all" else [which]
        if any(c not in self.portal_state for c in accounts):
            return self.error(404, f"no sub-account {which!r} in this sandbox")
        for c in accounts:
            self._portal_step(item, c, request)
        return JSONResponse({"done": True})

    PORTAL_ITEMS: ClassVar[tuple[str, ...]] = (
        "sensors.remove", "cloud-connectors.remove", "reports.delete-scheduled", "agents.remove-devices",
        "uninstall_device", "agents.remove-keys", "users.remove", "delete_webhook")

    def _portal_step(self, item: str, c: str, request: Request) -> None:
        leave = int(request.query_params.get("leave", "0"))
        target = request.query_params.get("target")
        state = self.portal_state[c]

        def remove(store: dict[str, dict[str, Any]], keys: list[str]) -> None:
            for k in keys[leave:]:
                del store[k]

        if item == "sensors.remove":
            state["sensors"] = 0
        elif item == "cloud-connectors.remove":
            state["cloud_connectors"] = 0
        elif item == "reports.delete-scheduled":
            state["scheduled_reports"] = 0
        elif item in ("agents.remove-devices", "uninstall_device"):
            remove(self.devices, [k for k, d in self.devices.items()
                                  if d[ACCOUNT] == c and target in (None, str(d.get("device_id")))])
        elif item == "agents.remove-keys":
            remove(self.keys, [k for k, v in self.keys.items() if v[ACCOUNT] == c])
        elif item == "users.remove":
            remove(self.users, [k for k, u in self.users.items()
                                if u[ACCOUNT] == c and u.get("email") != keep_user_of(c)])
        elif item == "delete_webhook" and target:
            self.webhooks.pop(target, None)


    async def _after_exit(self, request: Request) -> Response:
        """Not Blumira: what happens after an exit that the watch must notice (demo and tests).
        ``re-add-device``: a device enrols again under the sub-account (``?account=&hostname=``), with
        the account's installation key if one is left, else the one its old installer carried."""
        what = request.path_params["what"]
        c = request.query_params.get("account", CUSTOMER_ACCOUNT)
        if c not in self.accounts or what != "re-add-device":
            return JSONResponse({"done": False})
        short = c[-4:]
        name = str(self.accounts[c]["name"])
        did = f"dev-{short}-{len([d for d in self.devices if d.startswith(f'dev-{short}-')]) + 100:03d}"
        key = next((k for k, v in self.keys.items() if v[ACCOUNT] == c), f"key-{short}-0")
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000")
        self.devices[did] = {
            ACCOUNT: c, "device_id": did, "hostname": request.query_params.get("hostname", f"{name.split()[0].upper()}"
                                                                                          "-PC-REIMAGED"),
            "arch": "x64", "plat": "windows", "description": "", "is_domain_controller": False, "is_excluded": False,
            "is_isolated": False, "is_sleeping": False, "isolation_requested": False, "key_id": key,
            "keyname": self.keys[key]["description"] if key in self.keys else "", "org_id": c, "alive": stamp,
            "created": stamp, "modified": stamp}
        return JSONResponse({"done": True, "device_id": did})


_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           429: "Too Many Requests", 501: "Not Implemented"}


def public(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as the API sends it: without the double's bookkeeping."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def _finding_param(name: str) -> bool:
    if name in LIST_PARAMS or name in FINDING_SHORTCUTS:
        return True
    m = FILTER.match(name)
    return m is not None and m["field"] in FINDING_FILTERS


def _page(request: Request, items: list[dict[str, Any]], sandbox: BlumiraSandbox) -> Response:
    raw_page = request.query_params.get("page", "1")
    raw_size = request.query_params.get("page_size", "100")
    if not raw_page.isdigit() or int(raw_page) < 1:
        return sandbox.error(400, "page must be an integer from 1")
    if not raw_size.isdigit() or not 1 <= int(raw_size) <= 200:
        return sandbox.error(400, "page_size must be an integer between 1 and 200")
    page, size = int(raw_page), int(raw_size)
    total_pages = max(1, -(-len(items) // size))
    chunk = [public(i) for i in items[(page - 1) * size: page * size]]
    path = request.url.path.removeprefix(API_PREFIX)
    nxt = f"/v1{path}?page={page + 1}&page_size={size}" if page < total_pages else None
    prev = f"/v1{path}?page={page - 1}&page_size={size}" if page > 1 else None
    return JSONResponse({"status": "OK", "data": chunk,
                         "meta": {"page": page, "page_size": size, "total_items": len(items),
                                  "total_pages": total_pages},
                         "links": {"self": f"/v1{path}?page={page}&page_size={size}", "next": nxt, "prev": prev}})
