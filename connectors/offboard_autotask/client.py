"""Autotask REST v1.0 endpoints as thin typed methods over VendorHttp (notes §2): child collections of
the ticket for its notes and attachments; ``pageDetails.nextPageUrl`` followed (500 a page)."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from offboard.errors import VendorReplyError
from offboard.wire.http import Reply, VendorHttp

from .models import Attachment, Created, Fields, Note, One, PageDetails, Ticket, parse


def refusal(response: httpx.Response) -> str | None:
    """Autotask answers a request it will not carry out (validation, business rules, a file too large
    or of a type off the allow-list) with ``{"errors": [...]}``, often under HTTP 500 (issue 26, as
    public clients report): a refusal, never a transient fault to retry or an ambiguous write."""
    if response.status_code > 500:  # a gateway's 502-504: the request may not have reached Autotask
        return None
    body = response.json()
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and all(isinstance(e, str) for e in errors):
        return "; ".join(errors)
    return None


class AutotaskClient:
    def __init__(self, http: VendorHttp) -> None:
        self.http = http

    def _items(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        url: str | None = path
        seen: set[str] = set()
        while url is not None:
            body = self.http.get(url).body
            if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                raise VendorReplyError("Autotask", f"GET {path}", "reply has no 'items' list (wrong envelope)")
            items += body["items"]
            details = parse(PageDetails, body.get("pageDetails") or {}, f"GET {path}")
            url = details.nextPageUrl or None
            if url is not None and url in seen:
                raise VendorReplyError("Autotask", f"GET {path}", "nextPageUrl repeats (paging would loop)")
            if url is not None and not self.http.same_origin(url):
                raise VendorReplyError("Autotask", f"GET {path}", "nextPageUrl is on another host")
            seen.add(url or "")
        return items

    def ticket(self, ticket_id: int) -> Ticket:
        path = f"/V1.0/Tickets/{ticket_id}"
        return parse(One, self.http.get(path).body, f"GET {path}").item

    def notes(self, ticket_id: int) -> list[Note]:
        path = f"/V1.0/Tickets/{ticket_id}/Notes"
        return [parse(Note, item, f"GET {path}") for item in self._items(path)]

    def note_fields(self) -> Fields:
        """The tenant's picklists for notes (publish, noteType): read, never assumed (notes §2)."""
        path = "/V1.0/TicketNotes/entityInformation/fields"
        return parse(Fields, self.http.get(path).body, f"GET {path}")

    def attachment_fields(self) -> Fields:
        """The tenant's picklists for a ticket's attachments (their own ``publish``)."""
        path = "/V1.0/TicketAttachments/entityInformation/fields"
        return parse(Fields, self.http.get(path).body, f"GET {path}")

    def add_note(self, ticket_id: int, title: str, text: str, note_type: int, publish: int) -> tuple[int, Reply]:
        """Plain text only: the API cannot write Rich Text (notes §2)."""
        path = f"/V1.0/Tickets/{ticket_id}/Notes"
        reply = self.http.request("POST", path, json={"ticketID": ticket_id, "title": title, "description": text,
                                                      "noteType": note_type, "publish": publish})
        return parse(Created, reply.body, f"POST {path}").itemId, reply

    def attachments(self, ticket_id: int) -> list[Attachment]:
        path = f"/V1.0/Tickets/{ticket_id}/Attachments"
        return [parse(Attachment, item, f"GET {path}") for item in self._items(path)]

    def add_attachment(self, ticket_id: int, name: str, content: bytes, title: str,
                       publish: int) -> tuple[int, Reply]:
        """Base64 JSON (notes §2): ``attachmentType`` FILE_ATTACHMENT, ``fullPath`` the file name."""
        path = f"/V1.0/Tickets/{ticket_id}/Attachments"
        reply = self.http.request("POST", path, json={
            "parentID": ticket_id, "attachmentType": "FILE_ATTACHMENT", "fullPath": name, "title": title,
            "publish": publish, "data": base64.b64encode(content).decode("ascii")})
        return parse(Created, reply.body, f"POST {path}").itemId, reply

    def set_status(self, ticket_id: int, status: int) -> tuple[int, Reply]:
        """The id goes in the body, not the URL (notes §2)."""
        reply = self.http.request("PATCH", "/V1.0/Tickets", json={"id": ticket_id, "status": status})
        return parse(Created, reply.body, "PATCH /V1.0/Tickets").itemId, reply
