"""`batch apply`'s live table (issue 22): the board (batch/progress.py) folds each exit's engine
progress into a row, with each vendor lane's own step and count, a state that says when the
account's budget holds it back or which gate stopped it, and an ETA that counts the waits; the
renderer (cli/batch_live.py) fits it to the terminal: nothing wraps at 120 columns, and rows beyond
its height fold into one line with a count of each state."""

from __future__ import annotations

import io
import json
import threading
import types
from pathlib import Path

import pytest
from rich.console import Console

from offboard.batch import run as batches
from offboard.batch.planfile import BatchExit, Estimate, VendorLoad
from offboard.batch.progress import BUDGET, GATE, PERSON, QUEUED, RUNNING, Board, ExitProgress, Load, Planned
from offboard.cli import batch_live
from offboard.engine import Limit
from offboard.engine.scope_guard import calls_of
from offboard.plan import Action, Plan, Step, Target, VendorPlan
from offboard.rundir import RunDir
from offboard.wire.waits import Wait


def action(vendor: str, n: int) -> Action:
    return Action(id=f"{vendor}.s.{n}", vendor=vendor, step="s", kind="api", operation="remove",
                  target=Target(type="agent", id=str(n), name=f"PC{n}"), summary="remove", destructive=True)


def board(now: list[float], exits: int = 2, estimate: float = 10.0) -> Board:
    planned = [Planned(f"customer-{n}", f"Customer {n}", estimate, {"Blumira": 4, "Huntress": 6})
               for n in range(exits)]
    return Board(planned, clock=lambda: now[0])


def drawn(rows: object, width: int = 120, height: int = 40) -> list[str]:
    screen = io.StringIO()
    console = Console(file=screen, width=width, height=height, force_terminal=True, color_system=None)
    console.print(batch_live.table(rows, height))  # type: ignore[arg-type]
    return screen.getvalue().splitlines()


def test_each_lane_shows_its_own_step_and_a_wait_for_the_budget_counts_in_the_eta() -> None:
    now = [0.0]
    b = board(now)
    stop = threading.Event()
    p = b.progress("customer-0", stop, lambda _text: None)
    p.phase("Re-reading the vendors")
    p.start(10, 0)
    p.lanes({"Blumira": (4, 0), "Huntress": (6, 0)})
    p.step("Huntress", Step(id="a", vendor="huntress", title="3. Remove endpoint coverage (EDR agents)"), 6)
    p.step("Blumira", Step(id="b", vendor="blumira", title="2. Remove sensors"), 4)
    now[0] = 2.0
    p.advance(action("huntress", 1), "action.succeeded")
    row, queued = b.snapshot()
    assert row.state == RUNNING and queued.state == QUEUED and (row.done, row.total) == (1, 10)
    lanes = {lane.vendor: lane for lane in row.lanes}
    assert lanes["Huntress"].step.startswith("3. Remove endpoint") and lanes["Blumira"].step == "2. Remove sensors"
    assert (lanes["Huntress"].done, lanes["Blumira"].done) == (1, 0)
    assert row.eta == 18.0  # 2 s an action so far, 9 to go
    # A first window's burst looks fast: never less than its calls' share at the ceiling still ahead.
    slow = board(now, estimate=60.0)
    q = slow.progress("customer-0", stop, lambda _text: None)
    q.start(10, 0)
    q.advance(action("huntress", 1), "action.succeeded")
    assert slow.snapshot()[0].eta == 54.0
    p.waiting(Wait("Huntress", 48.0, "rate_limit", "for the rate limit"))
    row = b.snapshot()[0]
    assert row.state == BUDGET and row.eta == 48.0  # never less than the wait still ahead
    lines = drawn(b.snapshot())
    header = next(line for line in lines if "Customer" in line)
    blumira, huntress = header.index("Blumira"), header.index("Huntress")
    mine = next(line for line in lines if line.split()[:1] == ["customer-0"])
    assert "2. Remove sensors" in mine[blumira:huntress] and "waiting 48s" in mine[huntress:]
    assert "running, waiting 48s for the rate limit" in mine and "0:00:48" in mine  # what it does, counting down
    assert "waiting for the account" in lines[0]  # the title counts the rows held by the budget
    assert all(len(line) <= 120 for line in lines)


def test_a_wait_from_another_exits_thread_is_not_this_exits() -> None:
    now = [0.0]
    b = board(now)
    stop = threading.Event()
    mine = b.progress("customer-0", stop, lambda _text: None)
    mine.start(10, 0)
    mine.lanes({"Blumira": (4, 0), "Huntress": (6, 0)})
    heard: list[None] = []

    def other() -> None:  # another exit's worker: its waits reach every listener of the process
        theirs = b.progress("customer-1", stop, lambda _text: None)
        theirs.start(10, 0)
        mine.waiting(Wait("Huntress", 30.0, "rate_limit", "for the rate limit"))
        heard.append(None)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert heard and b.snapshot()[0].state == RUNNING


def test_the_end_of_each_exit_names_its_gates_and_rows_beyond_the_height_fold_with_a_count() -> None:
    now = [0.0]
    b = board(now, exits=40)
    b.ended("customer-0", 4, "huntress open incident, huntress isolated host")
    for n in range(1, 31):
        b.ended(f"customer-{n}", 0, "")
    for n in range(31, 38):
        b.ended(f"customer-{n}", 3, "14 manual item(s)")
    rows = b.snapshot()
    assert rows[0].state == GATE and rows[31].state == PERSON
    lines = drawn(rows, height=20)
    assert len(lines) <= 20
    assert any("stopped by gate huntress open inc" in line for line in lines)
    fold = next(line for line in lines if "more:" in line)
    shown = [line for line in lines if line.split()[:1] and line.split()[0].startswith("customer-")]
    # the one that stopped short and those still to do stay, in the batch's order; done ones fold
    names = [line.split()[0] for line in shown]
    assert {"customer-0", *(f"customer-{n}" for n in range(31, 40))} <= set(names)
    assert names == sorted(names, key=lambda name: int(name.split("-")[1]))
    assert fold.strip() == f"… and {40 - len(shown)} more: {40 - len(shown)} done"


def row_of(lines: list[str], slug: str = "customer-0") -> str:
    return next(line for line in lines if line.split()[:1] == [slug])


def cell(lines: list[str], row: str, column: str, after: str) -> str:
    header = next(line for line in lines if "Customer" in line)
    return row[header.index(column):header.index(after)]


def test_a_lane_held_behind_its_gate_shows_the_gates_step_and_counts_only_what_is_done() -> None:
    """Issue 22: the Blumira lane, its removals held behind "notify Blumira first" (a person's item),
    showed "17/17" and an empty step."""
    now = [0.0]
    b = board(now)
    p = b.progress("customer-0", threading.Event(), lambda _text: None)
    p.start(10, 0)
    p.lanes({"Blumira": (4, 0), "Huntress": (6, 0)})
    p.step("Blumira", Step(id="n", vendor="blumira", title="0. Notify Blumira first"), 4)
    p.step("Huntress", Step(id="a", vendor="huntress", title="3. Remove endpoint coverage"), 6)
    now[0] = 2.0
    p.advance(action("blumira", 1), "action.succeeded")  # its evidence
    p.advance(action("blumira", 2), "manual.pending")  # the gate, handed to a person
    p.advance(action("blumira", 3), "action.held")
    p.advance(action("blumira", 4), "action.held")
    p.advance(action("huntress", 1), "action.succeeded")
    lines = drawn(b.snapshot())
    mine = row_of(lines)
    assert cell(lines, mine, "Blumira", "Huntress").strip().startswith("1/4 0. Notify Blumira")
    assert "2/10" in mine and "running, 3 held until a person confirms" in mine, mine
    # The ETA is the run's own work, not the person's: its slowest lane's (as single apply's), Huntress's
    # 5 left at 2 s each; Blumira has nothing left to run.
    assert b.snapshot()[0].eta == 10.0
    assert all(len(line) <= 120 for line in lines)
    b.ended("customer-0", 3, "1 manual item(s)")
    assert "1/4" in row_of(drawn(b.snapshot()))


def test_a_row_whose_exit_waits_says_what_it_does_and_counts_down() -> None:
    """Issue 22: a row sat ~28 s unchanged, "running", while its exit's re-reads waited."""
    now = [0.0]
    b = board(now)
    p = b.progress("customer-0", threading.Event(), lambda _text: None)
    p.phase("Re-reading the vendors to check the plan still holds (read-only)")
    p.waiting(Wait("Huntress", 28.0, "rate_limit", "for the rate limit"))
    assert "re-reading, waiting 28s for the rate limit" in row_of(drawn(b.snapshot()))
    now[0] = 10.0
    assert "re-reading, waiting 18s for the rate limit" in row_of(drawn(b.snapshot()))
    now[0] = 30.0
    p.start(10, 0)
    p.lanes({"Blumira": (4, 0), "Huntress": (6, 0)})
    p.step("Huntress", Step(id="a", vendor="huntress", title="3. Remove endpoint coverage"), 6)
    p.step("Blumira", Step(id="b", vendor="blumira", title="2. Remove sensors"), 4)
    for n in range(10):
        p.advance(action("huntress" if n < 6 else "blumira", n), "action.succeeded")
    p.phase("Verifying: re-reading each vendor to prove the service stopped")
    # no estimate of its re-reads (their calls at the ceilings are not known here): said, not "…" nor 0:00:00
    assert row_of(drawn(b.snapshot())).split()[-2:] == ["verifying", "verifying"]
    p.waiting(Wait("Huntress", 12.0, "retry", "before retrying"))
    now[0] = 35.0
    mine = row_of(drawn(b.snapshot()))
    assert "verifying, waiting 7s before retrying" in mine and mine.rstrip().endswith("0:00:07"), mine


def test_a_resumed_exit_starts_at_what_its_log_holds_done() -> None:
    """Issue 22: `batch apply --resume` started every row at 0/N while it re-read its vendors."""
    now = [0.0]
    b = board(now)
    b.resumed("customer-0", {"Blumira": 1, "Huntress": 6})
    b.progress("customer-0", threading.Event(), lambda _text: None).phase("Resuming run r1: re-reading")
    lines = drawn(b.snapshot())
    mine = row_of(lines)
    assert cell(lines, mine, "Blumira", "Huntress").strip() == "1/4"
    assert cell(lines, mine, "Huntress", "Done").strip() == "6/6" and "7/10" in mine


def test_a_rows_eta_counts_down_while_its_exit_waits() -> None:
    """The batch plan's estimate is the ETA's floor after a first burst; while a wait passes it
    counts down with it, rather than standing still beside "waiting 23s"."""
    now = [0.0]
    b = board(now, estimate=100.0)
    p = b.progress("customer-0", threading.Event(), lambda _text: None)
    p.start(10, 0)
    p.lanes({"Blumira": (4, 0), "Huntress": (6, 0)})
    p.step("Huntress", Step(id="a", vendor="huntress", title="3. Remove endpoint coverage"), 6)
    now[0] = 1.0
    p.advance(action("huntress", 1), "action.succeeded")
    p.waiting(Wait("Huntress", 30.0, "rate_limit", "for the rate limit"))
    assert b.snapshot()[0].eta == 90.0  # 9 of its 10 calls at the ceiling still ahead
    now[0] = 21.0
    assert b.snapshot()[0].eta == 70.0


def test_an_exit_reading_before_it_starts_counts_its_wait_down_in_its_eta() -> None:
    """Review at 120x40: on --resume a row said "re-reading, waiting 31s for the rate limit" beside an ETA
    that stood still at the plan's estimate."""
    now = [0.0]
    b = board(now, estimate=100.0)
    p = b.progress("customer-0", threading.Event(), lambda _text: None)
    p.phase("Resuming run r1: re-reading the vendors first")
    p.waiting(Wait("Huntress", 31.0, "rate_limit", "for the rate limit"))
    assert b.snapshot()[0].eta == 131.0  # the wait, then its share of the accounts' time
    now[0] = 10.0
    assert b.snapshot()[0].eta == 121.0


def run_through(b: Board, now: list[float], slug: str = "customer-0") -> None:
    p = b.progress(slug, threading.Event(), lambda _text: None)
    p.phase("Re-reading the vendors to check the plan still holds (read-only)")
    p.start(10, 0)
    p.lanes({"Blumira": (4, 0), "Huntress": (6, 0)})
    for n in range(10):
        now[0] += 1.0
        p.advance(action("huntress" if n < 6 else "blumira", n), "action.succeeded")
    p.phase("Verifying: re-reading each vendor to prove the service stopped")


def test_an_exit_that_verifies_shows_its_re_reads_at_the_ceilings_counting_down_never_a_bare_ellipsis() -> None:
    """Review at 120x40: `batch apply`'s ETA column showed "…" while an exit verified with no wait."""
    now = [0.0]
    b = Board([Planned("customer-0", "Customer 0", 60.0, {"Blumira": 4, "Huntress": 6}, verify=6.0)],
              clock=lambda: now[0])
    run_through(b, now)
    seen = []
    for _ in range(8):
        lines = drawn(b.snapshot())
        assert all(len(line) <= 120 for line in lines)
        seen.append(row_of(lines).split()[-1])
        now[0] += 1.0
    assert seen == ["0:00:06", "0:00:05", "0:00:04", "0:00:03", "0:00:02", "0:00:01", "verifying", "verifying"], seen


def test_a_resumed_exits_eta_is_of_what_its_log_has_not_done_not_the_plans_whole_estimate() -> None:
    """Review at 120x40: a resumed batch opened at ETA 1:50 for a resume that took 4 s: the actions
    its log held done were counted as ahead."""
    now = [0.0]
    b = board(now, estimate=110.0)
    b.resumed("customer-0", {"Blumira": 1, "Huntress": 6}, estimate=4.0)
    p = b.progress("customer-0", threading.Event(), lambda _text: None)
    p.phase("Resuming run r1: re-reading the vendors first (read-only)")
    assert row_of(drawn(b.snapshot())).split()[-1] == "0:00:04"
    p.start(10, 7)
    p.lanes({"Blumira": (4, 1), "Huntress": (6, 6)})
    now[0] = 1.0
    p.advance(action("blumira", 2), "action.succeeded")
    assert b.snapshot()[0].eta == pytest.approx(4.0 * 2 / 3)  # 2 of its 3 left, of the 4 s: not of 110 s


def test_a_resumed_exits_estimate_counts_the_calls_its_log_has_not_made(tmp_path: Path) -> None:
    """The estimate a resumed row starts from (batch/run.py): its discovery (the re-plan and the
    verification) and the calls of what its log has not done; what waits for a person costs none,
    and a removal behind a gate still open is not run."""
    removal = [action("huntress", n) for n in (1, 2)]
    export = Action(id="huntress.e.1", vendor="huntress", step="s", kind="api", operation="export",
                    target=Target(type="report", id="e", name="report"), summary="export", destructive=False)
    item = Action(id="huntress.m.1", vendor="huntress", step="s", kind="manual", operation="m",
                  target=Target(type="item", id="m", name="item"), summary="a person's")
    actions = (*removal, export, item)
    plan = Plan(plan_id="p", created_at="2026-12-05T00:00:00Z", customer="Acme", config_fingerprint="f",
                vendors=(VendorPlan(vendor="huntress", display_name="Huntress", scope="org", account="k",
                                    inventory_fingerprint="i", steps=(Step(id="s", vendor="huntress", title="S",
                                                                           actions=actions),)),))
    discovery = 5  # calls of one discovery
    load = VendorLoad(vendor="huntress", account="k", limit=60, window_seconds=60.0,
                      calls=2 * discovery + calls_of(actions))  # as the batch plan estimates it
    e = BatchExit(slug="acme", customer="Acme", config="acme.toml", plan=plan,
                  estimate=Estimate(removals=2, exports=1, manual=1, gates=0, loads=(load,)))
    assert e.estimate.seconds_of_ceiling == 15.0  # 2 x 5 discovery, 2 x 2 removals, 1 export: 1 s a call
    run = RunDir(tmp_path, "r1")
    run.path.mkdir()
    run.audit_path.write_text("".join(json.dumps({"event": event, "action_id": aid}) + "\n" for aid, event in (
        (removal[0].id, "action.succeeded"), (export.id, "action.succeeded"), (item.id, "manual.pending"))))
    # its re-plan's discovery, and the one removal left (its read, its write); its verification counts down
    # on its own once it verifies
    assert batches._seconds_of(batches._left_of(e, run)) == 7.0
    gate = item.model_copy(update={"gate": True})  # the person's item holds the vendor's changes
    step = Step(id="s", vendor="huntress", title="S", actions=(*removal, export, gate))
    held = e.model_copy(update={"plan": plan.model_copy(update={"vendors": (
        plan.vendors[0].model_copy(update={"steps": (step,)}),)})})
    # its gate still open: the removal left waits, no call
    assert batches._seconds_of(batches._left_of(held, run)) == 5.0
    board = batches.board_of(types.SimpleNamespace(exits=[e]))  # type: ignore[arg-type]
    row = board.snapshot()[0]
    assert row.eta is None and board._exits["acme"].verify == 5.0  # one discovery's calls: its re-reads


HUNTRESS = "huntress https://api.huntress.io"  # one account, its limit shared by every exit of the batch


def shared_board(now: list[float], sizes: dict[str, int]) -> Board:
    """Exits whose Huntress lanes share one account at 60 calls a minute (a removal: two calls, 2 s)."""
    return Board([Planned(slug, slug, 2.0 * n, {"Huntress": n},
                          loads={"Huntress": Load(HUNTRESS, 2 * n, 60, 60.0)}) for slug, n in sizes.items()],
                 clock=lambda: now[0])


def running(b: Board, slug: str, n: int, now: list[float]) -> ExitProgress:
    p = b.progress(slug, threading.Event(), lambda _text: None)
    p.phase("Re-reading the vendors to check the plan still holds (read-only)")
    p.ceilings({"Huntress": Limit(60.0, {action("huntress", k).id: 2.0 for k in range(n)})})
    p.start(n, 0)
    p.lanes({"Huntress": (n, 0)})
    p.step("Huntress", Step(id="a", vendor="huntress", title="3. Remove endpoint coverage"), n)
    return p


def eta_of(b: Board, slug: str) -> str:
    return row_of(drawn(b.snapshot()), slug).split()[-1]


def test_a_rows_eta_is_never_below_its_share_of_the_account_and_counts_down_through_a_wait() -> None:
    """Review at 120x40 (issue 22): acme-dental read 0:00:02 with 25 removals left, then 0:00:29 as a wait
    began; customer-2 0:00:00 then 0:02:53: each row's floor was its own calls only, the first window's
    burst making the pace look fast, though the other exits' calls on the account go first or in between."""
    now = [0.0]
    b = shared_board(now, {"acme-dental": 20, "customer-2": 10})
    other = running(b, "customer-2", 10, now)
    acme = running(b, "acme-dental", 20, now)  # this thread works for acme-dental: the waits heard are its
    for k in range(5):  # the first window's burst: five removals in five seconds
        now[0] += 1.0
        acme.advance(action("huntress", k), "action.succeeded")
    # 15 removals left (30 s of calls at the limit) and customer-2's 10 (20 s) that interleave with them
    assert eta_of(b, "acme-dental") == "0:00:50"
    assert eta_of(b, "customer-2") == "0:00:40"  # its 20 s, and as many of acme-dental's
    seen = []
    for _ in range(3):  # counting down as the account serves the calls, at most a removal's worth between two
        now[0] += 1.0
        seen.append(eta_of(b, "acme-dental"))
    assert seen == ["0:00:49", "0:00:48", "0:00:48"], seen
    acme.waiting(Wait("Huntress", 29.0, "rate_limit", "for the rate limit"))
    mine = row_of(drawn(b.snapshot()), "acme-dental")
    # the wait is inside it (not added, not standing still beside it): the window's calls it earns
    assert "waiting 29s for the rate limit" in mine and mine.split()[-1] == "0:00:47", mine
    seen = []
    for _ in range(3):
        now[0] += 1.0
        seen.append(eta_of(b, "acme-dental"))
    assert seen == ["0:00:46", "0:00:45", "0:00:44"], seen
    now[0] += 28.0  # the wait ended: the window lets through customer-2's removal, then acme-dental's 14
    other.advance(action("huntress", 0), "action.succeeded")
    assert eta_of(b, "acme-dental") == "0:00:48"  # 28 s of its calls and 18 of customer-2's, at the limit
    assert all(len(line) <= 120 for line in drawn(b.snapshot()))


def test_a_resumed_batch_opens_at_its_share_of_the_accounts_with_the_first_windows_burst() -> None:
    """Review at 120x40: after `batch confirm`, exits whose resume took ~3 s opened at "re-reading 0:00:17":
    each exit's re-reads and verification (16 Huntress calls) counted at the limit's pace, though a quiet
    account lets a window's worth (60) through at once; and an exit sharing the account with a bigger one
    opened below its share: the other exits' calls were not counted."""
    now = [0.0]
    b = shared_board(now, {"acme-dental": 40, "customer-2": 15, "customer-3": 15})
    for slug in ("customer-2", "customer-3"):  # their Huntress lanes done: re-reads and a verification left
        b.resumed(slug, {"Huntress": 15}, estimate=16.0, loads={"Huntress": Load(HUNTRESS, 16, 60, 60.0)})
        b.progress(slug, threading.Event(), lambda _text: None).phase("Resuming run r1: re-reading (read-only)")
    assert eta_of(b, "customer-2") == eta_of(b, "customer-3") == "0:00:01"  # 32 calls: one window's burst
    # acme-dental: 50 removals' calls and its re-reads (100 calls); the others' 32 go in between
    b.resumed("acme-dental", {"Huntress": 0}, estimate=100.0, loads={"Huntress": Load(HUNTRESS, 100, 60, 60.0)})
    b.progress("acme-dental", threading.Event(), lambda _text: None).phase("Resuming run r2: re-reading")
    assert eta_of(b, "acme-dental") == "0:02:00"  # 132 calls: the first 60 at once, then a window each 60
    assert eta_of(b, "customer-2") == "0:00:01"  # its 16 and as many of each other's: 48, one window's worth
    # Ctrl-C, then --resume: the account's window still full. The wait is inside the calls' time at the
    # limit (the window's calls come back as it passes), not added on top: it read 0:00:54, then 0:01:41.
    for slug in ("customer-2", "customer-3"):
        b.ended(slug, 0, "")
    b._claim("acme-dental")
    acme = ExitProgress(b, "acme-dental", threading.Event(), lambda _text: None)
    acme.waiting(Wait("Huntress", 42.0, "rate_limit", "for the rate limit"))
    mine = row_of(drawn(b.snapshot()), "acme-dental")
    assert "re-reading, waiting 42s for the rate limit" in mine and mine.split()[-1] == "0:01:40", mine
    now[0] += 10.0
    assert eta_of(b, "acme-dental") == "0:01:30"  # counting down with the wait, not standing beside it
    now[0] += 132.0  # the window has room again; a read fails and backs off: that earns no call, added
    acme.waiting(Wait("Huntress", 5.0, "retry", "before retrying (HTTP 503)"))
    assert eta_of(b, "acme-dental") == "0:01:05"  # 5 s, then 100 calls: the first 60 at once, the rest 60 s on


def test_a_lane_held_behind_its_gate_stays_on_the_gates_step_once_its_exports_ran() -> None:
    """Review at 120x40: a Blumira lane held behind "notify Blumira first" showed "8/17 1. Export retai…": its
    exports (not held: nothing is removed) ran after the gate was handed to a person, and their step stayed."""
    now = [0.0]
    b = board(now)
    p = b.progress("customer-0", threading.Event(), lambda _text: None)
    p.start(10, 0)
    p.lanes({"Blumira": (4, 0), "Huntress": (6, 0)})
    p.step("Huntress", Step(id="a", vendor="huntress", title="3. Remove endpoint coverage"), 6)
    p.step("Blumira", Step(id="n", vendor="blumira", title="0. Notify Blumira first"), 1)
    p.advance(action("blumira", 1), "manual.pending")  # the gate, handed to a person
    p.held("Blumira", [action("blumira", 3).id, action("blumira", 4).id])
    p.step("Blumira", Step(id="x", vendor="blumira", title="1. Export retained logs"), 1)
    lines = drawn(b.snapshot())
    assert cell(lines, row_of(lines), "Blumira", "Huntress").strip().startswith("0/4 1. Export retai")  # at work
    now[0] = 1.0
    p.advance(action("blumira", 2), "action.succeeded")  # the export: all that is left waits for a person
    p.advance(action("blumira", 3), "action.held")
    lines = drawn(b.snapshot())
    assert cell(lines, row_of(lines), "Blumira", "Huntress").strip().startswith("1/4 0. Notify Blumi")
    assert "running, 2 held until a person confirms" in row_of(lines)


def test_a_resumed_exits_opening_takes_only_its_own_vendors_full_window_as_full() -> None:
    """Rehearsal at 120x40: after `batch confirm` every exit opened at 0:00:24 and was done in 3 s: a Blumira
    pacing wait (a tenth of a second) was taken for Huntress's window full, its 24 calls counted at its limit."""
    now = [0.0]
    b = Board([Planned(slug, slug, 8.0, {"Blumira": 15, "Huntress": 30},
                       loads={"Huntress": Load(HUNTRESS, 8, 60, 60.0), "Blumira": Load("blumira", 8, 10, 1.0)})
               for slug in ("acme-dental", "customer-2", "customer-3")], clock=lambda: now[0])
    for slug in ("acme-dental", "customer-2", "customer-3"):
        b.progress(slug, threading.Event(), lambda _text: None).phase("Resuming run r1: re-reading (read-only)")
    p = ExitProgress(b, "customer-3", threading.Event(), lambda _text: None)
    p.waiting(Wait("Blumira", 0.1, "rate_limit", "for the rate limit"))
    # Huntress: 24 calls, within one window's burst; Blumira: 24 calls, 10 a second
    assert [eta_of(b, slug) for slug in ("acme-dental", "customer-2", "customer-3")] == ["0:00:02"] * 3
