"""ConnectWise PSA endpoints as thin typed methods over VendorHttp (notes §1). No retry or sleep here;
lists are paged as ConnectWise documents it: ``page``/``pageSize`` (at most 1,000 a page), then the
``Link`` header's rel="next"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from offboard.errors import VendorReplyError
from offboard.wire.http import Reply, VendorHttp

from .models import Document, Note, Ticket, parse, parse_list

PAGE = 1000  # the most ConnectWise gives a page (notes §1); a server may give fewer


def next_link(headers: Mapping[str, str], http: VendorHttp, call: str) -> str | None:
    """The ``Link`` header's rel="next" URL (RFC 8288, parsed by httpx), on the API's own origin only."""
    value = next((v for k, v in headers.items() if k.lower() == "link"), "")
    if not value:
        return None
    url = httpx.Response(200, headers={"link": value}).links.get("next", {}).get("url")
    if url is None:
        return None
    if not http.same_origin(url):
        raise VendorReplyError("ConnectWise", call, "the Link header's next page is on another host")
    return url


def refusal(response: httpx.Response) -> str | None:
    """ConnectWise's error envelope ``{code, message, errors?}``: a 4xx carrying it is a refusal (the
    request was not carried out); under a 5xx only its validation code ``InvalidObject`` is."""
    body = response.json()
    if not isinstance(body, dict) or not isinstance(body.get("code"), str) or not isinstance(body.get("message"), str):
        return None
    if response.status_code >= 500 and body["code"] != "InvalidObject":
        return None
    return f"{body['code']}: {body['message']}"


class ConnectWiseClient:
    def __init__(self, http: VendorHttp) -> None:
        self.http = http

    def _pages(self, path: str, params: dict[str, Any]) -> list[Any]:
        """Every item of a list: the first page asked with ``page``/``pageSize``, then the ``Link`` header's
        rel="next" followed until there is none (notes §1). A page shorter than asked is not the end: a
        server may cap pages lower than asked. A next link seen before, a page repeating an earlier
        one, or more than max_pages pages end the listing (the wire's paging guard)."""
        items: list[Any] = []
        url: str | None = path
        guard = self.http.page_guard(f"GET {path}")
        query: dict[str, Any] | None = {**params, "page": 1, "pageSize": PAGE}
        while url is not None:
            guard.request({"url": url, **(query or {})})
            reply = self.http.get(url, params=query)
            body = reply.body
            if not isinstance(body, list):
                return body  # type: ignore[no-any-return]  # not a list: the parser names it
            items += body
            guard.received(body)
            url, query = next_link(reply.headers, self.http, f"GET {path}"), None
        return items

    def ticket(self, ticket_id: int) -> Ticket:
        path = f"/service/tickets/{ticket_id}"
        return parse(Ticket, self.http.get(path).body, f"GET {path}")

    def notes(self, ticket_id: int) -> list[Note]:
        path = f"/service/tickets/{ticket_id}/notes"
        return parse_list(Note, self._pages(path, {}), f"GET {path}")

    def add_note(self, ticket_id: int, text: str, *, customer_visible: bool) -> tuple[Note, Reply]:
        """Internal (``internalAnalysisFlag``) unless the customer is to see it (Discussion,
        ``detailDescriptionFlag``); ``processNotifications`` false: offboard sends no mail itself."""
        path = f"/service/tickets/{ticket_id}/notes"
        reply = self.http.request("POST", path, json={
            "text": text, "detailDescriptionFlag": customer_visible, "internalAnalysisFlag": not customer_visible,
            "resolutionFlag": False, "processNotifications": False})
        return parse(Note, reply.body, f"POST {path}"), reply

    def edit_note(self, ticket_id: int, note_id: int, text: str) -> tuple[Note, Reply]:
        """A JSON-Patch ``replace`` of the note's ``text``, as ConnectWise takes a change to a ticket's note
        (``PATCH /service/tickets/{parentId}/notes/{id}``: ConnectWiseManageAPI's Update-CWMTicketNote,
        pyconnectwise's patchable ServiceTicketsIdNotesIdEndpoint); its flags are left as they are."""
        path = f"/service/tickets/{ticket_id}/notes/{note_id}"
        reply = self.http.request("PATCH", path, json=[{"op": "replace", "path": "text", "value": text}])
        return parse(Note, reply.body, f"PATCH {path}"), reply

    def documents(self, ticket_id: int) -> list[Document]:
        return parse_list(Document, self._pages("/system/documents", {"recordType": "Ticket", "recordId": ticket_id}),
                          "GET /system/documents")

    def add_document(self, ticket_id: int, filename: str, content: bytes, title: str) -> tuple[Document, Reply]:
        """Multipart, not base64 JSON: ConnectWise answers 415 to a file sent as JSON (notes §1)."""
        reply = self.http.request("POST", "/system/documents",
                                  files={"file": (filename, content, "application/octet-stream")},
                                  data={"recordType": "Ticket", "recordId": str(ticket_id), "title": title,
                                        "privateFlag": "true", "readOnlyFlag": "false"})
        return parse(Document, reply.body, "POST /system/documents"), reply

    def set_status(self, ticket_id: int, status_id: int) -> tuple[Ticket, Reply]:
        path = f"/service/tickets/{ticket_id}"
        reply = self.http.request("PATCH", path, json=[{"op": "replace", "path": "status",
                                                         "value": {"id": status_id}}])
        return parse(Ticket, reply.body, f"PATCH {path}"), reply
