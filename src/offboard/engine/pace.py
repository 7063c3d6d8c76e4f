"""Where a run stands and how long is left: the one count and the one ETA every progress shows (a
run, a vendor's lane, an exit of a batch).

The count: only what is done counts as done. An action held behind its vendor's gate (a person's
item: nothing more of that vendor changes until it is confirmed) and a manual item handed to a
person are counted apart, and said in one way everywhere ("14 held until a person confirms"):
a lane at its gate showed "17/17" and no step while 14 of its 17 waited for a person.

The ETA (``Eta``, one per lane and one per run or exit): an estimate made when an action settles,
then counting down. The estimate: time left = the larger of the pace so far times what is left and,
where the vendor's rate limit is known, what is left at that limit (``Progress.ceilings``; a first
window's burst made the pace look fast). The pace is measured over the time the lane worked, its
rate-limit waits included (they are what its calls cost), not while all it had left waited for a
person; what its gate holds is not left (``held``): a lane at its gate read "ETA 0:00:07" … "0:00:36",
its held removals counted as ahead at a pace that fell while it sat at the gate. A rate-limit
wait is already inside the estimate (the limit is what makes it): a wait that begins is not added
on top; the ETA only rises to a wait longer than what it says ("ETA 0:00:02" beside "waiting 48s"
was wrong). A later estimate replaces the countdown only when it says less (the work went faster)
or once the countdown ran out with work left: review at 120x40 saw a lane read "ETA 0:00:44
waiting 2s" then "0:00:48 waiting 27s", the estimate remade at each wait.
"""

from __future__ import annotations

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
        self.began: float | None = None
        self._wait: tuple[float, float] | None = None  # the latest wait: (when it began, when it ends)
        self._held_since: float | None = None  # all it had left waited for a person from then
        self._held = 0.0
        self._anchor: tuple[float, float] | None = None  # (seconds left, when estimated)

    def begin(self, now: float) -> None:
        self.began = now

    def waiting(self, now: float, seconds: float) -> None:
        if self._wait is not None and self._wait[1] > now:  # overlapping (a read-ahead's): the later end
            self._wait = (self._wait[0], max(self._wait[1], now + seconds))
        else:
            self._wait = (now, now + seconds)

    def wait_left(self, now: float) -> float:
        return max(0.0, self._wait[1] - now) if self._wait is not None else 0.0

    def worked(self, now: float) -> float:
        """Seconds it worked since it began, its waits for the rate limit included (they are what its
        calls cost: a paged export's many calls wait where its one action is counted); not the time
        all it had left waited for a person."""
        if self.began is None:
            return 0.0
        held = self._held + (now - self._held_since if self._held_since is not None else 0.0)
        return max(0.0, now - self.began - held)

    def settled(self, now: float) -> None:
        """An action settled (``count`` already says so): a new estimate replaces the countdown when
        it says less, or when the countdown ran out."""
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
        if not c.moved:
            return c.left * self.per_action if self.per_action and self.began is not None else None
        return max(self.worked(now) / c.moved * c.left, c.left * self.per_action)

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
