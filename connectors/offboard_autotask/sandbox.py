"""A test double of Autotask PSA's REST API v1.0 for one tenant (a Starlette app). NOT Autotask.

It follows what offboard relies on (vendor-notes/psa-apis.md §2): the three headers of an API
user (``ApiIntegrationCode``, ``UserName``, ``Secret``); ``GET /V1.0/Tickets/{id}`` as
``{item}``; ``PATCH /V1.0/Tickets`` with the id in the body; the ticket's child collections
``/V1.0/Tickets/{id}/Notes`` and ``/Attachments`` (``{items, pageDetails}``, 500 a page, and
``{itemId}`` for what is made); notes in plain text only (a note holding HTML tags is refused,
as the API cannot write Rich Text; a refusal is HTTP 500 with ``{"errors": [...]}``, as Autotask
answers); attachments as base64 JSON of at most 6 MB; the note
picklists (``publish``, ``noteType``) at ``/V1.0/TicketNotes/entityInformation/fields`` and the
attachments' at ``/V1.0/TicketAttachments/entityInformation/fields`` (a tenant's own values, retired
ones included, can be given); 429
past the tenant's hourly budget.

Seeded with the exit's ticket (open), a completed ticket and another company's ticket.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from offboard.connectors.sandboxing import Fault, Logged, SandboxBase

__all__ = ["DEMO_CODE", "DEMO_SECRET", "DEMO_USER", "EXIT_TICKET", "AutotaskSandbox", "Fault", "Logged"]

PREFIX = "/atservicesrest"
DEMO_USER = "offboard-api@sandbox-msp.example"
DEMO_SECRET = "at_sandbox_secret_not_real"
DEMO_CODE = "AT-SANDBOX-INTEGRATION-CODE"
EXIT_TICKET = 4711
CLOSED_TICKET = 4712
OTHER_TICKET = 5001
NEW, IN_PROGRESS, COMPLETE, WAITING = 1, 8, 5, 7
INTERNAL, ALL_USERS = 2, 1
# The common tenant's publish picklist (value, label, active); a test gives a tenant its own.
COMMON_PUBLISH: tuple[tuple[int, str, bool], ...] = ((ALL_USERS, "All Autotask Users", True),
                                                     (INTERNAL, "Internal Project Team", True))
NOTE_FIELDS = frozenset({"ticketID", "title", "description", "noteType", "publish"})  # notes §2
ATTACHMENT_FIELDS = frozenset({"parentID", "attachmentType", "fullPath", "title", "publish", "data"})
MAX_FILE = 6_000_000  # "6-7 MB per file through the API" (notes §2)
PAGE = 500


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class AutotaskSandbox(SandboxBase):
    time_scale: float = 1.0
    rate_limit: int = 10_000
    send_retry_after: bool = False
    refuse_types: tuple[str, ...] = ()  # file types off the tenant's allow-list
    publish: tuple[tuple[int, str, bool], ...] = COMMON_PUBLISH  # the tenant's note publish picklist
    attachment_publish: tuple[tuple[int, str, bool], ...] | None = None  # None: the same values as notes
    # No Autotask source says notes are refused on a Complete ticket; a tenant's rules may refuse them.
    refuse_when_closed: bool = False
    page_size: int = PAGE  # at most 500 a page; a tenant may answer with fewer: nextPageUrl says what follows
    requests: list[Logged] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)

    base_window = 3600.0

    def __post_init__(self) -> None:
        self._init_gate()
        self.tickets: dict[int, dict[str, Any]] = {
            EXIT_TICKET: _ticket(EXIT_TICKET, "Customer exit: Acme Dental", 301, IN_PROGRESS),
            CLOSED_TICKET: _ticket(CLOSED_TICKET, "Acme Dental: old onboarding", 301, COMPLETE),
            OTHER_TICKET: _ticket(OTHER_TICKET, "Globex: printer", 302, NEW),
        }
        self.notes: list[dict[str, Any]] = [
            {"id": 30001, "ticketID": EXIT_TICKET, "title": "Exit requested",
             "description": "Customer asked to end services on 31 December.", "noteType": 1, "publish": ALL_USERS,
             "createDateTime": _now(), "creatorResourceID": 29682885}]
        self.attachments: list[dict[str, Any]] = []
        self.files: dict[int, bytes] = {}
        self._next = 30002
        v = PREFIX + "/V1.0"
        self.app = self.gated(Starlette(routes=[
            Route(v + "/Tickets/{id:int}", self._get_ticket),
            Route(v + "/Tickets", self._patch_ticket, methods=["PATCH"]),
            Route(v + "/Tickets/{id:int}/Notes", self._notes, methods=["GET", "POST"]),
            Route(v + "/Tickets/{id:int}/Attachments", self._attachments, methods=["GET", "POST"]),
            Route(v + "/TicketNotes/entityInformation/fields", self._note_fields),
            Route(v + "/TicketAttachments/entityInformation/fields", self._attachment_fields),
            *self.control_routes(),
        ]))

    def authorize(self, request: Request) -> str | None:
        h = request.headers
        ok = (h.get("apiintegrationcode"), h.get("username"), h.get("secret")) == (DEMO_CODE, DEMO_USER, DEMO_SECRET)
        return "api-user" if ok else None

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        if status >= 500:  # a fault in front of Autotask (a gateway, an outage): not Autotask's own refusal
            return Response(f"{status} {message}", status_code=status, headers=headers, media_type="text/plain")
        return JSONResponse({"errors": [message]}, status_code=status, headers=headers)

    def refuse(self, message: str) -> Response:
        """Autotask answers a request it will not carry out with HTTP 500 and ``{"errors": [...]}``
        (issue 26, as public clients report): nothing is done."""
        return JSONResponse({"errors": [message]}, status_code=500)

    # -- what tests and the demo look at -------------------------------------------------------

    def ticket_notes(self, ticket_id: int = EXIT_TICKET) -> list[dict[str, Any]]:
        return [n for n in self.notes if n["ticketID"] == ticket_id]

    def ticket_attachments(self, ticket_id: int = EXIT_TICKET) -> list[dict[str, Any]]:
        return [a for a in self.attachments if a["parentID"] == ticket_id]

    def close_ticket(self, ticket_id: int = EXIT_TICKET) -> None:
        self.tickets[ticket_id]["status"] = COMPLETE

    # -- routes ------------------------------------------------------------------------------

    def _page(self, request: Request, items: list[dict[str, Any]]) -> Response:
        start = int(request.query_params.get("start", "0") or 0)
        size = min(PAGE, self.page_size)
        chunk = items[start:start + size]
        more = start + size < len(items)
        next_url = f"{request.url.scheme}://{request.url.netloc}{request.url.path}?start={start + size}" if more \
            else None
        return JSONResponse({"items": chunk, "pageDetails": {"count": len(chunk), "requestCount": PAGE,
                                                             "prevPageUrl": None, "nextPageUrl": next_url}})

    async def _get_ticket(self, request: Request) -> Response:
        ticket = self.tickets.get(request.path_params["id"])
        if ticket is None:
            return self.error(404, "Ticket not found")
        return JSONResponse({"item": ticket})

    async def _patch_ticket(self, request: Request) -> Response:
        body = await _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("id"), int) or set(body) - {"id", "status"}:
            return self.refuse("PATCH /Tickets takes {id, status}: the id goes in the body")
        ticket = self.tickets.get(body["id"])
        if ticket is None:
            return self.error(404, "Ticket not found")
        if "status" in body:
            ticket["status"] = body["status"]
        return JSONResponse({"itemId": ticket["id"]})

    def _publish_values(self, attachments: bool = False) -> list[dict[str, Any]]:
        values = self.attachment_publish if attachments and self.attachment_publish is not None else self.publish
        return [{"value": str(v), "label": label, "isDefaultValue": v == ALL_USERS, "isActive": active}
                for v, label, active in values]

    def _active_publish(self, attachments: bool = False) -> set[int]:
        return {int(p["value"]) for p in self._publish_values(attachments) if p["isActive"]}

    async def _note_fields(self, _request: Request) -> Response:
        return JSONResponse({"fields": [
            {"name": "noteType", "dataType": "integer", "isPickList": True, "picklistValues": [
                {"value": "1", "label": "Task Summary", "isDefaultValue": False, "isActive": True},
                {"value": "3", "label": "Task Notes", "isDefaultValue": True, "isActive": True}]},
            {"name": "publish", "dataType": "integer", "isPickList": True,
             "picklistValues": self._publish_values()}]})

    async def _attachment_fields(self, _request: Request) -> Response:
        return JSONResponse({"fields": [
            {"name": "publish", "dataType": "integer", "isPickList": True,
             "picklistValues": self._publish_values(attachments=True)}]})

    async def _notes(self, request: Request) -> Response:
        tid = request.path_params["id"]
        if tid not in self.tickets:
            return self.error(404, "Ticket not found")
        if request.method == "GET":
            return self._page(request, self.ticket_notes(tid))
        body = await _json(request)
        if not isinstance(body, dict) or set(body) - NOTE_FIELDS or not body.get("description"):
            return self.refuse("a note is {title, description, noteType, publish}")
        if self.refuse_when_closed and self.tickets[tid]["status"] == COMPLETE:
            return self.refuse("The ticket is Complete: no note can be added")
        if re.search(r"<[a-zA-Z/][^>]*>", str(body["description"])):
            return self.refuse("You cannot use the API to create items that contain Rich Text")
        if body.get("publish") not in self._active_publish() or body.get("noteType") not in (1, 3):
            return self.refuse("publish and noteType must be values of their picklists")
        note = {"id": self._next, "ticketID": tid, "title": body.get("title") or "", "description": body["description"],
                "noteType": body["noteType"], "publish": body["publish"], "createDateTime": _now(),
                "creatorResourceID": 29682999}
        self._next += 1
        self.notes.append(note)
        return JSONResponse({"itemId": note["id"]})

    async def _attachments(self, request: Request) -> Response:
        tid = request.path_params["id"]
        if tid not in self.tickets:
            return self.error(404, "Ticket not found")
        if request.method == "GET":
            listed = [{k: v for k, v in a.items() if k != "data"} for a in self.ticket_attachments(tid)]
            return self._page(request, listed)
        body = await _json(request)
        if not isinstance(body, dict) or set(body) - ATTACHMENT_FIELDS or body.get("attachmentType") != \
                "FILE_ATTACHMENT":
            return self.refuse("an attachment is {attachmentType: FILE_ATTACHMENT, fullPath, title, publish, data}")
        if self.refuse_when_closed and self.tickets[tid]["status"] == COMPLETE:
            return self.refuse("The ticket is Complete: no attachment can be added")
        if body.get("publish") not in self._active_publish(attachments=True):
            return self.refuse("publish must be a value of its picklist")
        name = str(body.get("fullPath") or "")
        if not name or any(name.endswith(t) for t in self.refuse_types):
            return self.refuse(f"The file type of {name!r} is not allowed")
        try:
            content = base64.b64decode(str(body.get("data") or ""), validate=True)
        except (binascii.Error, ValueError):
            return self.refuse("data is not base64")
        if len(content) > MAX_FILE:
            return self.refuse("The attachment exceeds the maximum size")
        att_id = self._next
        self._next += 1
        self.attachments.append({"id": att_id, "parentID": tid, "parentType": 4, "attachmentType": "FILE_ATTACHMENT",
                                 "fullPath": name, "title": body.get("title") or name, "fileSize": len(content),
                                 "publish": body.get("publish"), "attachDate": _now()})
        self.files[att_id] = content
        return JSONResponse({"itemId": att_id})


def _ticket(tid: int, title: str, company: int, status: int) -> dict[str, Any]:
    return {"id": tid, "ticketNumber": f"T20261124.{tid:04d}", "title": title, "companyID": company,
            "status": status, "queueID": 8, "createDate": _now()}


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None
