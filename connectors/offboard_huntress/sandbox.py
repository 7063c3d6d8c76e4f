"""A test double of the Huntress REST API (a Starlette app). NOT Huntress.

It follows the published behaviour the connector relies on (vendor-notes §1 to §3):
HTTP Basic auth, ``{"agents": [...], "pagination": {...}}`` / ``{"agent": {...}}``
envelopes, ``limit`` 1..500 and ``page_token`` paging, newest-first order, the
``organization_id`` filter, 204 then 404 after an agent DELETE, the 60-requests-in-
any-60-s sliding window per account answering 429, and a read-only account key
that gets 403 on writes. Time can be compressed (``time_scale``) so a window
lasts less than 60 s, and faults can be injected.

Seeded with a demo customer (Acme Dental: Windows, macOS and Linux agents, one
isolated, one stale) and a neighbouring customer in the same account that an
exit of Acme must never touch.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

DEMO_KEY = "hk_sandbox_demo_key"
DEMO_SECRET = "hs_sandbox_demo_secret_not_real"
READ_ONLY_KEY = "hk_sandbox_account_key"
READ_ONLY_SECRET = "hs_sandbox_account_secret_not_real"
ACCOUNT = {"id": 7001, "name": "Sandbox MSP (test double)", "subdomain": "sandbox-msp", "status": "enabled"}
CUSTOMER_ORG = 42
NEIGHBOUR_ORG = 43


@dataclass
class Fault:
    """Answer matching requests with ``status`` (or delay them) ``times`` times."""

    method: str = "*"
    path_prefix: str = "/v1/"
    status: int | None = 500
    times: int = 1
    retry_after: str | None = None
    delay: float = 0.0  # seconds before answering (slow replies)
    after: int = 0  # let this many matching requests through first


@dataclass
class Logged:
    method: str
    path: str
    query: str
    status: int


@dataclass
class HuntressSandbox:
    seed: int = 7
    time_scale: float = 1.0
    customer_agents: int = 36
    neighbour_agents: int = 12
    rate_limit: int = 60
    send_retry_after: bool = True
    extra_credentials: dict[str, str] = field(default_factory=dict)
    requests: list[Logged] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._arrivals: deque[float] = deque()
        self.credentials = {DEMO_KEY: DEMO_SECRET, READ_ONLY_KEY: READ_ONLY_SECRET,
                            **self.extra_credentials}
        self.orgs: dict[int, dict[str, Any]] = {}
        self.agents: dict[int, dict[str, Any]] = {}
        self.incidents: list[dict[str, Any]] = []
        self.escalations: list[dict[str, Any]] = []
        self._seed()
        self.app = Starlette(routes=[
            Route("/v1/actor", self._actor),
            Route("/v1/organizations/{id:int}", self._organization),
            Route("/v1/agents", self._agents),
            Route("/v1/agents/{id:int}", self._agent, methods=["GET", "DELETE"]),
            Route("/v1/agents/{id:int}/isolation", self._isolation, methods=["DELETE"]),
            Route("/v1/incident_reports", self._incident_reports),
            Route("/v1/escalations", self._escalations),
        ])
        self.app.add_middleware(_Gate, sandbox=self)

    # -- seed data ------------------------------------------------------------------

    def _seed(self) -> None:
        rnd = random.Random(self.seed)
        now = datetime.now(UTC)
        self.orgs[CUSTOMER_ORG] = _org(CUSTOMER_ORG, "Acme Dental", "acmedental")
        self.orgs[NEIGHBOUR_ORG] = _org(NEIGHBOUR_ORG, "Globex Logistics", "globex")
        platforms = [("windows", "Windows 11 Pro", "ACME-WS"), ("windows", "Windows Server 2022", "ACME-SRV"),
                     ("darwin", "macOS 15.3", "acme-mbp"), ("linux", "Ubuntu 24.04", "acme-lnx")]
        next_id = 1000
        counts = {CUSTOMER_ORG: self.customer_agents, NEIGHBOUR_ORG: self.neighbour_agents}
        # Interleave the two customers' ids so paging and filtering are both exercised.
        queue = [CUSTOMER_ORG] * counts[CUSTOMER_ORG] + [NEIGHBOUR_ORG] * counts[NEIGHBOUR_ORG]
        rnd.shuffle(queue)
        serial = {CUSTOMER_ORG: 0, NEIGHBOUR_ORG: 0}
        for org_id in queue:
            next_id += rnd.randint(1, 9)
            serial[org_id] += 1
            weights = (60, 12, 20, 8)
            platform, os_name, prefix = rnd.choices(platforms, weights)[0]
            if org_id == NEIGHBOUR_ORG:
                prefix = prefix.replace("ACME", "GLOBEX").replace("acme", "globex")
            self.agents[next_id] = {
                "id": next_id, "account_id": ACCOUNT["id"], "organization_id": org_id,
                "hostname": f"{prefix}-{serial[org_id]:02d}", "platform": platform, "os": os_name,
                "version": "0.14.86", "firewall_status": "Enabled",
                "last_callback_at": _ts(now - timedelta(minutes=rnd.randint(1, 240))),
                "created_at": _ts(now - timedelta(days=rnd.randint(30, 900))),
            }
        mine = sorted(a for a, v in self.agents.items() if v["organization_id"] == CUSTOMER_ORG)
        if len(mine) >= 2:
            self.agents[mine[0]]["firewall_status"] = "Isolated"
            self.agents[mine[1]]["last_callback_at"] = _ts(now - timedelta(days=63))
        self.incidents = [
            {"id": 501, "organization_id": CUSTOMER_ORG, "status": "closed", "severity": "high",
             "subject": "HIGH - Incident on ACME-WS-03 (Acme Dental)"},
            {"id": 502, "organization_id": NEIGHBOUR_ORG, "status": "sent", "severity": "critical",
             "subject": "CRITICAL - Incident on GLOBEX-WS-01 (Globex Logistics)"},
        ]
        self.escalations = [
            {"id": 801, "status": "open", "severity": "low", "subject": "Unexpected country login",
             "organizations": [{"id": NEIGHBOUR_ORG, "name": "Globex Logistics"}]},
        ]

    def agents_of(self, org_id: int) -> list[dict[str, Any]]:
        return [a for a in self.agents.values() if a["organization_id"] == org_id]

    def deletes(self) -> list[str]:
        return [r.path for r in self.requests if r.method == "DELETE" and r.status < 400]

    # -- gate: auth, rate limit, faults ---------------------------------------------

    def window(self) -> float:
        return 60.0 * self.time_scale

    def admit(self) -> float | None:
        """Sliding window per account; returns seconds to wait if over the limit."""
        with self._lock:
            now = time.monotonic()
            while self._arrivals and now - self._arrivals[0] >= self.window():
                self._arrivals.popleft()
            if len(self._arrivals) >= self.rate_limit:
                return self.window() - (now - self._arrivals[0])
            self._arrivals.append(now)
            return None

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.times > 0 and f.method in ("*", method) and path.startswith(f.path_prefix):
                    if f.after > 0:
                        f.after -= 1
                        continue
                    f.times -= 1
                    return f
        return None

    # -- routes -----------------------------------------------------------------------

    async def _actor(self, request: Request) -> Response:
        body: dict[str, Any] = {"account": ACCOUNT}
        if request.state.key != READ_ONLY_KEY:
            body["user"] = {"id": 90, "email": "tech@sandbox-msp.example", "name": "Sandbox Technician"}
        return JSONResponse(body)

    async def _organization(self, request: Request) -> Response:
        org = self.orgs.get(request.path_params["id"])
        if org is None:
            return _error(404, "Organization not found")
        agents = self.agents_of(org["id"])
        isolated = sum(1 for a in agents if a["firewall_status"] in ("Isolated", "Pending Isolation"))
        body = {**org, "agents_count": len(agents), "actual_usages": {
            "edr": {"billable_agents_count": len(agents), "unresponsive_agents_count": 0,
                    "outdated_agents_count": 0, "isolated_agents_count": isolated},
            "sat": {"learners_count": 0}, "itdr": [], "ispm": []}}
        return JSONResponse({"organization": body})

    async def _agents(self, request: Request) -> Response:
        items = sorted(self.agents.values(), key=lambda a: a["id"], reverse=True)
        org = request.query_params.get("organization_id")
        if org is not None:
            if not org.isdigit():
                return _error(400, "organization_id must be an integer")
            items = [a for a in items if a["organization_id"] == int(org)]
        if platform := request.query_params.get("platform"):
            items = [a for a in items if a["platform"] == platform]
        return _page(request, items, "agents")

    async def _agent(self, request: Request) -> Response:
        agent = self.agents.get(request.path_params["id"])
        if agent is None:
            return _error(404, "Agent not found")
        if request.method == "DELETE":
            if request.state.key == READ_ONLY_KEY:
                return _error(403, "This API key is read-only")
            del self.agents[agent["id"]]  # async uninstall: gone from the account at once
            return Response(status_code=204)
        return JSONResponse({"agent": agent})

    async def _isolation(self, request: Request) -> Response:
        agent = self.agents.get(request.path_params["id"])
        if agent is None:
            return _error(404, "Agent not found")
        if request.state.key == READ_ONLY_KEY:
            return _error(403, "This API key is read-only")
        agent["firewall_status"] = "Pending Release"
        return Response(status_code=204)

    async def _incident_reports(self, request: Request) -> Response:
        return _page(request, _filtered(self.incidents, request, by_org=True), "incident_reports")

    async def _escalations(self, request: Request) -> Response:
        items = self.escalations
        if (org := request.query_params.get("organization_id")) is not None:
            items = [e for e in items if any(str(o["id"]) == org for o in e["organizations"])]
        if (status := request.query_params.get("status")) is not None:
            items = [e for e in items if e["status"] == status]
        return _page(request, items, "escalations")


class _Gate:
    """ASGI middleware: faults, then auth, then the account's rate limit, then the route."""

    def __init__(self, app: Any, sandbox: HuntressSandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        method, path = request.method, request.url.path
        status_box: dict[str, int] = {}

        async def logging_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status_box["status"] = message["status"]
            await send(message)

        response: Response | None = None
        fault = self.sandbox.take_fault(method, path)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
                response = _error(fault.status, "injected fault", headers)
        if response is None:
            key = _basic_key(request, self.sandbox.credentials)
            if key is None:
                response = _error(401, "Invalid or missing credentials")
            else:
                wait = self.sandbox.admit()
                if wait is not None:
                    retry = {"Retry-After": f"{wait:.3f}"} if self.sandbox.send_retry_after else None
                    response = _error(429, "Rate limit exceeded", retry)
                else:
                    scope.setdefault("state", {})["key"] = key
        if response is not None:
            await response(scope, receive, logging_send)
        else:
            await self.app(scope, receive, logging_send)
        self.sandbox.requests.append(Logged(method, path, request.url.query, status_box.get("status", 0)))


def _basic_key(request: Request, credentials: dict[str, str]) -> str | None:
    header = request.headers.get("authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        key, _, secret = base64.b64decode(header[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return key if credentials.get(key) == secret and secret else None


def _page(request: Request, items: list[dict[str, Any]], key: str) -> Response:
    raw_limit = request.query_params.get("limit", "10")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 500:
        return _error(400, "limit must be an integer from 1 to 500")
    limit = int(raw_limit)
    start = 0
    if token := request.query_params.get("page_token"):
        try:
            after_id = int(base64.urlsafe_b64decode(token.encode()).decode())
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return _error(400, "invalid page_token")
        # Items are newest (highest id) first; continue below the last id served.
        start = next((i for i, it in enumerate(items) if it["id"] < after_id), len(items))
    page = items[start:start + limit]
    pagination: dict[str, Any] = {}
    if start + limit < len(items):
        token = base64.urlsafe_b64encode(str(page[-1]["id"]).encode()).decode()
        query = "&".join(f"{k}={v}" for k, v in request.query_params.items() if k != "page_token")
        pagination = {"next_page_token": token,
                      "next_page_url": f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
                                       f"?{query}&page_token={token}"}
    return JSONResponse({key: page, "pagination": pagination})


def _filtered(items: list[dict[str, Any]], request: Request, *, by_org: bool) -> list[dict[str, Any]]:
    out = items
    if by_org and (org := request.query_params.get("organization_id")) is not None:
        out = [i for i in out if str(i["organization_id"]) == org]
    if (status := request.query_params.get("status")) is not None:
        out = [i for i in out if i["status"] == status]
    return out


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"errors": [{"message": message}]}, status_code=status, headers=headers)


def _org(org_id: int, name: str, key: str) -> dict[str, Any]:
    return {"id": org_id, "account_id": ACCOUNT["id"], "name": name, "key": key,
            "incident_reports_count": 1, "logs_sources_count": 0, "identity_provider_tenant_id": None,
            "billable_identity_count": 0, "sat_learner_count": 0, "report_recipients": [],
            "created_at": "2024-02-01T09:00:00Z", "updated_at": "2026-11-01T09:00:00Z"}


def _ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
