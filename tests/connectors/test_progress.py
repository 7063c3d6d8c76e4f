"""Progress wherever the output goes (issue 15, friction 4): in a log, timestamped lines from the
first moment, one per step, the rate limit's waits said in words; on a terminal, a bar whose
status says "waiting Ns for the rate limit" while calls are held back. Never an event name."""

from __future__ import annotations

import io
import itertools
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from offboard.batch.status import exit_state
from offboard.cli.render import LineProgress, RichProgress
from offboard.connectors.sandboxing import serve
from offboard.engine import Limit, Overrides
from offboard.engine.apply import seconds_at_limit
from offboard.plan import Action, Plan, Step, Target, VendorPlan, read_plan
from offboard.wire.waits import Wait
from offboard_huntress.sandbox import CUSTOMER_ORG, DEMO_KEY, DEMO_SECRET, HuntressSandbox
from tests.conftest import load, write_config

# Huntress's 60 calls in a 3 s window (a minute against the real API). Another tool on the same
# account uses most of it just before apply, so apply's limiter (which reads the calls-left header)
# holds its calls back for about a window: seconds here, a minute in real life.
SCALE = 0.05
OTHER_TOOLS_CALLS = 45
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \S")
EVENT_NAME = re.compile(r"\b(action|manual|run|vendor|preflight|guard|evidence)\.[a-z_]+\b")


@pytest.fixture
def slow_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[HuntressSandbox, Path]]:
    sandbox = HuntressSandbox(time_scale=SCALE)
    with serve(sandbox.app) as url:
        monkeypatch.setenv("OFFBOARD_HUNTRESS_API_KEY", DEMO_KEY)
        monkeypatch.setenv("OFFBOARD_HUNTRESS_API_SECRET", DEMO_SECRET)
        yield sandbox, write_config(tmp_path, url, window=60 * SCALE)


def test_apply_into_a_log_prints_timestamped_steps_and_the_rate_limit_waits(
        cli: Any, tmp_path: Path, slow_window: tuple[HuntressSandbox, Path]) -> None:
    sandbox, config = slow_window
    plan = cli("plan", "-c", str(config), "-o", str(tmp_path / "exit.plan.json"))
    assert plan.code == 0, plan.err
    for _ in range(OTHER_TOOLS_CALLS):
        sandbox.admit()
    result = cli("apply", str(tmp_path / "exit.plan.json"), "-c", str(config), "--unattended",
                 "--override-preflight", "lab")
    assert result.code == 3, result.err  # manual items remain: a finished unattended run
    lines = [line for line in result.out.splitlines() if line.strip()]  # a log of stdout: progress with it
    progress = [line for line in lines if STAMP.match(line)]
    # The first line comes before any vendor call, not after the run (the old code was silent
    # until a bar drawn once, at the end, with no time on it).
    assert lines[0] == progress[0] and "Re-reading the vendors" in lines[0]
    assert any("Huntress: 3. Remove endpoint coverage (EDR agents) (36 to do)" in line for line in progress)
    assert any(re.search(r"Huntress: waiting \d+s for the rate limit", line) for line in progress), progress
    assert any("Actions finished: " in line for line in progress)
    assert not [line for line in progress if EVENT_NAME.search(line)], progress  # words, not event names
    assert sandbox.agents_of(CUSTOMER_ORG) == []  # the run itself is unchanged: every agent removed
    # A resumed run says so at once, before it re-reads the vendors (the old code: 26 s of silence).
    # Another tool fills the account's window first: the resume's first call (naming the exit for its
    # lock) waits, and that wait is shown after the line, not sat through in silence before it.
    (run,) = (tmp_path / "runs").iterdir()
    for _ in range(OTHER_TOOLS_CALLS):
        sandbox.admit()
    resumed = cli("apply", "--resume", run.name, "-c", str(config), "--unattended")
    first, second = resumed.out.splitlines()[:2]
    assert STAMP.match(first) and f"Resuming run {run.name}: re-reading the vendors first" in first, resumed.out
    assert re.search(r"Huntress: waiting \d+s (for the rate limit|before retrying)", second), resumed.out
    assert not [line for line in resumed.out.splitlines() if STAMP.match(line) and EVENT_NAME.search(line)]


def action(name: str = "ACME-PC01", *, destructive: bool = True) -> Action:
    return Action(id=f"v.s.{name}", vendor="vendor", step="s", kind="api", operation="remove",
                  target=Target(type="agent", id=name, name=name), summary="remove", destructive=destructive)


def test_the_terminal_bar_speaks_words_and_counts_down_a_rate_limit_wait() -> None:
    screen = io.StringIO()
    bar = RichProgress(Console(file=screen, force_terminal=True, width=200, color_system=None))
    bar.start(4, 0)
    bar.step("Vendor", Step(id="s", vendor="vendor", title="3. Remove agents"), 4)
    bar.advance(action("ACME-PC01"), "manual.confirmed")
    assert bar.status_text() == "ACME-PC01: confirmed by a person"
    bar.advance(action("ACME-PC02"), "action.succeeded")
    assert bar.status_text() == "ACME-PC02: done"
    bar.advance(action("evidence", destructive=False), "action.succeeded")
    assert bar.status_text() == "evidence: exported"
    bar.waiting(Wait("Vendor", 12.0, "rate_limit", "for the rate limit"))
    assert re.fullmatch(r"Vendor: waiting 1[12]s for the rate limit", bar.status_text())
    bar.advance(action("ACME-PC03"), "action.held")
    bar.finish()
    drawn = screen.getvalue()
    assert "3. Remove agents" in drawn and "waiting" in drawn and "3/4" in drawn  # a held action is not done
    assert not EVENT_NAME.search(drawn), drawn


def test_a_lane_held_behind_its_gate_says_so_not_the_held_items_name() -> None:
    screen = io.StringIO()
    bar = RichProgress(Console(file=screen, force_terminal=True, width=200, color_system=None))
    bar.start(3, 0)
    bar.step("Vendor", Step(id="g", vendor="vendor", title="0. Notify first"), 1)
    bar.advance(action("notify", destructive=False), "manual.pending")
    for name in ("SENSOR-1", "SUPPORT-CONFIRMATION"):  # later steps' items, held behind the gate
        bar.advance(action(name), "action.held")
    assert bar.status_text() == "3 held until a person confirms"  # the gate item itself, and what it holds
    bar.finish()
    drawn = screen.getvalue()
    assert "0. Notify first" in drawn and "SUPPORT-CONFIRMATION" not in drawn, drawn


def test_a_wait_the_limiter_paces_is_said_once_per_interval_and_a_long_one_always() -> None:
    now = [0.0]
    log = io.StringIO()
    lines = LineProgress(log, clock=lambda: now[0])
    lines.waiting(Wait("Vendor", 0.2, "rate_limit", "for the rate limit"))  # ordinary pacing: not said
    lines.waiting(Wait("Vendor", 2.0, "rate_limit", "for the rate limit"))
    lines.waiting(Wait("Vendor", 2.0, "rate_limit", "for the rate limit"))  # said a moment ago
    lines.waiting(Wait("Vendor", 60.0, "rate_limit", "for the rate limit (the vendor answered 429)"))
    now[0] = 10.0
    lines.waiting(Wait("Vendor", 2.0, "retry", "before retrying (HTTP 503)"))
    said = [line.split(" ", 1)[1] for line in log.getvalue().splitlines()]
    assert said == ["Vendor: waiting 2s for the rate limit",
                    "Vendor: waiting 60s for the rate limit (the vendor answered 429)",
                    "Vendor: waiting 2s before retrying (HTTP 503)"]


@pytest.mark.parametrize("where", ["before", "-q", "--quiet"])
def test_quiet_apply_into_a_log_prints_no_progress_line(cli: Any, tmp_path: Path, where: str,
                                                        slow_window: tuple[HuntressSandbox, Path]) -> None:
    """`-q` is for cron and RMM runs (issue 22): only warnings and errors, terminal or not; before the
    command (`offboard -q apply …`) or after it (`offboard apply … -q`, or `--quiet`)."""
    _, config = slow_window
    assert cli("plan", "-c", str(config), "-o", str(tmp_path / "exit.plan.json")).code == 0
    args = ["apply", str(tmp_path / "exit.plan.json"), "-c", str(config), "--unattended", "--override-preflight",
            "lab"]
    result = cli(*(["-q", *args] if where == "before" else [*args, where]))
    assert result.code == 3, result.err
    assert not [line for line in (result.out + result.err).splitlines() if STAMP.match(line)], result.out
    assert result.out.strip() == ""
    # the outcome (a person's items wait) is exit 3's to say: no line of it either, only warnings
    assert "manual item(s) waiting" not in result.err, result.err


def test_each_vendor_lane_shows_its_own_step_and_the_eta_counts_the_waits() -> None:
    """Issue 22: the bar showed Blumira's step while Huntress removed agents, and "ETA 0:00:02"
    beside "waiting 48s for the rate limit"."""
    now = [0.0]
    screen = io.StringIO()
    bar = RichProgress(Console(file=screen, force_terminal=True, width=120, color_system=None),
                       clock=lambda: now[0])
    bar.start(10, 0)
    bar.step("Huntress", Step(id="a", vendor="huntress", title="3. Remove endpoint coverage"), 6)
    bar.step("Blumira", Step(id="b", vendor="blumira", title="8. Blumira support confirms"), 4)
    now[0] = 2.0
    bar.advance(Action(id="huntress.a.1", vendor="huntress", step="a", kind="api", operation="remove",
                       target=Target(type="agent", id="1", name="ACME-PC01"), summary="remove"), "action.succeeded")
    assert bar.eta() == pytest.approx(18.0)  # 2 s an action so far, 9 to go
    bar.waiting(Wait("Huntress", 48.0, "rate_limit", "for the rate limit"))
    assert bar.eta() == pytest.approx(48.0)  # never less than the wait still to sit through
    assert bar.lane_text("Huntress") == "waiting 48s for the rate limit"
    assert bar.lane_text("Blumira") == ""  # Blumira is not waiting
    bar._progress.refresh()
    drawn = screen.getvalue()
    bar.finish()
    assert "Huntress: 3. Remove endpoint coverage" in drawn and "Blumira: 8. Blumira support confirms" in drawn
    assert "1 done" in drawn and "ETA 0:00:48" in drawn


def test_each_lane_has_its_own_count_and_eta_counting_its_own_waits() -> None:
    """Issue 22: one overall ETA only; each vendor lane now shows its own, its waits counted."""
    now = [0.0]
    screen = io.StringIO()
    bar = RichProgress(Console(file=screen, force_terminal=True, width=120, color_system=None),
                       clock=lambda: now[0])
    bar.start(10, 0)
    bar.lanes({"Huntress": (6, 0), "Blumira": (4, 0)})
    bar.step("Huntress", Step(id="a", vendor="huntress", title="3. Remove endpoint coverage"), 6)
    bar.step("Blumira", Step(id="b", vendor="blumira", title="2. Remove sensors"), 4)
    now[0] = 2.0
    bar.advance(Action(id="huntress.a.1", vendor="huntress", step="a", kind="api", operation="remove",
                       target=Target(type="agent", id="1", name="ACME-PC01"), summary="remove"), "action.succeeded")
    assert bar.eta("Huntress") == pytest.approx(10.0)  # 2 s an action, 5 to go
    assert bar.eta("Blumira") is None  # nothing moved, nothing waits: not known yet
    bar.waiting(Wait("Blumira", 30.0, "rate_limit", "for the rate limit"))
    assert bar.eta("Blumira") == pytest.approx(30.0) and bar.eta("Huntress") == pytest.approx(10.0)
    assert bar.eta() == pytest.approx(30.0)  # the run ends with its slowest lane
    bar._progress.refresh()
    drawn = screen.getvalue()
    bar.finish()
    assert "1/6" in drawn and "0/4" in drawn and "ETA 0:00:10" in drawn and "ETA 0:00:30" in drawn


def lanes_bar(now: list[float], width: int = 120) -> tuple[RichProgress, io.StringIO]:
    screen = io.StringIO()
    bar = RichProgress(Console(file=screen, force_terminal=True, width=width, height=40, color_system=None),
                       clock=lambda: now[0])
    bar.start(10, 0)
    bar.lanes({"Huntress": (6, 0), "Blumira": (4, 0)})
    bar.step("Huntress", Step(id="a", vendor="huntress", title="3. Remove endpoint coverage"), 6)
    bar.step("Blumira", Step(id="n", vendor="blumira", title="0. Notify Blumira first"), 4)
    return bar, screen


def counted_down(bar: RichProgress, now: list[float], screen: io.StringIO, wait: Wait, later: float) -> str:
    """Where no bar is drawn: ``wait`` on its own line, drawn now and ``later`` seconds on; the screen."""
    bar.waiting(wait)
    assert bar._after is not None
    bar._after.refresh()
    now[0] += later
    bar._after.refresh()
    return screen.getvalue()


def of(vendor: str, n: int, *, destructive: bool = True) -> Action:
    return Action(id=f"{vendor}.s.{n}", vendor=vendor, step="s", kind="api", operation="remove",
                  target=Target(type="agent", id=str(n), name=f"PC{n}"), summary="remove", destructive=destructive)


def frame(bar: RichProgress) -> list[str]:
    """The bar's lines as a 120-column terminal shows them now."""
    screen = io.StringIO()
    Console(file=screen, width=120, color_system=None).print(bar._progress.get_renderable())
    return [line.rstrip() for line in screen.getvalue().splitlines()]


def test_a_lane_held_behind_its_gate_counts_only_what_is_done_and_says_how_many_wait() -> None:
    """Issue 22: the Blumira lane, its removals held behind "notify Blumira first", showed 17/17."""
    now = [0.0]
    bar, _ = lanes_bar(now)
    now[0] = 2.0
    bar.advance(of("blumira", 1, destructive=False), "action.succeeded")  # its evidence
    bar.advance(of("blumira", 2, destructive=False), "manual.pending")  # the gate, handed to a person
    bar.advance(of("blumira", 3), "action.held")
    bar.advance(of("blumira", 4), "action.held")
    bar.advance(of("huntress", 1), "action.succeeded")
    every, huntress, blumira = frame(bar)
    assert "2/10" in every and "1/6" in huntress
    assert "Blumira: 0. Notify Blumira first" in blumira and "1/4" in blumira, blumira
    assert blumira.endswith("3 held until a person confirms") and "ETA" not in blumira, blumira
    assert bar.eta() == pytest.approx(10.0)  # Huntress's 5 to go at 2 s each; Blumira has nothing to run
    bar.finish()


def test_the_re_read_before_the_bar_is_said_done_when_the_bar_starts() -> None:
    """Review at 120x40: "Re-reading the vendors to check the plan still holds" stayed above the bar while
    the removals ran, read as still going."""
    screen = io.StringIO()
    bar = RichProgress(Console(file=screen, force_terminal=True, width=120, height=40, color_system=None))
    bar.phase("Re-reading the vendors to check the plan still holds (read-only)")
    assert "Re-read done" not in screen.getvalue()
    bar.start(10, 0)
    bar.finish()
    lines = [line for line in screen.getvalue().splitlines() if line.strip()]
    assert lines[:2] == ["Re-reading the vendors to check the plan still holds (read-only)",
                         "Re-read done: the plan still holds."], lines
    assert screen.getvalue().count("Re-read done") == 1


def test_a_guided_prompt_stops_the_etas_and_takes_the_bar_off_the_screen() -> None:
    """Review at 120x40: a guided apply's lane read "ETA 0:00:01" after a person's prompt, then 0:00:20 (the
    countdown ran on while the run stood still), and each prompt left a frozen copy of the bar above it."""
    now = [0.0]
    bar = after_a_burst(now, 27)
    before = bar.eta("Huntress")
    assert before is not None and before > 30
    bar.suspend()  # a manual item's prompt: a person reads it for a minute
    assert bar._progress.live.transient is False  # taken off the screen as it stopped, drawn again after
    now[0] += 60.0
    bar.resume()
    assert bar.eta("Huntress") == before  # the minute at the prompt is not the run's
    now[0] += 5.0
    assert bar.eta("Huntress") == before - 5.0
    bar.finish()


def test_the_bar_drawn_again_after_a_prompt_leaves_the_prompt_and_its_answer_on_the_screen() -> None:
    """Review at 120x40: after a guided prompt (answered, or stopped by Ctrl-C) the bar came back over
    the prompt box's last lines and the answer typed."""
    now = [0.0]
    bar = after_a_burst(now, 27)
    bar._progress.refresh()
    screen = bar.console.file
    assert isinstance(screen, io.StringIO)
    bar.suspend()
    bar.console.print("╰──────╯\ndone / skip / stop [done/skip/stop] (done): skip")
    after_prompt = len(screen.getvalue())
    bar.resume()
    bar._progress.refresh()
    drawn = screen.getvalue()[after_prompt:]
    assert "Huntress: 3. Remove endpoint coverage" in drawn
    assert "\x1b[1A" not in drawn.split("Huntress")[0]  # no cursor-up into the prompt before the bar is drawn
    bar.finish()


def test_a_held_lane_returns_to_its_gates_step_once_its_exports_ran() -> None:
    """Review at 120x40: the demo's bar left a Blumira lane held behind "notify Blumira first" on
    "1. Export retained evidence" (its exports, not held, ran after the gate was handed to a person);
    the batch's table showed the gate's step."""
    now = [0.0]
    bar, _ = lanes_bar(now)
    bar.advance(of("blumira", 1), "manual.pending")  # the gate, handed to a person
    bar.held("Blumira", [of("blumira", 3).id, of("blumira", 4).id])
    bar.step("Blumira", Step(id="x", vendor="blumira", title="1. Export retained evidence"), 1)
    assert "Blumira: 1. Export retained evidence" in frame(bar)[2]  # at work on it
    bar.advance(of("blumira", 2, destructive=False), "action.succeeded")  # the export: all that is left is held
    assert "Blumira: 0. Notify Blumira first" in frame(bar)[2], frame(bar)
    bar.finish()


def test_a_lanes_eta_counts_down_through_a_rate_limit_wait_and_never_grows() -> None:
    """Issue 22: the Huntress lane's ETA grew while a rate-limit wait passed (its pace counted the
    wait's seconds as slowness)."""
    now = [0.0]
    bar, _ = lanes_bar(now)
    now[0] = 2.0
    bar.advance(of("huntress", 1), "action.succeeded")
    assert bar.eta("Huntress") == pytest.approx(10.0)  # 2 s an action, 5 to go
    bar.waiting(Wait("Huntress", 48.0, "rate_limit", "for the rate limit"))
    seen = []
    for t in range(2, 50, 4):  # while the wait passes
        now[0] = float(t)
        seen.append(bar.eta("Huntress"))
    assert seen == [48.0 - t for t in range(0, 48, 4)], seen  # counting down with it
    assert "ETA 0:00:04 waiting 4s for the rate" in frame(bar)[1]
    bar.finish()


def test_a_lanes_eta_is_never_less_than_what_is_left_at_its_vendors_limit() -> None:
    """Review at 120x40: "27/64 ETA 0:00:02" then, five seconds later, "31/64 ETA 0:00:32": the first
    window's burst made the pace look fast. The vendor's limit is the floor: 2 calls in a 4 s window
    here, a call an action: its 6 calls end no sooner than two windows after the lane began."""
    now = [0.0]
    bar, _ = lanes_bar(now)
    bar.ceilings({"Huntress": Limit(4.0, {of("huntress", n).id: 2.0 for n in range(1, 7)})})
    now[0] = 0.5
    for n in range(1, 4):  # a burst: three actions in half a second
        bar.advance(of("huntress", n), "action.succeeded")
    assert bar.eta("Huntress") == pytest.approx(7.5)  # 8 s after it began, not 0.5 s at the burst's pace
    assert bar.eta("Blumira") is None  # no limit told, nothing moved: not known
    now[0] = 10.0
    bar.advance(of("huntress", 4), "action.succeeded")
    assert bar.eta("Huntress") == pytest.approx(5.0)  # slower than the limit: the pace says more
    bar.finish()


def test_each_actions_seconds_at_its_vendors_limit_count_the_owner_read_of_each_removal(tmp_path: Path) -> None:
    actions = (of("huntress", 1), of("huntress", 2), of("huntress", 3, destructive=False))
    plan = Plan(plan_id="p", created_at="2026-12-05T00:00:00Z", customer="Acme", config_fingerprint="f",
                vendors=(VendorPlan(vendor="huntress", display_name="Huntress", scope="org", account="k",
                                    inventory_fingerprint="i", steps=(Step(id="s", vendor="huntress",
                                                                               title="S", actions=actions),)),))
    cfg = load(write_config(tmp_path, "http://127.0.0.1:9"))
    limit, window = cfg.vendors["huntress"].rate_limit() or (0, 0.0)
    call = window / limit
    ids = [a.id for a in actions]
    assert seconds_at_limit(plan, cfg, Overrides()) == {
        "Huntress": Limit(window, {ids[0]: 2 * call, ids[1]: 2 * call, ids[2]: call})}
    assert seconds_at_limit(plan, cfg, Overrides(trust_listing=True)) == {
        "Huntress": Limit(window, dict.fromkeys(ids, call))}
    # resumed: what its log holds done, or waiting for a person, costs no call
    assert seconds_at_limit(plan, cfg, Overrides(), {ids[0]: "action.succeeded", ids[1]: "manual.pending"}) == {
        "Huntress": Limit(window, {ids[2]: call})}


def test_a_rate_limit_wait_while_the_run_verifies_counts_down() -> None:
    """Issue 22: after the bar, a wait of the verification's re-reads was a line said once."""
    now = [0.0]
    bar, screen = lanes_bar(now)
    bar.finish()
    bar.phase("Verifying: re-reading each vendor to prove the service stopped")
    shown = counted_down(bar, now, screen, Wait("Huntress", 12.0, "rate_limit", "for the rate limit"), 5.0)
    bar.end()
    assert "Huntress: waiting 12s for the rate limit" in shown and "Huntress: waiting 7s for the rate limit" in shown
    assert bar._after is None


def test_where_an_exit_stands_counts_each_vendors_done_actions_for_a_resumed_batch_row(
        cli: Any, tmp_path: Path, slow_window: tuple[HuntressSandbox, Path]) -> None:
    """Issue 22: `batch apply --resume` started each row at 0/N; it starts at what the exit's log
    holds done (batch/status.py reads it, batch/run.py puts it on the board)."""
    _, config = slow_window
    assert cli("plan", "-c", str(config), "-o", str(tmp_path / "exit.plan.json")).code == 0
    applied = cli("apply", str(tmp_path / "exit.plan.json"), "-c", str(config), "--unattended",
                  "--override-preflight", "lab")
    assert applied.code == 3, applied.err
    plan = read_plan(tmp_path / "exit.plan.json")
    state = exit_state(load(config), plan)
    # every API action ran; what is not done is exactly what waits for a person
    assert state.done_of == {"huntress": len(plan.actions()) - len(state.pending)} and state.pending


def test_a_log_counts_only_what_is_done_and_says_what_waits_for_a_person() -> None:
    """Issue 22: the same rule as the terminal's bar: "Actions finished: 17/17" while 14 waited."""
    now = [0.0]
    log = io.StringIO()
    lines = LineProgress(log, clock=lambda: now[0])
    lines.start(4, 0)
    lines.advance(of("blumira", 1, destructive=False), "action.succeeded")
    lines.advance(of("blumira", 2, destructive=False), "manual.pending")
    lines.advance(of("blumira", 3), "action.held")
    lines.advance(of("blumira", 4), "action.held")
    lines.finish()
    last = log.getvalue().splitlines()[-1].split(" ", 1)[1]
    assert last == "Actions finished: 1/4 done, 0:00:00 elapsed, 3 held until a person confirms"


ETA = re.compile(r"ETA (\d+):(\d\d):(\d\d)")


def eta_of(line: str) -> int | None:
    """The ETA a line shows, in seconds (None: none shown)."""
    m = ETA.search(line)
    return int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3]) if m else None


def rehearsal_bar(now: list[float]) -> RichProgress:
    """The rehearsal's two lanes: Huntress's 64 actions at its 60 calls a minute (13 exports of a call,
    then 51 removals of two: an owner read and the delete), Blumira's 17 (its limit not told)."""
    bar = RichProgress(Console(file=io.StringIO(), force_terminal=True, width=120, height=40, color_system=None),
                       clock=lambda: now[0])
    bar.ceilings({"Huntress": Limit(60.0, {of("huntress", n).id: 1.0 if n < 13 else 2.0 for n in range(64)})})
    bar.phase("Re-reading the vendors to check the plan still holds (read-only)")
    bar.start(81, 0)
    bar.lanes({"Huntress": (64, 0), "Blumira": (17, 0)})
    bar.step("Huntress", Step(id="a", vendor="huntress", title="3. Remove endpoint coverage (EDR agents)"), 64)
    bar.step("Blumira", Step(id="n", vendor="blumira", title="0. Notify Blumira first"), 17)
    return bar


def after_a_burst(now: list[float], actions: int) -> RichProgress:
    """The rehearsal's bar a second in, its first ``actions`` Huntress actions settled (a window's burst)."""
    bar = rehearsal_bar(now)
    now[0] = 1.0
    for n in range(actions):
        bar.advance(of("huntress", n), "action.succeeded")
    return bar


def test_a_lanes_eta_counts_down_steadily_through_the_waits_its_vendors_limit_foresaw() -> None:
    """Review at 120x40: the Huntress lane read "ETA 0:00:44 waiting 2s" then "0:00:48 waiting 27s" (and
    "0:00:11" then "0:00:42" once the next actions settled): each new wait remade the estimate. The limit's
    floor (its 115 calls end no sooner than a minute after it began) already holds those waits: the lane's
    ETA only counts down."""
    now = [0.0]
    bar = after_a_burst(now, 27)  # the first window's burst
    shown: list[tuple[float, int | None, str]] = []

    def look() -> None:
        line = frame(bar)[1]
        assert line.startswith("  Huntress: 3. Remove endpoint coverage"), line
        shown.append((now[0], eta_of(line), line))

    look()
    bar.waiting(Wait("Huntress", 2.0, "rate_limit", "for the rate limit"))
    for t in (1.5, 2.5):
        now[0] = t
        look()
    now[0] = 3.0
    bar.waiting(Wait("Huntress", 27.0, "rate_limit", "for the rate limit"))  # the next, once the first ended
    for t in range(3, 30):
        now[0] = float(t)
        look()
    now[0] = 30.0
    for n in range(27, 31):  # the window refilled: four more, then the next wait
        bar.advance(of("huntress", n), "action.succeeded")
    bar.waiting(Wait("Huntress", 10.0, "rate_limit", "for the rate limit"))
    for t in range(30, 41):
        now[0] = float(t)
        look()
    etas = [eta for _, eta, _ in shown]
    assert etas[0] == 59, shown[0]  # a minute after it began
    assert all(b <= a for a, b in itertools.pairwise(etas)), [(t, e) for t, e, _ in shown]
    assert etas == [math.ceil(60 - t) for t, _, _ in shown], [(t, e) for t, e, _ in shown]  # one countdown
    at_27s = next(line for t, _, line in shown if t == 3.0)
    assert "ETA 0:00:57 waiting 27s for the" in at_27s, at_27s
    bar.finish()


def test_a_wait_longer_than_the_eta_raises_it_to_the_wait() -> None:
    """What the floor did not foresee is shown: never "ETA 0:00:02" beside "waiting 48s"."""
    now = [0.0]
    bar = after_a_burst(now, 62)
    bar.waiting(Wait("Huntress", 100.0, "rate_limit", "for the rate limit (the vendor answered 429)"))
    assert "ETA 0:01:40 waiting 100s" in frame(bar)[1]  # its estimate was 59 s
    now[0] = 11.0
    assert "ETA 0:01:30 waiting 90s" in frame(bar)[1]
    bar.finish()


def test_a_lane_at_its_gate_gives_no_eta_for_what_it_holds_and_its_pace_is_of_its_work() -> None:
    """Review at 120x40: the Blumira lane, at its gate (its removals wait for a person's confirmation),
    read "ETA 0:00:07", "0:00:14" … "0:00:36" beside "waiting 1s for the rate limit", then went blank:
    its 9 held actions were counted as ahead, at a pace measured while it sat in its waits."""
    now = [0.0]
    bar = rehearsal_bar(now)
    now[0] = 1.0
    bar.advance(of("blumira", 1, destructive=False), "action.succeeded")  # its first export
    gate = Action(id="blumira.notify.sent", vendor="blumira", step="n", kind="manual", operation="notify",
                  target=Target(type="notice", id="n", name="Notify Blumira"), summary="notify", gate=True)
    bar.advance(gate, "manual.pending")
    bar.held("Blumira", [of("blumira", n).id for n in range(9, 17)])  # its removals: a person's to release
    now[0] = 2.0
    bar.advance(of("blumira", 2, destructive=False), "action.succeeded")
    lines: list[str] = []
    for n in range(3, 9):  # six more exports, a second each: a page, a 1 s wait for the rate limit
        bar.waiting(Wait("Blumira", 1.0, "rate_limit", "for the rate limit"))
        for _ in range(4):
            lines.append(frame(bar)[2])
            now[0] += 0.25
        bar.advance(of("blumira", n, destructive=False), "action.succeeded")
    etas = [eta_of(line) for line in lines]
    assert etas[0] == 6, lines[0]  # 6 exports left at 1 s each: not its 8 held ones
    assert all(e is not None for e in etas) and all(b <= a for a, b in itertools.pairwise(etas)), [
        (line[70:], e) for line, e in zip(lines, etas, strict=True)]
    for n in range(9, 17):  # what the gate holds settles at once
        bar.advance(of("blumira", n), "action.held")
    blumira = frame(bar)[2]
    assert blumira.startswith("  Blumira: 0. Notify Blumira first") and "8/17" in blumira, blumira
    assert blumira.endswith("9 held until a person confirms") and "ETA" not in blumira, blumira
    bar.finish()


def test_the_bars_elapsed_time_is_the_runs_and_never_starts_again_at_0() -> None:
    """Review at 120x40: after the re-read phase the bar read "23/64 0:00:00": the re-read's time lost."""
    now = [100.0]
    bar = RichProgress(Console(file=io.StringIO(), force_terminal=True, width=120, height=40, color_system=None),
                       clock=lambda: now[0])
    bar.phase("Resuming run r1: re-reading the vendors first (read-only)")
    bar.waiting(Wait("Huntress", 20.0, "rate_limit", "for the rate limit"))
    now[0] = 121.0
    bar.start(64, 23)
    bar.lanes({"Huntress": (64, 23)})
    every, huntress = frame(bar)
    assert re.search(r"23/64 +0:00:21 ", every) and re.search(r"23/64 +0:00:21 ", huntress), (every, huntress)
    now[0] = 125.0
    bar.advance(of("huntress", 24), "action.succeeded")
    assert re.search(r"24/64 +0:00:25 ", frame(bar)[0]), frame(bar)
    bar.finish()


def test_a_lanes_floor_is_when_its_vendors_window_lets_its_calls_through() -> None:
    """The rehearsal's Huntress lane: 27 of its 64 actions in the first window's burst, then a wait. Its
    calls left at a call a second said 48 s; it took 59 s more: the limit lets the next window's worth
    through only a window after the burst. The floor is that schedule: its 115 calls, two windows'
    worth, end no sooner than a minute after it began."""
    now = [0.0]
    bar = rehearsal_bar(now)
    assert bar.eta("Huntress") == pytest.approx(60.0)  # before any action
    now[0] = 1.0
    for n in range(27):
        bar.advance(of("huntress", n), "action.succeeded")
    assert bar.eta("Huntress") == pytest.approx(59.0)
    assert "27/64" in frame(bar)[1] and "ETA 0:00:59" in frame(bar)[1]
    bar.finish()


def test_a_lanes_pace_leaves_out_its_waits_for_a_limit_its_floor_counts() -> None:
    """After the rehearsal's second window the Huntress lane read "35/64 ETA 0:00:43" a second before it
    ended: its pace counted the minute its calls sat out the limit, which the floor counts already."""
    now = [0.0]
    bar = after_a_burst(now, 27)
    bar.waiting(Wait("Huntress", 59.0, "rate_limit", "for the rate limit"))
    now[0] = 60.5
    for n in range(27, 35):
        bar.advance(of("huntress", n), "action.succeeded")
    line = frame(bar)[1]
    assert "35/64" in line and "ETA 0:00:02" in line, line  # 29 left at 1.5 s of work for 35: the window is open
    bar.finish()


def test_ctrl_c_at_a_guided_prompt_leaves_the_line_for_the_bar_to_start_below(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Review at 120x40: a Ctrl-C at a guided prompt left "…(done): ^CAll vendors", the bar's last frame
    glued to the prompt's line."""
    from rich.prompt import Prompt

    from offboard.cli import render

    screen = io.StringIO()
    monkeypatch.setattr(render, "out", Console(file=screen, force_terminal=True, width=120, color_system=None))

    def ctrl_c(prompt: str, **_: object) -> str:
        render.out.file.write(f"{prompt} (done): ^C")
        raise KeyboardInterrupt

    monkeypatch.setattr(Prompt, "ask", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        render.RichGuide("J. Doe").ask(of("huntress", 1), None)
    assert screen.getvalue().endswith("(done): ^C\n"), repr(screen.getvalue()[-80:])
    # the prompt says who a "done" is recorded as (review10: it asked for a note, never a name)
    assert "confirmed by J. Doe (--by NAME to change)" in " ".join(screen.getvalue().split())


def test_a_wait_before_the_bar_counts_down_on_a_line_the_bar_then_takes() -> None:
    """Review11: a resume's first re-read waited 49 s for the window behind "Huntress: waiting 49s for the
    rate limit", a line said once, standing still for 46 s."""
    now = [0.0]
    screen = io.StringIO()
    bar = RichProgress(Console(file=screen, force_terminal=True, width=120, height=40, color_system=None),
                       clock=lambda: now[0])
    bar.phase("Resuming run R: re-reading the vendors first (read-only)")
    shown = counted_down(bar, now, screen, Wait("Huntress", 49.0, "rate_limit", "for the rate limit"), 30.0)
    assert "Huntress: waiting 49s for the rate limit" in shown and "Huntress: waiting 19s for the rate limit" in shown
    bar.start(10, 0)  # the bar takes the line's place
    assert bar._after is None
    bar.finish()


def test_the_runs_line_names_the_longest_wait_first() -> None:
    """Review11: "All vendors … Blumira: waiting 1s for the ra…" while Huntress's 58 s wait held the run."""
    now = [0.0]
    bar, _ = lanes_bar(now)
    bar.waiting(Wait("Blumira", 1.0, "rate_limit", "for the rate limit"))
    bar.waiting(Wait("Huntress", 58.0, "rate_limit", "for the rate limit"))
    assert bar.lane_text().startswith("Huntress: waiting 58s for the rate limit")
    bar.finish()


def test_the_last_frame_of_a_run_stopped_half_way_promises_no_eta() -> None:
    """Review10: after a Ctrl-C at a guided prompt the lanes' last frame still showed ETAs (and "ETA …")."""
    now = [0.0]
    bar, _ = lanes_bar(now)
    now[0] = 2.0
    bar.advance(of("huntress", 1), "action.succeeded")
    bar.waiting(Wait("Huntress", 30.0, "rate_limit", "for the rate limit"))
    bar.finish()  # the actions ended with 9 of 10 left: Ctrl-C, or a vendor down
    assert bar.lane_text() == "stopped, 9 left" and bar.lane_text("Huntress") == "stopped, 5 left"
    assert bar.eta() == 0.0 and bar.eta("Blumira") == 0.0  # drawn blank
    drawn = frame(bar)
    assert not any("ETA" in line for line in drawn) and any("stopped, 4 left" in line for line in drawn), drawn
