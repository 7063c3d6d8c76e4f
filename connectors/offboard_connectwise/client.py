"""ConnectWise PSA endpoints as thin typed methods over VendorHttp (notes §1). No retry or sleep here;
lists are paged with ``page``/``pageSize`` (at most 1,000 a page)."""

from __future__ import annotations

from typing import Any

import httpx

from offboard.wire.http import Reply, VendorHttp

from .models import Document, Note, Ticket, parse, parse_list

PAGE = 1000


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
        items: list[Any] = []
        page = 1
        while True:
            body = self.http.get(path, params={**params, "page": page, "pageSize": PAGE}).body
            batch = body if isinstance(body, list) else []
            items += batch
            if len(batch) < PAGE:
                return items if isinstance(body, list) else body  # not a list: the parser names it
            page += 1

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
