"""Where each exit of a running batch stands, moment to moment: every exit's engine progress folded
into one board, read as a snapshot (a row per exit, a lane per vendor) by whoever shows it — a
live table on a terminal (cli/batch_live.py); a log gets a line per exit per step instead.

The board only gathers: what a row says (its state, each lane's step, the ETA) is decided here,
never by the screen. The wire reports its waits to every listener of the process; each exit
takes only the waits of its own threads (its worker and its vendors' lanes).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from offboard import engine
from offboard.engine import pace
from offboard.plan import Action, Step
from offboard.wire.waits import Wait

# The states of a row while the batch runs; an exit that ended says its outcome (OUTCOMES).
QUEUED = "queued"
READING = "re-reading"  # re-reading its vendors before it starts (the plan must still hold)
RUNNING = "running"
BUDGET = "waiting for the account's budget"
RETRYING = "retrying"
VERIFYING = "verifying"  # every action settled: re-reading its vendors to prove the service stopped
DONE = "done"
PERSON = "waiting for a person"
GATE = "stopped by gate"
FAILED = "failed"
REFUSED = "refused"
INTERRUPTED = "interrupted"
NOT_RUN = "not run"
OUTCOMES = {0: DONE, 1: FAILED, 2: REFUSED, 3: PERSON, 4: GATE, 130: INTERRUPTED}
ACTIVE = frozenset({READING, RUNNING, BUDGET, RETRYING, VERIFYING})
WAIT_SHOWN = 1.0  # seconds: shorter waits are the limiter's ordinary pacing, not a state


@dataclass(frozen=True)
class LaneRow:
    vendor: str  # its display name
    step: str  # its current runbook step ("" before its first); at its gate, the gate's step
    done: int  # only what is done (engine/pace.py): not what waits for a person
    total: int
    waiting: float  # seconds its calls are still held back (0: none)
    why: str  # what holds them back, as a person reads it after "waiting Ns"
    eta: float | None
    for_person: int = 0  # held behind its gate, or handed to a person, in this pass


@dataclass(frozen=True)
class ExitRow:
    slug: str  # the customer's short name (its folder; what --customer takes)
    customer: str
    state: str  # QUEUED … or an outcome; GATE carries the gates in ``detail``
    detail: str  # the gates that stopped it, why it failed or waits; "" when nothing to add
    lanes: tuple[LaneRow, ...]
    done: int
    total: int
    eta: float | None  # None: not known yet (queued, or nothing moved yet)
    doing: str = ""  # while active: what it does under its wait (READING, RUNNING or VERIFYING)
    waiting: float = 0.0  # seconds its longest wait still holds it back (0: none)
    why: str = ""  # that wait's reason, as a person reads it after "waiting Ns"
    for_person: int = 0  # its actions held behind a gate, or handed to a person, in this pass

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


@dataclass(frozen=True)
class Load:
    """An exit's calls at one vendor account, and the account's rate limit."""

    account: str  # the account as the batch plan names it: the exits naming one share its budget
    calls: int  # what this pass will call there (its re-reads, its actions' calls, its verification)
    limit: int  # calls a window
    window: float  # seconds

    @property
    def per_call(self) -> float:
        return self.window / self.limit


@dataclass(frozen=True)
class Planned:
    """An exit as the batch plan has it, before it starts."""

    slug: str
    customer: str
    estimate: float  # seconds of its calls at its accounts' ceilings
    lanes: Mapping[str, int]  # each vendor's display name -> its planned actions
    verify: float = 0.0  # seconds of its verification's re-reads at its accounts' ceilings
    loads: Mapping[str, Load] = field(default_factory=dict)  # by a vendor's display name (rate-limited ones)


@dataclass
class _Wait:
    began: float = 0.0
    until: float = 0.0
    why: str = ""

    def hear(self, now: float, wait: Wait) -> None:
        if self.until <= now:  # a wait that follows one still running keeps its start (the ETA's pace)
            self.began = now
        self.until, self.why = now + wait.seconds, wait.why


@dataclass
class _Lane:
    count: pace.Count = field(default_factory=pace.Count)
    step: str = ""
    gate: str = ""  # the step of its gate once handed to a person (what it shows while held)
    wait: _Wait = field(default_factory=_Wait)
    eta: pace.Eta = field(init=False)

    def __post_init__(self) -> None:
        self.eta = pace.Eta(self.count)


@dataclass
class _Exit:
    slug: str
    customer: str
    # seconds of its calls at the accounts' ceilings: the batch plan's estimate, or for a resumed
    # exit the share its log has not done (its ETA's floor, and its ETA before it starts)
    estimate: float
    verify: float = 0.0  # seconds of its verification's re-reads at the accounts' ceilings
    state: str = QUEUED
    detail: str = ""
    count: pace.Count = field(default_factory=pace.Count)
    started: float | None = None
    lanes: dict[str, _Lane] = field(default_factory=dict)  # by the vendor's display name
    names: dict[str, str] = field(default_factory=dict)  # a vendor's key -> its display name
    wait: _Wait = field(default_factory=_Wait)  # a wait not of a lane (before its lanes began)
    eta: pace.Eta = field(init=False)
    verifying: float | None = None  # when its verification began
    ceilings: dict[str, engine.Limit] = field(default_factory=dict)  # each lane's rate limit (Progress.ceilings)
    loads: dict[str, Load] = field(default_factory=dict)  # by a vendor's display name: its shared accounts

    def __post_init__(self) -> None:
        self.eta = pace.Eta(self.count)

    def waits(self) -> list[_Wait]:
        return [self.wait, *(lane.wait for lane in self.lanes.values())]


class Board:
    """Every exit of the batch, in the batch plan's order. Thread-safe: the exits' workers and their
    vendors' lanes report at once."""

    def __init__(self, exits: Sequence[Planned], clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._exits = {p.slug: _Exit(p.slug, p.customer, p.estimate, p.verify, count=pace.Count(sum(p.lanes.values())),
                                     lanes={vendor: _Lane(pace.Count(total)) for vendor, total in p.lanes.items()},
                                     loads=dict(p.loads))
                       for p in exits}
        self._served: dict[str, float] = {}  # an account -> when it last settled an action (any exit's)
        # an account -> how long after that its calls wait for its window (a rate-limit wait heard since)
        self._earning: dict[str, float] = {}
        self._threads: dict[int, str] = {}  # a thread's ident -> the exit it works for (the latest)
        self._stop: threading.Event | None = None

    def resumed(self, slug: str, done: Mapping[str, int], estimate: float | None = None,
                loads: Mapping[str, Load] | None = None) -> None:
        """An exit to be resumed: each lane (a vendor's display name) starts at what its log holds
        done, not at 0 (its engine says the same once it re-read its vendors); ``estimate`` and
        ``loads``: the seconds at the accounts' ceilings, and the calls at each account, of what its
        log has not done (not the plan's whole)."""
        with self._lock:
            e = self._exits[slug]
            if estimate is not None:
                e.estimate = estimate
            if loads is not None:
                e.loads = dict(loads)
            for vendor, n in done.items():
                lane = e.lanes.setdefault(vendor, _Lane())
                lane.count.before = lane.count.done = n
            e.count.before = e.count.done = sum(lane.count.done for lane in e.lanes.values())

    def progress(self, slug: str, stop: threading.Event, say: Callable[[str], None]) -> engine.Progress:
        """The engine's progress of one exit; made in that exit's worker thread."""
        self._claim(slug)
        self._stop = stop

        def starting(e: _Exit) -> None:  # its first reads (the exit's lock, its re-plan) may wait for the budget
            if e.state == QUEUED:
                e.state = READING
        self._update(slug, starting)
        return ExitProgress(self, slug, stop, say)

    @property
    def stopping(self) -> bool:
        """Ctrl-C was pressed: each running exit stops after the action it is on."""
        return self._stop is not None and self._stop.is_set()

    def _claim(self, slug: str) -> None:
        with self._lock:
            self._threads[threading.get_ident()] = slug

    def ended(self, slug: str, code: int | None, detail: str) -> None:
        """An exit's run ended (``code``: its exit code), or it was not run (None)."""
        with self._lock:
            e = self._exits[slug]
            e.state = OUTCOMES.get(code, FAILED) if code is not None else NOT_RUN
            e.detail = detail
            if e.started is None and not e.count.done:  # the plan's counts would say nothing of where it stands
                e.lanes, e.count = {}, pace.Count()
            for wait in e.waits():
                wait.until = 0.0

    def snapshot(self) -> tuple[ExitRow, ...]:
        now = self._clock()
        with self._lock:
            return tuple(self._row(e, now) for e in self._exits.values())

    def _row(self, e: _Exit, now: float) -> ExitRow:
        lanes = tuple(self._lane_row(e, vendor, lane, now) for vendor, lane in e.lanes.items())
        state = e.state
        running = [w for w in e.waits() if w.until - now >= WAIT_SHOWN] if state in ACTIVE else []
        longest = max(running, key=lambda w: w.until, default=None)
        if state in (READING, RUNNING) and running:
            state = BUDGET if any("rate limit" in w.why for w in running) else RETRYING
        waits = [max(0.0, w.until - now) for w in e.waits()]
        eta: float | None = None
        if e.state == VERIFYING:
            # Its re-reads at the accounts' ceilings, counting down from when they began, and at
            # least the wait they sit through; once that ran out, None: the screen says "verifying".
            began = e.verifying if e.verifying is not None else now
            eta = max(e.verify - (now - began), max(waits, default=0.0))
            eta = eta if eta >= 1 else None
        elif state in ACTIVE and e.started is not None:
            # engine/pace.py's rule: the exit's share of the accounts' time as the floor, a wait it
            # foresaw not added on top; never less than its slowest lane's.
            known = [s for lane in e.lanes.values() if (s := lane.eta.seconds(now)) is not None]
            # Where its lanes know their share of the accounts, theirs: the exit's own pace counts the
            # account's waits, which the share already holds (customer-2 read 0:00:00, then 0:02:53).
            exit_eta = e.eta.seconds(now) if not (known and e.loads) else None
            eta = max([*known, *([exit_eta] if exit_eta is not None else [])], default=None)
        if eta is None and state in ACTIVE and e.state != VERIFYING:
            # Not started (its re-read may wait for the account's window first): that wait, then its
            # share of the accounts' time: counting down with the wait, not standing still beside it.
            if e.loads:
                eta = self._opening(e, now)
            else:
                before = e.estimate
                eta = max(waits, default=0.0) + before if before > 0 else (max(waits) if waits else None)
        return ExitRow(e.slug, e.customer, state, e.detail, lanes, e.count.done, e.count.total, eta,
                       doing=e.state if e.state in ACTIVE else "",
                       waiting=longest.until - now if longest is not None else 0.0,
                       why=longest.why if longest is not None else "", for_person=e.count.for_person)

    @staticmethod
    def _lane_row(e: _Exit, vendor: str, lane: _Lane, now: float) -> LaneRow:
        waiting = max(0.0, lane.wait.until - now)
        eta = lane.eta.seconds(now) if e.state in ACTIVE and e.started is not None else None
        # All it has left waits behind its gate: it stays on the gate's step (its exports, not held,
        # ran after the gate was handed to a person and left "1. Export retained…" showing).
        held = lane.gate and not lane.count.left and lane.count.waiting_for_person
        return LaneRow(vendor, lane.gate if held else lane.step, lane.count.done, lane.count.total, waiting,
                       lane.wait.why, eta, lane.count.waiting_for_person)

    # -- the accounts' share (the caller holds the lock) -----------------------------------------

    def _sharing(self, account: str) -> list[tuple[_Exit, str]]:
        """The exits at work on ``account`` (and the lane each has there): their calls go first or in
        between. One queued has not begun: its calls come after."""
        return [(x, v) for x in self._exits.values() if x.state in ACTIVE and x.state != VERIFYING
                for v, load in x.loads.items() if load.account == account]

    @staticmethod
    def _left_at(x: _Exit, vendor: str) -> float:
        """Seconds at the limit of what ``x`` still calls at that vendor's account: its lane's calls not
        made yet once it runs, its whole load before (its re-reads included)."""
        if x.started is not None:
            lane = x.lanes.get(vendor)
            return lane.eta.ahead if lane is not None else 0.0
        load = x.loads[vendor]
        return load.calls * load.per_call

    def _share(self, e: _Exit, vendor: str, now: float) -> float:
        """The least seconds the lane's calls left take at its account shared with the other exits at
        work there, served first come, first served: its own, and of each other exit's as many as
        its own (a smaller exit's all: it ends first). Counting down between the actions the account
        settles, at most one action's worth, or through a wait for its window (the calls a window
        lets through at once after it are the ones that wait earned: the ETA stood at 0:01:02 beside
        "waiting 44s"), never through a retry's backoff (no call is earned)."""
        load = e.loads.get(vendor)
        lane = e.lanes.get(vendor)
        if load is None or lane is None or lane.eta.ahead <= 0:
            return 0.0
        mine = lane.eta.ahead
        share = sum(min(self._left_at(x, v), mine) for x, v in self._sharing(load.account))
        served = self._served.get(load.account)
        earned = max(lane.eta.largest(), self._earning.get(load.account, 0.0))
        since = min(now - served, earned) if served is not None else 0.0
        return max(0.0, share - max(0.0, since))

    def _opening(self, e: _Exit, now: float) -> float:
        """Before it runs: the least time its calls (its re-reads and actions) take at its busiest
        account, shared with the exits at work there. A quiet account lets a window's worth through at
        once, then a window's worth each window (a resume's re-reads end in seconds: "re-reading
        0:00:17" for exits done in 3 s). While its calls wait for the account's window, that window is
        full: the wait and the calls it earns at the limit, the wait inside, not added (a resumed row
        rose from 0:00:54 to 0:01:41 at Ctrl-C then --resume)."""
        backoff = max((w.until - now for w in e.waits() if "rate limit" not in w.why), default=0.0)
        out = max((w.until - now for w in e.waits() if "rate limit" in w.why), default=0.0)
        for vendor, load in e.loads.items():
            mine = load.calls * load.per_call
            if mine <= 0:
                continue
            share = sum(min(self._left_at(x, v), mine) for x, v in self._sharing(load.account))
            # Its window full: a wait for it at this vendor (not the limiter's pacing, under a second),
            # within a window
            lane = e.lanes.get(vendor)
            full = lane.wait if lane is not None and "rate limit" in lane.wait.why else None
            if full is not None and full.until - full.began >= WAIT_SHOWN and full.until + load.window > now:
                out = max(out, share - (now - full.began))  # counting down: the calls the wait earns
            else:  # a burst still takes its round trips: a second at least, never 0:00:00 with calls ahead
                out = max(out, (math.ceil(share / load.per_call / load.limit - 1e-9) - 1) * load.window, 1.0)
        return max(0.0, backoff) + out  # a retry's backoff earns no call

    # -- what each exit's progress tells --------------------------------------------------------

    def _update(self, slug: str, change: Callable[[_Exit], None]) -> None:
        with self._lock:
            change(self._exits[slug])

    def _mine(self, slug: str) -> bool:
        with self._lock:
            return self._threads.get(threading.get_ident()) == slug

    def _now(self) -> float:
        return self._clock()


class ExitProgress(engine.NoProgress):
    """One exit's engine progress, told to the board. Each runbook step it begins is also said
    (``say``: a line per exit per step in a log). Ctrl-C of a batch: the exit stops after the
    action it is on (the engine's Ctrl-C path: recorded as interrupted in its own log, resumable)."""

    def __init__(self, board: Board, slug: str, stop: threading.Event, say: Callable[[str], None]) -> None:
        self._board = board
        self._slug = slug
        self._stop = stop
        self._say = say

    def phase(self, text: str) -> None:
        def change(e: _Exit) -> None:
            if e.state == QUEUED:
                e.state = READING
            elif e.started is not None:  # the one phase after its actions: re-reading its vendors to verify
                e.state, e.verifying = VERIFYING, self._board._now()
        self._board._update(self._slug, change)
        self._say(text)

    def start(self, total: int, done: int) -> None:
        now = self._board._now()

        def change(e: _Exit) -> None:
            e.state, e.count, e.started = RUNNING, pace.Count(total, done, done), now
            # its floor: its estimate (of what this pass runs) shared over what is left
            e.eta = pace.Eta(e.count, e.estimate / (total - done) if total > done else 0.0)
            e.eta.begin(now)
        self._board._update(self._slug, change)

    def lanes(self, counts: Mapping[str, tuple[int, int]]) -> None:
        now = self._board._now()

        def change(e: _Exit) -> None:
            e.lanes = {vendor: _Lane(pace.Count(total, before, before)) for vendor, (total, before) in counts.items()}
            for vendor, lane in e.lanes.items():
                if vendor in e.ceilings:
                    lane.eta.limit(e.ceilings[vendor].window, e.ceilings[vendor].seconds)
                lane.eta.share = self._shared(e, vendor)
                lane.eta.begin(now)
        self._board._update(self._slug, change)

    def _shared(self, e: _Exit, vendor: str) -> Callable[[float], float]:
        return lambda now: self._board._share(e, vendor, now)  # read under the board's lock

    def ceilings(self, limits: Mapping[str, engine.Limit]) -> None:
        def change(e: _Exit) -> None:  # told before its lanes begin
            e.ceilings = dict(limits)
        self._board._update(self._slug, change)

    def held(self, vendor: str, action_ids: Sequence[str]) -> None:
        now = self._board._now()

        def change(e: _Exit) -> None:
            e.count.gated(e.count.ahead_held + len(action_ids))
            e.eta.settled(now)
            lane = e.lanes.get(vendor)
            if lane is not None:
                lane.gate = lane.gate or lane.step  # the gate's own step: it was announced as the gate began
                lane.count.gated(len(action_ids))
                lane.eta.drop(action_ids)
                lane.eta.settled(now)
        self._board._update(self._slug, change)

    def step(self, vendor: str, step: Step, todo: int) -> None:
        self._board._claim(self._slug)  # a vendor's lane runs in a thread of its own

        def change(e: _Exit) -> None:
            e.lanes.setdefault(vendor, _Lane()).step = step.title
            e.names[step.vendor] = vendor
        self._board._update(self._slug, change)
        self._say(f"{vendor}: {step.title} ({todo} to do)")

    def advance(self, action: Action, event: str) -> None:
        now = self._board._now()

        def change(e: _Exit) -> None:
            e.count.settle(event)
            e.eta.settled(now)
            vendor = e.names.get(action.vendor, action.vendor)
            lane = e.lanes.get(vendor)
            if vendor in e.loads:
                self._board._served[e.loads[vendor].account] = now
                self._board._earning.pop(e.loads[vendor].account, None)
            if lane is not None:
                lane.count.settle(event)
                lane.eta.settled(now, action.id)
                lane.wait.until = 0.0
        self._board._update(self._slug, change)
        if self._stop.is_set():
            raise KeyboardInterrupt

    def waiting(self, wait: Wait) -> None:
        if not self._board._mine(self._slug):
            return  # another exit's wait (every listener hears every wait of the process)
        now = self._board._now()

        def change(e: _Exit) -> None:
            lane = e.lanes.get(wait.vendor)
            (lane.wait if lane is not None else e.wait).hear(now, wait)
            if lane is not None:
                lane.eta.waiting(now, wait.seconds)
            load = e.loads.get(wait.vendor)
            served = self._board._served.get(load.account) if load is not None else None
            if load is not None and served is not None and wait.kind == "rate_limit":
                ends = now + wait.seconds - served
                self._board._earning[load.account] = max(self._board._earning.get(load.account, 0.0), ends)
            if e.started is not None:
                e.eta.waiting(now, wait.seconds)
        self._board._update(self._slug, change)
