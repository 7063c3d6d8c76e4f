"""A test double of the Blumira public API for MSPs (a Starlette app). NOT Blumira.

It follows what the vendor notes found (vendor-notes §1, §2): OAuth2 client credentials
at ``/oauth/token`` (JSON or form body, ``audience`` must be ``public-api``) giving a
bearer token with ``expires_in``; ``/public-api/v1/msp/accounts/{account_id}/…`` lists in
the ``{status, data, meta, links}`` envelope with 1-based ``page`` and ``page_size`` ≤ 200;
single objects wrapped in ``data``; comments as a bare array; MSP webhooks, deletable;
the agent action catalog under ``/org``; 10 requests per second per key answering 429
(without Retry-After unless told: the notes could not confirm it). No endpoint removes
sensors, connectors, devices, keys, reports or users: as at Blumira, only the portal can.

Seeded with a demo customer (Acme Dental: agent devices and keys, users, findings with
evidence and comments, detection rules, a webhook limited to it) and a neighbouring
sub-account of the same MSP that an exit of Acme must never touch or even list.
``/_sandbox/portal/…`` stands in for the person doing the portal-only steps.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
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


@dataclass
class BlumiraSandbox(SandboxBase):
    time_scale: float = 1.0
    customer_devices: int = 8
    customer_findings: int = 25
    rate_limit: int = 10
    send_retry_after: bool = False
    token_lifetime: int = 3600
    offers_uninstall: bool = False  # the catalog lists an uninstall action (unverified at Blumira)
    catalog_status: int = 200  # e.g. 403: the catalog refuses MSP credentials
    webhook_writes: bool = True  # False: MSP keys are read-only (vendor-notes §1.3)
    extra_clients: dict[str, str] = field(default_factory=dict)  # more client id -> secret pairs
    # More sub-accounts of the same MSP (a batch exit): account id -> agent devices. Each has one key,
    # a few findings, the user to keep and one to remove, and no webhook.
    more_accounts: dict[str, int] = field(default_factory=dict)
    requests: list[Logged] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
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
        ]
        routes += self.control_routes()
        self.app = self.gated(Starlette(routes=routes))

    # -- seed data ------------------------------------------------------------------

    def _seed(self) -> None:
        for acct, name, license_, devices, findings in (
            (CUSTOMER_ACCOUNT, "Acme Dental", "SIEM_ENDPOINT", self.customer_devices, self.customer_findings),
            (NEIGHBOUR_ACCOUNT, "Bright Smiles Orthodontics", "PRO", 5, 10),
            *((a, f"Customer {a[-4:]}", "SIEM_ENDPOINT", n, 3) for a, n in self.more_accounts.items()),
        ):
            self.accounts[acct] = {"account_id": acct, "name": name, "license": license_,
                                   "agent_count_available": 50, "user_count": 0, "open_findings": 0}
            self.portal_state[acct] = {"sensors": 2, "cloud_connectors": 3, "scheduled_reports": 4}
            short = acct[-4:]
            for k in range(2 if acct == CUSTOMER_ACCOUNT else 1):
                kid = f"key-{short}-{k}"
                self.keys[kid] = {"key_id": kid, "description": f"{name} install key {k + 1}", "org_id": acct,
                                  "agent_count": 0, "agent_seat_count": 50, "created": "2025-01-10T09:00:00.000"}
            for d in range(devices):
                did = f"dev-{short}-{d:03d}"
                key = f"key-{short}-{d % (2 if acct == CUSTOMER_ACCOUNT else 1)}"
                self.keys[key]["agent_count"] += 1
                self.devices[did] = {
                    "device_id": did, "hostname": f"{name.split()[0].upper()}-PC{d:02d}", "org_id": acct,
                    "plat": ("windows", "macos", "linux")[d % 3], "arch": "x64", "key_id": key,
                    "keyname": self.keys[key]["description"], "is_isolated": False, "is_excluded": False,
                    "alive": "2026-11-20T08:00:00.000", "created": "2025-02-01T09:00:00.000"}
            for f in range(findings):
                fid = f"fnd-{short}-{f:04d}"
                status = 10 if f % 5 == 0 else 40
                self.findings[fid] = {
                    "finding_id": fid, "short_id": f"F{f:04d}", "org_id": acct, "org_name": name,
                    "name": ("Suspicious PowerShell", "Login from new country", "Honeypot access")[f % 3],
                    "priority": 1 + f % 5, "status": status, "status_name": "Open" if status == 10 else "Resolved",
                    "type_name": "Threat", "created": f"2026-{1 + f % 10:02d}-15T10:00:00.000"}
                if status == 10:
                    self.accounts[acct]["open_findings"] += 1
            self.rules += [{"rule_id": f"rule-{short}-{r}", "org_id": acct, "name": f"Detector {r}",
                            "enabled": True} for r in range(3)]
        c, n = CUSTOMER_ACCOUNT, NEIGHBOUR_ACCOUNT
        for uid, acct, email, first, role in (
            ("u-1", c, KEEP_USER, "Ada", "Administrator"), ("u-2", c, "frontdesk@acme.example", "Ben", "Monitor"),
            ("u-3", c, "tech@sandbox-msp.example", "Cy", "Responder"),
            ("u-4", c, "former-it@acme.example", "Dee", "Administrator"),
            ("u-5", n, "owner@brightsmiles.example", "Eve", "Administrator")):
            self.users[uid] = {"id": uid, "org_id": acct, "email": email, "first_name": first, "last_name": "Test",
                               "org_roles": [{"role_id": 10, "role_name": role}]}
            self.accounts[acct]["user_count"] += 1
        for acct in self.more_accounts:
            for uid, email, role in ((f"u-{acct[-4:]}-1", KEEP_USER, "Administrator"),
                                     (f"u-{acct[-4:]}-2", f"leaver@c{acct[-4:]}.example", "Monitor")):
                self.users[uid] = {"id": uid, "org_id": acct, "email": email, "first_name": "Test",
                                   "last_name": "User", "org_roles": [{"role_id": 10, "role_name": role}]}
        self.webhooks = {
            "wh-1": {"id": "wh-1", "name": "Acme Dental findings → PSA", "url": "https://psa.example/hooks/acme",
                     "account_ids": [c], "enabled": True},
            "wh-2": {"id": "wh-2", "name": "Bright Smiles → PSA", "url": "https://psa.example/hooks/bright",
                     "account_ids": [n], "enabled": True},
            "wh-3": {"id": "wh-3", "name": "All accounts → SIEM", "url": "https://siem.example/ingest",
                     "enabled": True},
        }

    def of(self, store: dict[str, dict[str, Any]], account: str) -> list[dict[str, Any]]:
        return [v for v in store.values() if v.get("org_id") == account]

    # -- gate hooks -------------------------------------------------------------------

    def unauthenticated(self, path: str) -> bool:
        return path == TOKEN_PATH or super().unauthenticated(path)

    def authorize(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        expiry = self.tokens.get(token)
        return "msp" if expiry is not None and time.monotonic() < expiry else None

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        return JSONResponse({"status": status, "title": _TITLES.get(status, "Error"), "detail": message},
                            status_code=status, headers=headers)

    def expire_tokens(self) -> None:
        """Every issued token stops working (as when it expires early or is revoked)."""
        self.tokens.clear()

    # -- routes -----------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip().startswith(b"{") else {
                k: v[0] for k, v in parse_qs(raw.decode()).items()}
        except ValueError:
            body = {}
        if body.get("grant_type") != "client_credentials" or body.get("audience") != "public-api":
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        secret = self.clients.get(str(body.get("client_id")))
        if secret is None or body.get("client_secret") != secret:
            return JSONResponse({"error": "access_denied"}, status_code=401)
        token = "eyJsandbox." + secrets.token_urlsafe(24)
        self.tokens[token] = time.monotonic() + self.token_lifetime
        self.issued.append(token)
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime})

    def _acct(self, request: Request) -> str | None:
        acct = str(request.path_params["account_id"])
        return acct if acct in self.accounts else None

    def _listing(self, request: Request, of_account: Callable[[str], list[dict[str, Any]]]) -> Response:
        acct = self._acct(request)
        return self.error(404, "Account not found") if acct is None else _page(request, of_account(acct), self)

    async def _accounts(self, request: Request) -> Response:
        return _page(request, [{k: a[k] for k in ("account_id", "name", "open_findings")}
                               for a in self.accounts.values()], self)

    async def _account(self, request: Request) -> Response:
        acct = self._acct(request)
        if acct is None:
            return self.error(404, "Account not found")
        a = dict(self.accounts[acct])
        a["agent_count_used"] = len(self.of(self.devices, acct))
        a["user_count"] = len(self.of(self.users, acct))
        return JSONResponse({"status": "OK", "data": a})

    async def _findings(self, request: Request) -> Response:
        return self._listing(request, lambda acct: self.of(self.findings, acct))

    def _finding(self, request: Request) -> dict[str, Any] | None:
        acct = self._acct(request)
        f = self.findings.get(request.path_params["finding_id"])
        return f if f is not None and acct is not None and f["org_id"] == acct else None

    async def _evidence(self, request: Request) -> Response:
        f = self._finding(request)
        if f is None:
            return self.error(404, "Finding not found")
        rows = [{"timestamp": f"2026-10-0{i + 1}T10:00:00", "src_ip": f"10.0.0.{i + 1}", "user": "jdoe"}
                for i in range(3)]
        resp = _page(request, rows, self)
        body = json.loads(bytes(resp.body))
        body["evidence_keys"] = ["timestamp", "src_ip", "user"]
        return JSONResponse(body, status_code=resp.status_code)

    async def _comments(self, request: Request) -> Response:
        f = self._finding(request)
        if f is None:
            return self.error(404, "Finding not found")
        comments = [{"id": f"c-{f['finding_id']}", "body": "<p>Reviewed by the SOC.</p>", "age": 3600,
                     "sender": {"id": "u-3", "email": "tech@sandbox-msp.example"}}]
        return JSONResponse(comments)  # a bare array, as the notes' mocks show

    async def _devices(self, request: Request) -> Response:
        return self._listing(request, lambda acct: self.of(self.devices, acct))

    async def _device(self, request: Request) -> Response:
        acct = self._acct(request)
        d = self.devices.get(request.path_params["device_id"])
        if d is None or d["org_id"] != acct:
            return self.error(404, "Device not found")
        return JSONResponse({"status": "OK", "data": d})

    async def _dispatch(self, request: Request) -> Response:
        acct = self._acct(request)
        d = self.devices.get(request.path_params["device_id"])
        if d is None or d["org_id"] != acct:
            return self.error(404, "Device not found")
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            body = {}
        action = body.get("action") if isinstance(body, dict) else None
        if action == "uninstall" and self.offers_uninstall:
            del self.devices[d["device_id"]]  # the agent uninstalls and its device record goes
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
        return self._listing(request, lambda acct: [r for r in self.rules if r["org_id"] == acct])

    async def _webhooks(self, request: Request) -> Response:
        return JSONResponse({"status": "OK", "data": list(self.webhooks.values())})

    async def _webhook(self, request: Request) -> Response:
        hook = self.webhooks.get(request.path_params["id"])
        if hook is None:
            return self.error(404, "Webhook endpoint not found")
        if request.method == "DELETE":
            if not self.webhook_writes:
                return self.error(403, "This API key is read-only")
            del self.webhooks[hook["id"]]
            return Response(status_code=204)
        return JSONResponse({"status": "OK", "data": hook})

    async def _catalog(self, request: Request) -> Response:
        if self.catalog_status != 200:
            return self.error(self.catalog_status, "Forbidden for this credential")
        actions = [{"name": "isolate"}, {"name": "unisolate"}]
        if self.offers_uninstall:
            actions.append({"name": "uninstall"})
        return JSONResponse({"status": "OK", "data": {"actions": actions}})

    async def _portal(self, request: Request) -> Response:
        """Not Blumira: what a person would do in the portal for a manual item (demo and tests).
        ``?leave=N`` leaves N objects behind (an operator who missed some)."""
        item = request.path_params["item"]
        leave = int(request.query_params.get("leave", "0"))
        target = request.query_params.get("target")
        c = request.query_params.get("account", CUSTOMER_ACCOUNT)
        if c not in self.portal_state:
            return JSONResponse({"done": False})
        state = self.portal_state[c]
        if item == "sensors.remove":
            state["sensors"] = 0
        elif item == "cloud-connectors.remove":
            state["cloud_connectors"] = 0
        elif item == "reports.delete-scheduled":
            state["scheduled_reports"] = 0
        elif item in ("agents.remove-devices", "uninstall_device"):
            gone = [d["device_id"] for d in self.of(self.devices, c) if target in (None, d["device_id"])]
            for did in gone[leave:]:
                del self.devices[did]
        elif item == "agents.remove-keys":
            for kid in [k["key_id"] for k in self.of(self.keys, c)][leave:]:
                del self.keys[kid]
        elif item == "users.remove":
            for uid in [u["id"] for u in self.of(self.users, c) if u["email"] != KEEP_USER][leave:]:
                del self.users[uid]
        elif item == "delete_webhook" and target:
            self.webhooks.pop(target, None)
        return JSONResponse({"done": True})


_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 429: "Too Many Requests"}


def _page(request: Request, items: list[dict[str, Any]], sandbox: BlumiraSandbox) -> Response:
    raw_page = request.query_params.get("page", "1")
    raw_size = request.query_params.get("page_size", "100")
    if not raw_page.isdigit() or int(raw_page) < 1:
        return sandbox.error(400, "page must be an integer from 1")
    if not raw_size.isdigit() or not 1 <= int(raw_size) <= 200:
        return sandbox.error(400, "page_size must be an integer between 1 and 200")
    page, size = int(raw_page), int(raw_size)
    total_pages = max(1, -(-len(items) // size))
    chunk = items[(page - 1) * size: page * size]
    path = request.url.path.removeprefix(API_PREFIX)
    nxt = f"/v1{path}?page={page + 1}&page_size={size}" if page < total_pages else None
    prev = f"/v1{path}?page={page - 1}&page_size={size}" if page > 1 else None
    return JSONResponse({"status": "OK", "data": chunk,
                         "meta": {"page": page, "page_size": size, "total_items": len(items),
                                  "total_pages": total_pages},
                         "links": {"self": f"/v1{path}?page={page}&page_size={size}", "next": nxt, "prev": prev}})
