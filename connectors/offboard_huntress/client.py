"""Huntress endpoints as thin typed methods over VendorHttp (vendor-notes §2.1).

No retry, sleep or paging logic lives here: VendorHttp does all of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from offboard.errors import VendorReplyError
from offboard.http import HttpRecord, Reply, VendorHttp

from .models import Actor, Agent, Escalation, IncidentReport, Organization, parse

PAGE_LIMIT = 500  # the API's maximum page size (§1.4)


@dataclass(frozen=True)
class TokenPages:
    """Huntress paging: ``limit`` + ``page_token``; the next token is in
    ``pagination.next_page_token`` or inside ``pagination.next_page_url``. Filters are
    re-sent with every page rather than trusting the URL to keep them."""

    key: str
    limit: int = PAGE_LIMIT

    def first(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, "limit": self.limit}

    def items(self, body: Any) -> list[dict[str, Any]]:
        items = body.get(self.key) if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise VendorReplyError("Huntress", f"GET list of {self.key}",
                                   f"reply has no {self.key!r} list (wrong envelope)")
        return items

    def next(self, body: Any, params: dict[str, Any]) -> dict[str, Any] | None:
        pagination = body.get("pagination") or {}
        if not isinstance(pagination, dict):
            return None
        token = pagination.get("next_page_token")
        if not token and pagination.get("next_page_url"):
            token = parse_qs(urlsplit(str(pagination["next_page_url"])).query).get("page_token", [None])[0]
        if not token:
            return None
        if token == params.get("page_token"):
            raise VendorReplyError("Huntress", f"GET list of {self.key}",
                                   "the next page token repeats the current one (paging would loop)")
        return {**params, "page_token": token}


class HuntressClient:
    def __init__(self, http: VendorHttp) -> None:
        self.http = http

    def actor(self) -> Actor:
        # The only unwrapped reply in the API (§3.10).
        return parse(Actor, self.http.get("/v1/actor").body, "GET /v1/actor")

    def organization(self, org_id: int) -> Organization | None:
        path = f"/v1/organizations/{org_id}"
        reply = self.http.get(path, allow=frozenset({404}))
        if reply.status == 404:
            return None
        return parse(Organization, _unwrap(reply, "organization", path), f"GET {path}")

    def agents(self, org_id: int) -> Iterator[Agent]:
        for item in self.http.paginate("/v1/agents", TokenPages("agents"), {"organization_id": org_id}):
            yield parse(Agent, item, "GET /v1/agents")

    def agent(self, agent_id: int) -> tuple[Agent | None, HttpRecord]:
        path = f"/v1/agents/{agent_id}"
        reply = self.http.get(path, allow=frozenset({404}))
        if reply.status == 404:
            return None, reply.record
        return parse(Agent, _unwrap(reply, "agent", path), f"GET {path}"), reply.record

    def uninstall_agent(self, agent_id: int) -> Reply:
        """Remote uninstall: 204, and the agent leaves the account at once (§2.1)."""
        return self.http.request("DELETE", f"/v1/agents/{agent_id}", allow=frozenset({404}))

    def incident_reports(self, org_id: int, status: str) -> Iterator[IncidentReport]:
        params = {"organization_id": org_id, "status": status}
        for item in self.http.paginate("/v1/incident_reports", TokenPages("incident_reports"), params):
            yield parse(IncidentReport, item, "GET /v1/incident_reports")

    def escalations(self, org_id: int, status: str) -> Iterator[Escalation]:
        params = {"organization_id": org_id, "status": status}
        for item in self.http.paginate("/v1/escalations", TokenPages("escalations"), params):
            yield parse(Escalation, item, "GET /v1/escalations")


def _unwrap(reply: Reply, key: str, path: str) -> Any:
    if not isinstance(reply.body, dict) or key not in reply.body:
        raise VendorReplyError("Huntress", f"GET {path}", f"reply has no {key!r} object (wrong envelope)")
    return reply.body[key]
