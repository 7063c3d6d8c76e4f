"""Where a run stands and how long is left: the one count and the one ETA every progress shows (a
run, a vendor's lane, an exit of a batch).

The count: only what is done counts as done. An action held behind its vendor's gate (a person's
item: nothing more of that vendor changes until it is confirmed) and a manual item handed to a
person are counted apart, and said in one way everywhere ("14 held until a person confirms"):
a lane at its gate showed "17/17" and no step while 14 of its 17 waited for a person.

The ETA (``Eta``, one per lane and one per run or exit): an estimate made when an action settles,
then counting down. The estimate: time left = the larger of the pace so far times what is left and,
where the vendor's rate limit is known (``Progress.ceilings``), the least time it allows for the
calls left (``Eta.floor``; a first window's burst made the pace look fast). The pace is measured
over the time the lane worked: not while all it had left waited for a person and, where the limit
is known, not while it waited for it (the floor counts those waits; where it is not known, the
waits seen stand in for it). What its gate holds is not left (``held``): a lane at its gate read
"ETA 0:00:07" … "0:00:36", its held removals counted as ahead at a pace that fell while it sat at
the gate. A rate-limit wait is already inside the estimate (the limit is what makes it): a wait
that begins is not added on top; the ETA only rises to a wait longer than what it says ("ETA
0:00:02" beside "waiting 48s" was wrong). A later estimate replaces the countdown only when it
says less (the work went faster) or once the countdown ran out with work left: review at 120x40
saw a lane read "ETA 0:00:44 waiting 2s" then "0:00:48 waiting 27s", the estimate remade at each
wait. (A batch's exits share their accounts: a row's ETA there is read off the account's window,
batch/progress.py.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

HELD = "action.held"  # the audit event of an action held behind its vendor's gate (not started)
HANDED = "manual.pending"  # a manual item (or an API action fallen back to one) handed to a person


def held_words(count: int) -> str:
    """What waits for a person, as every progress says it."""
    return f"{count} held until a person confirms"


@dataclass
class Count:
    """A run's (or one vendor lane's) actions as this pass settles them."""

    total: int = 0
    before: int = 0  # done before this pass began (a resumed run's log)
    done: int = 0  # done so far, ``before`` included
    for_person: int = 0  # held behind the gate, or handed to a person, in this pass: not done
    ahead_held: int = 0  # not settled yet, but will be held: its vendor's gate waits for a person

    def settle(self, event: str) -> None:
        """One action settled in this pass; ``event``: its audit event."""
        if event in (HELD, HANDED):
            self.for_person += 1
            if event == HELD:
                self.ahead_held = max(0, self.ahead_held - 1)
        else:
            self.done += 1

    @property
    def moved(self) -> int:
        """What this pass has done: the pace's measure (a held action takes no time)."""
        return self.done - self.before

    @property
    def left(self) -> int:
        """What this pass still works on (what waits for a person is not its work)."""
        return max(0, self.total - self.done - self.for_person - self.ahead_held)

    @property
    def waiting_for_person(self) -> int:
        """Held or handed already, and what its gate will hold."""
        return self.for_person + self.ahead_held

    def gated(self, count: int) -> None:
        """Its gate was handed to a person: ``count`` of its actions not settled yet will wait for them."""
        self.ahead_held = count


class Eta:
    """One lane's (or a run's, or an exit's) ETA as a screen shows it, on the caller's clock. Tell it
    when the work begins, each wait that begins, and each action that settles (after ``count.settle``);
    read ``seconds`` as often as the screen redraws. Not thread-safe: its owner holds the lock."""

    def __init__(self, count: Count, per_action: float = 0.0) -> None:
        self.count = count
        self.per_action = per_action  # seconds per action at the vendor's rate limit (0: not known)
        self._costs: dict[str, float] = {}  # each action not settled yet: its calls' seconds at the limit
        self._ahead = 0.0  # their sum
        self._made = 0.0  # the same of the actions this pass has settled: their calls were made
        self._window = 0.0  # the vendor's rate-limit window (0: not told)
        self.began: float | None = None
        self._wait: tuple[float, float] | None = None  # the latest wait: (when it began, when it ends)
        self._waited = 0.0  # seconds of the waits before it
        self._held_since: float | None = None  # all it had left waited for a person from then
        self._held = 0.0
        self._anchor: tuple[float, float] | None = None  # (seconds left, when estimated)

    def limit(self, window: float, costs: Mapping[str, float]) -> None:
        """The vendor's rate-limit window and each action this pass still runs: the seconds its calls
        take at the limit (calls x window / limit: a removal and its owner read two calls, an export
        one, a person's item none)."""
        self._window = window
        self._costs = dict(costs)
        self._ahead = sum(self._costs.values())

    @property
    def ahead(self) -> float:
        """Seconds at the limit of the calls of the actions not settled yet (0: none, or not told)."""
        return max(0.0, self._ahead)

    def drop(self, action_ids: Iterable[str]) -> None:
        """Actions held for a person: their calls are not ahead, and not made."""
        for aid in action_ids:
            self._ahead -= self._costs.pop(aid, 0.0)

    def floor(self, now: float) -> float | None:
        """The least time left the vendor's limit allows (None: not told). Its window lets a window's
        worth of calls through at once, then another each window: the pass's calls (made and ahead)
        end no sooner than a whole window after its start for each window's worth beyond the first.
        (Seconds at the limit per call times calls left, the floor before, is below that after the
        first burst: 48 s shown at 27/64 for a lane that took 59 s more, its ETA then rising again.)"""
        if not self._window or self.began is None:
            return None
        ahead = max(0.0, self._ahead)
        if ahead <= 0:
            return 0.0
        windows = math.ceil((self._made + ahead) / self._window - 1e-9) - 1
        return max(0.0, self.began + windows * self._window - now)

    def begin(self, now: float) -> None:
        self.began = now

    def paused(self, seconds: float) -> None:
        """The run stood still for ``seconds`` (a person at a guided prompt): neither its pace nor its
        countdown counts them (a lane read "ETA 0:00:01" after a prompt, then rose to 0:00:20)."""
        if self.began is not None:
            self.began += seconds
        if self._anchor is not None:
            self._anchor = (self._anchor[0], self._anchor[1] + seconds)
        if self._held_since is not None:
            self._held_since += seconds

    def waiting(self, now: float, seconds: float) -> None:
        if self._wait is not None and self._wait[1] > now:  # overlapping (a read-ahead's): the later end
            self._wait = (self._wait[0], max(self._wait[1], now + seconds))
            return
        if self._wait is not None:
            self._waited += self._wait[1] - self._wait[0]
        self._wait = (now, now + seconds)

    def waited(self, now: float) -> float:
        """Seconds its calls sat in waits (their union) since it began."""
        if self._wait is None:
            return self._waited
        return self._waited + max(0.0, min(now, self._wait[1]) - self._wait[0])

    def wait_left(self, now: float) -> float:
        return max(0.0, self._wait[1] - now) if self._wait is not None else 0.0

    def worked(self, now: float) -> float:
        """Seconds it worked since it began: not the time all it had left waited for a person, and,
        where its vendor's limit is known, not its waits (the floor counts what the limit costs: the
        pace with them said 43 s for the last 29 actions its window let through in one second)."""
        if self.began is None:
            return 0.0
        held = self._held + (now - self._held_since if self._held_since is not None else 0.0)
        waited = self.waited(now) if self._window else 0.0
        return max(0.0, now - self.began - held - waited)

    def settled(self, now: float, action_id: str = "") -> None:
        """An action settled (``count`` already says so): a new estimate replaces the countdown when
        it says less, or when the countdown ran out."""
        cost = self._costs.pop(action_id, 0.0)
        self._ahead -= cost
        self._made += cost
        c = self.count
        if not c.left and c.waiting_for_person:
            if self._held_since is None:
                self._held_since = now
        elif self._held_since is not None:
            self._held += now - self._held_since
            self._held_since = None
        fresh = self._estimate(now)
        counting = self._countdown(now)
        if fresh is not None and (counting is None or counting <= 0 or fresh < counting):
            self._anchor = (fresh, now)

    def _estimate(self, now: float) -> float | None:
        c = self.count
        limit = self.floor(now)
        floor = limit if limit is not None else c.left * self.per_action
        if not c.moved:
            return floor if floor and self.began is not None else None
        return max(self.worked(now) / c.moved * c.left, floor)

    def _countdown(self, now: float) -> float | None:
        return self._anchor[0] - (now - self._anchor[1]) if self._anchor is not None else None

    def seconds(self, now: float) -> float | None:
        """Seconds left; None while nothing tells (nothing moved, no limit known, no wait). 0 once all
        it has left waits for a person (a person's time is not the run's)."""
        ahead = self.wait_left(now)
        if self.count.left <= 0:
            return ahead
        counting = self._countdown(now)
        # Not estimated yet, or it ran out with work left (not while a wait runs: the wait is shown)
        if counting is None or (counting <= 0 and ahead <= 0):
            fresh = self._estimate(now)
            if fresh is not None:
                self._anchor, counting = (fresh, now), fresh
        if counting is None:
            return ahead or None
        return max(counting, ahead)
