"""Huntress endpoints as thin typed methods over VendorHttp (vendor-notes §2).

No retry, sleep or paging logic lives here: VendorHttp does all of it. With reseller
credentials and an ``account_id``, the resources the spec mirrors under
``/v1/accounts/{account_id}/…`` are called there (§2.2); the rest stay at ``/v1/…``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from offboard.errors import VendorReplyError
from offboard.wire.http import HttpRecord, Reply, VendorHttp
from offboard.wire.paging import Totals, count
from offboard.wire.replies import M

from .models import (
    Actor,
    Agent,
    Escalation,
    IncidentReport,
    Membership,
    Organization,
    PlatformAction,
    Subscription,
    SummaryReport,
    UnwantedAccessRule,
    parse,
)

PAGE_LIMIT = 500  # the API's maximum page size (§1.4)
# Resources with account-scoped twins for resellers (§2.2); others have none.
MIRRORED = frozenset({"agents", "organizations", "incident_reports", "memberships", "reports", "signals",
                      "invoices"})
NOT_FOUND = frozenset({404})


@dataclass(frozen=True)
class TokenPages:
    """Huntress paging: ``limit`` + ``page_token``; the next token is in
    ``pagination.next_page_token`` or inside ``pagination.next_page_url``. Filters are
    re-sent with every page rather than trusting the URL to keep them. A token seen before, or
    more pages than a ``pagination.total_count`` allows (the legacy scheme's total, §1.4, believed
    only to stop), ends the listing in VendorHttp's paging guard."""

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
        return {**params, "page_token": token}

    def totals(self, body: Any) -> Totals | None:
        pagination = body.get("pagination") if isinstance(body, dict) else None
        if not isinstance(pagination, dict) or count(pagination.get("total_count")) is None:
            return None
        return Totals(items=count(pagination.get("total_count")))


class HuntressClient:
    def __init__(self, http: VendorHttp, account_id: int | None = None) -> None:
        self.http = http
        self.account_id = account_id

    def path(self, resource: str, *rest: object) -> str:
        base = f"/v1/accounts/{self.account_id}" if self.account_id and resource in MIRRORED else "/v1"
        return "/".join([base, resource, *(str(r) for r in rest)])

    # -- generic ------------------------------------------------------------------

    def list_raw(self, resource: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a list, as the vendor sent it (evidence keeps every field)."""
        key = resource.rsplit("/", 1)[-1]
        query = {k: v for k, v in params.items() if v is not None}
        yield from self.http.paginate(self.path(resource), TokenPages(key), query)

    def _one_raw(self, resource: str, key: str, obj_id: object) -> tuple[Any, HttpRecord]:
        path = self.path(resource, obj_id)
        reply = self.http.get(path, allow=NOT_FOUND)
        return (None if reply.status == 404 else _unwrap(reply, key, path)), reply.record

    def _one(self, resource: str, key: str, obj_id: object, model: type[M]) -> tuple[M | None, HttpRecord]:
        """One object, or None when the vendor answers 404."""
        body, record = self._one_raw(resource, key, obj_id)
        return (None if body is None else parse(model, body, f"GET {self.path(resource, obj_id)}")), record

    # -- account and organization ---------------------------------------------------

    def actor(self) -> Actor:
        # The only unwrapped reply in the API (§3.10).
        return parse(Actor, self.http.get("/v1/actor").body, "GET /v1/actor")

    def organization_raw(self, org_id: int) -> tuple[dict[str, Any] | None, HttpRecord]:
        return self._one_raw("organizations", "organization", org_id)

    def organization(self, org_id: int) -> Organization | None:
        body, _ = self.organization_raw(org_id)
        return None if body is None else parse(Organization, body, f"GET /v1/organizations/{org_id}")

    def clear_report_recipients(self, org_id: int) -> Reply:
        return self.http.request("PATCH", self.path("organizations", org_id), json={"report_recipients": []},
                                 allow=NOT_FOUND)

    def delete_organization(self, org_id: int) -> Reply:
        """202 with the organization; 409 when something prevents it (the message says what)."""
        return self.http.request("DELETE", self.path("organizations", org_id), allow=NOT_FOUND)

    # -- agents ---------------------------------------------------------------------

    def agents(self, org_id: int) -> Iterator[Agent]:
        for item in self.list_raw("agents", organization_id=org_id):
            yield parse(Agent, item, "GET /v1/agents")

    def agent(self, agent_id: int) -> tuple[Agent | None, HttpRecord]:
        return self._one("agents", "agent", agent_id, Agent)

    def uninstall_agent(self, agent_id: int) -> Reply:
        """Remote uninstall: 204, and the agent leaves the account at once (§2.1)."""
        return self.http.request("DELETE", self.path("agents", agent_id), allow=NOT_FOUND)

    def release_isolation(self, agent_id: int) -> Reply:
        return self.http.request("DELETE", self.path("agents", agent_id, "isolation"), allow=NOT_FOUND)

    # -- incidents and gates ----------------------------------------------------------

    def incident_reports(self, org_id: int, status: str) -> Iterator[IncidentReport]:
        for item in self.list_raw("incident_reports", organization_id=org_id, status=status):
            yield parse(IncidentReport, item, "GET /v1/incident_reports")

    def remediations(self, incident_id: int) -> list[dict[str, Any]]:
        return list(self.list_raw(f"incident_reports/{incident_id}/remediations"))

    def escalations(self, org_id: int, status: str) -> Iterator[Escalation]:
        for item in self.list_raw("escalations", organization_id=org_id, status=status):
            yield parse(Escalation, item, "GET /v1/escalations")

    def platform_actions(self, org_id: int, status: str) -> Iterator[PlatformAction]:
        for item in self.list_raw("platform_actions", organization_id=org_id, status=status):
            yield parse(PlatformAction, item, "GET /v1/platform_actions")

    # -- users and ITDR rules ------------------------------------------------------------

    def memberships(self, org_id: int) -> Iterator[Membership]:
        for item in self.list_raw("memberships", organization_id=org_id):
            yield parse(Membership, item, "GET /v1/memberships")

    def membership(self, membership_id: int) -> tuple[Membership | None, HttpRecord]:
        return self._one("memberships", "membership", membership_id, Membership)

    def delete_membership(self, membership_id: int) -> Reply:
        """202; the user record itself is kept (§2.1)."""
        return self.http.request("DELETE", self.path("memberships", membership_id), allow=NOT_FOUND)

    def unwanted_access_rules(self, org_id: int) -> Iterator[UnwantedAccessRule]:
        for item in self.list_raw("unwanted_access_rules", organization_id=org_id):
            yield parse(UnwantedAccessRule, item, "GET /v1/unwanted_access_rules")

    def unwanted_access_rule(self, rule_id: int) -> tuple[UnwantedAccessRule | None, HttpRecord]:
        return self._one("unwanted_access_rules", "unwanted_access_rule", rule_id, UnwantedAccessRule)

    def delete_unwanted_access_rule(self, rule_id: int) -> Reply:
        return self.http.request("DELETE", self.path("unwanted_access_rules", rule_id), allow=NOT_FOUND)

    def identities_count(self, org_id: int) -> tuple[int, HttpRecord | None]:
        """0 or 1: whether any identity is left (one item is enough to know)."""
        reply = self.http.get(self.path("identities"), params={"organization_id": org_id, "limit": 1})
        return len(TokenPages("identities").items(reply.body)), reply.record

    # -- reseller billing ------------------------------------------------------------------

    def subscription(self, sub_id: int) -> tuple[Subscription | None, HttpRecord]:
        return self._one("reseller/subscriptions", "subscription", sub_id, Subscription)

    def stop_auto_renew(self, sub_id: int) -> Reply:
        """There is no cancel endpoint; turning auto_renew off is the API's part (§2.2)."""
        return self.http.request("PATCH", f"/v1/reseller/subscriptions/{sub_id}", json={"auto_renew": False},
                                 allow=NOT_FOUND)

    # -- SIEM -------------------------------------------------------------------------

    def siem_query(self, esql: str, range_start: str, range_end: str, page_token: str | None = None) -> Reply:
        """One page (at most 200 rows) of an ESQL query over the SIEM's logs; 404 when the account
        has no SIEM query feature (the spec). A POST that only reads: retried as a read."""
        body: dict[str, Any] = {"esql": esql, "range_start": range_start, "range_end": range_end}
        if page_token:
            body["page_token"] = page_token  # with the same range (the spec)
        return self.http.request("POST", "/v1/siem/query", json=body, allow=NOT_FOUND, read=True)

    # -- reports ----------------------------------------------------------------------

    def summary_reports(self, org_id: int) -> list[dict[str, Any]]:
        return list(self.list_raw("reports", organization_id=org_id))

    def download(self, report: SummaryReport) -> bytes:
        if not report.url:
            raise VendorReplyError("Huntress", f"GET /v1/reports/{report.id}", "the report has no url")
        body = self.http.download(report.url).body
        assert isinstance(body, bytes)
        return body


def _unwrap(reply: Reply, key: str, path: str) -> Any:
    if not isinstance(reply.body, dict) or key not in reply.body:
        raise VendorReplyError("Huntress", f"GET {path}", f"reply has no {key!r} object (wrong envelope)")
    return reply.body[key]
