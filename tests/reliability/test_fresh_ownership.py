"""Ownership stays fresh during a long removal phase, and a write whose outcome a re-read cannot
settle is never resent (issue 14, findings 4 and 5)."""

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


def run_with_a_move(harness: Harness) -> tuple[engine.RunResult, int]:
    from offboard.connectors.sandboxing import InProcessTransport

    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
    uninstalls = [a for a in plan.actions() if a.operation == "uninstall_agent"]
    victim = int(uninstalls[-1].target.id)  # the last one the run reaches
    mover = MoveAfterFirstUninstall(InProcessTransport(harness.sandbox.app), harness.sandbox, victim)
    with harness.sessions(mover) as s:
        return engine.apply(plan, harness.cfg, s, overrides=LAB), victim


def test_an_agent_moved_to_another_organization_mid_run_is_not_uninstalled_and_fails_verification(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listings, "MAX_WRITES", 3)
    result, victim = run_with_a_move(harness)

    assert f"/v1/agents/{victim}" not in [r.path for r in harness.sandbox.requests if r.method == "DELETE"]
    assert harness.sandbox.agents[victim]["organization_id"] == NEIGHBOUR_ORG
    assert result.exit_code == ExitCode.FAILED
    records = list(read_records(result.run.audit_path))
    skipped = [r for r in records if r["event"] == "action.skipped"]
    assert [r["action_id"] for r in skipped] == [f"huntress.uninstall_agent.{victim}"]
    assert f"organization:{NEIGHBOUR_ORG}" in skipped[0]["detail"]
    failed = [r for r in records if r["event"] == "verify.failed"]
    assert any(r["action_id"] == f"huntress.uninstall_agent.{victim}" and "nothing proves" in r["detail"]["result"]
               for r in failed)
    assert harness.sandbox.agents_of(CUSTOMER_ORG) == []


def test_with_a_listing_taken_only_at_the_start_the_moved_agent_would_be_uninstalled(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    # The control: the bound is what protects the moved agent.
    monkeypatch.setattr(listings, "MAX_WRITES", 10_000)
    _, victim = run_with_a_move(harness)
    assert f"/v1/agents/{victim}" in [r.path for r in harness.sandbox.requests if r.method == "DELETE"]


def test_the_listing_is_retaken_after_the_write_bound_or_the_age_bound() -> None:
    now = [0.0]
    calls: list[str] = []

    class Session:
        def discover(self) -> Inventory:
            calls.append("discover")
            return Inventory(vendor="v", scope="s", account="a")

    sessions = engine.Sessions({"v": Session()}, {})  # type: ignore[dict-item]
    ls = listings.Listings(sessions, {"v": Inventory(vendor="v", scope="s", account="a")}, clock=lambda: now[0])
    for _ in range(listings.MAX_WRITES - 1):
        ls.current("v")
        ls.wrote("v")
    assert calls == []
    ls.wrote("v")
    ls.current("v")
    assert calls == ["discover"]
    now[0] += listings.MAX_AGE_S
    ls.current("v")  # old, but too few writes since to be worth a re-take
    assert calls == ["discover"]
    for _ in range(listings.MIN_WRITES_BY_AGE):
        ls.wrote("v")
    ls.current("v")
    assert calls == ["discover", "discover"]
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
    try:
        event = _run_action(action, session, live, audit, interrupted=True)  # type: ignore[arg-type]
    finally:
        audit.close()
    assert session.executed == []
    assert event == "action.unknown"
    last = list(read_records(tmp_path / "audit.jsonl"))[-1]
    assert last["event"] == "action.unknown" and last["detail"]["note"] == "not resent"
