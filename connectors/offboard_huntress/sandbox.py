"""A test double of the Huntress REST API (a Starlette app). NOT Huntress.

It follows the published behaviour the connector relies on (vendor-notes §1 to §3):
HTTP Basic auth; ``{"<plural>": [...], "pagination": {...}}`` and ``{"<singular>": {...}}``
envelopes; ``limit`` 1..500 and ``page_token`` paging, newest first; the
``organization_id`` filters; 204 for agent uninstall and isolation release, 202 with
the object for membership, rule and organization deletes, 404 after; 409 or 422 (with a
message) on organization delete when told to; the account-scoped mirrors under
``/v1/accounts/{account_id}/…``; the 60-requests-in-any-60-s sliding window per
account answering 429; a read-only account key that gets 403 on writes. Time can be
compressed (``time_scale``) and faults injected.

Seeded with a demo customer (Acme Dental: Windows, macOS and Linux agents, one
isolated, one stale; incidents with one open; reports; ITDR identities and rules;
SIEM sources; SAT learners; org and account memberships) and a neighbouring customer
in the same account that an exit of Acme must never touch. ``/_sandbox/portal/…``
stands in for the person doing the portal-only steps, for the demo.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from offboard.connectors.sandboxing import Fault, Logged, SandboxBase

from .sandbox_examples import EXAMPLES

__all__ = ["Fault", "HuntressSandbox", "Logged"]

DEMO_KEY = "hk_sandbox_demo_key"
DEMO_SECRET = "hs_sandbox_demo_secret_not_real"
READ_ONLY_KEY = "hk_sandbox_account_key"
READ_ONLY_SECRET = "hs_sandbox_account_secret_not_real"
ACCOUNT = {**EXAMPLES["Actor"]["account"], "id": 7001, "name": "Sandbox MSP (test double)",
           "subdomain": "sandbox-msp"}
RULE_VALUE = {"country": "country_code", "vpn": "vpn", "ip_address": "ip_address"}  # category -> its field
CUSTOMER_ORG = 42
NEIGHBOUR_ORG = 43
PDF = b"%PDF-1.4\n% offboard sandbox: a stand-in summary report\n%%EOF\n"
Handler = Callable[[Request], Awaitable[Response]]
# (method, path, status, body) of each reply a route sends; the test suite installs one that
# validates it against Huntress's published spec (the spec is not needed to run the sandbox).
ReplyCheck = Callable[[str, str, int, bytes], None]


@dataclass
class HuntressSandbox(SandboxBase):
    seed: int = 7
    time_scale: float = 1.0
    customer_agents: int = 36
    neighbour_agents: int = 12
    # More customers of the same account (a batch exit): organization id -> agents. Each has only
    # agents (no incident, identity, source, learner, membership or rule), so its exit needs no portal work.
    more_customers: dict[int, int] = field(default_factory=dict)
    rate_limit: int = 60
    send_retry_after: bool = True
    org_delete_error: tuple[int, str] | None = None  # answer DELETE organization with (409 or 422, message)
    siem_enabled: bool = True  # False: POST /v1/siem/query answers 404, as for an account without the feature
    extra_credentials: dict[str, str] = field(default_factory=dict)
    requests: list[Logged] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    # Sandbox-only, not Huntress: the world moving during an exit. ``moves``: agent id -> (organization id,
    # writes): once that many writes succeeded, the agent belongs to that organization (another technician
    # moved it in the portal). ``listed_as``: agent id -> the organization_id the agent *listing*
    # (GET /v1/agents) shows and filters it by, while GET /v1/agents/{id} tells the truth: an int, as the
    # spec types it, or a text such as "42", which the spec does not allow (a test that asks for it takes
    # the reply check's complaint itself). Also settable over HTTP: POST /_sandbox/move, /_sandbox/list-as.
    moves: dict[int, tuple[int, int]] = field(default_factory=dict)
    listed_as: dict[int, Any] = field(default_factory=dict)
    writes_done: int = 0

    base_window = 60.0
    rate_headers = ("x-huntress-api-call-limit", "x-huntress-api-call-remaining")  # observed (notes §1.3)
    reply_check: ClassVar[ReplyCheck | None] = None

    def __post_init__(self) -> None:
        self._init_gate()
        self.credentials = {DEMO_KEY: DEMO_SECRET, READ_ONLY_KEY: READ_ONLY_SECRET, **self.extra_credentials}
        self.orgs: dict[int, dict[str, Any]] = {}
        self.agents: dict[int, dict[str, Any]] = {}
        self.incidents: list[dict[str, Any]] = []
        self.remediations: dict[int, list[dict[str, Any]]] = {}
        self.escalations: list[dict[str, Any]] = []
        self.platform_actions: list[dict[str, Any]] = []
        self.signals: list[dict[str, Any]] = []
        self.reports: list[dict[str, Any]] = []
        self.identities: list[dict[str, Any]] = []
        self.memberships: dict[int, dict[str, Any]] = {}
        self.rules: dict[int, dict[str, Any]] = {}
        self.invoices: list[dict[str, Any]] = []
        self.subscriptions: dict[int, dict[str, Any]] = {}
        self.siem_logs: list[dict[str, Any]] = []  # records keyed by ECS field names, as the spec's example
        # Objects the vendor lists under the customer's organization although their reply does not say
        # whose they are (no organization_id, no applied_to id…). Empty unless a test adds some; never
        # readable one by one (404).
        self.strays: dict[str, list[dict[str, Any]]] = {"agents": [], "memberships": [], "unwanted_access_rules": []}
        self._seed()
        mirrored: list[tuple[str, Handler, list[str]]] = [
            ("/agents", self._agents, ["GET"]),
            ("/agents/{id:int}", self._agent, ["GET", "DELETE"]),
            ("/agents/{id:int}/isolation", self._isolation, ["DELETE"]),
            ("/organizations/{id:int}", self._organization, ["GET", "PATCH", "DELETE"]),
            ("/incident_reports", self._incident_reports, ["GET"]),
            ("/incident_reports/{id:int}/remediations", self._remediations, ["GET"]),
            ("/memberships", self._memberships, ["GET"]),
            ("/memberships/{id:int}", self._membership, ["GET", "DELETE"]),
            ("/reports", self._reports, ["GET"]),
            ("/signals", self._signals, ["GET"]),
            ("/invoices", self._invoices, ["GET"]),
        ]
        routes: list[BaseRoute] = [
            Route("/v1/actor", self._actor),
            Route("/v1/escalations", self._escalations),
            Route("/v1/platform_actions", self._platform_actions),
            Route("/v1/identities", self._identities),
            Route("/v1/unwanted_access_rules", self._rules),
            Route("/v1/unwanted_access_rules/{id:int}", self._rule, methods=["GET", "DELETE"]),
            Route("/v1/reseller/subscriptions/{id:int}", self._subscription, methods=["GET", "PATCH"]),
            Route("/_sandbox/files/{name}", self._file),
            Route("/v1/siem/query", self._siem_query, methods=["POST"]),
            Route("/_sandbox/portal/{item}", self._portal, methods=["POST"]),
            Route("/_sandbox/watch/{what}", self._after_exit, methods=["POST"]),
        ]
        routes += self.control_routes()
        routes += [Route(self.CONTROL + "move", self._control_move, methods=["POST"]),
                   Route(self.CONTROL + "list-as", self._control_list_as, methods=["POST"])]
        for path, handler, methods in mirrored:
            routes.append(Route("/v1" + path, handler, methods=methods))
            routes.append(Route("/v1/accounts/{account_id:int}" + path, _in_account(handler), methods=methods))
        self.app = self.gated(_Checked(Starlette(routes=routes), self))

    # -- seed data ------------------------------------------------------------------

    def _seed(self) -> None:
        """Every object starts from the spec's example (sandbox_examples) and varies from there."""
        rnd = random.Random(self.seed)
        now = datetime.now(UTC)
        self.orgs[CUSTOMER_ORG] = _org(CUSTOMER_ORG, "Acme Dental", "acmedental", tenant="tenant-acme-m365",
                                       sources=3, learners=20, recipients=["it@acme.example", "owner@acme.example"])
        self.orgs[NEIGHBOUR_ORG] = _org(NEIGHBOUR_ORG, "Globex Logistics", "globex", tenant="tenant-globex",
                                        sources=1, learners=8, recipients=["it@globex.example"])
        for org_id in self.more_customers:
            self.orgs[org_id] = _org(org_id, f"Customer {org_id}", f"c{org_id}", tenant=None, sources=0, learners=0,
                                     recipients=[])
        platforms = [("windows", "Windows 11 Pro", "ACME-WS"), ("windows", "Windows Server 2022", "ACME-SRV"),
                     ("darwin", "macOS 15.3", "acme-mbp"), ("linux", "Ubuntu 24.04", "acme-lnx")]
        next_id = 1000
        counts = {CUSTOMER_ORG: self.customer_agents, NEIGHBOUR_ORG: self.neighbour_agents, **self.more_customers}
        # Interleave the customers' ids so paging and filtering are both exercised. A batch's more customers
        # come after, from a generator of their own: Acme Dental's agents (their names, the isolated host, the
        # stale one) are the same whether the sandbox serves it alone or with others (a rehearsal and a batch
        # rehearsal exit the same customer).
        queue = [org for org in (CUSTOMER_ORG, NEIGHBOUR_ORG) for _ in range(counts[org])]
        rnd.shuffle(queue)
        more = random.Random(f"{self.seed}-more")
        extra = [org for org, n in self.more_customers.items() for _ in range(n)]
        more.shuffle(extra)
        serial = dict.fromkeys(counts, 0)
        for org_id, gen in [(o, rnd) for o in queue] + [(o, more) for o in extra]:
            next_id += gen.randint(1, 9)
            serial[org_id] += 1
            platform, os_name, prefix = gen.choices(platforms, (60, 12, 20, 8))[0]
            if org_id == NEIGHBOUR_ORG:
                prefix = prefix.replace("ACME", "GLOBEX").replace("acme", "globex")
            elif org_id != CUSTOMER_ORG:
                prefix = prefix.replace("ACME", f"C{org_id}").replace("acme", f"c{org_id}")
            self.agents[next_id] = {
                **EXAMPLES["Agent"], "id": next_id, "account_id": ACCOUNT["id"], "organization_id": org_id,
                "hostname": f"{prefix}-{serial[org_id]:02d}", "platform": platform, "os": os_name,
                "version": "0.14.86", "firewall_status": "Enabled", "serial_number": f"SN{next_id:08d}",
                "ipv4_address": f"10.{org_id}.{next_id // 250 % 250}.{next_id % 250}",
                "mac_addresses": [f"7c:a7:b0:{next_id // 65536 % 256:02x}:{next_id // 256 % 256:02x}:"
                                  f"{next_id % 256:02x}"],
                "last_callback_at": _ts(now - timedelta(minutes=gen.randint(1, 240))),
                "created_at": _ts(now - timedelta(days=gen.randint(30, 900))),
            }
            agent = self.agents[next_id]
            agent["updated_at"] = agent["last_survey_at"] = agent["last_callback_at"]
        for org_id, seeded in self.orgs.items():  # each source's last records, days before any exit
            for n in range(seeded["logs_sources_count"] * 2):
                self.siem_logs.append(_log_record(org_id, f"{seeded['key'].upper()}-DC-{n % 3 + 1:02d}",
                                                  now - timedelta(days=2 + n, minutes=n)))
        mine = sorted(a for a, v in self.agents.items() if v["organization_id"] == CUSTOMER_ORG)
        if len(mine) >= 2:
            self.agents[mine[0]]["firewall_status"] = "Isolated"
            self.agents[mine[1]]["last_callback_at"] = _ts(now - timedelta(days=63))
        first = mine[0] if mine else None
        self.incidents = [
            _incident(501, CUSTOMER_ORG, "closed", "high", "HIGH - Incident on ACME-WS-03 (Acme Dental)", 12),
            _incident(503, CUSTOMER_ORG, "sent", "low", "LOW - Incident on ACME-SRV-01 (Acme Dental)", 1, first),
            _incident(502, NEIGHBOUR_ORG, "sent", "critical", "CRITICAL - Incident on GLOBEX-WS-01 (Globex)", 2),
        ]
        for inc in self.incidents:
            total = inc["remediations"]["total_count"]
            self.remediations[inc["id"]] = [
                {**EXAMPLES["Remediation"], "id": inc["id"] * 100 + n, "type": "assisted",
                 "action": f"Remove foothold {n}", "status": "completed"} for n in range(1, total + 1)]
            inc["remediations"]["items"] = self.remediations[inc["id"]][:10]
        self.escalations = [
            _escalation("Escalation", 801, "open", "low", "Unexpected country login", "Unwanted Access",
                        NEIGHBOUR_ORG, "Globex Logistics", subtype="KP"),
            _escalation("Escalation", 802, "resolved", "high", "Agent tamper attempt", "Environmental Issue",
                        CUSTOMER_ORG, "Acme Dental"),
        ]
        self.platform_actions = [
            _escalation("PlatformAction", 901, "open", "low", "Incident reports cannot be sent to your PSA",
                        "Integration", CUSTOMER_ORG, "Acme Dental"),
        ]
        self.signals = [{**EXAMPLES["Signal"], "id": 700 + n, "name": f"Signal {n}", "type": "Footholds",
                         "status": "closed", "organization": {"id": org, "name": self.orgs[org]["name"]}}
                        for n, org in enumerate((CUSTOMER_ORG, CUSTOMER_ORG, CUSTOMER_ORG, NEIGHBOUR_ORG))]
        self.reports = [{**EXAMPLES["SummaryReport"], "id": 601 + n, "organization_id": org,
                         "type": "monthly_summary",
                         "period": f"2026-{9 + n % 2:02d}-01...2026-{9 + n % 2:02d}-30",
                         "url": f"/_sandbox/files/report-{601 + n}.pdf"}
                        for n, org in enumerate((CUSTOMER_ORG, CUSTOMER_ORG, NEIGHBOUR_ORG))]
        self.identities = [{**EXAMPLES["Identity"], "id": 300 + n,
                            "account": {"id": ACCOUNT["id"], "name": ACCOUNT["name"]},
                            "organization": {"id": org, "name": self.orgs[org]["name"]},
                            "username": f"user{n}@{self.orgs[org]['key']}.example",
                            "email": f"user{n}@{self.orgs[org]['key']}.example", "enabled": True,
                            "billable": True, "tenant": {"id": 100 + org, "type": "microsoft_365"}}
                           for n, org in enumerate([CUSTOMER_ORG] * 5 + [NEIGHBOUR_ORG] * 2)]
        member_rows = [(1, CUSTOMER_ORG, "it-lead@acme.example", "Admin"),
                       (2, CUSTOMER_ORG, "office@acme.example", "Read-only"),
                       (3, None, "tech@sandbox-msp.example", "Admin"),
                       (4, None, "billing@sandbox-msp.example", "Finance"),
                       (5, NEIGHBOUR_ORG, "it@globex.example", "Admin")]
        for mid, org, email, perm in member_rows:
            # The spec's example carries both account and organization: an organization's membership
            # names its account too; the whole account's names no organization.
            m = {**EXAMPLES["Membership"], "id": mid, "permissions": perm,
                 "account": {"id": ACCOUNT["id"], "name": ACCOUNT["name"]},
                 "organization": {"id": org, "name": self.orgs[org]["name"]} if org else None,
                 "user": {"id": 10 + mid, "email": email, "name": email.split("@")[0]},
                 "created_at": "2025-01-22 01:07:08 UTC", "updated_at": "2026-01-22 01:07:08 UTC"}
            if org is None:
                del m["organization"]
            self.memberships[mid] = m
        rule_rows = [(41, "Organization", CUSTOMER_ORG, "unauthorized", "country", "KP"),
                     (42, "Organization", CUSTOMER_ORG, "expected", "vpn", "NORD_VPN"),
                     (43, "Identity", 300, "expected", "country", "PT"),
                     (44, "Account", ACCOUNT["id"], "unauthorized", "country", "RU"),
                     (45, "Organization", NEIGHBOUR_ORG, "unauthorized", "country", "IR")]
        for rid, kind, target, rtype, category, value in rule_rows:
            name = self.orgs[target]["name"] if kind == "Organization" else f"{kind.lower()} {target}"
            self.rules[rid] = {**EXAMPLES["UnwantedAccessRule"], "id": rid,
                               "applied_to": {"type": kind, "id": target, "name": name},
                               "type": rtype, "category": category, "status": "active", "logic": "standard",
                               # "Null unless `category` is …" (the spec)
                               **{c: value if c == RULE_VALUE[category] else None for c in RULE_VALUE.values()}}
        for sid, account, product in ((5001, ACCOUNT["id"], "edr"), (5002, ACCOUNT["id"], "itdr"),
                                      (5003, 7999, "edr")):
            self.subscriptions[sid] = {**EXAMPLES["Subscription"], "id": sid,
                                       "account": {"id": account, "name": f"account {account}"},
                                       "product": product, "status": "active", "auto_renew": True,
                                       "billing_interval": "annual"}
        self.invoices = [{**EXAMPLES["Invoice"], "id": 9001 + n, "amount": 123400 + n, "plan": "EDR",
                          "quantity": 48, "status": "paid"} for n in range(2)]

    def agents_of(self, org_id: int) -> list[dict[str, Any]]:
        return [a for a in self.agents.values() if a["organization_id"] == org_id]

    def memberships_of(self, org_id: int | None) -> list[dict[str, Any]]:
        return [m for m in self.memberships.values()
                if (m.get("organization") or {}).get("id") == org_id and (org_id or "account" in m)]

    def rule_owner(self, rule: dict[str, Any]) -> int | None:
        applied = rule["applied_to"]
        kind = str(applied["type"]).lower()  # the spec's example spells it "Organization"
        if kind == "organization":
            return int(applied["id"])
        if kind == "identity":
            identity = next((i for i in self.identities if i["id"] == applied["id"]), None)
            return int(identity["organization"]["id"]) if identity else None
        return None

    # -- the world moving (sandbox-only) ----------------------------------------------

    def wrote(self) -> None:
        """A write of the vendor's routes succeeded: the moves due after it happen now."""
        self.writes_done += 1
        for agent_id, (org_id, after) in list(self.moves.items()):
            if self.writes_done >= after and agent_id in self.agents:
                self.agents[agent_id]["organization_id"] = org_id
                del self.moves[agent_id]

    def _listed(self, agent: dict[str, Any]) -> dict[str, Any]:
        key = agent.get("id")  # a stray (an agent listed without an id) is served as it is
        if not isinstance(key, int) or key not in self.listed_as:
            return agent
        return {**agent, "organization_id": self.listed_as[key]}

    async def _control_move(self, request: Request) -> Response:
        q = request.query_params
        agent, org, after = int(q["agent"]), int(q["org"]), int(q.get("after_writes", "0"))
        if after <= self.writes_done and agent in self.agents:
            self.agents[agent]["organization_id"] = org  # due already: moved now
        else:
            self.moves[agent] = (org, after)
        return JSONResponse({"moves": {str(k): v for k, v in self.moves.items()}})

    async def _control_list_as(self, request: Request) -> Response:
        q = request.query_params
        org = q["org"]
        self.listed_as[int(q["agent"])] = int(org) if q.get("as_text") != "1" else org
        return JSONResponse({"listed_as": {str(k): v for k, v in self.listed_as.items()}})

    # -- gate hooks -------------------------------------------------------------------

    def authorize(self, request: Request) -> str | None:
        return _basic_key(request, self.credentials)

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        return _error(status, message, headers)

    # -- routes -----------------------------------------------------------------------

    async def _actor(self, request: Request) -> Response:
        body: dict[str, Any] = {"account": ACCOUNT}  # the spec: "only the parts relevant to the key"
        if request.state.key != READ_ONLY_KEY:
            body["user"] = {**EXAMPLES["Actor"]["user"], "id": 90, "email": "tech@sandbox-msp.example",
                            "name": "Sandbox Technician"}
        return JSONResponse(body)

    async def _organization(self, request: Request) -> Response:
        org = self.orgs.get(request.path_params["id"])
        if org is None:
            return _error(404, "Organization not found")
        if request.method == "GET":
            return JSONResponse({"organization": self._with_usages(org)})
        if request.state.key == READ_ONLY_KEY:
            return _error(403, "This API key is read-only")
        if request.method == "PATCH":
            body = await _body(request)
            if not isinstance(body.get("report_recipients", []), list):
                return _error(422, "report_recipients must be a list")
            for key in ("name", "key", "report_recipients"):
                if key in body:
                    org[key] = body[key]
            return JSONResponse({"organization": org})
        if self.org_delete_error:
            return _error(*self.org_delete_error)
        # Deleting an organization queues uninstall of its agents and removes every product.
        del self.orgs[org["id"]]
        for aid in [a["id"] for a in self.agents_of(org["id"])]:
            del self.agents[aid]
        for mid in [m["id"] for m in self.memberships_of(org["id"])]:
            del self.memberships[mid]
        self.identities = [i for i in self.identities if i["organization"]["id"] != org["id"]]
        return JSONResponse({"organization": org}, status_code=202)

    def _with_usages(self, org: dict[str, Any]) -> dict[str, Any]:
        agents = self.agents_of(org["id"])
        isolated = sum(1 for a in agents if a["firewall_status"] in ("Isolated", "Pending Isolation"))
        identities = [i for i in self.identities if i["organization"]["id"] == org["id"]]
        example = EXAMPLES["OrganizationWithActualProductUsages"]["actual_usages"]
        tenant = org.get("identity_provider_tenant_id")  # left out once unmapped: the spec never says null
        itdr = [{**example["itdr"][0], "identity_provider_tenant_id": tenant,
                 "billable_identities_count": len(identities), "total_identities_count": len(identities)}
                ] if tenant else []
        stale = sum(1 for a in agents if a.get("last_callback_at") and _days_ago(a["last_callback_at"]) >= 21)
        return {**org, "agents_count": len(agents), "billable_identity_count": len(identities), "actual_usages": {
            "edr": {**example["edr"], "billable_agents_count": len(agents), "unresponsive_agents_count": stale,
                    "outdated_agents_count": 0, "isolated_agents_count": isolated},
            "sat": {**example["sat"], "learners_count": org["sat_learner_count"]},
            "siem": {**example["siem"], "billable_log_sources_count": org["logs_sources_count"]},
            "itdr": itdr, "ispm": []}}

    async def _agents(self, request: Request) -> Response:
        # Chosen by what the listing says, then paged, and only the page shaped: an organization of
        # 10,000 agents is served a page at a time as fast as the compressed window's slot needs.
        org = request.query_params.get("organization_id")
        if org is not None and not org.isdigit():
            return _error(400, "organization_id must be an integer")
        listed_as = self.listed_as
        if org is None:
            chosen = list(self.agents.values())
        elif listed_as:
            chosen = [a for a in self.agents.values() if str(listed_as.get(a["id"], a["organization_id"])) == org]
        else:
            chosen = [a for a in self.agents.values() if str(a["organization_id"]) == org]
        items = sorted(chosen, key=itemgetter("id"), reverse=True)
        if org is not None:
            items += self._strays("agents", org)
        if platform := request.query_params.get("platform"):
            items = [a for a in items if a["platform"] == platform]
        return _page(request, items, "agents", shape=self._listed)

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

    async def _remediations(self, request: Request) -> Response:
        if request.path_params["id"] not in self.remediations:
            return _error(404, "Incident report not found")
        return _page(request, self.remediations[request.path_params["id"]], "remediations")

    async def _escalations(self, request: Request) -> Response:
        return _page(request, _by_orgs_and_status(self.escalations, request), "escalations")

    async def _platform_actions(self, request: Request) -> Response:
        return _page(request, _by_orgs_and_status(self.platform_actions, request), "platform_actions")

    async def _signals(self, request: Request) -> Response:
        org = request.query_params.get("organization_id")
        items = [s for s in self.signals if org is None or str(s["organization"]["id"]) == org]
        return _page(request, items, "signals")

    async def _reports(self, request: Request) -> Response:
        base = f"{request.url.scheme}://localhost:{request.url.port}" if request.url.port else ""
        # The PDF links point at another origin (as a storage host would): no credentials go there.
        items = [{**r, "url": base + r["url"]} for r in _filtered(self.reports, request, by_org=True)]
        return _page(request, items, "reports")

    async def _file(self, request: Request) -> Response:
        return Response(PDF, media_type="application/pdf")

    async def _identities(self, request: Request) -> Response:
        org = request.query_params.get("organization_id")
        items = [i for i in self.identities if org is None or str(i["organization"]["id"]) == org]
        return _page(request, items, "identities")

    async def _memberships(self, request: Request) -> Response:
        org = request.query_params.get("organization_id")
        # With organization_id only that organization's memberships are listed (§2.1).
        items = list(self.memberships.values()) if org is None else self.memberships_of(int(org))
        items = sorted(items, key=lambda m: m["id"], reverse=True) + self._strays("memberships", org)
        return _page(request, items, "memberships")

    async def _membership(self, request: Request) -> Response:
        m = self.memberships.get(request.path_params["id"])
        if m is None:
            return _error(404, "Membership not found")
        if request.method == "DELETE":
            if request.state.key == READ_ONLY_KEY:
                return _error(403, "This API key is read-only")
            del self.memberships[m["id"]]
            return JSONResponse({"membership": m}, status_code=202)
        return JSONResponse({"membership": m})

    async def _rules(self, request: Request) -> Response:
        org = request.query_params.get("organization_id")
        items = [r for r in self.rules.values() if org is None or str(self.rule_owner(r)) == org]
        items = sorted(items, key=lambda r: r["id"], reverse=True) + self._strays("unwanted_access_rules", org)
        return _page(request, items, "unwanted_access_rules")

    def _strays(self, key: str, org: str | None) -> list[dict[str, Any]]:
        return self.strays[key] if org == str(CUSTOMER_ORG) else []

    async def _rule(self, request: Request) -> Response:
        rule = self.rules.get(request.path_params["id"])
        if rule is None:
            return _error(404, "Unwanted access rule not found")
        if request.method == "DELETE":
            if request.state.key == READ_ONLY_KEY:
                return _error(403, "This API key is read-only")
            del self.rules[rule["id"]]
            return JSONResponse({"unwanted_access_rule": rule}, status_code=202)
        return JSONResponse({"unwanted_access_rule": rule})

    async def _subscription(self, request: Request) -> Response:
        sub = self.subscriptions.get(request.path_params["id"])
        if sub is None:
            return _error(404, "Subscription not found")
        if request.method == "PATCH":
            if request.state.key == READ_ONLY_KEY:
                return _error(403, "This API key is read-only")
            if sub["status"] != "active":
                return _error(409, "Only active subscriptions can change auto_renew")
            body = await _body(request)
            if "auto_renew" in body:
                sub["auto_renew"] = bool(body["auto_renew"])
        return JSONResponse({"subscription": sub})

    async def _invoices(self, request: Request) -> Response:
        return _page(request, self.invoices, "invoices")

    PORTAL_ITEMS: ClassVar[tuple[str, ...]] = ("itdr.unmap-tenant", "siem.disconnect-sources", "sat.close-campaigns")

    async def _portal(self, request: Request) -> Response:
        """Not Huntress: what a person would do in the portal for a manual item (demo and rehearsals).
        ``?org=`` the organization (default: Acme Dental's), or ``all``: every customer an exit of this
        sandbox serves (a batch's), never the neighbour whose objects an exit must not touch."""
        item = request.path_params["item"]
        if item not in self.PORTAL_ITEMS:
            return _error(404, f"no portal step {item!r} in this sandbox; one of {', '.join(self.PORTAL_ITEMS)}")
        which = request.query_params.get("org", str(CUSTOMER_ORG))
        orgs = [CUSTOMER_ORG, *self.more_customers] if which == "all" else [int(which)] if which.isdigit() else []
        if not orgs or any(o not in self.orgs for o in orgs):
            return _error(404, f"no organization {which!r} in this sandbox")
        for org_id in orgs:
            org = self.orgs[org_id]
            if item == "itdr.unmap-tenant":
                org.pop("identity_provider_tenant_id", None)  # the spec never calls it nullable: left out
                self.identities = [i for i in self.identities if i["organization"]["id"] != org_id]
            elif item == "siem.disconnect-sources":
                org["logs_sources_count"] = 0
            else:
                org["sat_learner_count"] = 0
        return JSONResponse({"done": True})


    async def _siem_query(self, request: Request) -> Response:
        """ESQL over the SIEM's logs (the spec): ``esql`` must begin with ``FROM logs``; ``range_start`` and
        ``range_end`` are required ISO-8601 times; 200 rows a page, ``page_token`` in the body with the same
        range; 404 when the account has no SIEM query feature. The double understands the ESQL a watch
        sends: ``WHERE field == "value"`` (and-ed), ``SORT field ASC|DESC``, ``LIMIT n``."""
        if not self.siem_enabled:
            return _error(404, "SIEM query feature is not enabled for this account.")
        body = await _body(request)
        esql, start, end = body.get("esql"), body.get("range_start"), body.get("range_end")
        if not isinstance(esql, str) or not isinstance(start, str) or not isinstance(end, str):
            return _error(400, "esql, range_start and range_end are required")
        try:
            lo, hi = _parse_time(start), _parse_time(end)
        except ValueError:
            return _error(400, "range_start and range_end must be ISO 8601 date-times")
        rows = _esql(esql, [r for r in self.siem_logs if lo <= _parse_time(r["@timestamp"]) <= hi])
        if rows is None:
            return _error(422, "Invalid ESQL query: it must begin with FROM logs")
        offset = 0
        if token := body.get("page_token"):
            try:
                offset = int(base64.urlsafe_b64decode(str(token).encode()).decode())
            except (binascii.Error, ValueError, UnicodeDecodeError):
                return _error(400, "invalid page_token")
        page = rows[offset:offset + SIEM_PAGE]
        pagination: dict[str, Any] = {}
        if offset + SIEM_PAGE < len(rows):
            pagination = {"next_page_token": base64.urlsafe_b64encode(str(offset + SIEM_PAGE).encode()).decode()}
        return JSONResponse({"logs": page, "pagination": pagination})

    async def _after_exit(self, request: Request) -> Response:
        """Not Huntress: what happens after an exit that the watch must notice (demo and tests).
        ``re-enrol``: a host re-imaged from an old golden image enrols an agent under the organization
        again (``?org=&hostname=``); ``siem-record``: a log source nobody disconnected sends a record now
        (and counts as a billable source again: a source that sent data in the last 30 days is billed)."""
        what = request.path_params["what"]
        org_id = int(request.query_params.get("org", CUSTOMER_ORG))
        org = self.orgs.get(org_id)
        now = datetime.now(UTC)
        if org is None:
            return JSONResponse({"done": False})
        if what == "re-enrol":
            agent_id = max(self.agents, default=1000) + 1
            hostname = request.query_params.get("hostname", f"{org['key'].upper()}-WS-REIMAGED")
            self.agents[agent_id] = {
                **EXAMPLES["Agent"], "id": agent_id, "account_id": ACCOUNT["id"], "organization_id": org_id,
                "hostname": hostname, "platform": "windows", "os": "Windows 11 Pro", "version": "0.13.2",
                "firewall_status": "Enabled", "serial_number": f"SN{agent_id:08d}",
                "ipv4_address": f"10.{org_id}.9.{agent_id % 250}", "mac_addresses": ["7c:a7:b0:00:00:01"],
                "last_callback_at": _ts(now), "last_survey_at": _ts(now), "created_at": _ts(now),
                "updated_at": _ts(now)}
            return JSONResponse({"done": True, "agent_id": agent_id})
        if what == "siem-record":
            host = request.query_params.get("hostname", f"{org['key'].upper()}-FW-01")
            self.siem_logs.append(_log_record(org_id, host, now))
            org["logs_sources_count"] = max(1, int(org.get("logs_sources_count") or 0))
            return JSONResponse({"done": True})
        return JSONResponse({"done": False})


class _Checked:
    """ASGI middleware: hands each reply of the vendor's routes to ``HuntressSandbox.reply_check``
    when one is installed (the gate's own replies — faults, 401, 429 — are not the routes'), and
    tells the sandbox of each write that succeeded (``moves``)."""

    def __init__(self, app: Any, sandbox: HuntressSandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        check = type(self.sandbox).reply_check
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(self.sandbox.CONTROL):
            await self.app(scope, receive, send)
            return
        status = 0
        body = b""

        async def keep(message: Any) -> None:
            nonlocal status, body
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                body += message.get("body", b"")
            await send(message)

        await self.app(scope, receive, keep)
        if check is not None:
            check(scope["method"], path, status, body)
        if scope["method"] != "GET" and status < 400 and not path.startswith(self.sandbox.CONTROL):
            self.sandbox.wrote()


def _in_account(handler: Handler) -> Handler:
    """The account-scoped mirror of a route: same answer, but only inside the sandbox's account."""
    async def scoped(request: Request) -> Response:
        if request.path_params.get("account_id") != ACCOUNT["id"]:
            return _error(404, "Account not found")
        return await handler(request)
    return scoped


def _basic_key(request: Request, credentials: dict[str, str]) -> str | None:
    header = request.headers.get("authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        key, _, secret = base64.b64decode(header[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return key if credentials.get(key) == secret and secret else None


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _page(request: Request, items: list[dict[str, Any]], key: str,
          shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Response:
    raw_limit = request.query_params.get("limit", "10")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 500:
        return _error(400, "limit must be an integer from 1 to 500")
    limit = int(raw_limit)
    start = 0
    if token := request.query_params.get("page_token"):
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode())
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return _error(400, "invalid page_token")
    page = items[start:start + limit]
    if shape is not None:
        page = [shape(i) for i in page]
    pagination: dict[str, Any] = {}
    if start + limit < len(items):
        token = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
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


def _by_orgs_and_status(items: list[dict[str, Any]], request: Request) -> list[dict[str, Any]]:
    if (org := request.query_params.get("organization_id")) is not None:
        items = [e for e in items if any(str(o["id"]) == org for o in e["organizations"])]
    if (status := request.query_params.get("status")) is not None:
        items = [e for e in items if e["status"] == status]
    return items


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"errors": [{"message": message}]}, status_code=status, headers=headers)


def _org(org_id: int, name: str, key: str, *, tenant: str | None, sources: int, learners: int,
         recipients: list[str]) -> dict[str, Any]:
    org = {k: v for k, v in EXAMPLES["OrganizationWithActualProductUsages"].items() if k != "actual_usages"}
    org.update({"id": org_id, "account_id": ACCOUNT["id"], "name": name, "key": key, "incident_reports_count": 2,
                "logs_sources_count": sources, "identity_provider_tenant_id": tenant, "billable_identity_count": 0,
                "sat_learner_count": learners, "report_recipients": recipients,
                "created_at": "2024-02-01T09:00:00Z", "updated_at": "2026-11-01T09:00:00Z"})
    if tenant is None:
        del org["identity_provider_tenant_id"]  # the spec never says null: an unmapped tenant is left out
    return org


def _incident(iid: int, org: int, status: str, severity: str, subject: str, remediations: int,
              agent: int | None = None) -> dict[str, Any]:
    incident = {**EXAMPLES["IncidentReport"], "id": iid, "account_id": ACCOUNT["id"], "organization_id": org,
                "agent_id": agent, "status": status, "severity": severity, "subject": subject, "platform": "windows",
                "indicator_types": ["footholds"], "sent_at": "2026-10-01T10:00:00Z",
                "status_updated_at": "2026-10-02T10:00:00Z", "updated_at": "2026-10-02T10:00:00Z",
                "closed_at": "2026-10-02T10:00:00Z" if status == "closed" else None,
                "remediations": {"total_count": remediations, "has_more": remediations > 10, "items": []}}
    if agent is None:
        del incident["agent_id"]  # not an agent's incident: the spec never says null, so it is left out
    return incident


def _escalation(model: str, eid: int, status: str, severity: str, subject: str, kind: str, org: int,
                org_name: str, subtype: str | None = None) -> dict[str, Any]:
    """An escalation or a platform action (the spec gives both the same shape)."""
    item = {**EXAMPLES[model], "id": eid, "account": {"id": ACCOUNT["id"], "name": ACCOUNT["name"]},
            "organizations": [{"id": org, "name": org_name}], "status": status, "severity": severity,
            "subject": subject, "type": kind, "created_at": "2026-10-01T10:00:00Z",
            "updated_at": "2026-10-02T10:00:00Z"}
    if subtype is not None:
        item["subtype"] = subtype
    if status != "resolved":
        item.pop("resolved_at", None)  # not resolved: no time (the spec never says null)
    return item


SIEM_PAGE = 200  # rows a page (the spec)


def _log_record(org_id: int, host: str, at: datetime) -> dict[str, Any]:
    """One SIEM record, keyed by ECS field names as the spec's example; the organization in ECS's
    organization.id (the spec does not say which field carries it)."""
    return {"uuid": f"0196{int(at.timestamp() * 1000):012x}-7000-8000-{org_id:012d}", "@timestamp": _ts(at),
            "organization.id": str(org_id), "event.provider": "Microsoft-Windows-Security-Auditing",
            "host.hostname": host, "message": "An account was successfully logged on."}


def _parse_time(ts: str) -> datetime:
    at = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _esql(query: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The few ESQL commands a watch sends; None for a query that does not begin with FROM logs."""
    commands = [c.strip() for c in query.split("|")]
    if not commands or commands[0] != "FROM logs":
        return None
    out = list(rows)
    for command in commands[1:]:
        if where := re.fullmatch(r'WHERE\s+(\S+)\s*==\s*"([^"]*)"', command):
            out = [r for r in out if str(r.get(where[1])) == where[2]]
        elif sort := re.fullmatch(r"SORT\s+(\S+)(?:\s+(ASC|DESC))?", command):
            out.sort(key=lambda r: str(r.get(sort[1]) or ""), reverse=sort[2] == "DESC")
        elif limit := re.fullmatch(r"LIMIT\s+(\d+)", command):
            out = out[:int(limit[1])]
        else:
            return None
    return out


def _days_ago(ts: str) -> int:
    return (datetime.now(UTC) - datetime.fromisoformat(ts.replace("Z", "+00:00"))).days


def _ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
