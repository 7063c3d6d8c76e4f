"""The owner of every object is confirmed immediately before its write (issue 20, findings 1 and 2;
before it, issue 14's listing re-taken every 250 writes), and a write whose outcome a re-read cannot
settle is never resent (issue 14, finding 5)."""

from __future__ import annotations

import gc
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from offboard import engine
from offboard.connectors.sandboxing import InProcessTransport
from offboard.engine import listings
from offboard.errors import ExitCode
from offboard.plan import Inventory, InventoryItem, Target
from offboard.proof.audit import read_records
from offboard_huntress.sandbox import CUSTOMER_ORG, NEIGHBOUR_ORG, HuntressSandbox
from tests.conftest import DEMO_CREDS, NOTIFY, BlumiraHarness, Harness
from tests.connectors.blumira_unknowns import settle_dispatch

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
    gc.unfreeze()
    ls.current("v")
    assert calls == ["discover", "discover"]
    assert gc.get_freeze_count() > 0  # the listing re-taken lives until the next: out of the collector's sight
    gc.unfreeze()


class Killed(BaseException):
    """kill -9 stands in: nothing catches it (it is not an Exception)."""


class DieAfterTheDispatchLands(httpx.BaseTransport):
    """The process dies while the uninstall's 202 is on its way back: the vendor acted, offboard
    never heard."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and request.url.path.endswith("/actions"):
            raise Killed
        return response

    def close(self) -> None:
        self.inner.close()


def test_a_dispatch_that_may_have_landed_is_not_resent_when_the_run_resumes(
        blumira: BlumiraHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    # Through the engine: the resume folds the log (the dispatch `started`, never finished), takes a
    # fresh listing (the device still listed under the customer: the agent acts later), and must
    # re-read rather than let the scope guard wave a second dispatch through.
    settle_dispatch(monkeypatch, blumira.sandbox)
    sb = blumira.sandbox
    sb.uninstall_is_slow = True
    cfg = blumira.cfg
    with blumira.sessions(cfg) as s:
        first = engine.apply(engine.make_plan(cfg, s), cfg, s)
        engine.confirm(first.run.run_id, NOTIFY, "J. Doe", "sent 2026-11-24 09:00 UTC", cfg, s)
    dying = DieAfterTheDispatchLands(InProcessTransport(sb.app))
    with engine.open_sessions(cfg, transports={"blumira": dying}, creds=DEMO_CREDS) as s, pytest.raises(Killed):
        engine.resume(first.run.run_id, cfg, s)
    posts = [r.path for r in sb.requests if r.method == "POST" and r.path.endswith("/actions")]
    assert len(posts) == 1
    device = posts[0].split("/")[-2]
    action_id = f"blumira.uninstall_device.{device}"

    def events() -> list[dict[str, Any]]:
        return [r for r in read_records(first.run.audit_path)
                if r.get("action_id") == action_id and r["event"].startswith("action.")]

    assert events()[-1]["event"] == "action.started"
    with blumira.sessions(cfg) as s:
        again = engine.resume(first.run.run_id, cfg, s)
    assert [r.path for r in sb.requests if r.method == "POST"].count(posts[0]) == 1  # never sent twice
    last = events()[-1]
    assert last["event"] == "action.unknown" and last["detail"]["note"] == "not resent"
    assert again.exit_code == ExitCode.FAILED and again.counts["unknown"] == 1


def test_trust_listing_believes_applys_own_listing_until_it_is_max_age_old_counted_from_its_discovery(
        harness: Harness) -> None:
    # apply re-read every vendor a moment before its first write: that listing stands in, no second one
    trusting = engine.Overrides(preflight="lab", trust_listing=True)
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        before = len(harness.sandbox.requests)
        engine.apply(plan, harness.cfg, s, overrides=trusting)
    calls = [(r.method, r.path) for r in harness.sandbox.requests[before:]]
    first_write = next(n for n, (m, p) in enumerate(calls) if m == "DELETE" and AGENT.match(p))
    assert calls[:first_write].count(("GET", "/v1/agents")) == 1  # apply's own re-read
    # ...for at most MAX_AGE_S after its discovery began, the gates and exports between counted
    now = [1000.0]

    def listing(owner: str) -> Inventory:
        return Inventory(vendor="v", scope="s", account="a",
                         items=(InventoryItem(target=Target(type="agent", id="1"), owner=owner),))

    class Session:
        def discover(self) -> Inventory:
            return listing("org:7")

    ls = listings.Listings(engine.Sessions({"v": Session()}, {}),  # type: ignore[dict-item]
                           {"v": listing("org:42")}, clock=lambda: now[0],
                           taken={"v": 1000.0 - listings.MAX_AGE_S + 1})
    assert ls.current("v") == ({("agent", "1"): "org:42"}, listings.MAX_AGE_S - 1)
    now[0] += 1
    assert ls.current("v")[0] == {("agent", "1"): "org:7"} and ls.retakes == {"v": 1}
    gc.unfreeze()
