"""Fewest calls: an exit reads each list once. The account's limit is shared by every customer of a
migration, so each avoidable read is time taken from all of them."""

from __future__ import annotations

import math
from typing import Any

import pytest

from offboard import engine
from offboard.engine import execute
from offboard_huntress.sandbox import CUSTOMER_ORG, HuntressSandbox
from tests.conftest import FAST, Harness, load, write_config

LAB = engine.Overrides(preflight="lab")
AGENTS = 520  # two pages of 500


@pytest.mark.parametrize("trust_listing", [False, True], ids=["owner-read", "trust-listing"])
def test_an_exit_of_n_agents_in_p_pages_costs_its_removals_plus_p_plus_15_calls_before_verification(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch, trust_listing: bool) -> None:
    sandbox = HuntressSandbox(time_scale=FAST, customer_agents=AGENTS)
    harness = Harness(sandbox, load(write_config(tmp_path)))
    at_verification: list[int] = []
    verify_run = execute.verify_run

    def counted(*args: Any, **kwargs: Any) -> Any:
        at_verification.append(len(sandbox.requests))
        return verify_run(*args, **kwargs)

    monkeypatch.setattr(execute, "verify_run", counted)
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
    planned = len(sandbox.requests)
    with harness.sessions() as s:
        result = engine.apply(plan, harness.cfg, s, overrides=engine.Overrides(preflight="lab",
                                                                                trust_listing=trust_listing))
    assert result.exit_code == 3 and sandbox.agents_of(CUSTOMER_ORG) == []
    calls = [r for r in sandbox.requests[planned:at_verification[0]] if not r.path.startswith("/_sandbox/")]
    removals = [a for a in plan.api_actions() if a.destructive]  # one call each: agents, isolation, access…
    pages = math.ceil(AGENTS / 500)
    # The scope guard: by default one read of each object before its write; with --trust-listing apply's
    # own re-read of the vendors stands in, and a discovery (organization, the agents' pages,
    # memberships, rules) is taken each listings.MAX_AGE_S seconds (this run is far shorter).
    guard = 0 if trust_listing else len(removals)
    assert len(removals) >= AGENTS
    assert len(calls) <= len(removals) + pages + 15 + guard, sorted({r.path for r in calls if r.method == "GET"})
    # each list once before the first removal: the agents, the organization, the memberships
    first_write = next(n for n, r in enumerate(calls) if r.method != "GET")
    reads = [r.path for r in calls[:first_write]]
    assert reads.count("/v1/agents") == pages  # apply's re-read, whichever the mode
    if trust_listing:
        return
    assert reads.count(f"/v1/organizations/{CUSTOMER_ORG}") == 1 and reads.count("/v1/memberships") == 1
    assert reads.count("/v1/incident_reports") == 1 and reads.count("/v1/escalations") == 1


def test_a_saved_plan_still_exports_every_list_when_the_exit_is_resumed_after_discovery(harness: Harness) -> None:
    # The export takes what this run's discovery read; a run that discovered nothing reads it itself.
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        result = engine.apply(plan, harness.cfg, s, overrides=LAB)
    evidence = result.run.path / "evidence" / "huntress"
    for name in ("agents.json", "memberships.json", "organization.json", "incident_reports.json",
                 "escalations.json"):
        assert (evidence / name).stat().st_size > 2, name
    assert '"hostname"' in (evidence / "agents.json").read_text()
    assert (evidence / "incident_reports.json").read_text().count('"status"') >= 2  # every status, not the open


def test_verification_reads_the_report_recipients_from_the_fresh_organization(harness: Harness) -> None:
    with harness.sessions() as s:
        result = engine.apply(engine.make_plan(harness.cfg, s), harness.cfg, s, overrides=LAB)
    check = next(c for c in result.checks if c.action_id == f"huntress.clear_report_recipients.{CUSTOMER_ORG}")
    assert check.passed and "lists 0 report recipient(s)" in check.detail
    assert FAST  # the in-process sandbox's clock


def test_a_discovery_after_the_agents_export_keeps_nothing_for_another_export(harness: Harness) -> None:
    # The listings taken after the export (the scope guard's, verification's) are not spooled for it:
    # an export of the agents asked for again in the same session reads them from the vendor anew.
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        engine.apply(plan, harness.cfg, s, overrides=LAB)  # exports the agents, then verifies (a discovery)
        session = s.by_vendor["huntress"]
        export = next(a for a in plan.actions() if a.operation == "export.agents")
        session.discover()
        before = len(harness.sandbox.requests)
        session.execute(export)
    assert "/v1/agents" in [r.path for r in harness.sandbox.requests[before:]]
