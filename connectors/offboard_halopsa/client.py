"""HaloPSA endpoints as thin typed methods over VendorHttp (notes §3; paths as in Halo's OpenAPI
document, relative to the instance's ``/api``). No retry or sleep here; the ticket's actions and
attachments are single lists (the document gives those two endpoints no paging parameters)."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from offboard.errors import VendorReplyError
from offboard.wire.http import Reply, VendorHttp

from .models import Action, ActionList, Attachment, AttachmentView, Outcome, Ticket, parse


def refusal(response: httpx.Response) -> str | None:
    """HaloPSA refuses a request with a 4xx whose body is its message, a JSON string (e.g. "You do not
    have access to this Action", notes §3): a refusal. A 5xx is not one (its cause is not documented)."""
    if response.status_code >= 500:
        return None
    body = response.json()
    return body if isinstance(body, str) and body.strip() else None


class HaloClient:
    def __init__(self, http: VendorHttp) -> None:
        self.http = http

    def ticket(self, ticket_id: int) -> Ticket:
        path = f"/Tickets/{ticket_id}"
        return parse(Ticket, self.http.get(path).body, f"GET {path}")

    def actions(self, ticket_id: int) -> list[Action]:
        # excludesys: only actions people (and offboard) wrote; includehtmlnote: the body as posted.
        # Halo's document gives /Actions no paging parameters (no pageinate, page_no, page_size): the ticket's
        # actions come in one list. A list shorter than its own record_count is incomplete: offboard cannot
        # tell whether its note is in it, so it says so rather than post a second copy.
        reply = self.http.get("/Actions", params={"ticket_id": ticket_id, "excludesys": "true",
                                                  "includehtmlnote": "true"})
        listed = parse(ActionList, reply.body, "GET /Actions")
        _complete(listed.record_count, len(listed.actions), "GET /Actions")
        return listed.actions

    def outcome(self, outcome_id: int) -> Outcome:
        """An action type (``GET /Outcome/{id}``, schema TOutcome): ``hidefromuser`` is whether its actions
        are hidden from the end user."""
        path = f"/Outcome/{outcome_id}"
        return parse(Outcome, self.http.get(path).body, f"GET {path}")

    def outcomes(self) -> list[Outcome]:
        body = self.http.get("/Outcome").body
        if not isinstance(body, list):
            raise VendorReplyError("HaloPSA", "GET /Outcome", "reply is not a list of action types")
        return [parse(Outcome, item, "GET /Outcome") for item in body]

    def add_action(self, ticket_id: int, outcome_id: int, note_html: str, *, hidden: bool) -> tuple[Action, Reply]:
        """``POST /Actions`` takes an array (notes §3); ``sendemail`` stays false: offboard never mails
        the customer, the PSA's own workflow does that if the MSP wants it."""
        body = [{"ticket_id": ticket_id, "outcome_id": outcome_id, "note_html": note_html,
                 "hiddenfromuser": hidden, "sendemail": False}]
        reply = self.http.request("POST", "/Actions", json=body)
        return _created(Action, reply, "POST /Actions"), reply

    def attachments(self, ticket_id: int) -> list[Attachment]:
        reply = self.http.get("/Attachment", params={"ticket_id": ticket_id})
        view = parse(AttachmentView, reply.body, "GET /Attachment")
        _complete(view.record_count, len(view.attachments or []), "GET /Attachment")
        return view.attachments or []

    def add_attachment(self, ticket_id: int, filename: str, content: bytes, note: str) -> tuple[Attachment, Reply]:
        # showforusers false: the file is not shown to the end user (schema Attachment).
        body = [{"ticket_id": ticket_id, "filename": filename, "note": note, "showforusers": False,
                 "data_base64": base64.b64encode(content).decode("ascii")}]
        reply = self.http.request("POST", "/Attachment", json=body)
        return _created(Attachment, reply, "POST /Attachment"), reply

    def set_status(self, ticket_id: int, status_id: int) -> tuple[Ticket, Reply]:
        """``POST /Tickets`` is an upsert on ``id`` (notes §3)."""
        reply = self.http.request("POST", "/Tickets", json=[{"id": ticket_id, "status_id": status_id}])
        return _created(Ticket, reply, "POST /Tickets"), reply


def _complete(record_count: int | None, listed: int, call: str) -> None:
    if record_count is not None and record_count > listed:
        raise VendorReplyError("HaloPSA", call, f"the list holds {listed} of its record_count {record_count}: it is "
                                                "incomplete, and Halo documents no paging for it")


def _created(model: Any, reply: Reply, call: str) -> Any:
    """Halo answers a POST of one object with that object (some versions: a list of one)."""
    body = reply.body
    if isinstance(body, list):
        if len(body) != 1:
            raise VendorReplyError("HaloPSA", call, f"expected the one object posted, got a list of {len(body)}")
        body = body[0]
    return parse(model, body, call)
