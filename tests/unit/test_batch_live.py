"""`batch apply`'s live table (issue 22): the board (batch/progress.py) folds each exit's engine
progress into a row, with each vendor lane's own step and count, a state that says when the
account's budget holds it back or which gate stopped it, and an ETA that counts the waits; the
renderer (cli/batch_live.py) fits it to the terminal: nothing wraps at 120 columns, and rows beyond
its height fold into one line with a count of each state."""

from __future__ import annotations

import dataclasses
import io
import json
import threading
import types
from pathlib import Path

import pytest
from rich.console import Console

from offboard import engine
from offboard.batch import run as batches
from offboard.batch.planfile import BatchExit, Estimate, VendorLoad
from offboard.batch.progress import BUDGET, GATE, PERSON, QUEUED, RUNNING, Board, ExitProgress, Load, Planned
from offboard.cli import batch_live
from offboard.engine import Limit
from offboard.engine.scope_guard import calls_of
from offboard.plan import Action, Finding, Plan, Step, Target, VendorPlan
from offboard.rundir import RunDir
from offboard.wire import waits
from offboard.wire.ratelimit import SlidingWindowLimiter
from offboard.wire.waits import Sent, Wait


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


def at_the_gate(b: Board) -> ExitProgress:
    """customer-0 at work: its Huntress lane removing agents, its Blumira lane on "notify Blumira first"."""
    p = b.progress("customer-0", threading.Event(), lambda _text: None)
    p.start(10, 0)
    p.lanes({"Blumira": (4, 0), "Huntress": (6, 0)})
    p.step("Huntress", Step(id="a", vendor="huntress", title="3. Remove endpoint coverage"), 6)
    p.step("Blumira", Step(id="n", vendor="blumira", title="0. Notify Blumira first"), 4)
    return p


def test_a_lane_held_behind_its_gate_shows_the_gates_step_and_counts_only_what_is_done() -> None:
    """Issue 22: the Blumira lane, its removals held behind "notify Blumira first" (a person's item),
    showed "17/17" and an empty step."""
    now = [0.0]
    b = board(now)
    p = at_the_gate(b)
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
    # its re-plan's discovery and its verification's, and the one removal left (its read, its write)
    assert batches._seconds_of(batches._left_of(e, run)) == 12.0
    gate = item.model_copy(update={"gate": True})  # the person's item holds the vendor's changes
    step = Step(id="s", vendor="huntress", title="S", actions=(*removal, export, gate))
    held = e.model_copy(update={"plan": plan.model_copy(update={"vendors": (
        plan.vendors[0].model_copy(update={"steps": (step,)}),)})})
    # its gate still open: the removal left waits, no call
    assert batches._seconds_of(batches._left_of(held, run)) == 10.0
    board = batches.board_of(types.SimpleNamespace(exits=[e]))  # type: ignore[arg-type]
    assert board.snapshot()[0].eta is None  # queued: no ETA shown
    # the whole plan's calls there, of which one discovery's are its verification's
    assert board._exits["acme"].loads["Huntress"] == Load("k", load.calls, 60, 60.0, discovery)


HUNTRESS = "huntress https://api.huntress.io"  # one account, its limit shared by every exit of the batch


def eta_of(b: Board, slug: str) -> str:
    return row_of(drawn(b.snapshot()), slug).split()[-1]


@dataclasses.dataclass
class Sampled:
    """What a simulated batch showed: each active row's ETA before each call, and when each exit's last
    call went."""

    etas: dict[str, list[tuple[float, float | None, str]]]  # slug -> (when, its ETA, the cell as drawn)
    ended: dict[str, float]
    calls: list[tuple[float, str]]  # (when, whose)


def simulate(sizes: dict[str, int], *, parallel: int = 8, discovery: int = 3, limit: int = 60,
             window: float = 60.0, done: dict[str, int] | None = None) -> Sampled:
    """A batch on one account, run as `batch apply` runs it, on a clock of its own: each exit re-reads its
    vendor (``discovery`` calls), removes its agents (a read and a write each, after ``done`` of them were
    done before: a resume), and verifies (``discovery`` calls again); the account serves the exits at work
    a call of each in turn, through the real limiter (its waits advance the clock); ``parallel`` at work
    at once, the smallest first, a queued one starting as one ends."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = SlidingWindowLimiter(limit, window, margin=0.0, clock=lambda: now[0], sleep=sleep)
    done = done or {}
    b = Board([Planned(slug, slug, 0.0, {"Huntress": n},
                       loads={"Huntress": Load(HUNTRESS, 2 * discovery + 2 * (n - done.get(slug, 0)), limit, window,
                                               discovery)})
               for slug, n in sizes.items()], clock=lambda: now[0], parallel=parallel)
    order = sorted(sizes, key=lambda slug: (sizes[slug] - done.get(slug, 0), slug))
    b.queue(order)
    for slug, n in done.items():
        b.resumed(slug, {"Huntress": n})
    ident = {slug: 10_000 + k for k, slug in enumerate(sizes)}  # each exit's worker, as its calls are told apart
    script: dict[str, list[str]] = {}  # each exit's calls, in order: what happens after each
    for slug, n in sizes.items():
        removals = [f"{k}" for k in range(done.get(slug, 0), n) for _ in range(2)]
        script[slug] = ["read"] * (discovery - 1) + ["start", *removals, *["verify"] * discovery]
    progress: dict[str, ExitProgress] = {}
    out = Sampled({slug: [] for slug in sizes}, {}, [])
    queue, active = list(order), []

    def sample() -> None:
        lines = drawn(b.snapshot())
        for row in b.snapshot():
            if row.active:
                out.etas[row.slug].append((now[0], row.eta, row_of(lines, row.slug).split()[-1]))

    while queue or active:
        while queue and len(active) < parallel:
            slug = queue.pop(0)
            with waits.working_for(ident[slug]):
                progress[slug] = b.progress(slug, threading.Event(), lambda _text: None)
                progress[slug].phase("Re-reading the vendors to check the plan still holds (read-only)")
            active.append(slug)
        for slug in list(active):
            p, what = progress[slug], script[slug].pop(0)
            sample()
            with waits.working_for(ident[slug]):
                token = limiter.acquire(on_wait=lambda s, _said, p=p: p.waiting(  # type: ignore[misc]
                    Wait("Huntress", s, "rate_limit", "for the rate limit")))
                p.sent(Sent("Huntress", limiter.outlook))
                limiter.completed(token)
                out.calls.append((now[0], slug))
                n = sizes[slug]
                if what == "start":
                    left = range(done.get(slug, 0), n)
                    p.ceilings({"Huntress": Limit(window, {action("huntress", k).id: 2 * window / limit
                                                           for k in left})})
                    p.start(n, done.get(slug, 0))
                    p.lanes({"Huntress": (n, done.get(slug, 0))})
                    p.step("Huntress", Step(id="a", vendor="huntress", title="3. Remove endpoint coverage"), len(left))
                elif what != "read" and what != "verify" and script[slug][:1] != [what]:  # a removal's write
                    p.advance(action("huntress", int(what)), "action.succeeded")
                    if int(what) == n - 1:
                        p.phase("Verifying: re-reading each vendor to prove the service stopped")
            if not script[slug]:
                out.ended[slug] = now[0]
                b.ended(slug, 0, "")
                active.remove(slug)
    return out


def assert_honest(run: Sampled) -> None:
    """Each row's ETA, every time the screen was drawn while its exit worked: never below the time its exit
    really still took (it fell to 0:00:01 with work left), never revised up (it rose as a wait began, and
    as another exit began), and on the screen always a time or "verifying", never a bare "…"."""
    for slug, seen in run.etas.items():
        assert seen, slug
        previous: tuple[float, float] | None = None
        for when, eta, drawn_eta in seen:
            assert drawn_eta != "…", (slug, when)
            if eta is None:
                assert drawn_eta == "verifying"
                continue
            assert eta >= run.ended[slug] - when - 1.0, (slug, when, eta, run.ended[slug])
            if previous is not None:
                assert eta <= previous[1] - (when - previous[0]) + 1.0, (slug, when, eta, previous)
            previous = (when, eta)


def test_a_rows_eta_is_when_the_accounts_window_lets_its_last_call_go() -> None:
    """Review at 120x40 (issue 22): a row's ETA rose as a wait began (0:01:05 -> 0:01:24 beside "waiting
    2s"), fell to 0:00:01 with work left, and rose as an exit began (0:02:00 -> 0:02:37): it modelled the
    account's window beside it. Now it reads the window: three exits, 40, 25 and 10 agents, two at a time
    on one account at 60 calls a minute."""
    run = simulate({"acme-dental": 40, "customer-2": 25, "customer-3": 10}, parallel=2)
    assert_honest(run)
    assert run.ended["customer-3"] < run.ended["customer-2"] < run.ended["acme-dental"]  # the smallest first
    # acme-dental queued behind the two smaller ones, then served a call of each in turn: its first ETA
    # already counted both (the 168 calls of the three: two windows after the first burst)
    (when, first, _), *_ = run.etas["acme-dental"]
    assert when == 0.0 and first == 120.0 and run.ended["acme-dental"] == 120.0


def test_a_rows_eta_holds_through_the_windows_waits_and_a_resume() -> None:
    """Many exits, smaller windows: every row waits for the window many times; two resume with most of their
    removals done (their rows count only what their logs have not done)."""
    sizes = {f"customer-{k}": 3 + 7 * k for k in range(12)}
    run = simulate(sizes, parallel=5, discovery=4, limit=10, window=6.0, done={"customer-5": 30, "customer-9": 10})
    assert_honest(run)
    assert max(run.ended.values()) > 30 * 6.0  # many windows: the waits were many
    # the ETA at its start says when its last call goes, to the window (10 calls a window)
    for slug, seen in run.etas.items():
        when, eta, _ = next(s for s in seen if s[1] is not None)
        assert eta - (run.ended[slug] - when) <= 6.0 + 1.0, (slug, eta, run.ended[slug] - when)


def test_an_exit_that_verifies_counts_its_re_reads_down_then_says_verifying() -> None:
    """Review at 120x40: the ETA column showed "…" while an exit verified with no wait. Its verification's
    re-reads are calls at its account like any other: when the window lets the last one go, then
    "verifying" until they return."""
    run = simulate({"customer-0": 25}, discovery=8, limit=10, window=5.0)
    assert_honest(run)
    verifying = [drawn for when, _eta, drawn in run.etas["customer-0"] if when >= run.ended["customer-0"] - 5.0]
    assert verifying[0] != "verifying" and verifying[-1] in ("0:00:01", "verifying"), verifying


def call(p: ExitProgress, limiter: SlidingWindowLimiter, now: list[float], takes: float) -> None:
    limiter.acquire()
    p.sent(Sent("Huntress", limiter.outlook))
    now[0] += takes


def running(b: Board, slug: str, n: int, now: list[float], limiter: SlidingWindowLimiter, reads: int) -> ExitProgress:
    """An exit of ``n`` removals at work: its re-reads made (``reads`` calls, 32/60 s each), its lane begun."""
    p = b.progress(slug, threading.Event(), lambda _text: None)
    p.phase("Re-reading the vendors to check the plan still holds (read-only)")
    for _ in range(reads):
        call(p, limiter, now, 32.0 / 60)
    p.ceilings({"Huntress": Limit(60.0, {action("huntress", k).id: 2.0 for k in range(n)})})
    p.start(n, 0)
    p.lanes({"Huntress": (n, 0)})
    p.step("Huntress", Step(id="a", vendor="huntress", title="3. Remove endpoint coverage"), n)
    return p


def test_a_wait_for_the_window_shows_inside_the_eta_not_added_on_top() -> None:
    """The same window, read at a wait: "waiting 28s" beside an ETA that still says when the last call
    goes (the wait is the window's, already in it)."""
    now = [0.0]
    limiter = SlidingWindowLimiter(60, 60.0, margin=0.0, clock=lambda: now[0], sleep=lambda s: None)
    b = Board([Planned("acme-dental", "Acme", 0.0, {"Huntress": 50},
                       loads={"Huntress": Load(HUNTRESS, 106, 60, 60.0, 3)})], clock=lambda: now[0])
    p = running(b, "acme-dental", 50, now, limiter, reads=3)
    for k in range(57):  # the rest of the first burst: 28 removals and the next one's read, in 32 s all told
        call(p, limiter, now, 32.0 / 60)
        if k % 2:
            p.advance(action("huntress", k // 2), "action.succeeded")
    # 46 calls left: the window frees its first slot 60 s after the first call, the 46th 60 s after the 46th
    assert eta_of(b, "acme-dental") == "0:00:52"
    p.waiting(Wait("Huntress", 28.0, "rate_limit", "for the rate limit"))
    mine = row_of(drawn(b.snapshot()), "acme-dental")
    assert "waiting 28s for the rate limit" in mine and mine.split()[-1] == "0:00:52", mine
    now[0] += 10.0
    assert eta_of(b, "acme-dental") == "0:00:42"  # counting down with the wait
    p.waiting(Wait("Huntress", 5.0, "retry", "before retrying (HTTP 503)"))
    assert eta_of(b, "acme-dental") == "0:00:47"  # a retry's backoff earns no call: added


def test_another_clients_calls_and_a_smaller_share_lengthen_the_eta() -> None:
    """The window as the vendor counts it: another tool's calls on the account (its calls-left header) and
    offboard's share of the limit cut after a 429 both push the last call out."""
    now = [0.0]
    limiter = SlidingWindowLimiter(60, 60.0, margin=0.0, clock=lambda: now[0], sleep=lambda s: None)
    assert limiter.outlook().seconds_until(60) == 0.0 and limiter.outlook().seconds_until(61) == 60.0
    limiter.observe_remaining(30)  # 30 calls by someone else, just now
    assert limiter.outlook().seconds_until(30) == 0.0 and limiter.outlook().seconds_until(31) == 60.0
    limiter.rate_limited()  # a 429: offboard's share cut (0.7 of what was left)
    share = limiter.current_share()
    assert share < 0.5
    ours = int(share * 60 + 1e-9)
    assert limiter.outlook().seconds_until(ours) == 0.0 and limiter.outlook().seconds_until(ours + 1) == 60.0
    limiter.block_for(20.0)  # the vendor said to wait
    assert limiter.outlook().seconds_until(1) == 20.0


def test_a_lane_held_behind_its_gate_stays_on_the_gates_step_once_its_exports_ran() -> None:
    """Review at 120x40: a Blumira lane held behind "notify Blumira first" showed "8/17 1. Export retai…": its
    exports (not held: nothing is removed) ran after the gate was handed to a person, and their step stayed."""
    now = [0.0]
    b = board(now)
    p = at_the_gate(b)
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


def test_a_log_says_each_exits_long_waits_never_the_limiters_pacing() -> None:
    """Review at 120x40: `batch apply` into a log printed nothing for a minute while its exits waited for the
    account's window (a line per step only): read as a hang."""
    now = [0.0]
    b = board(now)
    said: list[str] = []
    p = b.progress("customer-0", threading.Event(), said.append)
    p.waiting(Wait("Huntress", 0.4, "rate_limit", "for the rate limit"))  # pacing: not said
    p.waiting(Wait("Huntress", 48.0, "rate_limit", "for the rate limit"))
    now[0] = 2.0
    p.waiting(Wait("Huntress", 46.0, "rate_limit", "for the rate limit"))  # the same wait, heard again: once
    now[0] = 50.0
    p.waiting(Wait("Huntress", 12.0, "retry", "before retrying (HTTP 503)"))
    assert said == ["Huntress: waiting 48s for the rate limit", "Huntress: waiting 12s before retrying (HTTP 503)"]


def test_a_gates_held_removals_are_not_in_the_eta() -> None:
    """A lane held behind its vendor's gate (a person's item first) makes none of the calls it holds in
    this pass: its row's ETA is of the calls the exit still makes."""
    now = [0.0]
    b = Board([Planned("acme-dental", "Acme", 0.0, {"Huntress": 100},
                       loads={"Huntress": Load(HUNTRESS, 206, 60, 60.0, 3)})], clock=lambda: now[0])
    limiter = SlidingWindowLimiter(60, 60.0, margin=0.0, clock=lambda: now[0], sleep=lambda s: None)
    p = running(b, "acme-dental", 100, now, limiter, reads=3)
    assert eta_of(b, "acme-dental") == "0:03:00"  # 203 calls left: three windows after the first burst
    p.held("Huntress", [action("huntress", k).id for k in range(40, 100)])  # 60 removals held: 120 calls
    assert eta_of(b, "acme-dental") == "0:01:00"  # 83 left: one window after the first burst


def test_a_resumed_exit_whose_first_call_waits_for_a_full_window_counts_that_wait_down() -> None:
    """Review at 120x40: a resumed row read "re-reading, waiting 35s for the rate limit  0:01:00", stood at
    0:01:00 for 32 s, then rose: its first call waited for a window the run before had filled, and before
    a call of its own went out the row took the account for a quiet one."""
    now = [0.0]
    limiter = SlidingWindowLimiter(60, 60.0, margin=0.0, clock=lambda: now[0], sleep=lambda s: None)
    for _ in range(60):  # the interrupted run's calls: the window full
        limiter.acquire()
    now[0] = 25.0
    b = Board([Planned("acme-dental", "Acme", 0.0, {"Huntress": 40},
                       loads={"Huntress": Load(HUNTRESS, 70, 60, 60.0, 3)})], clock=lambda: now[0])
    p = b.progress("acme-dental", threading.Event(), lambda _text: None)
    p.phase("Resuming run r1: re-reading the vendors first (read-only)")
    p.waiting(Wait("Huntress", 35.0, "rate_limit", "for the rate limit", limiter.outlook))
    mine = row_of(drawn(b.snapshot()), "acme-dental")
    # its 70 calls: 60 when the window frees in 35 s, the last 10 a window later
    assert "re-reading, waiting 35s for the rate limit" in mine and mine.split()[-1] == "0:01:35", mine
    now[0] = 45.0
    assert eta_of(b, "acme-dental") == "0:01:15"


def test_an_exit_its_gates_will_stop_counts_only_its_re_read_on_the_board() -> None:
    """Review at 120x40: customer-2's row read 0:01:05, then 0:00:03 as Acme Dental stopped at its gate (an
    open incident, no --override-preflight): the board had counted Acme Dental's whole plan on the account."""
    removals = tuple(action("huntress", n) for n in range(10))
    gate = Finding(vendor="huntress", kind="open_incident", count=1, detail="incident open", blocking=True)
    plan = Plan(plan_id="p", created_at="2026-12-05T00:00:00Z", customer="Acme", config_fingerprint="f",
                vendors=(VendorPlan(vendor="huntress", display_name="Huntress", scope="org", account="k",
                                    inventory_fingerprint="i", findings=(gate,),
                                    steps=(Step(id="s", vendor="huntress", title="S", actions=removals),)),))
    load = VendorLoad(vendor="huntress", account="k", limit=60, window_seconds=60.0, calls=2 * 5 + 20)
    e = BatchExit(slug="acme", customer="Acme", config="acme.toml", plan=plan,
                  estimate=Estimate(removals=10, exports=0, manual=0, gates=0, loads=(load,)))
    batch = types.SimpleNamespace(exits=[e])
    plain = batches.board_of(batch)  # type: ignore[arg-type]
    assert plain._exits["acme"].loads["Huntress"].calls == 5  # its re-read, then its gate stops it
    passed = batches.board_of(batch, overrides=engine.Overrides(preflight="incident 12 closed by phone"))  # type: ignore[arg-type]
    assert passed._exits["acme"].loads["Huntress"].calls == 30  # re-read, 10 removals, verification
