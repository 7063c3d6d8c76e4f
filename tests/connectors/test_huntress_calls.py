"""The exact HTTP calls the Huntress connector makes (respx at the httpx transport seam)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from offboard import engine
from offboard.errors import ExitCode, VendorAuthError
from offboard.plan import Action, Target
from offboard.wire.ratelimit import SlidingWindowLimiter
from offboard_huntress import HuntressSettings, connector
from tests.conftest import DEMO_CREDS, load, write_config
from tests.fakeclock import FakeClock

API = "https://api.huntress.io"
ORG = {"id": 42, "account_id": 7, "name": "Acme Dental", "agents_count": 3,
       "actual_usages": {"edr": {"billable_agents_count": 3, "isolated_agents_count": 0}}}


def agent(agent_id: int, org: int = 42, host: str | None = None) -> dict[str, Any]:
    return {"id": agent_id, "organization_id": org, "hostname": host or f"acme-{agent_id}", "platform": "windows",
            "os": "Windows 11", "firewall_status": "Enabled", "last_callback_at": "2026-11-23T09:00:00Z"}


def session(settings: HuntressSettings | None = None) -> Any:
    settings = settings or HuntressSettings(organization_id=42)
    return connector.open(settings, DEMO_CREDS["huntress"])


def mock_discovery(router: respx.MockRouter, pages: list[list[dict[str, Any]]]) -> respx.Route:
    router.get(f"{API}/v1/actor").respond(json={"account": {"id": 7, "name": "MSP"},
                                                "user": {"id": 1, "email": "t@msp.example"}})
    router.get(f"{API}/v1/organizations/42").respond(json={"organization": ORG})
    router.get(f"{API}/v1/memberships").respond(json={"memberships": [], "pagination": {}})
    router.get(f"{API}/v1/unwanted_access_rules").respond(json={"unwanted_access_rules": [], "pagination": {}})
    router.get(f"{API}/v1/platform_actions").respond(json={"platform_actions": [], "pagination": {}})
    replies = []
    for n, page in enumerate(pages):
        pagination = {} if n == len(pages) - 1 else {
            "next_page_token": f"tok{n + 1}",
            "next_page_url": f"{API}/v1/agents?organization_id=42&limit=500&page_token=tok{n + 1}"}
        replies.append(httpx.Response(200, json={"agents": page, "pagination": pagination}))
    return router.get(f"{API}/v1/agents").mock(side_effect=replies)


def test_discovery_lists_all_three_pages_with_limit_500_and_the_org_filter() -> None:
    with respx.mock as router:
        agents = mock_discovery(router, [[agent(3)], [agent(2)], [agent(1)]])
        inventory = session().discover()
        calls = [(c.request.method, c.request.url.path) for c in router.calls]
    params = [dict(c.request.url.params) for c in agents.calls]
    assert params == [
        {"organization_id": "42", "limit": "500"},
        {"organization_id": "42", "limit": "500", "page_token": "tok1"},
        {"organization_id": "42", "limit": "500", "page_token": "tok2"},
    ]
    assert [i.target.id for i in inventory.items if i.target.type == "agent"] == ["3", "2", "1"]
    assert inventory.snapshot["agents_count"] == 3
    assert calls == [
        ("GET", "/v1/actor"), ("GET", "/v1/organizations/42"),
        ("GET", "/v1/agents"), ("GET", "/v1/agents"), ("GET", "/v1/agents"),
        ("GET", "/v1/memberships"), ("GET", "/v1/unwanted_access_rules")]


def test_paging_follows_next_page_url_when_only_it_is_given() -> None:
    with respx.mock as router:
        mock_discovery(router, [])
        route = router.get(f"{API}/v1/agents").mock(side_effect=[
            httpx.Response(200, json={"agents": [agent(2)], "pagination": {
                "next_page_url": f"{API}/v1/agents?limit=500&organization_id=42&page_token=abc"}}),
            httpx.Response(200, json={"agents": [agent(1)], "pagination": {}}),
        ])
        inventory = session().discover()
    assert route.calls[1].request.url.params["page_token"] == "abc"
    assert route.calls[1].request.url.params["organization_id"] == "42"
    assert len([i for i in inventory.items if i.target.type == "agent"]) == 2


def test_preflight_reads_incidents_and_escalations_once_each_and_picks_the_open_ones() -> None:
    # One list of every status each (the evidence export keeps them all), not one call per open status.
    with respx.mock as router:
        mock_discovery(router, [[agent(1)]])
        incidents = router.get(f"{API}/v1/incident_reports").respond(json={"incident_reports": [
            {"id": 9, "organization_id": 42, "status": "sent", "subject": "HIGH - Incident"},
            {"id": 8, "organization_id": 42, "status": "closed", "subject": "LOW - Incident"}], "pagination": {}})
        escalations = router.get(f"{API}/v1/escalations").respond(json={"escalations": [
            {"id": 5, "status": "resolved", "subject": "done"}], "pagination": {}})
        s = session()
        findings = s.preflight(s.discover())
    assert [dict(c.request.url.params) for c in incidents.calls] == [{"organization_id": "42", "limit": "500"}]
    assert [dict(c.request.url.params) for c in escalations.calls] == [{"organization_id": "42", "limit": "500"}]
    by_kind = {f.kind: f for f in findings}
    assert by_kind["open_incident_reports"].blocking and by_kind["open_incident_reports"].count == 1
    assert "#9 sent" in by_kind["open_incident_reports"].detail and "#8" not in by_kind["open_incident_reports"].detail
    assert not by_kind["open_escalations"].blocking and not by_kind["isolated_hosts"].blocking


def uninstall(agent_id: int, name: str = "acme") -> Action:
    return Action(id=f"huntress.uninstall_agent.{agent_id}", vendor="huntress", step="remove-endpoint-coverage",
                  kind="api", operation="uninstall_agent", target=Target(type="agent", id=str(agent_id), name=name),
                  summary="uninstall", call=f"DELETE /v1/agents/{agent_id}", owner="organization:42")


def test_removal_is_one_delete_per_agent_answered_204() -> None:
    with respx.mock(assert_all_called=True) as router:
        route = router.delete(f"{API}/v1/agents/17").respond(204)
        result = session().execute(uninstall(17))
    assert route.call_count == 1
    assert result.outcome == "success" and not result.already_absent
    assert result.http is not None and (result.http.method, result.http.path, result.http.status) == (
        "DELETE", "/v1/agents/17", 204)


def test_a_404_on_delete_is_rechecked_with_get_and_recorded_as_already_absent() -> None:
    with respx.mock as router:
        router.delete(f"{API}/v1/agents/17").respond(404)
        get = router.get(f"{API}/v1/agents/17").respond(404)
        result = session().execute(uninstall(17))
    assert get.call_count == 1
    assert result.outcome == "success" and result.already_absent


def test_a_404_on_delete_for_an_agent_still_visible_is_a_failure() -> None:
    with respx.mock as router:
        router.delete(f"{API}/v1/agents/17").respond(404)
        router.get(f"{API}/v1/agents/17").respond(json={"agent": agent(17)})
        result = session().execute(uninstall(17))
    assert result.outcome == "failure" and "still visible" in result.detail


def test_a_read_only_key_gets_one_clear_line_about_user_based_keys() -> None:
    with respx.mock as router:
        router.delete(f"{API}/v1/agents/17").respond(403, json={"errors": "read-only"})
        with pytest.raises(VendorAuthError) as info:
            session().execute(uninstall(17))
    assert "user-based Huntress API key" in str(info.value) and "\n" not in str(info.value)
    assert info.value.exit_code == ExitCode.BAD_INPUT


def test_verification_proves_removals_from_the_listing_and_never_counts_a_listed_object_as_gone() -> None:
    with respx.mock as router:
        mock_discovery(router, [[agent(18)]])  # 17 is gone from the organization's listing, 18 is not
        router.get(f"{API}/v1/organizations/42").respond(json={"organization": {**ORG, "agents_count": 1}})
        gone = router.get(f"{API}/v1/agents/17").respond(404)
        still = router.get(f"{API}/v1/agents/18").respond(json={"agent": agent(18)})
        s = session()
        from offboard.plan import Step, VendorPlan
        vp = VendorPlan(vendor="huntress", display_name="Huntress", scope="x", account="y",
                        inventory_fingerprint="z", steps=(Step(id="s", vendor="huntress", title="t",
                                                               actions=(uninstall(17), uninstall(18))),))
        checks = s.verify(vp, s.discover())
    # No object is read: the listing proves 17 gone, and 18 is still listed, whatever a GET of it says.
    assert gone.call_count == 0 and still.call_count == 0
    assert [(c.name, c.passed, c.action_id) for c in checks] == [
        ("organization agents_count is 0", False, None), ("no agent listed for the organization", False, None),
        ("no membership listed for the organization", True, None), ("no organization-scoped ITDR rule listed", True,
                                                                    None),
        ("uninstall: acme", True, "huntress.uninstall_agent.17"),
        ("uninstall: acme", False, "huntress.uninstall_agent.18")]
    assert "no longer listed (GET /v1/agents?organization_id=42); agents_count=1" in checks[4].detail
    assert checks[5].detail == "still listed (GET /v1/agents?organization_id=42), owner organization:42"


def test_429_then_success_honours_retry_after_through_the_connector() -> None:
    s = session()
    clock = FakeClock()
    s.http.limiter = SlidingWindowLimiter(60, 60, clock=clock, sleep=clock.sleep)
    s.http._sleep = clock.sleep
    with respx.mock as router:
        route = router.get(f"{API}/v1/actor").mock(side_effect=[
            httpx.Response(429, headers={"Retry-After": "3"}),
            httpx.Response(200, json={"account": {"id": 7, "name": "MSP"}})])
        s.actor()
    assert route.call_count == 2
    assert clock.slept == [3.0]


def mock_evidence_reads(router: respx.MockRouter) -> None:
    for key in ("incident_reports", "signals", "escalations", "reports", "identities", "invoices"):
        router.get(f"{API}/v1/{key}").respond(json={key: [], "pagination": {}})


def test_scope_guard_a_neighbour_agent_slipped_into_the_listing_is_never_deleted(tmp_path: Path) -> None:
    """The listing is filtered by organization, but the reply carries another org's agent anyway."""
    cfg = load(write_config(tmp_path, API, window=60, extra='products = ["edr"]\n'))
    neighbour = agent(99, org=43, host="GLOBEX-WS-01")
    with respx.mock as router:
        mock_discovery(router, [[agent(3), neighbour], [agent(1)]])
        mock_evidence_reads(router)
        deletes = router.delete(url__regex=rf"{API}/v1/agents/\d+").respond(204)
        # The scope guard reads each agent alone before its DELETE: each is the customer's.
        router.get(url__regex=rf"{API}/v1/agents/\d+").mock(side_effect=lambda request: httpx.Response(
            200, json={"agent": agent(int(request.url.path.rsplit("/", 1)[1]))}))
        with engine.open_sessions(cfg, creds=DEMO_CREDS) as s:
            plan = engine.make_plan(cfg, s)
            removals = [a.target.id for a in plan.api_actions() if a.destructive]
            assert removals == ["1", "3"]
            assert [k.target.id for k in plan.vendor("huntress").skipped] == ["99"]
            # Apply re-reads the same listing (its evidence export keeps that read, no second one);
            # verification then sees only the neighbour's agent.
            router.get(f"{API}/v1/agents").mock(side_effect=[
                httpx.Response(200, json={"agents": [agent(3), neighbour], "pagination": {"next_page_token": "t"}}),
                httpx.Response(200, json={"agents": [agent(1)], "pagination": {}}),
                httpx.Response(200, json={"agents": [neighbour], "pagination": {}})])
            router.get(f"{API}/v1/organizations/42").mock(side_effect=[
                httpx.Response(200, json={"organization": ORG}),
                httpx.Response(200, json={"organization": {**ORG, "agents_count": 0}})])
            result = engine.apply(plan, cfg, s)
        delete_paths = sorted(c.request.url.path for c in deletes.calls)
    assert delete_paths == ["/v1/agents/1", "/v1/agents/3"]
    assert result.exit_code == ExitCode.MANUAL_PENDING  # the EDR path is done; manual items remain
    assert result.counts["succeeded"] == 2 and result.counts["failed"] == 0
