"""Where a run stands and how long is left: the one count and the one ETA every progress shows (a
run, a vendor's lane, an exit of a batch).

The count: only what is done counts as done. An action held behind its vendor's gate (a person's
item: nothing more of that vendor changes until it is confirmed) and a manual item handed to a
person are counted apart, and said in one way everywhere ("14 held until a person confirms"):
a lane at its gate showed "17/17" and no step while 14 of its 17 waited for a person.

The ETA: the pace so far, waits included, over what remains, and never less than the longest wait
still to sit through: a run held back by a vendor's rate limit says so, rather than "2 seconds
left" beside "waiting 48s for the rate limit". While a wait passes, the pace is the one known when
it began, less the time it has run: the ETA counts down with the wait instead of growing with it.
A terminal's bar also never shows a lane's ETA below what is left at its vendor's rate limit
(``Progress.ceilings``): the first window's burst made the pace look fast, and the ETA then jumped.
"""

from __future__ import annotations

from collections.abc import Iterable
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

    def settle(self, event: str) -> None:
        """One action settled in this pass; ``event``: its audit event."""
        if event in (HELD, HANDED):
            self.for_person += 1
        else:
            self.done += 1

    @property
    def moved(self) -> int:
        """What this pass has done: the pace's measure (a held action takes no time)."""
        return self.done - self.before

    @property
    def left(self) -> int:
        """What this pass still works on (what waits for a person is not its work)."""
        return max(0, self.total - self.done - self.for_person)

    def eta(self, elapsed: float, waits: Iterable[float] = (), waited: float = 0.0) -> float | None:
        return remaining(elapsed, self.moved, self.left, waits, waited)


def remaining(elapsed: float, moved: int, left: int, waits: Iterable[float] = (),
              waited: float = 0.0) -> float | None:
    """Seconds left, or None when nothing tells yet (nothing moved and nothing waits).
    ``elapsed``: since the work began (its waits included); ``moved``: what settled since then;
    ``left``: what remains; ``waits``: the seconds each wait still holds back; ``waited``: how long
    the waits still running have run already (the pace is the one known when they began)."""
    ahead = [w for w in waits if w > 0]
    if left <= 0:
        return max(ahead, default=0.0)
    waited = min(max(0.0, waited), elapsed) if ahead else 0.0
    pace = (elapsed - waited) / moved * left - waited if moved > 0 else None
    if pace is None and not ahead:
        return None
    return max([pace or 0.0, *ahead])
