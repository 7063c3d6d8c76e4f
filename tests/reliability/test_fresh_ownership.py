"""The owner of every object is confirmed immediately before its write (issue 20, findings 1 and 2;
before it, issue 14's listing re-taken every 250 writes), and a write whose outcome a re-read cannot
settle is never resent (issue 14, finding 5)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from offboard import engine
from offboard.connectors import ActionResult
from offboard.engine import listings
from offboard.engine.execute import _run_action
from offboard.engine.scope_guard import ScopeGuard
from offboard.errors import ExitCode
from offboard.plan import Action, Inventory, InventoryItem, Target
from offboard.proof.audit import AuditLog, read_records
from offboard_huntress.sandbox import CUSTOMER_ORG, NEIGHBOUR_ORG, HuntressSandbox
from tests.conftest import Harness

AGENT = re.compile(r"^/v1/agents/(\d+)$")
LAB = engine.Overrides(preflight="lab")


class MoveAfterFirstUninstall(httpx.BaseTransport):
    """Another technician moves one of the customer's agents to the neighbour's organization in
    the portal, while offboard is uninstalling the others."""

    def __init__(self, inner: httpx.BaseTransport, sandbox: HuntressSandbox, victim: int) -> None:
        self.inner, self.sandbox, self.victim, self.moved = inner, sandbox, victim, False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "DELETE" and AGENT.match(request.url.path) and not self.moved:
            self.moved = True
            self.sandbox.agents[self.victim]["organization_id"] = NEIGHBOUR_ORG
        return response


def run_with_a_move(harness: Harness, overrides: engine.Overrides = LAB) -> tuple[engine.RunResult, int]:
    from offboard.connectors.sandboxing import InProcessTransport

    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
    uninstalls = [a for a in plan.actions() if a.operation == "uninstall_agent"]
    victim = int(uninstalls[-1].target.id)  # the last one the run reaches
    mover = MoveAfterFirstUninstall(InProcessTransport(harness.sandbox.app), harness.sandbox, victim)
    with harness.sessions(mover) as s:
        return engine.apply(plan, harness.cfg, s, overrides=overrides), victim


def test_an_agent_moved_to_another_organization_mid_run_is_not_uninstalled_and_fails_verification(
        harness: Harness) -> None:
    result, victim = run_with_a_move(harness)

    assert f"/v1/agents/{victim}" not in [r.path for r in harness.sandbox.requests if r.method == "DELETE"]
    assert harness.sandbox.agents[victim]["organization_id"] == NEIGHBOUR_ORG
    assert result.exit_code == ExitCode.FAILED
    records = list(read_records(result.run.audit_path))
    skipped = [r for r in records if r["event"] == "action.skipped"]
    assert [r["action_id"] for r in skipped] == [f"huntress.uninstall_agent.{victim}"]
    assert skipped[0]["detail"]["owner_now"] == f"organization:{NEIGHBOUR_ORG}"
    assert skipped[0]["detail"]["owner_planned"] == f"organization:{CUSTOMER_ORG}"
    assert skipped[0]["http"]["path"] == f"/v1/agents/{victim}"
    failed = [r for r in records if r["event"] == "verify.failed"]
    assert any(r["action_id"] == f"huntress.uninstall_agent.{victim}" and "nothing proves" in r["detail"]["result"]
               for r in failed)
    assert harness.sandbox.agents_of(CUSTOMER_ORG) == []


def test_each_write_is_preceded_by_a_read_of_its_object_alone(harness: Harness) -> None:
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        before = len(harness.sandbox.requests)
        engine.apply(plan, harness.cfg, s, overrides=LAB)
    calls = [(r.method, r.path) for r in harness.sandbox.requests[before:]]
    writes = [n for n, (method, _) in enumerate(calls) if method != "GET"]
    assert writes
    for n in writes:
        path = calls[n][1].removesuffix("/isolation")
        assert calls[n - 1] == ("GET", path), (calls[n], calls[n - 1])


def test_trust_listing_believes_a_listing_within_its_window_and_re_takes_it_after(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    # Within the window a move is not seen: the documented price of --trust-listing.
    monkeypatch.setattr(listings, "MAX_AGE_S", 10_000.0)
    trusting = engine.Overrides(preflight="lab", trust_listing=True)
    result, victim = run_with_a_move(harness, trusting)
    assert f"/v1/agents/{victim}" in [r.path for r in harness.sandbox.requests if r.method == "DELETE"]
    mode = next(r for r in read_records(result.run.audit_path) if r["event"] == "scope_guard.mode")
    assert mode["detail"]["mode"] == "listing" and mode["detail"]["max_age_s"] == 10_000.0
    # No read of an agent alone: the listing stood in for them.
    assert not [r for r in harness.sandbox.requests if r.method == "GET" and AGENT.match(r.path)]


def test_trust_listing_re_takes_the_listing_once_it_is_as_old_as_its_window(
        sandbox: HuntressSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import load, write_config
    ticks = iter(range(1_000_000))  # one second passes at each look at the clock
    monkeypatch.setattr(listings, "now", lambda: float(next(ticks)))
    monkeypatch.setattr(listings, "MAX_AGE_S", 1.5)  # so each write finds the listing too old: the move is seen
    result, victim = run_with_a_move(Harness(sandbox, load(write_config(tmp_path))),
                                     engine.Overrides(preflight="lab", trust_listing=True))
    assert f"/v1/agents/{victim}" not in [r.path for r in sandbox.requests if r.method == "DELETE"]
    skipped = [r for r in read_records(result.run.audit_path) if r["event"] == "action.skipped"]
    assert [r["action_id"] for r in skipped] == [f"huntress.uninstall_agent.{victim}"]
    # The re-taken listing no longer holds it under the customer: its own re-read names the neighbour.
    assert "no longer listed" in skipped[0]["detail"]["owner_from"]
    assert skipped[0]["detail"]["owner_now"] == f"organization:{NEIGHBOUR_ORG}"


def test_the_listing_is_re_taken_before_the_first_write_and_whenever_it_is_max_age_old() -> None:
    now = [0.0]
    calls: list[str] = []

    class Session:
        def discover(self) -> Inventory:
            calls.append("discover")
            now[0] += 2.0  # a discovery takes time: its age counts from its start
            return Inventory(vendor="v", scope="s", account="a")

    sessions = engine.Sessions({"v": Session()}, {})  # type: ignore[dict-item]
    ls = listings.Listings(sessions, {"v": Inventory(vendor="v", scope="s", account="a")}, clock=lambda: now[0])
    _, age = ls.current("v")  # apply's listing is of unknown age: re-taken before the first write
    assert calls == ["discover"] and age == 2.0
    now[0] = listings.MAX_AGE_S - 0.5  # 0.5 s inside the window (taken at 0.0)
    _, age = ls.current("v")
    assert calls == ["discover"] and age == listings.MAX_AGE_S - 0.5
    now[0] = listings.MAX_AGE_S
    ls.current("v")
    assert calls == ["discover", "discover"]


class Dispatcher:
    """A vendor session for an asynchronous uninstall: its re-read cannot tell whether a dispatch
    landed while the device is still listed."""

    def __init__(self) -> None:
        self.executed: list[str] = []

    def execute(self, action: Action) -> ActionResult:
        self.executed.append(action.id)
        return ActionResult("success", "dispatched")

    def reread(self, action: Action) -> ActionResult:
        return ActionResult("unknown", "device still listed; no command visible", owner="account:1")

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the engine called {name}")


def test_a_dispatch_that_may_have_landed_is_not_resent_when_the_run_resumes(tmp_path: Path) -> None:
    target = Target(type="device", id="d1", name="pc")
    action = Action(id="v.uninstall.d1", vendor="v", step="s", kind="api", operation="uninstall",
                    target=target, summary="uninstall pc", owner="account:1")
    live = Inventory(vendor="v", scope="s", account="a", items=(InventoryItem(target=target, owner="account:1"),))
    session = Dispatcher()
    audit = AuditLog(tmp_path / "audit.jsonl", "run")
    guard = ScopeGuard("object", listings.Listings(engine.Sessions({}, {}), {"v": live}), {"v": live})
    try:
        event = _run_action(action, session, guard, audit, interrupted=True)  # type: ignore[arg-type]
    finally:
        audit.close()
    assert session.executed == []
    assert event == "action.unknown"
    last = list(read_records(tmp_path / "audit.jsonl"))[-1]
    assert last["event"] == "action.unknown" and last["detail"]["note"] == "not resent"
