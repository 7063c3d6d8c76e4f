"""What the engine's executor records and sends for one write, through ``execute`` (the entry
``apply`` and ``apply --resume`` use): the calls the vendor gets (owner read, write, re-read) and
the audit lines that prove what happened, each field as ``audit verify``, the report and a person
reading the log see it. A scripted vendor answers each call as the test says."""

from __future__ import annotations

import gc
import hashlib
import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from offboard.cli.render import outcome_words
from offboard.connectors import ActionResult, Artifact, Check
from offboard.engine.execute import _in_lanes, execute
from offboard.engine.sessions import Sessions
from offboard.engine.types import Guide, GuideAnswer, NoProgress, Overrides, RunResult
from offboard.errors import AmbiguousWrite, ExitCode, RunInterrupted, VendorAuthError, VendorError
from offboard.plan import Action, Inventory, InventoryItem, Manual, Plan, Step, Target, VendorPlan
from offboard.proof import signing
from offboard.proof.audit import AuditLog, read_records, verify_bytes
from offboard.rundir import RunDir
from offboard.wire.http import HttpRecord

OURS = "organization:42"
THEIRS = "organization:43"
TARGET = Target(type="agent", id="17", name="pc-17")
CALL = "DELETE /v1/agents/17"
GET = HttpRecord("GET", "/v1/agents/17", 200, 1, 5)
GONE = HttpRecord("GET", "/v1/agents/17", 404, 1, 5)
DELETE = HttpRecord("DELETE", "/v1/agents/17", 204, 1, 7)


def uninstall(**extra: Any) -> Action:
    return Action(id="huntress.uninstall_agent.17", vendor="huntress", step="huntress.uninstall", kind="api",
                  operation="uninstall_agent", target=TARGET, summary="uninstall pc-17", owner=OURS, call=CALL,
                  **extra)


class Vendor:
    """Answers each call from its script, in order, and records every call it got."""

    def __init__(self, *, owner: list[ActionResult] | None = None,
                 writes: list[ActionResult | BaseException] | None = None,
                 rereads: list[ActionResult] | None = None) -> None:
        self.owner_answers = list(owner or [ActionResult("failure", "still there", GET, owner=OURS)])
        self.write_answers = list(writes or [ActionResult("success", "uninstall requested", DELETE)])
        self.reread_answers = list(rereads or [])
        self.calls: list[str] = []
        self.drafts: tuple[Artifact, ...] = ()
        self.checks: list[Check] = []  # what verification's re-read of this vendor says
        self.listing = Inventory(vendor="huntress", scope="org 42", account="key", items=())

    def owner_now(self, action: Action) -> ActionResult:
        self.calls.append("owner_now")
        return self.owner_answers.pop(0)

    def execute(self, action: Action) -> ActionResult:
        self.calls.append("execute")
        answer = self.write_answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def reread(self, action: Action) -> ActionResult:
        self.calls.append("reread")
        return self.reread_answers.pop(0)

    def check_manual(self, action: Action) -> None:  # nothing of a person's item shows through this vendor's API
        return None

    def discover(self) -> Inventory:  # the listing (re-taken with --trust-listing; verification's read)
        return self.listing

    def verify(self, vendor_plan: VendorPlan | None, inventory: Inventory) -> list[Any]:
        return self.checks

    def documents(self, vendor_plan: VendorPlan, states: Any) -> tuple[Any, ...]:
        return self.drafts

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the engine called {name} during a write")


class Shown(NoProgress):
    """What the operator's progress line says of each action as it settles."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.phases: list[str] = []
        self.lanes_told: list[dict[str, tuple[int, int]]] = []
        self.told: list[str] = []  # each step as it begins, and what a gate holds

    def start(self, total: int, done: int) -> None:
        self.lines.append(f"{done}/{total} done")

    def lanes(self, counts: Mapping[str, tuple[int, int]]) -> None:  # each vendor's (actions, done before)
        self.lanes_told.append(dict(counts))

    def phase(self, text: str) -> None:
        self.phases.append(text)

    def held(self, vendor: str, action_ids: Any) -> None:  # what a vendor's gate will hold, told ahead
        self.told.append(f"{vendor} holds {', '.join(action_ids)}")

    def step(self, vendor: str, step: Step, todo: int) -> None:
        self.told.append(f"{vendor}: {step.title} ({todo} to do)")

    def advance(self, action: Action, event: str) -> None:
        self.lines.append(f"{action.target.name}: {outcome_words(action, event)}")


class Run:
    def __init__(self, tmp_path: Path, action: Action, listed_owner: str | None = OURS, *,
                 first: tuple[Step, ...] = ()) -> None:
        self.action = action
        self.live = Inventory(vendor="huntress", scope="org 42", account="key", items=() if listed_owner is None
                              else (InventoryItem(target=TARGET, owner=listed_owner),))
        self.plan = Plan(plan_id="p1", created_at="2026-11-23T10:00:00Z", customer="Acme", config_fingerprint="f",
                         vendors=(VendorPlan(vendor="huntress", display_name="Huntress", scope="org 42", account="key",
                                             inventory_fingerprint=self.live.fingerprint(),
                                             steps=(*first, Step(id="huntress.uninstall", vendor="huntress",
                                                                 title="Uninstall", actions=(action,)))),))
        self.dir = RunDir.create(tmp_path / "runs")
        self.shown = Shown()

    def interrupted(self) -> None:
        """An earlier process fsynced the write's `started`, then died: it may have landed."""
        audit = AuditLog(self.dir.audit_path, self.dir.run_id)
        audit.emit("action.started", vendor="huntress", step=self.action.step, action_id=self.action.id,
                   target=TARGET.model_dump(), outcome="unknown", detail={"call": CALL})
        audit.close()

    def go(self, vendor: Vendor, *, trust_listing: bool = False, settle_only: frozenset[str] = frozenset(),
           overrides: Overrides | None = None, config: Path | None = None, guide: Guide | None = None,
           signer: signing.Signer | None = None, live: dict[str, Inventory] | None = None) -> RunResult:
        vendor.listing = self.live
        audit = AuditLog(self.dir.audit_path, self.dir.run_id)
        try:
            return execute(self.dir, self.plan, Sessions({"huntress": vendor}, {}, config=config),  # type: ignore[dict-item]
                           audit, {"huntress": self.live} if live is None else live,
                           overrides or Overrides(trust_listing=trust_listing), self.shown, guide, signer,
                           settle_only=settle_only)
        finally:
            audit.close()

    def lines(self) -> list[dict[str, Any]]:
        """The action's lines (not verification's), as the log holds them; each names its action whole."""
        records = [r for r in read_records(self.dir.audit_path)
                   if r.get("action_id") == self.action.id and r["event"].startswith(("action.", "manual."))]
        named = {"vendor": "huntress", "step": self.action.step, "target": self.action.target.model_dump()}
        assert all({k: r.get(k) for k in named} == named for r in records), records
        # Its `action.planned` line, once, written as the run reaches it (first, unless the log was
        # seeded with an earlier pass's lines); the others are what each test looks at.
        planned = [r for r in records if r["event"] == "action.planned"]
        assert len(planned) == 1, records
        assert planned[0]["detail"] == {"summary": self.action.summary, "call": self.action.call or "manual"}
        return [{k: r.get(k) for k in ("event", "outcome", "http", "detail")} for r in records
                if r is not planned[0]]

    def last(self) -> dict[str, Any]:
        return self.lines()[-1]

    def run_lines(self, *events: str) -> list[tuple[str, str, Any]]:
        return [(r["event"], r["outcome"], r["detail"]) for r in read_records(self.dir.audit_path)
                if r["event"] in events]

    def status(self) -> str:
        return str(json.loads(self.dir.state_path.read_text())["status"])


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    yield Run(tmp_path, uninstall())


def test_a_write_is_recorded_started_then_with_its_call_outcome_and_the_vendors_words(run: Run) -> None:
    vendor = Vendor()
    result = run.go(vendor)
    assert vendor.calls == ["owner_now", "execute"]
    assert run.lines() == [
        {"event": "action.started", "outcome": "unknown", "http": None, "detail": {"call": CALL}},
        {"event": "action.succeeded", "outcome": "success", "http": DELETE.as_dict(),
         "detail": {"message": "uninstall requested", "already_absent": False}}]
    assert run.shown.lines == ["0/1 done", "pc-17: done"] and result.exit_code == ExitCode.OK


def test_a_write_the_vendor_answers_as_failed_is_recorded_failed_and_fails_the_run(run: Run) -> None:
    vendor = Vendor(writes=[ActionResult("failure", "the agent is offline", DELETE)])
    result = run.go(vendor)
    assert run.last() == {"event": "action.failed", "outcome": "failure", "http": DELETE.as_dict(),
                          "detail": {"message": "the agent is offline", "already_absent": False}}
    assert run.shown.lines == ["0/1 done", "pc-17: FAILED"] and result.exit_code == ExitCode.FAILED


@pytest.mark.parametrize("answer, note", [(ActionResult("success", "not found", GONE, already_absent=True),
                                           "already absent"),
                                          (ActionResult("success", "isolation lifted", GET, owner=OURS),
                                           "already in effect")])
def test_an_owner_read_showing_the_write_needless_settles_it_without_sending(
        run: Run, answer: ActionResult, note: str) -> None:
    vendor = Vendor(owner=[answer])
    run.go(vendor)
    assert vendor.calls == ["owner_now"]
    assert run.lines() == [{"event": "action.succeeded", "outcome": "success", "http": answer.http.as_dict(),
                            "detail": {"message": answer.detail, "already_absent": answer.already_absent,
                                       "settled_by": "owner read", "note": note}}]


# -- a resumed run: a write that started and never finished is re-read before anything is sent ---------

def test_an_interrupted_write_the_re_read_shows_done_is_settled_without_a_call(run: Run) -> None:
    run.interrupted()
    vendor = Vendor(rereads=[ActionResult("success", "not found", GONE, already_absent=True)])
    run.go(vendor)
    assert vendor.calls == ["reread"]
    assert run.lines()[1:] == [{"event": "action.succeeded", "outcome": "success", "http": GONE.as_dict(),
                                "detail": {"message": "not found", "already_absent": True, "settled_by": "re-read",
                                           "note": "interrupted run: re-read shows it is done"}}]


def test_an_interrupted_write_the_re_read_cannot_settle_stays_unknown_and_is_never_resent(run: Run) -> None:
    run.interrupted()
    vendor = Vendor(rereads=[ActionResult("unknown", "uninstall still pending", GET)])
    result = run.go(vendor)
    assert vendor.calls == ["reread"]
    assert run.lines()[1:] == [{"event": "action.unknown", "outcome": "unknown", "http": GET.as_dict(),
                                "detail": {"message": "uninstall still pending", "already_absent": False,
                                           "settled_by": "re-read", "note": "not resent"}}]
    assert run.shown.lines == ["0/1 done", "pc-17: outcome unknown, re-read before anything is resent"]
    assert result.exit_code == ExitCode.FAILED


def test_an_interrupted_write_the_re_read_shows_not_done_goes_through_the_scope_guard_and_is_sent(run: Run) -> None:
    run.interrupted()
    vendor = Vendor(rereads=[ActionResult("failure", "still installed", GET, owner=OURS)])
    run.go(vendor)
    assert vendor.calls == ["reread", "owner_now", "execute"]
    assert [line["event"] for line in run.lines()] == ["action.started", "action.started", "action.succeeded"]


def test_a_write_that_finished_before_the_crash_is_not_touched_on_resume(run: Run) -> None:
    run.go(Vendor())
    vendor = Vendor()
    run.go(vendor)
    assert vendor.calls == []
    assert [line["event"] for line in run.lines()] == ["action.started", "action.succeeded"]


# -- a write whose reply was lost ------------------------------------------------------------------

LOST = AmbiguousWrite("Huntress", CALL, "the connection dropped after the request was sent")


def test_a_lost_reply_is_recorded_unknown_then_settled_by_the_re_read(run: Run) -> None:
    vendor = Vendor(writes=[LOST], rereads=[ActionResult("success", "not found", GONE, already_absent=True)])
    run.go(vendor)
    assert vendor.calls == ["owner_now", "execute", "reread"]
    assert run.lines()[1:] == [
        {"event": "action.unknown", "outcome": "unknown", "http": None,
         "detail": f"{LOST}; re-reading before anything is resent"},
        {"event": "action.succeeded", "outcome": "success", "http": GONE.as_dict(),
         "detail": {"message": "not found", "already_absent": True, "settled_by": "re-read"}}]


def test_a_lost_reply_the_re_read_cannot_settle_is_left_unknown_not_resent(run: Run) -> None:
    vendor = Vendor(writes=[LOST], rereads=[ActionResult("unknown", "pending", GET)])
    result = run.go(vendor)
    assert vendor.calls == ["owner_now", "execute", "reread"]
    assert run.last() == {"event": "action.unknown", "outcome": "unknown", "http": GET.as_dict(),
                          "detail": {"message": "pending", "already_absent": False, "settled_by": "re-read"}}
    assert result.exit_code == ExitCode.FAILED


def test_a_lost_reply_that_did_not_land_is_sent_once_more_and_a_second_loss_is_failed(run: Run) -> None:
    not_landed = ActionResult("failure", "still installed", GET, owner=OURS)
    vendor = Vendor(writes=[LOST, LOST], rereads=[not_landed, not_landed])
    result = run.go(vendor)
    assert vendor.calls == ["owner_now", "execute", "reread", "execute", "reread"]
    assert [line["event"] for line in run.lines()] == ["action.started", "action.unknown", "action.unknown",
                                                       "action.failed"]
    assert run.last() == {"event": "action.failed", "outcome": "failure", "http": GET.as_dict(),
                          "detail": {"message": "still installed", "already_absent": False, "settled_by": "re-read"}}
    assert result.exit_code == ExitCode.FAILED


def test_a_lost_reply_whose_object_moved_meanwhile_is_not_resent(run: Run) -> None:
    vendor = Vendor(writes=[LOST], rereads=[ActionResult("failure", "still installed", GET, owner=THEIRS)])
    run.go(vendor)
    assert vendor.calls == ["owner_now", "execute", "reread"]
    assert run.last() == {"event": "action.skipped", "outcome": "unknown", "http": GET.as_dict(), "detail": {
        "message": f"scope guard: object belongs to {THEIRS}, not {OURS}; not touched (the listing said {OURS}; the "
                   "object's own record wins)",
        "owner_planned": OURS, "owner_now": THEIRS, "owner_from": "the re-read after a lost reply",
        "owner_listed": OURS}}


@pytest.mark.parametrize("status", [400, 409, 499])
def test_a_write_the_vendor_refuses_with_a_4xx_is_failed_and_the_run_goes_on(run: Run, status: int) -> None:
    refused = VendorError("Huntress", CALL, f"HTTP {status}: agent is being migrated", status=status)
    vendor = Vendor(writes=[refused])
    result = run.go(vendor)
    assert run.last() == {"event": "action.failed", "outcome": "failure", "http": None,
                          "detail": {"message": str(refused), "already_absent": False}}
    assert result.exit_code == ExitCode.FAILED and "resume" not in result.message


@pytest.mark.parametrize("status", [500, 503, None])
def test_a_vendor_down_after_retries_stops_the_run_resumable_with_the_write_unsettled(
        run: Run, status: int | None) -> None:
    down = VendorError("Huntress", CALL, f"HTTP {status} after 5 attempts", status=status)
    vendor = Vendor(writes=[down])
    result = run.go(vendor)
    assert [line["event"] for line in run.lines()] == ["action.started"]  # re-read on resume, never resent blind
    assert result.exit_code == down.exit_code and "resume later with `offboard apply --resume" in result.message


def test_refused_credentials_stop_the_run_failed_and_are_raised_to_the_command(run: Run) -> None:
    refused = VendorAuthError("Huntress", CALL, "HTTP 401: the API key was revoked", status=401)
    with pytest.raises(VendorAuthError):
        run.go(Vendor(writes=[refused]))
    assert [line["event"] for line in run.lines()] == ["action.started"]
    [finished] = [r for r in read_records(run.dir.audit_path) if r["event"] == "run.finished"]
    assert finished["outcome"] == "failure" and finished["detail"] == str(refused)


def test_a_write_the_vendor_will_not_take_by_api_falls_back_to_its_manual_instructions(tmp_path: Path) -> None:
    manual = Manual(portal_path="Agents > pc-17 > Uninstall", done_when="pc-17 is not listed")
    run = Run(tmp_path, uninstall(manual=manual))
    vendor = Vendor(writes=[ActionResult("failure", "this key may not uninstall", DELETE, manual_fallback=True)])
    result = run.go(vendor)
    assert run.last() == {"event": "manual.pending", "outcome": "unknown", "http": DELETE.as_dict(), "detail": {
        "summary": "uninstall pc-17", "fell_back": "this key may not uninstall", **manual.model_dump()}}
    assert result.exit_code == ExitCode.MANUAL_PENDING and [a.id for a in result.pending] == [run.action.id]


# -- the scope guard's refusal ---------------------------------------------------------------------

def test_an_object_whose_own_record_names_another_owner_is_not_touched_and_the_listing_is_quoted(
        tmp_path: Path) -> None:
    run = Run(tmp_path, uninstall(), listed_owner=OURS)
    vendor = Vendor(owner=[ActionResult("failure", "still there", GET, owner=THEIRS)])
    result = run.go(vendor)
    assert vendor.calls == ["owner_now"]
    assert run.lines() == [{"event": "action.skipped", "outcome": "unknown", "http": GET.as_dict(), "detail": {
        "message": f"scope guard: object belongs to {THEIRS}, not {OURS}; not touched (the listing said {OURS}; "
                   "the object's own record wins)",
        "owner_planned": OURS, "owner_now": THEIRS, "owner_from": "GET /v1/agents/17", "owner_listed": OURS}}]
    assert run.shown.lines == ["0/1 done", "pc-17: skipped, not touched"] and result.exit_code == ExitCode.FAILED


def test_without_a_listing_of_its_vendor_the_refusal_quotes_no_listing(run: Run) -> None:
    vendor = Vendor(owner=[ActionResult("failure", "still there", GET, owner=THEIRS)])
    run.go(vendor, live={})
    assert run.last()["event"] == "action.skipped" and "owner_listed" not in run.last()["detail"]
    assert run.last()["detail"]["message"] == f"scope guard: object belongs to {THEIRS}, not {OURS}; not touched"


def test_an_object_whose_owner_cannot_be_confirmed_is_not_touched(run: Run) -> None:
    vendor = Vendor(owner=[ActionResult("unknown", "timed out", GET)])
    run.go(vendor)
    assert run.lines() == [{"event": "action.skipped", "outcome": "unknown", "http": GET.as_dict(), "detail": {
        "message": f"scope guard: its owner could not be confirmed (GET /v1/agents/17: timed out), so it is not "
                   f"known to be {OURS}'s; not touched (the listing said {OURS}; the object's own record wins)",
        "owner_planned": OURS, "owner_now": None, "owner_from": "GET /v1/agents/17: timed out",
        "owner_listed": OURS}}]


def test_an_object_nothing_names_an_owner_of_is_not_touched(tmp_path: Path) -> None:
    run = Run(tmp_path, uninstall(), listed_owner=None)
    vendor = Vendor(owner=[ActionResult("failure", "still there", None, owner=None)])
    run.go(vendor)
    assert run.lines() == [{"event": "action.skipped", "outcome": "unknown", "http": None, "detail": {
        "message": f"scope guard: object belongs to an unknown owner, not {OURS}; not touched",
        "owner_planned": OURS, "owner_now": None, "owner_from": "a read of the object alone"}}]


def test_with_trust_listing_the_listings_owner_decides_and_is_not_quoted_twice(tmp_path: Path) -> None:
    run = Run(tmp_path, uninstall(), listed_owner=THEIRS)
    vendor = Vendor()
    run.go(vendor, trust_listing=True)
    assert vendor.calls == []
    [line] = run.lines()
    assert line["event"] == "action.skipped" and line["http"] is None
    assert line["detail"]["owner_now"] == THEIRS and "owner_listed" not in line["detail"]
    assert line["detail"]["message"] == f"scope guard: object belongs to {THEIRS}, not {OURS}; not touched"
    assert line["detail"]["owner_from"].startswith("the huntress listing, taken ")


def test_an_owner_read_that_succeeds_for_another_owner_settles_nothing_and_is_not_touched(run: Run) -> None:
    vendor = Vendor(owner=[ActionResult("success", "isolation lifted", GET, owner=THEIRS)])
    run.go(vendor)
    assert vendor.calls == ["owner_now"] and run.last()["event"] == "action.skipped"
    assert run.last()["detail"]["owner_now"] == THEIRS


@pytest.mark.parametrize("http, where", [(GET, "GET /v1/agents/17"), (None, "a re-read")])
def test_with_trust_listing_an_object_no_longer_listed_is_re_read_alone_before_anything_is_decided(
        tmp_path: Path, http: HttpRecord | None, where: str) -> None:
    run = Run(tmp_path, uninstall(), listed_owner=None)
    vendor = Vendor(rereads=[ActionResult("failure", "still installed", http, owner=THEIRS)])
    run.go(vendor, trust_listing=True)
    assert vendor.calls == ["reread"]
    assert run.last()["event"] == "action.skipped"
    assert run.last()["detail"]["owner_from"] == f"{where} (no longer listed)"


def test_with_trust_listing_an_object_no_longer_listed_and_still_ours_is_sent(tmp_path: Path) -> None:
    run = Run(tmp_path, uninstall(), listed_owner=None)
    vendor = Vendor(rereads=[ActionResult("failure", "still installed", GET, owner=OURS)])
    run.go(vendor, trust_listing=True)
    assert vendor.calls == ["reread", "execute"] and run.last()["event"] == "action.succeeded"


def test_with_trust_listing_an_object_no_longer_listed_and_gone_is_settled_without_a_write(tmp_path: Path) -> None:
    run = Run(tmp_path, uninstall(), listed_owner=None)
    vendor = Vendor(rereads=[ActionResult("success", "not found", GONE, already_absent=True)])
    run.go(vendor, trust_listing=True)
    assert vendor.calls == ["reread"]
    assert run.lines() == [{"event": "action.succeeded", "outcome": "success", "http": GONE.as_dict(), "detail": {
        "message": "not found", "already_absent": True, "settled_by": "owner read", "note": "already absent"}}]


def test_with_trust_listing_a_listed_object_of_ours_is_sent_without_a_read(tmp_path: Path) -> None:
    run = Run(tmp_path, uninstall(), listed_owner=OURS)
    vendor = Vendor()
    run.go(vendor, trust_listing=True)
    assert vendor.calls == ["execute"] and run.last()["event"] == "action.succeeded"


# -- an action whose object left the listing since the plan (settled only, never written) --------------

def test_an_unplanned_action_whose_object_is_gone_is_settled_by_its_re_read(run: Run) -> None:
    vendor = Vendor(rereads=[ActionResult("success", "not found", GONE, already_absent=True)])
    result = run.go(vendor, settle_only=frozenset({run.action.id}))
    assert vendor.calls == ["reread"]
    assert run.lines() == [{"event": "action.succeeded", "outcome": "success", "http": GONE.as_dict(), "detail": {
        "message": "not found", "already_absent": True, "settled_by": "re-read",
        "note": "no longer listed; the re-read shows it gone"}}]
    assert run.shown.lines == ["0/1 done", "pc-17: done"] and result.exit_code == ExitCode.OK


@pytest.mark.parametrize("answer", [ActionResult("failure", "still installed", GET, owner=THEIRS),
                                    ActionResult("unknown", "timed out", GET)])
def test_an_unplanned_action_whose_object_is_still_there_is_skipped_untouched(run: Run, answer: ActionResult) -> None:
    vendor = Vendor(rereads=[answer])
    result = run.go(vendor, settle_only=frozenset({run.action.id}))
    assert vendor.calls == ["reread"]
    assert run.lines() == [{"event": "action.skipped", "outcome": "unknown", "http": None, "detail":
                            "no longer planned from the config and the live vendor (its object left the exit's "
                            "listing); not touched"}]
    assert run.shown.lines == ["0/1 done", "pc-17: skipped, not touched"] and result.exit_code == ExitCode.FAILED


def test_an_unplanned_read_is_skipped_without_a_call(tmp_path: Path) -> None:
    run = Run(tmp_path, uninstall(destructive=False))
    vendor = Vendor()
    run.go(vendor, settle_only=frozenset({run.action.id}))
    assert vendor.calls == []
    assert [line["event"] for line in run.lines()] == ["action.skipped"]
    assert run.shown.lines == ["0/1 done", "pc-17: skipped, not touched"]


# -- a vendor held behind its gate -------------------------------------------------------------------

def test_a_write_behind_an_unconfirmed_gate_is_held_not_sent_and_the_gate_is_a_persons_item(tmp_path: Path) -> None:
    manual = Manual(portal_path="Support > New request", done_when="the vendor acknowledged the cancellation")
    gate = Action(id="huntress.notify", vendor="huntress", step="huntress.notify", kind="manual", operation="notify",
                  target=Target(type="manual", id="notify", name="tell Huntress"), summary="tell Huntress",
                  manual=manual, gate=True)
    run = Run(tmp_path, uninstall(), first=(Step(id="huntress.notify", vendor="huntress", title="Notify",
                                                 phase="closure", actions=(gate,)),))
    vendor = Vendor()
    result = run.go(vendor, config=Path("exits/acme.toml"))
    assert vendor.calls == []  # nothing is sent while the gate waits for a person
    notified = [r for r in read_records(run.dir.audit_path) if r.get("action_id") == gate.id]
    assert [(r["event"], r["outcome"], r["detail"]) for r in notified] == [
        ("action.planned", None, {"summary": "tell Huntress", "call": "manual"}),
        ("manual.pending", "unknown", {"summary": "tell Huntress", **manual.model_dump()}),
        ("vendor.held", "unknown", f"no change is made at this vendor until huntress.notify is confirmed (`offboard "
                                   f"confirm huntress.notify --by NAME --note NOTE --run {run.dir.run_id} -c "
                                   f"exits/acme.toml`), then `offboard apply --resume {run.dir.run_id} -c "
                                   f"exits/acme.toml`")]
    assert run.lines() == []  # the write was not started
    assert run.shown.lines == ["0/2 done", "tell Huntress: manual, pending", "pc-17: waits for a person's confirmation"]
    assert result.exit_code == ExitCode.MANUAL_PENDING and [a.id for a in result.pending] == [gate.id]
    assert result.message == (
        f"1 manual item(s) waiting for a person: the checklist is in {run.dir.path / 'manual-checklist.md'}; do "
        f"each, then `offboard confirm ITEM --by NAME --note NOTE --run {run.dir.run_id} -c exits/acme.toml`; 1 "
        f"action(s) wait for huntress.notify, then run with: offboard apply --resume {run.dir.run_id} -c "
        "exits/acme.toml")


# -- the run around the writes ---------------------------------------------------------------------

def test_a_run_with_writes_to_make_records_the_scope_guards_mode_a_resume_with_none_left_does_not(run: Run) -> None:
    run.go(Vendor())
    run.go(Vendor(), trust_listing=True)  # the resume: nothing left to write
    assert run.run_lines("scope_guard.mode") == [("scope_guard.mode", "success", {
        "mode": "object", "promise": "each write is preceded by a read of its object alone; sent only when that read "
                                     "names the exit's owner"})]
    assert run.shown.lines == ["0/1 done", "pc-17: done", "1/1 done"]
    assert run.shown.lanes_told == [{"Huntress": (1, 0)}, {"Huntress": (1, 1)}]  # each vendor's actions, done before


def test_with_trust_listing_the_mode_line_says_the_listing_decides_and_how_old_it_may_be(run: Run) -> None:
    run.go(Vendor(), trust_listing=True)
    [(_, _, mode)] = run.run_lines("scope_guard.mode")
    assert mode["mode"] == "listing" and mode["max_age_s"] == 300
    assert mode["promise"] == ("each write's owner comes from the vendor's listing, taken at most 300 s before the "
                               "write (--trust-listing)")


def test_a_vendor_that_stays_down_stops_the_run_with_its_resume_command_and_the_state_interrupted(run: Run) -> None:
    down = VendorError("Huntress", CALL, "HTTP 503 after 5 attempts", status=503)
    result = run.go(Vendor(writes=[down]))
    resume = f"offboard apply --resume {run.dir.run_id}"
    assert run.run_lines("run.finished") == [("run.finished", "failure", f"stopped: {down}; resume with `{resume}`")]
    assert result.message == f"{down}; resume later with `{resume}`" and run.status() == "interrupted"
    assert result.counts["unknown"] == 1 and result.tally is not None


def test_the_resume_command_a_stopped_run_prints_and_records_carries_the_exits_config(run: Run) -> None:
    down = VendorError("Huntress", CALL, "HTTP 503 after 5 attempts", status=503)
    result = run.go(Vendor(writes=[down]), config=Path("exits/acme.toml"))
    resume = f"offboard apply --resume {run.dir.run_id} -c exits/acme.toml"
    assert result.message.endswith(f"resume later with `{resume}`")
    assert run.run_lines("run.finished") == [("run.finished", "failure", f"stopped: {down}; resume with `{resume}`")]


NOTICE = Artifact(name="completion-notice.eml", content=b"Subject: cancel pc-17\n", draft_for="huntress.notify")


@pytest.mark.parametrize("down", [False, True])
def test_a_run_signs_its_log_and_writes_the_vendors_drafts_whether_it_finished_or_stopped(
        run: Run, tmp_path: Path, down: bool) -> None:
    key = signing.generate()
    signer = signing.Signer(key, "a test key")
    vendor = Vendor(writes=[VendorError("Huntress", CALL, "HTTP 503", status=503)] if down else None)
    vendor.drafts = (NOTICE,)
    result = run.go(vendor, signer=signer)
    draft = run.dir.path / "documents" / "huntress" / "completion-notice.eml"
    assert result.documents == [draft] and draft.read_bytes() == NOTICE.content  # a person still has to send it
    chain = verify_bytes(run.dir.audit_path.read_bytes())
    heads = signing.check_heads(chain, (run.dir.path / signing.SIGNATURES).read_bytes(), key.public_key())
    assert heads.ok, heads.reason  # signed up to the log's last line
    assert (run.dir.path / "report.md").exists()


def test_a_stopped_run_raises_its_own_run_id_for_the_resume_command(run: Run) -> None:
    with pytest.raises(RunInterrupted) as stopped:
        run.go(Vendor(writes=[KeyboardInterrupt()]))
    assert stopped.value.run_id == run.dir.run_id and run.dir.run_id in str(stopped.value)


def test_an_export_that_failed_fails_the_run_though_nothing_was_held_back(tmp_path: Path) -> None:
    run = Run(tmp_path, EXPORT)
    run.plan = run.plan.model_copy(update={"vendors": (run.plan.vendors[0].model_copy(update={"steps": (
        Step(id="huntress.export", vendor="huntress", title="Export", phase="evidence", actions=(EXPORT,)),)}),)})
    result = run.go(Vendor(writes=[ActionResult("failure", "export refused", GET)]))
    assert run.shown.lines == ["0/1 done", "agents export: FAILED"] and result.exit_code == ExitCode.FAILED


def test_refused_credentials_leave_the_run_failed(run: Run) -> None:
    with pytest.raises(VendorAuthError):
        run.go(Vendor(writes=[VendorAuthError("Huntress", CALL, "HTTP 401", status=401)]))
    assert run.status() == "failed"


def test_ctrl_c_during_a_write_records_the_interruption_and_leaves_the_run_resumable(run: Run) -> None:
    with pytest.raises(RunInterrupted):
        run.go(Vendor(writes=[KeyboardInterrupt()]))
    assert run.run_lines("run.interrupted") == [("run.interrupted", "unknown", "stopped by the operator (Ctrl-C)")]
    assert run.status() == "interrupted" and [line["event"] for line in run.lines()] == ["action.started"]


def finished(run: Run, check: Check) -> tuple[RunResult, str, dict[str, Any]]:
    """The run gone through to its end, its verification's one re-read ``check``: its result, and its
    run.finished line's outcome and detail."""
    vendor = Vendor()
    vendor.checks = [check]
    result = run.go(vendor)
    [(_, outcome, detail)] = run.run_lines("run.finished")
    return result, outcome, detail


def test_a_finished_run_records_its_counts_and_exit_and_its_state(run: Run) -> None:
    passed = Check(name="pc-17 is gone", passed=True, detail="404", action_id=run.action.id)
    result, outcome, detail = finished(run, passed)
    assert outcome == "success" and detail["exit_code"] == 0 and detail["checks_failed"] == 0
    assert detail["succeeded"] == 1 and run.status() == "finished"
    assert result.exit_code == ExitCode.OK and result.message == "" and result.checks == [passed]
    assert result.summary().startswith(f"Run {run.dir.run_id}: 1 removed by API (0 already gone), ")
    assert run.shown.phases == ["Verifying: re-reading each vendor to prove the service stopped"]


def test_a_run_whose_re_read_fails_is_failed_in_its_log_its_state_and_its_result(run: Run) -> None:
    still = Check(name="pc-17 is gone", passed=False, detail="still listed", action_id=run.action.id)
    result, outcome, detail = finished(run, still)
    assert outcome == "failure" and detail["exit_code"] == 1 and detail["checks_failed"] == 1
    assert run.status() == "finished-failed"
    assert result.exit_code == ExitCode.FAILED and result.checks == [still] and result.tally is not None


def test_a_persons_item_whose_re_read_disagrees_is_pending_not_failed_and_the_message_says_what_to_run(
        tmp_path: Path) -> None:
    manual = Manual(portal_path="Settings > Agents", done_when="the agent is gone from the portal")
    item = Action(id="huntress.portal.17", vendor="huntress", step="huntress.uninstall", kind="manual",
                  operation="portal", target=TARGET, summary="remove pc-17 in the portal", manual=manual)
    run = Run(tmp_path, item)
    vendor = Vendor()
    vendor.checks = [Check(name="pc-17 is gone", passed=False, detail="still listed", action_id=item.id)]
    result = run.go(vendor, config=Path("exits/acme.toml"))
    assert vendor.calls == []
    [(_, outcome, detail)] = run.run_lines("run.finished")
    assert outcome == "success" and detail["exit_code"] == 3 and detail["checks_failed"] == 0
    assert run.status() == "finished-manual_pending"
    assert result.exit_code == ExitCode.MANUAL_PENDING and result.message == (
        f"1 manual item(s) waiting for a person: the checklist is in {run.dir.path / 'manual-checklist.md'}; do "
        f"each, then `offboard confirm ITEM --by NAME --note NOTE --run {run.dir.run_id} -c exits/acme.toml`")


# -- the runbook's rule: no removal while the vendor's evidence export failed -------------------------

EXPORT = Action(id="huntress.export.agents", vendor="huntress", step="huntress.export", kind="api", operation="export",
                target=Target(type="export", id="agents", name="agents export"), summary="export agents",
                call="GET /v1/agents", destructive=False)


def with_export(tmp_path: Path) -> Run:
    return Run(tmp_path, uninstall(), first=(Step(id="huntress.export", vendor="huntress", title="Export",
                                                  phase="evidence", actions=(EXPORT,)),))


def test_a_removal_is_held_back_while_its_vendors_evidence_export_failed(tmp_path: Path) -> None:
    run = with_export(tmp_path)
    vendor = Vendor(writes=[ActionResult("failure", "export refused", GET)])
    result = run.go(vendor, config=Path("exits/acme.toml"))
    assert vendor.calls == ["execute"]  # the export only: no owner read, no write
    assert run.lines() == [{"event": "action.blocked", "outcome": "failure", "http": None, "detail":
                            "not run: this vendor's evidence export failed; fix it and resume, or resume with "
                            "--override-evidence \"REASON\""}]
    assert run.shown.lines == ["0/2 done", "agents export: FAILED", "pc-17: held back: the evidence export failed"]
    assert result.exit_code == ExitCode.FAILED and result.message == (
        f"1 removal(s) held back because an evidence export failed; see the audit log, then "
        f"`offboard apply --resume {run.dir.run_id} -c exits/acme.toml`")


def test_an_evidence_override_lets_the_removals_run_and_is_audited_once_per_vendor_with_its_reason(
        tmp_path: Path) -> None:
    second = uninstall().model_copy(update={"id": "huntress.uninstall_agent.18", "call": "DELETE /v1/agents/18"})
    run = with_export(tmp_path)
    run.plan = run.plan.model_copy(update={"vendors": (run.plan.vendors[0].model_copy(update={"steps": (
        *run.plan.vendors[0].steps[:-1], run.plan.vendors[0].steps[-1].model_copy(update={
            "actions": (run.action, second)}))}),)})
    vendor = Vendor(owner=[ActionResult("failure", "still there", GET, owner=OURS)] * 2,
                    writes=[ActionResult("failure", "export refused", GET),
                            *[ActionResult("success", "uninstall requested", DELETE)] * 2])
    run.go(vendor, overrides=Overrides(evidence="the customer exported it themselves"))
    assert vendor.calls == ["execute", "owner_now", "execute", "owner_now", "execute"]
    assert run.shown.lanes_told == [{"Huntress": (3, 0)}]
    overridden = [r for r in read_records(run.dir.audit_path) if r["event"] == "evidence.overridden"]
    assert [(r["vendor"], r["outcome"], r["detail"]) for r in overridden] == [
        ("huntress", "success", {"reason": "the customer exported it themselves"})]
    assert run.last()["event"] == "action.succeeded"


def test_an_export_that_worked_holds_nothing_back(tmp_path: Path) -> None:
    run = with_export(tmp_path)
    vendor = Vendor(writes=[ActionResult("success", "exported", GET), ActionResult("success", "uninstall requested",
                                                                                   DELETE)])
    run.go(vendor)
    assert vendor.calls == ["execute", "owner_now", "execute"] and run.run_lines("evidence.overridden") == []


def test_a_write_of_the_evidence_step_itself_runs_though_an_export_before_it_failed(tmp_path: Path) -> None:
    """The rule holds back removals; a write that is part of getting the evidence (an export to
    request) is not one, and still runs."""
    request = uninstall().model_copy(update={"id": "huntress.request_export", "step": "huntress.export"})
    run = Run(tmp_path, request)
    run.plan = run.plan.model_copy(update={"vendors": (run.plan.vendors[0].model_copy(update={"steps": (
        Step(id="huntress.export", vendor="huntress", title="Export", phase="evidence", actions=(EXPORT, request)),
    )}),)})
    vendor = Vendor(writes=[ActionResult("failure", "export refused", GET),
                            ActionResult("success", "export requested", DELETE)])
    run.go(vendor)
    assert vendor.calls == ["execute", "owner_now", "execute"]
    assert [line["event"] for line in run.lines()] == ["action.started", "action.succeeded"]


# -- a person's item -------------------------------------------------------------------------------

def test_a_persons_item_without_instructions_is_pending_once_and_stays_pending_on_resume(tmp_path: Path) -> None:
    item = Action(id="huntress.tell", vendor="huntress", step="huntress.uninstall", kind="manual", operation="tell",
                  target=TARGET, summary="tell the customer pc-17 is going")
    run = Run(tmp_path, item)
    first = run.go(Vendor())
    run.go(Vendor())  # the resume: the item still waits for a person, and is not announced again
    pending = [r for r in read_records(run.dir.audit_path) if r["event"] == "manual.pending"]
    assert [(r["outcome"], r["detail"]) for r in pending] == [
        ("unknown", {"summary": "tell the customer pc-17 is going"})]
    assert first.exit_code == ExitCode.MANUAL_PENDING
    assert run.shown.lines == ["0/1 done", "pc-17: manual, pending", "0/1 done", "pc-17: manual, pending"]


class Person:
    """Guided mode's person at the terminal: does each item asked, and notes where each was asked from."""

    by = "J. Doe"

    def __init__(self) -> None:
        self.asked: list[tuple[str, bool]] = []

    def ask(self, action: Action, refused: Any) -> GuideAnswer:
        self.asked.append((action.id, threading.current_thread() is threading.main_thread()))
        return GuideAnswer(done=True, note="done in the portal")


def test_in_guided_mode_a_person_confirms_each_item_as_the_run_reaches_it(tmp_path: Path) -> None:
    item = Action(id="huntress.tell", vendor="huntress", step="huntress.uninstall", kind="manual", operation="tell",
                  target=TARGET, summary="tell the customer pc-17 is going")
    run = Run(tmp_path, item)
    person = Person()
    result = run.go(Vendor(), guide=person)
    assert person.asked == [("huntress.tell", True)]
    confirmed = [r for r in read_records(run.dir.audit_path) if r["event"] == "manual.confirmed"]
    assert [r["detail"] for r in confirmed] == [{"by": "J. Doe", "note": "done in the portal", "mode": "guided",
                                                 "verified_by_api": False}]
    assert run.shown.lines == ["0/1 done", "pc-17: confirmed by a person"] and result.exit_code == ExitCode.OK


def two_vendors(tmp_path: Path, kind: str = "manual") -> Run:
    """Two vendors, one action each: a person's item, or a removal."""
    def item(vendor: str) -> Action:
        if kind != "manual":
            return uninstall().model_copy(update={"id": f"{vendor}.uninstall", "vendor": vendor,
                                                  "step": f"{vendor}.tell"})
        return Action(id=f"{vendor}.tell", vendor=vendor, step=f"{vendor}.tell", kind="manual", operation="tell",
                      target=Target(type="manual", id="tell", name=f"tell {vendor}"), summary=f"tell {vendor}")

    run = Run(tmp_path, item("huntress"))
    other = run.plan.vendors[0].model_copy(update={"vendor": "blumira", "display_name": "Blumira", "steps": (
        Step(id="blumira.tell", vendor="blumira", title="Tell", actions=(item("blumira"),)),)})
    mine = run.plan.vendors[0].model_copy(update={"steps": (
        Step(id="huntress.tell", vendor="huntress", title="Tell", actions=(item("huntress"),)),)})
    run.plan = run.plan.model_copy(update={"vendors": (mine, other)})
    return run


def both(run: Run, vendors: dict[str, Vendor], guide: Guide | None = None, ticket: Any = None) -> RunResult:
    audit = AuditLog(run.dir.audit_path, run.dir.run_id)
    try:
        return execute(run.dir, run.plan, Sessions(vendors, {}, ticket=ticket), audit,  # type: ignore[arg-type]
                       {"huntress": run.live, "blumira": run.live}, Overrides(), run.shown, guide, None)
    finally:
        audit.close()


def test_in_guided_mode_two_vendors_items_are_asked_one_at_a_time_in_the_plans_order(tmp_path: Path) -> None:
    """One person answers one prompt at a time: the vendors' lanes do not run side by side then."""
    run = two_vendors(tmp_path)
    person = Person()
    both(run, {"huntress": Vendor(), "blumira": Vendor()}, guide=person)
    assert person.asked == [("huntress.tell", True), ("blumira.tell", True)]


class Ticket:
    """The exit's PSA ticket, as the engine tells it of each vendor it has finished."""

    def __init__(self) -> None:
        self.finished: list[str] = []

    def vendor_finished(self, vendor: str) -> None:
        self.finished.append(vendor)


def test_the_exits_ticket_hears_of_each_vendor_as_it_finishes(run: Run, tmp_path: Path) -> None:
    ticket = Ticket()
    audit = AuditLog(run.dir.audit_path, run.dir.run_id)
    try:
        execute(run.dir, run.plan, Sessions({"huntress": Vendor()}, {}, ticket=ticket),  # type: ignore[dict-item,arg-type]
                audit, {"huntress": run.live}, Overrides(), run.shown, None, None)
    finally:
        audit.close()
    assert ticket.finished == ["huntress"]
    lanes = Ticket()
    both(two_vendors(tmp_path / "lanes", kind="api"), {"huntress": Vendor(), "blumira": Vendor()}, ticket=lanes)
    assert sorted(lanes.finished) == ["blumira", "huntress"]


class Warned(Shown):
    def __init__(self) -> None:
        super().__init__()
        self.said = threading.Event()

    def warning(self, text: str) -> None:
        self.lines.append(text)
        self.said.set()


def test_ctrl_c_while_both_vendors_work_is_acknowledged_at_once_and_the_run_stops_resumable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import _thread

    from offboard.engine import execute as executor

    run = two_vendors(tmp_path, kind="api")
    run.shown = Warned()
    main_waits = threading.Event()
    real_wait = executor.wait

    def watched_wait(*args: Any, **kwargs: Any) -> Any:
        main_waits.set()  # the main thread waits on the lanes now (not still starting them)
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(executor, "wait", watched_wait)

    class Interrupted(Vendor):
        def execute(self, action: Action) -> ActionResult:
            main_waits.wait(10)
            _thread.interrupt_main()  # the operator's Ctrl-C, while this write is on its way
            run.shown.said.wait(10)  # type: ignore[attr-defined]  # the write finishes after the stop was told
            return super().execute(action)

    with pytest.raises(RunInterrupted):
        both(run, {"huntress": Interrupted(), "blumira": Vendor()})
    assert "stopping after the current action — Ctrl-C again to stop now" in run.shown.lines
    assert run.run_lines("run.interrupted") == [("run.interrupted", "unknown", "stopped by the operator (Ctrl-C)")]


class StoppedWhileVerifying(Vendor):
    def verify(self, vendor_plan: VendorPlan | None, inventory: Inventory) -> list[Any]:
        raise KeyboardInterrupt  # e.g. Ctrl-C, or a batch's stop, while a re-read waits for the rate limit


def test_ctrl_c_while_verifying_records_the_interruption_and_leaves_the_run_resumable(run: Run) -> None:
    with pytest.raises(RunInterrupted):
        run.go(StoppedWhileVerifying())
    assert run.run_lines("run.interrupted", "run.finished") == [
        ("run.interrupted", "unknown", "stopped by the operator (Ctrl-C)")]
    assert run.status() == "interrupted" and run.last()["event"] == "action.succeeded"


class Frozen(Vendor):
    """Notes, at its write, whether the run's objects were out of the collector's sight."""

    def __init__(self) -> None:
        super().__init__()
        self.frozen_at_write = 0

    def execute(self, action: Action) -> ActionResult:
        self.frozen_at_write = gc.get_freeze_count()
        return super().execute(action)


def test_the_runs_objects_are_out_of_the_collectors_sight_while_the_lanes_run_and_handed_back_after(
        run: Run, tmp_path: Path) -> None:
    """A full collection walks every live object: at 10,000 agents a pause of 50-200 ms on the lane
    every few hundred writes (the figure is the benchmark's, in docs/performance.md)."""
    gc.unfreeze()
    vendor = Frozen()
    run.go(vendor)
    assert vendor.frozen_at_write > 0 and gc.get_freeze_count() == 0
    with pytest.raises(RunInterrupted):  # handed back however the lanes end
        Run(tmp_path / "stopped", uninstall()).go(Vendor(writes=[KeyboardInterrupt()]))
    assert gc.get_freeze_count() == 0


# -- an evidence export: a read, its files and the requests that made each -----------------------------

PAGE1 = HttpRecord("GET", "/v1/agents", 200, 1, 9)
PAGE2 = HttpRecord("GET", "/v1/agents?page_token=2", 200, 1, 8)
READ = Action(id="huntress.export.agents", vendor="huntress", step="huntress.uninstall", kind="api", operation="export",
              target=Target(type="export", id="agents", name="agents export"), summary="export agents",
              call="GET /v1/agents", destructive=False)
NAMED = {"vendor": "huntress", "step": "huntress.uninstall", "action_id": READ.id, "target": READ.target.model_dump()}


def export_lines(run: Run) -> list[dict[str, Any]]:
    """The export's lines after its `action.planned` one (the first)."""
    lines = [{k: r.get(k) for k in (*NAMED, "event", "outcome", "http", "detail")}
             for r in read_records(run.dir.audit_path) if r.get("action_id") == READ.id]
    assert lines[0]["event"] == "action.planned", lines
    return lines[1:]


def test_an_export_records_each_file_with_the_requests_that_made_it_and_no_request_on_the_line(
        tmp_path: Path) -> None:
    run = Run(tmp_path, READ)
    agents = Artifact(name="agents.json", content=b'[{"id": 17}]', requests=(PAGE1, PAGE2))
    draft = Artifact(name="notice.eml", content=b"Subject: x\n", draft_for="huntress.notify")
    vendor = Vendor(writes=[ActionResult("success", "2 files", GET, artifacts=(agents, draft))])
    result = run.go(vendor)
    assert vendor.calls == ["execute"]  # a read: no owner read, no re-read
    files = [{"path": "huntress/agents.json", "sha256": hashlib.sha256(agents.content).hexdigest(), "bytes": 12,
              "requests": [PAGE1.as_dict(), PAGE2.as_dict()]},
             {"path": "huntress/notice.eml", "sha256": hashlib.sha256(draft.content).hexdigest(), "bytes": 11,
              "requests": [], "draft_for": "huntress.notify"}]
    assert export_lines(run) == [
        {**NAMED, "event": "action.started", "outcome": "unknown", "http": None, "detail": {"call": "GET /v1/agents"}},
        # each file names its own requests: none stands on the line (its own GET made no file)
        {**NAMED, "event": "action.succeeded", "outcome": "success", "http": None,
         "detail": {"message": "2 files", "files": files}}]
    assert (run.dir.path / "evidence" / "huntress" / "agents.json").read_bytes() == agents.content
    assert result.exit_code == ExitCode.OK and run.shown.lines == ["0/1 done", "agents export: exported"]


def test_an_export_whose_files_name_no_request_carries_the_call_on_its_line_and_a_failed_one_is_failed(
        tmp_path: Path) -> None:
    run = Run(tmp_path, READ)
    report = Artifact(name="report.pdf", content=b"%PDF")
    run.go(Vendor(writes=[ActionResult("success", "1 file", GET, artifacts=(report,))]))
    done = export_lines(run)[-1]
    assert done["event"] == "action.succeeded" and done["http"] == GET.as_dict()
    assert [f["requests"] for f in done["detail"]["files"]] == [[]] and "draft_for" not in done["detail"]["files"][0]

    again = Run(tmp_path / "2", READ)
    result = again.go(Vendor(writes=[ActionResult("failure", "the export was refused", GET)]))
    assert export_lines(again)[-1] == {**NAMED, "event": "action.failed", "outcome": "failure", "http": GET.as_dict(),
                                       "detail": {"message": "the export was refused", "files": []}}
    assert result.exit_code == ExitCode.FAILED


def test_an_export_the_vendor_refuses_is_failed_and_one_it_could_not_answer_stops_the_run(tmp_path: Path) -> None:
    run = Run(tmp_path, READ)
    run.go(Vendor(writes=[VendorError("huntress", "GET /v1/agents", "HTTP 404: no such report", status=404)]))
    assert export_lines(run)[-1] == {**NAMED, "event": "action.failed", "outcome": "failure", "http": None,
                                     "detail": {"message": "huntress: GET /v1/agents failed: HTTP 404: no such report"}}
    for n, fault in enumerate((VendorError("huntress", "GET /v1/agents", "HTTP 503", status=503),
                               VendorError("huntress", "GET /v1/agents", "no reply"))):
        stopped = Run(tmp_path / f"stop{n}", READ)
        result = stopped.go(Vendor(writes=[fault]))
        assert [r["event"] for r in export_lines(stopped)] == ["action.started"]  # nothing settled: resumable
        assert result.exit_code == ExitCode.FAILED
        assert f"resume later with `offboard apply --resume {stopped.dir.run_id}`" in result.message
    refused = Run(tmp_path / "auth", READ)  # credentials refused: the person fixes them, nothing is recorded failed
    with pytest.raises(VendorAuthError):
        refused.go(Vendor(writes=[VendorAuthError("huntress", "GET /v1/agents", "HTTP 403: revoked", status=403)]))
    assert [r["event"] for r in export_lines(refused)] == ["action.started"]


def test_an_export_that_fell_back_to_a_person_is_on_the_checklist_with_why(tmp_path: Path) -> None:
    manual = Manual(portal_path="Reports > Download", done_when="the report is saved in the run folder")
    run = Run(tmp_path, READ.model_copy(update={"manual": manual}))
    run.go(Vendor(writes=[ActionResult("failure", "the report API is not offered", GET, manual_fallback=True)]))
    assert export_lines(run)[-1] == {
        **NAMED, "event": "manual.pending", "outcome": "unknown", "http": GET.as_dict(),
        "detail": {"summary": "export agents", "fell_back": "the report API is not offered", **manual.model_dump()}}



def test_a_gate_tells_what_it_will_hold_each_step_is_announced_once_and_the_counts_are_each_actions(
        tmp_path: Path) -> None:
    """The gate's vendor's later actions it will hold: its removals and a person's items, not a read; each
    step announced once with what it has to do; the held line in the log names the vendor and the step."""
    manual = Manual(portal_path="Support", done_when="acknowledged")
    gate = Action(id="huntress.notify", vendor="huntress", step="huntress.notify", kind="manual", operation="notify",
                  target=Target(type="manual", id="notify", name="tell Huntress"), summary="tell Huntress",
                  manual=manual, gate=True)
    later = Action(id="huntress.portal", vendor="huntress", step="huntress.uninstall", kind="manual",
                   operation="portal", target=Target(type="manual", id="portal", name="portal step"),
                   summary="portal step", manual=manual)
    second = uninstall().model_copy(update={"id": "huntress.uninstall_agent.18", "call": "DELETE /v1/agents/18"})
    read = READ.model_copy(update={"id": "huntress.export.after", "step": "huntress.uninstall"})
    run = Run(tmp_path, uninstall(), first=(Step(id="huntress.notify", vendor="huntress", title="Notify",
                                                 phase="closure", actions=(gate,)),))
    vp = run.plan.vendors[0]
    steps = (vp.steps[0], vp.steps[1].model_copy(update={"actions": (run.action, second, read, later)}))
    run.plan = run.plan.model_copy(update={"vendors": (vp.model_copy(update={"steps": steps}),)})
    exported = ActionResult("success", "1 file", GET, artifacts=(Artifact(name="a.json", content=b"[]"),))
    vendor = Vendor(writes=[exported])
    result = run.go(vendor)
    assert run.shown.lines == [
        "0/5 done", "tell Huntress: manual, pending", "pc-17: waits for a person's confirmation",
        "pc-17: waits for a person's confirmation", "agents export: exported",
        "portal step: waits for a person's confirmation"]
    # each step announced once, as its first action runs (a held one does not), with what it has to do
    assert run.shown.told == [
        "Huntress: Notify (1 to do)",
        "Huntress holds huntress.uninstall_agent.17, huntress.uninstall_agent.18, huntress.portal",
        "Huntress: Uninstall (4 to do)"]
    held = [r for r in read_records(run.dir.audit_path) if r["event"] == "vendor.held"]
    assert [(r["vendor"], r["step"], r["action_id"]) for r in held] == [("huntress", "huntress.notify", gate.id)]
    assert vendor.calls == ["execute"]  # the read ran; no owner read, no write
    assert result.counts["exported"] == 1 and result.counts["manual"] == 1 and result.counts["held"] == 3


def test_a_vendor_down_stops_its_own_lane_only_and_its_error_is_raised_once_every_lane_has_finished() -> None:
    """Each vendor's lane is its own: one whose vendor stayed down (a 5xx after retries) stops after that
    action, the other lane runs to its end and is told done; the error is raised once both stopped."""
    def act(vendor: str, n: int) -> Action:
        return uninstall().model_copy(update={"id": f"{vendor}.{n}", "vendor": vendor})

    ran: list[str] = []
    finished: list[str] = []

    def one(action: Action) -> None:
        ran.append(action.id)
        if action.vendor == "down":
            raise VendorError("down", "DELETE /x", "HTTP 503", status=503)

    lanes = {"down": [act("down", 1), act("down", 2)], "up": [act("up", 1), act("up", 2), act("up", 3)]}
    with pytest.raises(VendorError) as raised:
        _in_lanes(lanes, one, finished.append)
    assert raised.value.vendor == "down"
    assert [a for a in ran if a.startswith("down")] == ["down.1"]  # its lane stopped after that action
    assert [a for a in ran if a.startswith("up")] == ["up.1", "up.2", "up.3"] and finished == ["up"]
    ran.clear()
    finished.clear()
    _in_lanes({"up": [act("up", 1)]}, one, finished.append)  # nothing failed: nothing raised, the lane told done
    assert ran == ["up.1"] and finished == ["up"]


@pytest.mark.parametrize(("faults", "raised"), [
    ((VendorError("a", "DELETE /x", "HTTP 503", status=503), VendorAuthError("b", "DELETE /y", "HTTP 401", 401)),
     VendorAuthError),  # refused credentials: a person must fix them, before a vendor that is down
    ((VendorError("a", "DELETE /x", "HTTP 503", status=503), RuntimeError("a bug")), RuntimeError),  # offboard's own
])
def test_of_two_lanes_that_failed_the_more_serious_error_is_raised(faults: tuple[BaseException, ...],
                                                                  raised: type[BaseException]) -> None:
    def one(action: Action) -> None:
        raise faults[0 if action.vendor == "a" else 1]

    lanes = {v: [uninstall().model_copy(update={"id": f"{v}.1", "vendor": v})] for v in ("a", "b")}
    with pytest.raises(raised):
        _in_lanes(lanes, one)
