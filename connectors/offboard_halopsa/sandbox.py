"""A test double of HaloPSA's REST API for one MSP's instance (a Starlette app). NOT HaloPSA.

It follows what offboard relies on (vendor-notes/psa-apis.md §3, field names from Halo's OpenAPI
document, which the contract tests hold it to): OAuth2 client credentials at ``/auth/token``
(form-encoded, ``scope=all``), bearer tokens on ``/api``; ``GET /api/Tickets/{id}``;
``POST /api/Tickets`` as an upsert of ``[{id, status_id}]``; ``GET /api/Actions?ticket_id=``
listing ``{record_count, actions}``; ``POST /api/Actions`` taking an array and answering the
action made; ``GET/POST /api/Attachment`` (base64 JSON); 429 past 300 requests in a rolling
5 minutes; an action type the API agent may not use refused with Halo's message. It refuses a
field the notes do not name in what it receives. Faults can be injected; time compressed.

Seeded with the exit's ticket (open), a closed ticket and another customer's ticket.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import unescape
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from offboard.connectors.sandboxing import Fault, Logged, SandboxBase

__all__ = ["DEMO_CLIENT_ID", "DEMO_SECRET", "EXIT_TICKET", "Fault", "HaloSandbox", "Logged"]

DEMO_CLIENT_ID = "halo-sandbox-client-id"
DEMO_SECRET = "halo_sandbox_client_secret_not_real"
EXIT_TICKET = 4711
CLOSED_TICKET = 4712
OTHER_TICKET = 5001
OPEN, CLOSED = 2, 9
STATUS_NAMES = {1: "New", 2: "In Progress", 9: "Closed", 21: "Resolved - awaiting confirmation"}
TOKEN_FIELDS = frozenset({"grant_type", "client_id", "client_secret", "scope"})
ACTION_FIELDS = frozenset({"ticket_id", "outcome_id", "note", "note_html", "hiddenfromuser", "sendemail",
                           "new_status"})  # notes §3
ATTACHMENT_FIELDS = frozenset({"ticket_id", "action_id", "filename", "data_base64", "note",
                               "showforusers"})  # notes §3; showforusers: schema Attachment
TICKET_FIELDS = frozenset({"id", "status_id"})
ALLOWED_OUTCOMES = frozenset({7})  # the API agent may use "Internal Note" only
# The instance's action types (schema TOutcome): id -> (name, hidden from the end user).
STOCK_OUTCOMES: dict[int, tuple[str, bool]] = {1: ("Logged", False), 7: ("Internal Note", True),
                                               12: ("Email User", False)}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class HaloSandbox(SandboxBase):
    time_scale: float = 1.0
    rate_limit: int = 300
    send_retry_after: bool = False  # whether Halo sends Retry-After is not known (notes §3)
    max_upload: int = 50 * 1024 * 1024
    refuse_types: tuple[str, ...] = ()  # file name endings refused with 400, as an instance may
    outcomes: dict[int, tuple[str, bool]] = field(default_factory=lambda: dict(STOCK_OUTCOMES))
    # Halo documents no refusal of actions on a closed ticket; an instance's workflow may refuse them.
    refuse_when_closed: bool = False
    list_cap: int | None = None  # an instance that lists fewer actions than its record_count (a fault)
    requests: list[Logged] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)

    base_window = 300.0

    def __post_init__(self) -> None:
        self._init_gate()
        self.tokens: dict[str, float] = {}
        self.tickets: dict[int, dict[str, Any]] = {
            EXIT_TICKET: _ticket(EXIT_TICKET, "Customer exit: Acme Dental", 101, "Acme Dental", OPEN),
            CLOSED_TICKET: _ticket(CLOSED_TICKET, "Acme Dental: old onboarding", 101, "Acme Dental", CLOSED),
            OTHER_TICKET: _ticket(OTHER_TICKET, "Globex: printer", 102, "Globex Logistics", OPEN),
        }
        self.actions: list[dict[str, Any]] = [
            {"id": 90001, "ticket_id": EXIT_TICKET, "outcome_id": 1, "outcome": "Logged", "who_agentid": 3,
             "datetime": _now(), "note": "Customer asked to end services on 31 December.",
             "note_html": "<p>Customer asked to end services on 31 December.</p>", "hiddenfromuser": False},
        ]
        self.attachments: list[dict[str, Any]] = []
        self.files: dict[int, bytes] = {}
        self._next = 90002
        self.app = self.gated(Starlette(routes=[
            Route("/auth/token", self._token, methods=["POST"]),
            Route("/api/Tickets/{id:int}", self._get_ticket),
            Route("/api/Tickets", self._post_tickets, methods=["POST"]),
            Route("/api/Actions", self._actions, methods=["GET", "POST"]),
            Route("/api/Outcome", self._outcomes),
            Route("/api/Outcome/{id:int}", self._outcome),
            Route("/api/Attachment", self._attachment, methods=["GET", "POST"]),
            *self.control_routes(),
        ]))

    # -- the gate's hooks ------------------------------------------------------------------

    def unauthenticated(self, path: str) -> bool:
        return path == "/auth/token" or super().unauthenticated(path)

    def authorize(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        expiry = self.tokens.get(token)
        return "agent" if expiry is not None and time.monotonic() < expiry else None

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        if status == 429:
            message = "Rate Limit Reached - 300 Requests per rolling 5 minute window"
        return JSONResponse(message, status_code=status, headers=headers)

    # -- what tests and the demo look at -------------------------------------------------------

    def ticket_actions(self, ticket_id: int = EXIT_TICKET) -> list[dict[str, Any]]:
        return [a for a in self.actions if a["ticket_id"] == ticket_id]

    def ticket_attachments(self, ticket_id: int = EXIT_TICKET) -> list[dict[str, Any]]:
        return [a for a in self.attachments if a["ticket_id"] == ticket_id]

    def close_ticket(self, ticket_id: int = EXIT_TICKET) -> None:
        self.tickets[ticket_id].update(status_id=CLOSED, status_name=STATUS_NAMES[CLOSED], hasbeenclosed=True)

    # -- routes ------------------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if set(form) - TOKEN_FIELDS or form.get("grant_type") != "client_credentials" or form.get("scope") != "all":
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        if form.get("client_id") != DEMO_CLIENT_ID or form.get("client_secret") != DEMO_SECRET:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        token = "halo_" + secrets.token_hex(16)
        self.tokens[token] = time.monotonic() + 3600
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": "all"})

    async def _get_ticket(self, request: Request) -> Response:
        ticket = self.tickets.get(request.path_params["id"])
        if ticket is None:
            return self.error(404, "Ticket not found")
        return JSONResponse(ticket)

    async def _post_tickets(self, request: Request) -> Response:
        body = await _array(request, TICKET_FIELDS)
        if isinstance(body, Response):
            return body
        out = []
        for item in body:
            tid = item.get("id")
            ticket = self.tickets.get(tid) if isinstance(tid, int) else None
            if ticket is None:
                return self.error(400, f"Ticket {item.get('id')} not found")
            if "status_id" in item:
                status = item["status_id"]
                ticket.update(status_id=status, status_name=STATUS_NAMES.get(status, f"Status {status}"),
                              hasbeenclosed=status == CLOSED)
            out.append(ticket)
        return JSONResponse(out[0] if len(out) == 1 else out)

    def _outcome_view(self, oid: int) -> dict[str, Any]:
        name, hidden = self.outcomes[oid]
        return {"id": oid, "outcome": name, "buttonname": name, "hidefromuser": hidden, "sendemail": 0}

    async def _outcomes(self, _request: Request) -> Response:
        return JSONResponse([self._outcome_view(oid) for oid in sorted(self.outcomes)])

    async def _outcome(self, request: Request) -> Response:
        oid = request.path_params["id"]
        if oid not in self.outcomes:
            return self.error(404, "Action type not found")
        return JSONResponse(self._outcome_view(oid))

    async def _actions(self, request: Request) -> Response:
        if request.method == "GET":
            tid = self._listing_of(request, {"ticket_id", "excludesys", "includehtmlnote", "count"})
            if isinstance(tid, Response):
                return tid
            items = [_listed(a, request.query_params.get("includehtmlnote") == "true")
                     for a in self.ticket_actions(tid)]
            return JSONResponse({"record_count": len(items), "actions": items[:self.list_cap]})
        return await self._create(request, ACTION_FIELDS, self._new_action)

    def _new_action(self, item: dict[str, Any]) -> dict[str, Any] | Response:
        if item.get("outcome_id") not in ALLOWED_OUTCOMES:
            return self.error(400, "You do not have access to this Action")
        html = str(item.get("note_html") or "")
        action = {"id": self._next, "ticket_id": item["ticket_id"], "outcome_id": item["outcome_id"],
                  "outcome": "Internal Note", "who_agentid": 99, "datetime": _now(),
                  "note": item.get("note") or _plain(html), "note_html": html,
                  "hiddenfromuser": bool(item.get("hiddenfromuser", False))}
        self._next += 1
        self.actions.append(action)
        return action

    async def _attachment(self, request: Request) -> Response:
        if request.method == "GET":
            tid = self._listing_of(request, {"ticket_id"})
            if isinstance(tid, Response):
                return tid
            listed = [{k: v for k, v in a.items() if k != "ticket_id"} for a in self.ticket_attachments(tid)]
            return JSONResponse({"ticket_id": tid, "record_count": len(listed), "attachments": listed})
        return await self._create(request, ATTACHMENT_FIELDS, self._new_attachment)

    def _new_attachment(self, item: dict[str, Any]) -> dict[str, Any] | Response:
        name = str(item.get("filename") or "")
        if not name or any(name.endswith(t) for t in self.refuse_types):
            return self.error(400, f"File type not allowed: {name}")
        try:
            content = base64.b64decode(str(item.get("data_base64") or ""), validate=True)
        except (binascii.Error, ValueError):
            return self.error(400, "data_base64 is not base64")
        if len(content) > self.max_upload:
            return self.error(413, "File too large")
        att = {"id": self._next, "ticket_id": item["ticket_id"], "filename": name, "note": item.get("note") or "",
               "filesize": len(content), "datecreated": _now(), "type": 0, "isimage": False,
               "showforusers": bool(item.get("showforusers", True))}
        self._next += 1
        self.attachments.append(att)
        self.files[att["id"]] = content
        return att

    def _listing_of(self, request: Request, allowed: set[str]) -> int | Response:
        """The ticket a GET lists for; a parameter Halo does not take is refused."""
        unknown = set(request.query_params) - allowed
        if unknown:
            return self.error(400, f"unknown parameter(s) {sorted(unknown)}")
        return int(request.query_params.get("ticket_id", "0") or 0)

    async def _create(self, request: Request, fields: frozenset[str],
                      make: Callable[[dict[str, Any]], dict[str, Any] | Response]) -> Response:
        """Halo's POSTs: an array of objects, each on an existing ticket, made in turn (those before
        a refused one stay made); one made is answered alone, more as an array."""
        body = await _array(request, fields)
        if isinstance(body, Response):
            return body
        made = []
        for item in body:
            if item.get("ticket_id") not in self.tickets:
                return self.error(400, "Ticket not found")
            if self.refuse_when_closed and self.tickets[item["ticket_id"]].get("hasbeenclosed"):
                return self.error(400, "This ticket is closed")
            obj = make(item)
            if isinstance(obj, Response):
                return obj
            made.append(obj)
        return JSONResponse(made[0] if len(made) == 1 else made, status_code=201)


def _ticket(tid: int, summary: str, client_id: int, client: str, status: int) -> dict[str, Any]:
    return {"id": tid, "summary": summary, "client_id": client_id, "client_name": client, "status_id": status,
            "status_name": STATUS_NAMES[status], "hasbeenclosed": status == CLOSED, "dateoccurred": _now()}


def _listed(action: dict[str, Any], with_html: bool) -> dict[str, Any]:
    return action if with_html else {k: v for k, v in action.items() if k != "note_html"}


def _plain(html: str) -> str:
    """The text Halo keeps beside an HTML note: tags dropped, entities read."""
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip())


async def _array(request: Request, allowed: frozenset[str]) -> list[dict[str, Any]] | Response:
    """Halo's POSTs take an array of objects; a field the notes do not name is refused."""
    try:
        body = await request.json()
    except ValueError:
        return JSONResponse("The request body is not JSON", status_code=400)
    if not isinstance(body, list) or not body or not all(isinstance(i, dict) for i in body):
        return JSONResponse("Expected an array of objects", status_code=400)
    for item in body:
        unknown = set(item) - allowed
        if unknown:
            return JSONResponse(f"Unexpected field(s) {sorted(unknown)}", status_code=400)
    return body
