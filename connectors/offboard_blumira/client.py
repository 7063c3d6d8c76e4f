"""Blumira endpoints as thin typed methods over VendorHttp (vendor-notes §2.2).

Everything is under ``/msp/accounts/{account_id}/…`` for the one sub-account of the
exit: no call lists other sub-accounts or their objects. No retry, sleep or paging
logic lives here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from offboard.wire.http import HttpRecord, Reply, VendorHttp
from offboard.wire.paging import Totals, count
from offboard.wire.replies import M

from . import unknowns
from .models import Account, AgentKey, Device, User, Webhook, items, parse, unwrap

NOT_FOUND = frozenset({404})


@dataclass(frozen=True)
class NumberedPages:
    """``page`` (1-based) and ``page_size``; stop when ``links.next`` is null, the page is
    empty or short, or ``meta.total_pages`` is reached (vendor-notes §1.5). More pages than
    ``meta.total_items``/``total_pages`` allow end the listing in VendorHttp's paging guard."""

    path: str
    page_size: int

    def first(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, "page": 1, "page_size": self.page_size}

    def items(self, body: Any) -> list[dict[str, Any]]:
        return items(body, f"GET {self.path}")

    def next(self, body: Any, params: dict[str, Any]) -> dict[str, Any] | None:
        page = int(params["page"])
        got = len(self.items(body))
        if not isinstance(body, dict) or got == 0:
            return None
        meta: dict[str, Any] = body["meta"] if isinstance(body.get("meta"), dict) else {}
        links: dict[str, Any] | None = body["links"] if isinstance(body.get("links"), dict) else None
        total_pages = meta.get("total_pages")
        if isinstance(total_pages, int) and page >= total_pages:
            return None
        if links is not None and "next" in links and not links["next"]:
            return None
        if total_pages is None and links is None and got < self.page_size:
            return None
        return {**params, "page": page + 1}

    def totals(self, body: Any) -> Totals | None:
        meta = body.get("meta") if isinstance(body, dict) else None
        if not isinstance(meta, dict):
            return None
        return Totals(items=count(meta.get("total_items")), pages=count(meta.get("total_pages")))


class BlumiraClient:
    def __init__(self, http: VendorHttp, account_id: str, page_size: int) -> None:
        self.http = http
        self.account_id = account_id
        self.page_size = page_size

    def path(self, *rest: object) -> str:
        return "/".join([f"/msp/accounts/{self.account_id}", *(str(r) for r in rest)])

    # -- generic ------------------------------------------------------------------

    def list_raw(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a list, as the vendor sent it (evidence keeps every field)."""
        query = {k: v for k, v in params.items() if v is not None}
        yield from self.http.paginate(path, NumberedPages(path, self.page_size), query)

    def one_raw(self, path: str) -> tuple[dict[str, Any] | None, HttpRecord]:
        reply = self.http.get(path, allow=NOT_FOUND)
        return (None if reply.status == 404 else unwrap(reply.body, f"GET {path}")), reply.record

    def _one(self, path: str, model: type[M]) -> tuple[M | None, HttpRecord]:
        body, record = self.one_raw(path)
        return (None if body is None else parse(model, body, f"GET {path}")), record

    def total(self, path: str, **params: Any) -> tuple[int, HttpRecord]:
        """How many items a list holds, from one one-item page (meta.total_items)."""
        reply = self.http.get(path, params={**params, "page": 1, "page_size": 1})
        listed = items(reply.body, f"GET {path}")
        meta = reply.body.get("meta") if isinstance(reply.body, dict) else None
        total = meta.get("total_items") if isinstance(meta, dict) else None
        return (total if isinstance(total, int) else len(listed)), reply.record

    # -- the sub-account --------------------------------------------------------------

    def account(self) -> tuple[Account | None, HttpRecord]:
        return self._one(self.path(), Account)

    def devices(self) -> Iterator[Device]:
        path = self.path("agents", "devices")
        for item in self.list_raw(path):
            yield parse(Device, item, f"GET {path}")

    def device(self, device_id: str) -> tuple[Device | None, HttpRecord]:
        return self._one(self.path("agents", "devices", device_id), Device)

    def dispatch_action(self, device_id: str, body: dict[str, Any]) -> Reply:
        return self.http.request("POST", self.path("agents", "devices", device_id, "actions"), json=body,
                                 allow=frozenset({400, 403, 404, 405, 422, 501}))

    def agent_keys(self) -> Iterator[AgentKey]:
        path = self.path("agents", "keys")
        for item in self.list_raw(path):
            yield parse(AgentKey, item, f"GET {path}")

    def users(self) -> Iterator[User]:
        path = self.path("users")
        for item in self.list_raw(path):
            yield parse(User, item, f"GET {path}")

    def finding_extras(self, finding_id: str) -> tuple[list[dict[str, Any]], list[str], list[dict[str, Any]]]:
        """A finding's evidence rows, evidence keys and comments (comments may be a bare array)."""
        base = self.path("findings", finding_id)
        rows: list[dict[str, Any]] = []
        keys: list[str] = []
        # Paged, but the evidence keys ride beside the rows.
        for body, page in self.http.pages(f"{base}/evidence", NumberedPages(f"{base}/evidence", self.page_size)):
            rows += page
            if isinstance(body, dict) and isinstance(body.get("evidence_keys"), list):
                keys = [str(k) for k in body["evidence_keys"]]
        comments = items(self.http.get(f"{base}/comments").body, f"GET {base}/comments")
        return rows, keys, comments

    # -- MSP-level -----------------------------------------------------------------------

    def webhooks(self) -> list[Webhook]:
        body = self.http.get("/msp/webhooks").body  # not known to page (vendor-notes §2.2 #24)
        return [parse(Webhook, w, "GET /msp/webhooks") for w in items(body, "GET /msp/webhooks")]

    def webhook(self, hook_id: str) -> tuple[Webhook | None, HttpRecord]:
        return self._one(f"/msp/webhooks/{hook_id}", Webhook)

    def delete_webhook(self, hook_id: str) -> Reply:
        return self.http.request("DELETE", f"/msp/webhooks/{hook_id}", allow=frozenset({403, 404, 405}))

    def action_catalog(self) -> Reply:
        """The agent action catalog is published only under /org (unknowns.ACTION_CATALOG): an
        MSP key may be refused, which the caller treats as "not offered"."""
        return self.http.get(unknowns.ACTION_CATALOG_PATH, allow=unknowns.REFUSED)
