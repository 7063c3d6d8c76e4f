"""A test double of ConnectWise PSA's REST API v3.0 for one MSP (a Starlette app). NOT ConnectWise.

It follows what offboard relies on (vendor-notes/psa-apis.md §1): Basic
``<companyId>+<publicKey>:<privateKey>`` and a ``clientId`` header on every request (missing:
refused); ``GET /service/tickets/{id}`` with ``status {id, name}`` and ``closedFlag``;
``PATCH /service/tickets/{id}`` with a JSON-Patch array; ``GET/POST /service/tickets/{id}/notes``
(the note fields the notes name, nothing else) and a JSON-Patch ``PATCH`` of one note;
``GET /system/documents?recordType=Ticket&recordId=``
and a **multipart** ``POST /system/documents`` (a file sent as JSON gets 415, as ConnectWise's own
page says); ``page``/``pageSize`` paging (at most 1,000) with the ``Link`` header's rel="next"; 429 with
``Retry-After`` past its capacity.

Seeded with the exit's ticket (open), a closed ticket and another company's ticket.
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from offboard.connectors.sandboxing import Fault, Logged, SandboxBase

__all__ = ["DEMO_CLIENT_ID", "DEMO_PRIVATE", "DEMO_PUBLIC", "EXIT_TICKET", "ConnectWiseSandbox", "Fault", "Logged"]

PREFIX = "/v4_6_release/apis/3.0"
COMPANY = "sandboxmsp"
DEMO_PUBLIC = "cw_sandbox_public_key"
DEMO_PRIVATE = "cw_sandbox_private_key_not_real"
DEMO_CLIENT_ID = "00000000-cafe-4000-8000-sandbox00001"
EXIT_TICKET = 4711
CLOSED_TICKET = 4712
OTHER_TICKET = 5001
STATUSES = {16: ("In Progress", False), 20: ("Waiting Customer", False), 31: ("Closed", True),
            32: ("Completed", True)}
NOTE_FIELDS = frozenset({"text", "detailDescriptionFlag", "internalAnalysisFlag", "resolutionFlag",
                         "processNotifications", "customerUpdatedFlag", "member", "contact"})  # notes §1
DOCUMENT_FIELDS = frozenset({"file", "recordType", "recordId", "title", "privateFlag", "readOnlyFlag"})


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ConnectWiseSandbox(SandboxBase):
    time_scale: float = 1.0
    rate_limit: int = 120
    send_retry_after: bool = True
    max_upload: int = 50 * 1024 * 1024
    refuse_types: tuple[str, ...] = ()
    # ConnectWise documents no refusal of notes on a closed ticket; a board's rules may refuse them.
    refuse_when_closed: bool = False
    page_cap: int = 1000  # a server may give fewer items a page than asked: the Link header says what follows
    requests: list[Logged] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    # Called with each note as it is stored by a POST: a test adds what another client posted meanwhile.
    on_note: Callable[[dict[str, Any]], None] | None = None

    base_window = 60.0

    def __post_init__(self) -> None:
        self._init_gate()
        self.tickets: dict[int, dict[str, Any]] = {
            EXIT_TICKET: _ticket(EXIT_TICKET, "Customer exit: Acme Dental", "ACME", 16),
            CLOSED_TICKET: _ticket(CLOSED_TICKET, "Acme Dental: old onboarding", "ACME", 31),
            OTHER_TICKET: _ticket(OTHER_TICKET, "Globex: printer", "GLOBEX", 16),
        }
        self.notes: list[dict[str, Any]] = [
            {"id": 70001, "ticketId": EXIT_TICKET, "text": "Customer asked to end services on 31 December.",
             "detailDescriptionFlag": True, "internalAnalysisFlag": False, "resolutionFlag": False,
             "dateCreated": _now(), "createdBy": "jdoe"}]
        self.documents: list[dict[str, Any]] = []
        self.files: dict[int, bytes] = {}
        self._next = 70002
        p = PREFIX
        self.app = self.gated(Starlette(routes=[
            Route(p + "/service/tickets/{id:int}", self._ticket, methods=["GET", "PATCH"]),
            Route(p + "/service/tickets/{id:int}/notes", self._notes, methods=["GET", "POST"]),
            Route(p + "/service/tickets/{id:int}/notes/{note:int}", self._note, methods=["GET", "PATCH"]),
            Route(p + "/system/documents", self._documents, methods=["GET", "POST"]),
            *self.control_routes(),
        ]))

    def authorize(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic ") or request.headers.get("clientid") != DEMO_CLIENT_ID:
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return "member" if (user, password) == (f"{COMPANY}+{DEMO_PUBLIC}", DEMO_PRIVATE) else None

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        code = {400: "InvalidObject", 401: "Unauthorized", 404: "NotFound", 415: "UnsupportedMediaType",
                429: "TooManyRequests"}.get(status, "Error")
        return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)

    # -- what tests and the demo look at -------------------------------------------------------

    def ticket_notes(self, ticket_id: int = EXIT_TICKET) -> list[dict[str, Any]]:
        return [n for n in self.notes if n["ticketId"] == ticket_id]

    def ticket_documents(self, ticket_id: int = EXIT_TICKET) -> list[dict[str, Any]]:
        return [d for d in self.documents if d["_recordId"] == ticket_id]

    def close_ticket(self, ticket_id: int = EXIT_TICKET) -> None:
        self._set_status(self.tickets[ticket_id], 31)

    # -- routes ------------------------------------------------------------------------------

    def _set_status(self, ticket: dict[str, Any], status: int) -> None:
        name, closed = STATUSES.get(status, (f"Status {status}", False))
        ticket.update(status={"id": status, "name": name}, closedFlag=closed)

    def _paged(self, request: Request, items: list[dict[str, Any]], allowed: set[str]) -> Response:
        """``page``/``pageSize`` (default 25, at most 1,000), and the ``Link`` header naming the next page
        (and the last), as ConnectWise documents its paging (notes §1)."""
        unknown = set(request.query_params) - allowed - {"page", "pageSize"}
        if unknown:
            return self.error(400, f"unknown parameter(s) {sorted(unknown)}")
        size = int(request.query_params.get("pageSize", "25"))
        page = int(request.query_params.get("page", "1"))
        if not 1 <= size <= 1000:
            return self.error(400, "pageSize must be 1 to 1000")
        size = min(size, self.page_cap)
        last = max(1, -(-len(items) // size))
        links = []
        if page < last:
            links.append(f'<{request.url.include_query_params(page=page + 1, pageSize=size)}>; rel="next"')
            links.append(f'<{request.url.include_query_params(page=last, pageSize=size)}>; rel="last"')
        headers = {"Link": ", ".join(links)} if links else None
        return JSONResponse(items[(page - 1) * size: page * size], headers=headers)

    async def _ticket(self, request: Request) -> Response:
        ticket = self.tickets.get(request.path_params["id"])
        if ticket is None:
            return self.error(404, "Ticket not found")
        if request.method == "GET":
            return JSONResponse(ticket)
        try:
            ops = await request.json()
        except ValueError:
            return self.error(400, "the body is not JSON")
        if not isinstance(ops, list) or not ops:
            return self.error(400, "expected a JSON-Patch array")
        for op in ops:
            value = op.get("value") if isinstance(op, dict) else None
            if not isinstance(op, dict) or op.get("op") != "replace" or op.get("path") != "status" or not (
                    isinstance(value, dict) and isinstance(value.get("id"), int)):
                return self.error(400, f"unsupported patch operation {op!r}")
            self._set_status(ticket, value["id"])
        return JSONResponse(ticket)

    async def _notes(self, request: Request) -> Response:
        tid = request.path_params["id"]
        if tid not in self.tickets:
            return self.error(404, "Ticket not found")
        if request.method == "GET":
            return self._paged(request, self.ticket_notes(tid), set())
        try:
            body = await request.json()
        except ValueError:
            return self.error(400, "the body is not JSON")
        if not isinstance(body, dict) or set(body) - NOTE_FIELDS or not isinstance(body.get("text"), str):
            return self.error(400, "a note is {text, …flags}; unexpected fields: "
                              f"{sorted(set(body) - NOTE_FIELDS) if isinstance(body, dict) else body!r}")
        if self.refuse_when_closed and self.tickets[tid].get("closedFlag"):
            return self.error(400, "The ticket is closed")
        flags = ("detailDescriptionFlag", "internalAnalysisFlag", "resolutionFlag")
        if not any(body.get(f) for f in flags):
            return self.error(400, "a note needs one of detailDescriptionFlag, internalAnalysisFlag, resolutionFlag")
        note = {"id": self._next, "ticketId": tid, "text": body["text"], **{f: bool(body.get(f)) for f in flags},
                "dateCreated": _now(), "createdBy": "APIMember"}
        self._next += 1
        self.notes.append(note)
        if self.on_note is not None:
            self.on_note(note)
        return JSONResponse(note, status_code=201)

    async def _note(self, request: Request) -> Response:
        """One note; a PATCH is a JSON-Patch array, as ConnectWise takes it for a ticket's note (only
        ``replace`` of ``text`` and the flags here: what a change to a note is)."""
        tid, nid = request.path_params["id"], request.path_params["note"]
        note = next((n for n in self.ticket_notes(tid) if n["id"] == nid), None) if tid in self.tickets else None
        if note is None:
            return self.error(404, "Note not found")
        if request.method == "GET":
            return JSONResponse(note)
        try:
            ops = await request.json()
        except ValueError:
            return self.error(400, "the body is not JSON")
        editable = {"text", "detailDescriptionFlag", "internalAnalysisFlag", "resolutionFlag"}
        if not isinstance(ops, list) or not ops or not all(
                isinstance(op, dict) and op.get("op") == "replace" and op.get("path") in editable for op in ops):
            return self.error(400, f"unsupported patch operation(s) {ops!r}")
        for op in ops:
            if op["path"] == "text" and not isinstance(op.get("value"), str):
                return self.error(400, "text must be a string")
            note[op["path"]] = op.get("value")
        note["_info"] = {"lastUpdated": _now(), "updatedBy": "APIMember"}
        return JSONResponse(note)

    async def _documents(self, request: Request) -> Response:
        if request.method == "GET":
            params = request.query_params
            if params.get("recordType") != "Ticket":
                return self.error(400, "recordType must be Ticket")
            tid = int(params.get("recordId", "0") or 0)
            listed = [{k: v for k, v in d.items() if not k.startswith("_")} for d in self.ticket_documents(tid)]
            return self._paged(request, listed, {"recordType", "recordId"})
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return self.error(415, "Unsupported Media Type: send the file as multipart/form-data")
        form = _multipart(content_type, await request.body())
        if set(form) - DOCUMENT_FIELDS or "file" not in form:
            return self.error(400, f"unexpected form fields {sorted(set(form) - DOCUMENT_FIELDS)} or no file")
        name, content = form["file"]
        tid = int(form.get("recordId", ("", b"0"))[1] or 0)
        if form.get("recordType", ("", b""))[1] != b"Ticket" or tid not in self.tickets:
            return self.error(400, "recordType=Ticket and an existing recordId are required")
        if self.refuse_when_closed and self.tickets[tid].get("closedFlag"):
            return self.error(400, "The ticket is closed")
        if any(name.endswith(t) for t in self.refuse_types):
            return self.error(400, f"File type not allowed: {name}")
        if len(content) > self.max_upload:
            return self.error(413, "File too large")
        doc_id = self._next
        doc: dict[str, Any] = {"id": doc_id, "title": form.get("title", ("", b""))[1].decode(), "fileName": name,
               "serverFileName": f"{self._next}-{name}", "owner": "APIMember", "linkFlag": False, "imageFlag": False,
               "publicFlag": form.get("privateFlag", ("", b"true"))[1] != b"true", "readOnlyFlag": False,
               "size": len(content), "_recordId": tid}
        self._next += 1
        self.documents.append(doc)
        self.files[doc_id] = content
        return JSONResponse({k: v for k, v in doc.items() if not k.startswith("_")}, status_code=201)


def _ticket(tid: int, summary: str, company: str, status: int) -> dict[str, Any]:
    name, closed = STATUSES[status]
    return {"id": tid, "summary": summary, "board": {"id": 1, "name": "Service"},
            "status": {"id": status, "name": name}, "company": {"identifier": company}, "closedFlag": closed}


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str, bytes]]:
    """A multipart/form-data body as {field: (file name or "", bytes)}, with the standard library."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    out: dict[str, tuple[str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            payload = part.get_payload(decode=True)
            out[name] = (part.get_filename() or "", payload if isinstance(payload, bytes) else b"")
    return out
