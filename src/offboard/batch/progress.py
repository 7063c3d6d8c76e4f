"""Where each exit of a running batch stands, moment to moment: every exit's engine progress folded
into one board, read as a snapshot (a row per exit, a lane per vendor) by whoever shows it — a
live table on a terminal (cli/batch_live.py); a log gets a line per exit per step instead.

The board only gathers: what a row says (its state, each lane's step, the ETA) is decided here,
never by the screen. The wire reports its waits and its calls to every listener of the process;
each exit takes only those of its own threads (its worker, its vendors' lanes, their page readers).

A row's ETA, where its vendors' rate limits are known, is when the account's window lets its last
call go: the calls it has left (what its plan calls there, less what it sent) and, the account
serving its exits' calls first come, first served, as many of each other exit's as its own (all of
a smaller one's; an exit queued for a place joins once one ends) — read against the window as the
limiter holds it (``Outlook``), never a model of it: a model kept beside the window rose at each
wait, fell to a second with calls left, and rose again when an exit began.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from offboard import engine
from offboard.engine import pace
from offboard.plan import Action, Step
from offboard.wire import waits as wire_waits
from offboard.wire.outlook import Outlook
from offboard.wire.waits import Sent, Wait

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
SAID_WAIT = 5.0  # seconds: a log says a wait this long, at most one line this often per exit


@dataclass(frozen=True)
class LaneRow:
    vendor: str  # its display name
    step: str  # its current runbook step ("" before its first); at its gate, the gate's step
    done: int  # only what is done (engine/pace.py): not what waits for a person
    total: int
    waiting: float  # seconds its calls are still held back (0: none)
    why: str  # what holds them back, as a person reads it after "waiting Ns"
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
    discovery: int = 0  # of ``calls``, one reading of the vendor (its verification's re-reads)

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
    loads: Mapping[str, Load] = field(default_factory=dict)  # by a vendor's display name (rate-limited ones)


@dataclass
class _Wait:
    until: float = 0.0
    why: str = ""

    def hear(self, now: float, wait: Wait) -> None:
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
    state: str = QUEUED
    detail: str = ""
    count: pace.Count = field(default_factory=pace.Count)
    started: float | None = None
    lanes: dict[str, _Lane] = field(default_factory=dict)  # by the vendor's display name
    names: dict[str, str] = field(default_factory=dict)  # a vendor's key -> its display name
    wait: _Wait = field(default_factory=_Wait)  # a wait not of a lane (before its lanes began)
    eta: pace.Eta = field(init=False)
    ceilings: dict[str, engine.Limit] = field(default_factory=dict)  # each lane's rate limit (Progress.ceilings)
    loads: dict[str, Load] = field(default_factory=dict)  # by a vendor's display name: its shared accounts
    sent: dict[str, int] = field(default_factory=dict)  # by a vendor's display name: calls sent this pass
    # by a vendor's display name: the calls its re-read before its actions made (its verification reads as
    # much again), and the calls sent when its verification began
    reread: dict[str, int] = field(default_factory=dict)
    verify_from: dict[str, int] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)  # calls sent for the action its lane is on

    def __post_init__(self) -> None:
        self.eta = pace.Eta(self.count)

    def waits(self) -> list[_Wait]:
        return [self.wait, *(lane.wait for lane in self.lanes.values())]


@dataclass
class _Turn:
    slug: str
    vendor: str
    left: int  # its calls left at the account


class Board:
    """Every exit of the batch, in the batch plan's order. Thread-safe: the exits' workers and their
    vendors' lanes report at once."""

    def __init__(self, exits: Sequence[Planned], clock: Callable[[], float] = time.monotonic,
                 parallel: int = 8) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._exits = {p.slug: _Exit(p.slug, p.customer, p.estimate, count=pace.Count(sum(p.lanes.values())),
                                     lanes={vendor: _Lane(pace.Count(total)) for vendor, total in p.lanes.items()},
                                     loads=dict(p.loads))
                       for p in exits}
        self._parallel = parallel  # exits at work at once: one queued starts as one ends
        self._order = list(self._exits)  # the order queued exits start in
        self._outlooks: dict[str, Callable[[], Outlook]] = {}  # an account -> its window, read live
        self._calls: dict[str, int] = {}  # an account -> the calls its exits sent there
        self._last: dict[tuple[str, str], int] = {}  # (an exit, an account) -> the number of its last call there
        self._threads: dict[int, str] = {}  # a thread's ident -> the exit it works for (the latest)
        self._stop: threading.Event | None = None

    def queue(self, slugs: Sequence[str]) -> None:
        """The order the exits not started yet will start in (the batch runs the smallest first)."""
        with self._lock:
            self._order = [s for s in slugs if s in self._exits]

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
            self._threads[wire_waits.origin()] = slug

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
        with self._lock:
            outlooks = dict(self._outlooks)
        windows: dict[str, Outlook] = {}
        for account, read in outlooks.items():  # outside the board's lock: the window has its own
            with contextlib.suppress(Exception):  # a screen never fails the run: the plan's ceiling instead
                windows[account] = read()
        now = self._clock()
        with self._lock:
            last = self._last_calls()
            return tuple(self._row(e, now, self._at_accounts(e, last, windows)) for e in self._exits.values())

    def _row(self, e: _Exit, now: float, at_accounts: float | None) -> ExitRow:
        lanes = tuple(self._lane_row(vendor, lane, now) for vendor, lane in e.lanes.items())
        state = e.state
        running = [w for w in e.waits() if w.until - now >= WAIT_SHOWN] if state in ACTIVE else []
        longest = max(running, key=lambda w: w.until, default=None)
        if state in (READING, RUNNING) and running:
            state = BUDGET if any("rate limit" in w.why for w in running) else RETRYING
        eta = self._eta(e, now, at_accounts) if state in ACTIVE else None
        return ExitRow(e.slug, e.customer, state, e.detail, lanes, e.count.done, e.count.total, eta,
                       doing=e.state if e.state in ACTIVE else "",
                       waiting=longest.until - now if longest is not None else 0.0,
                       why=longest.why if longest is not None else "", for_person=e.count.for_person)

    @staticmethod
    def _lane_row(vendor: str, lane: _Lane, now: float) -> LaneRow:
        waiting = max(0.0, lane.wait.until - now)
        # All it has left waits behind its gate: it stays on the gate's step (its exports, not held,
        # ran after the gate was handed to a person and left "1. Export retained…" showing).
        held = lane.gate and not lane.count.left and lane.count.waiting_for_person
        return LaneRow(vendor, lane.gate if held else lane.step, lane.count.done, lane.count.total, waiting,
                       lane.wait.why, lane.count.waiting_for_person)

    def _eta(self, e: _Exit, now: float, at_accounts: float | None) -> float | None:
        """An active exit's ETA: at its accounts, when their windows let its last call go (a retry's
        backoff on top: it earns no call); at a vendor whose limit is not known, its lane's pace."""
        backoff = max((w.until - now for w in e.waits() if w.until > now and "rate limit" not in w.why),
                      default=0.0)
        paced: list[float] = []
        if e.started is not None and e.state != VERIFYING:
            paced = [s for v, lane in e.lanes.items() if v not in e.loads and (s := lane.eta.seconds(now)) is not None]
            if not e.loads and (s := e.eta.seconds(now)) is not None:  # no limit known: the exit's own pace too
                paced.append(s)
        if at_accounts is None and not paced:  # no limit known, nothing moved yet: the wait it sits through
            wait = max(0.0, *(w.until - now for w in e.waits()))
            if e.started is None:  # then its estimate
                return wait + e.estimate if e.estimate > 0 or wait > 0 else None
            return wait if wait >= 1 else None
        eta = max([*paced, *([at_accounts] if at_accounts is not None else [])])
        eta += backoff
        if e.state == VERIFYING:  # past its calls, the screen says "verifying" (never a bare "…")
            return eta if eta >= 1 else None
        return max(eta, 1.0)  # its last calls still take their round trips: never 0:00:00 while it works

    # -- the accounts' turns (the caller holds the lock) ------------------------------------------

    def _left(self, x: _Exit, vendor: str) -> int:
        """Calls ``x`` has left at that vendor's account. Before its actions: what its plan calls there less
        what it sent (at least its actions' and its verification's: its re-read may read more pages than
        the plan counted). Then: its actions' calls not made (less those sent for the one its lane is
        on), and its verification's, as many as its re-read made (not the plan's estimate: a run that
        re-reads less ended 25 s before its ETA)."""
        if x.state not in ACTIVE and x.state != QUEUED:
            return 0
        load = x.loads[vendor]
        sent = x.sent.get(vendor, 0)
        if x.started is None:
            return max(load.calls - sent, load.calls - load.discovery)
        verify = x.reread.get(vendor) or load.discovery
        if x.state == VERIFYING:
            return max(0, verify - (sent - x.verify_from.get(vendor, sent)))
        lane = x.lanes.get(vendor)
        ahead = math.ceil(lane.eta.ahead / load.per_call - 1e-9) if lane is not None else 0
        return max(0, ahead - x.in_flight.get(vendor, 0)) + verify

    def _last_calls(self) -> dict[tuple[str, str], int]:
        """For each exit at work or queued, at each of its accounts: how many calls the account serves
        from now until that exit's last one."""
        active = [x for x in self._exits.values() if x.state in ACTIVE]
        queued = [self._exits[s] for s in self._order if self._exits[s].state == QUEUED]
        free = max(0, self._parallel - len(active))
        out: dict[tuple[str, str], int] = {}
        for account in {load.account for x in self._exits.values() for load in x.loads.values()}:
            out.update(self._turns(account, active, queued[:free], queued[free:]))
        return out

    def _turns(self, account: str, active: Sequence[_Exit], starting: Sequence[_Exit], later: Sequence[_Exit]
               ) -> dict[tuple[str, str], int]:
        """The account serves its exits first come, first served: a call of each in turn, the one whose
        last call is the oldest first (one that starts joins the end of the turn). ``later``: queued for
        a place, in order; the next starts as one ends."""
        turn: list[_Turn] = []  # in the order they call next

        def join(x: _Exit) -> None:
            vendor = next((v for v, load in x.loads.items() if load.account == account), None)
            if vendor is not None and (left := self._left(x, vendor)) > 0:
                turn.append(_Turn(x.slug, vendor, left))
        for x in sorted(active, key=lambda x: self._last.get((x.slug, account), -1)):
            join(x)
        for x in starting:
            join(x)
        waiting = deque(later)
        out: dict[tuple[str, str], int] = {}
        position = 0  # calls the account served
        while turn:
            rounds = min(t.left for t in turn) - 1  # whole turns before one ends: a call of each
            position += rounds * len(turn)
            for t in turn:
                t.left -= rounds
            for t in list(turn):  # the turn in which one ends, in order; one that starts joins the next at its end
                position += 1
                t.left -= 1
                if t.left == 0:
                    out[(t.slug, t.vendor)] = position
                    turn.remove(t)
                    if waiting:
                        join(waiting.popleft())
        return out

    def _at_accounts(self, e: _Exit, last: Mapping[tuple[str, str], int], windows: Mapping[str, Outlook]
                     ) -> float | None:
        """Seconds until the windows of its accounts let its last call go (None: no account's limit known)."""
        if not e.loads:
            return None
        return max(windows.get(load.account, Outlook.quiet(load.limit, load.window))
                   .seconds_until(last.get((e.slug, vendor), 0)) for vendor, load in e.loads.items())

    # -- what each exit's progress tells --------------------------------------------------------

    def _update(self, slug: str, change: Callable[[_Exit], None]) -> None:
        with self._lock:
            change(self._exits[slug])

    def _mine(self, slug: str) -> bool:
        with self._lock:
            return self._threads.get(wire_waits.origin()) == slug

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
        self._said_wait = -math.inf

    def phase(self, text: str) -> None:
        def change(e: _Exit) -> None:
            if e.state == QUEUED:
                e.state = READING
            elif e.started is not None:  # the one phase after its actions: re-reading its vendors to verify
                e.state, e.verify_from = VERIFYING, dict(e.sent)
        self._board._update(self._slug, change)
        self._say(text)

    def start(self, total: int, done: int) -> None:
        now = self._board._now()

        def change(e: _Exit) -> None:
            e.state, e.count, e.started = RUNNING, pace.Count(total, done, done), now
            e.reread, e.in_flight = dict(e.sent), {}  # its re-read's calls: its verification's measure
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
                lane.eta.begin(now)
        self._board._update(self._slug, change)

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
            e.in_flight.pop(vendor, None)  # its calls are made: the next action's begin
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
        # A log says a long wait (a minute's silence read as a hang); the limiter's pacing, never.
        if wait.seconds >= SAID_WAIT and now - self._said_wait >= SAID_WAIT:
            self._said_wait = now
            self._say(wait.describe())

        def change(e: _Exit) -> None:
            lane = e.lanes.get(wait.vendor)
            (lane.wait if lane is not None else e.wait).hear(now, wait)
            load = e.loads.get(wait.vendor)
            if load is not None and wait.outlook is not None:  # its first call may wait for others' calls
                self._board._outlooks[load.account] = wait.outlook
            if lane is not None:
                lane.eta.waiting(now, wait.seconds)
            if e.started is not None:
                e.eta.waiting(now, wait.seconds)
        self._board._update(self._slug, change)

    def sent(self, call: Sent) -> None:
        if not self._board._mine(self._slug):
            return  # another exit's call

        def change(e: _Exit) -> None:
            e.sent[call.vendor] = e.sent.get(call.vendor, 0) + 1
            e.in_flight[call.vendor] = e.in_flight.get(call.vendor, 0) + 1
            load = e.loads.get(call.vendor)
            if load is not None:  # any of the account's limiters reads its one window
                self._board._outlooks[load.account] = call.outlook
                n = self._board._calls[load.account] = self._board._calls.get(load.account, 0) + 1
                self._board._last[(e.slug, load.account)] = n
        self._board._update(self._slug, change)
