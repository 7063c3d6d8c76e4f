"""Who owns what, as the vendor lists it now: the scope guard's source during a long run.

A listing taken when apply starts goes stale during a removal phase of hours: an object moved
to another customer meanwhile would still look like ours. Each vendor's listing is re-taken
when it is MAX_WRITES writes or MAX_AGE_S seconds old, whichever comes first (by age, only
once MIN_WRITES_BY_AGE writes went out since: a re-take must not cost more than the writes it
guards). One re-take is one discovery of that vendor (its connector's listing calls: a handful, plus one per page of the
largest list), so at the bound it adds a few percent of calls to a large exit; the worst case
is a move the guard sees MAX_WRITES writes or MAX_AGE_S seconds late, and the verification
re-read after the run still finds it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from offboard.engine.sessions import Sessions
from offboard.plan import Inventory

MAX_WRITES = 250
MAX_AGE_S = 300.0
# An exit that writes slowly (one of many sharing a vendor account in a batch) would otherwise
# re-list every five minutes for a handful of writes: by age, only once this many writes went out.
MIN_WRITES_BY_AGE = 50


class Listings:
    """Each vendor's live inventory, re-taken when it is too old to decide ownership."""

    def __init__(self, sessions: Sessions, live: Mapping[str, Inventory],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._sessions = sessions
        self._clock = clock
        self._inventory = dict(live)
        self._taken = {name: clock() for name in live}
        self._writes = dict.fromkeys(live, 0)
        self._lock = threading.Lock()  # each vendor's lane is its own thread
        self.retakes = dict.fromkeys(live, 0)

    def current(self, vendor: str) -> Inventory:
        with self._lock:
            writes = self._writes[vendor]
            stale = writes >= MAX_WRITES or (writes >= MIN_WRITES_BY_AGE
                                              and self._clock() - self._taken[vendor] >= MAX_AGE_S)
        if stale:
            fresh = self._sessions.by_vendor[vendor].discover()
            with self._lock:
                self._inventory[vendor] = fresh
                self._taken[vendor] = self._clock()
                self._writes[vendor] = 0
                self.retakes[vendor] += 1
        return self._inventory[vendor]

    def wrote(self, vendor: str) -> None:
        with self._lock:
            self._writes[vendor] += 1
