"""After the exit: what would show Huntress's service came back (`offboard watch`).

Three reads at most, more only when a list runs over a page: the organization (deleted again,
or its usage counts above zero again: billable agents, identities, SAT learners, log sources),
its agent list (a host re-enrolled from an old image or a forgotten installer), and the SIEM's
logs for the organization since the exit ended (``POST /v1/siem/query``, ESQL, 200 rows a
page; 404 when the account has no SIEM query feature: "not available", never "quiet").
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from offboard.connectors import Watched
from offboard.errors import VendorReplyError
from offboard.wire.http import HttpRecord, VendorHttp

from .client import HuntressClient
from .models import Agent, Organization, billed_counts, parse
from .settings import HuntressSettings
from .steps import UNKNOWN_OWNER, agent_target, billed_products, owner_of_org


class HuntressSession(Protocol):
    """What a watch reads through (the opened session; named here so this module does not import it)."""

    http: VendorHttp
    client: HuntressClient
    s: HuntressSettings
    org_id: int
    owner: str

    def organization_now(self) -> tuple[dict[str, Any] | None, tuple[HttpRecord, ...]]: ...

# The field that carries the organization in the SIEM's records is not documented (vendor-notes,
# update of December 2026); ECS names it organization.id, and a record that names another is not ours.
ORG_FIELD = "organization.id"
SOURCE_FIELDS = ("event.provider", "event.dataset", "host.hostname", "observer.name")
TIME_FIELD = "@timestamp"
MAX_PAGES = 5  # 1,000 records are enough to say the source still sends; the count says "at least" then

ENDPOINTS = "3. Remove endpoint coverage (EDR agents)"
CLOUD = "4. Remove cloud integrations"
DELETE_ORG = "5b. Delete the whole organization"
# Per billed product: the runbook step that stops its count, and the plan operations that do it.
REMEDY = {
    "edr": (f"{ENDPOINTS}: uninstall the agents (offboard watch --plan-out, then offboard apply)",
            ("uninstall_agent", "release_isolation")),
    "itdr": (f"{CLOUD}: unmap the customer's tenant from the identity provider integration",
             ("itdr.unmap-tenant", "delete_unwanted_access_rule")),
    "sat": (f"{CLOUD}: let the campaigns end and deactivate the learners (Managed SAT portal)",
            ("sat.close-campaigns",)),
    "siem": (f"{CLOUD}: disconnect every log source (SIEM → Source Management)", ("siem.disconnect-sources",)),
}


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def watch(session: HuntressSession, since: datetime, now: datetime | None = None) -> list[Watched]:
    now = now or datetime.now(UTC)
    s, org_id = session.s, session.org_id
    out: list[Watched] = []
    path = session.client.path("organizations", org_id)
    body, calls = session.organization_now()
    record = calls[-1] if calls else None
    if body is None:
        said = f"GET {path} → 404"
        out.append(Watched(f"organization {org_id} not listed", False,
                           f"{said}: still deleted" if s.delete_organization else said, http=record))
    else:
        org = parse(Organization, body, f"GET {path}")
        if s.delete_organization:
            out.append(Watched(
                f"organization {org_id} deleted", True,
                f"the deleted organization {org.name!r} (id {org_id}) is listed again (GET {path} → 200)",
                key=f"organization:{org_id}", remedy=f"{DELETE_ORG} (offboard watch --plan-out, then offboard "
                f"apply --confirm \"{org.name}\")", removed_by=("delete_organization",), http=record))
        out += _usages(session, org, path, record)
        if "edr" in s.scope:
            out += _agents(session)
    if "siem" in s.scope:
        out.append(_siem(session, since, now))
    return out


def _usages(session: HuntressSession, org: Organization, path: str, record: Any) -> list[Watched]:
    out: list[Watched] = []
    quiet: list[str] = []
    for product in billed_products(session.s.scope):
        counts = billed_counts(org, product)
        shown = ", ".join(f"{k}={v}" for k, v in counts.items())
        if any(v > 0 for v in counts.values()):
            remedy, ops = REMEDY[product]
            out.append(Watched(f"{product} usage counts at zero", True,
                               f"{product} usage is above zero again: {shown} (GET {path})",
                               key=f"usage:{product}", remedy=remedy, removed_by=ops, http=record))
        else:
            quiet.append(shown)
    if quiet:
        out.append(Watched("usage counts at zero", False, f"GET {path}: " + "; ".join(quiet), http=record))
    return out


def _agents(session: HuntressSession) -> list[Watched]:
    org_id = session.org_id
    call = f"GET {session.client.path('agents')}?organization_id={org_id}"
    out: list[Watched] = []
    for raw in session.client.list_raw("agents", organization_id=org_id):
        a = parse(Agent, raw, "GET /v1/agents")
        owner = UNKNOWN_OWNER if a.id is None or a.organization_id is None else owner_of_org(a.organization_id)
        if owner not in (session.owner, UNKNOWN_OWNER):
            continue  # another organization's agent in a filtered list: not this exit's news
        name = a.hostname or f"agent {a.id}"
        whose = "" if owner == session.owner else " (its reply names no organization: counted as ours)"
        out.append(Watched(
            "no agent listed under the organization", True,
            f"agent {name} (id {a.id if a.id is not None else '?'}) is listed under organization {org_id} again, "
            f"last callback {a.last_callback_at or 'never'}{whose} ({call})",
            key=f"agent:{a.id}" if a.id is not None else f"agent:?{name}",
            target=agent_target(a.id, a.hostname) if a.id is not None else None,
            remedy=REMEDY["edr"][0], removed_by=REMEDY["edr"][1], http=session.http.last_call))
    if not out:
        out.append(Watched("no agent listed under the organization", False, f"{call} lists none",
                           http=session.http.last_call))
    return out


def _siem(session: HuntressSession, since: datetime, now: datetime) -> Watched:
    org_id = session.org_id
    name = f"no SIEM record for organization {org_id} since {iso(since)}"
    esql = f'FROM logs | WHERE {ORG_FIELD} == "{org_id}" | SORT {TIME_FIELD} DESC'
    start, end = iso(since), iso(now)
    ours: list[dict[str, Any]] = []
    foreign = 0
    token: str | None = None
    pages = 0
    more = False
    while True:
        reply = session.client.siem_query(esql, start, end, token)
        pages += 1
        if reply.status == 404:
            return Watched(name, False, "not available: POST /v1/siem/query answers 404 (the SIEM query feature "
                           "is not enabled for this account); check the customer's sources in the portal",
                           available=False, http=reply.record)
        logs, token = _page(reply.body)
        for row in logs:
            if str(row.get(ORG_FIELD)) == str(org_id):
                ours.append(row)
            else:
                foreign += 1
        if not token:
            break
        if pages >= MAX_PAGES:
            more = True
            break
    other = f"; {foreign} record(s) naming another organization ignored" if foreign else ""
    call = f"POST /v1/siem/query, {start} to {end}, {pages} page(s)"
    if not ours:
        return Watched(name, False, f"{call}: none{other}", http=session.http.last_call)
    newest = max(ours, key=lambda r: str(r.get(TIME_FIELD) or ""))
    source = next((str(newest[f]) for f in SOURCE_FIELDS if newest.get(f)), "source not named")
    count = f"at least {len(ours)}" if more else str(len(ours))
    return Watched(name, True, f"{count} SIEM record(s) for organization {org_id} since the exit; the newest at "
                   f"{newest.get(TIME_FIELD) or '?'} from {source} ({call}){other}",
                   key="siem:records", remedy=REMEDY["siem"][0], removed_by=REMEDY["siem"][1],
                   http=session.http.last_call)


def _page(body: Any) -> tuple[list[dict[str, Any]], str | None]:
    """The spec's SiemQueryResult: ``logs`` (objects keyed by ECS field names) and ``pagination``."""
    logs = body.get("logs") if isinstance(body, dict) else None
    if not isinstance(logs, list) or not all(isinstance(r, dict) for r in logs):
        raise VendorReplyError("Huntress", "POST /v1/siem/query", "reply has no 'logs' list of records "
                               "(wrong envelope)")
    pagination = body.get("pagination") or {}
    token = pagination.get("next_page_token") if isinstance(pagination, dict) else None
    return logs, str(token) if token else None
