"""Who owns what as the vendor lists it: the scope guard's source in ``--trust-listing`` mode only
(by default each write is preceded by a read of its object alone: see ``scope_guard``).

A listing is believed for at most MAX_AGE_S seconds, counted from the moment its discovery
*started* (its first owner read), so no write relies on an owner read older than that: the
listing apply took as it re-read the vendors before the run is believed until it is that old
(its gates and evidence exports count), then re-taken, whatever the number of writes, and so is
every later one. Cost: one discovery of the vendor (its connector's listing calls; for a vendor
paging 500 objects a call: the scope object, one call per 500, and one per other list) every
MAX_AGE_S seconds of writing: about 4 calls every 5 minutes for a small exit, 23 for one of
10,000 agents (under 8 % of a 60-a-minute budget), against one call per write (100 %) by default.
A listing that needs longer than MAX_AGE_S to take cannot keep the promise: the run stops.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from offboard.connectors import Owners, listed_owners
from offboard.engine import collector
from offboard.engine.sessions import Sessions
from offboard.errors import BadInput
from offboard.plan import Inventory

MAX_AGE_S = 300.0
now = time.monotonic  # a test of a whole run may replace it (never the wall clock)


@dataclass(frozen=True)
class Live:
    """Each vendor's inventory as a run's discovery read it, and when each discovery began (``now``)."""

    inventories: Mapping[str, Inventory]
    began: Mapping[str, float]


class Listings:
    """Each vendor's owners as its listing names them, re-taken once its owner reads are MAX_AGE_S
    seconds old."""

    def __init__(self, sessions: Sessions, live: Mapping[str, Inventory],
                 clock: Callable[[], float] | None = None, *, taken: Mapping[str, float] | None = None) -> None:
        """``taken``: when each vendor's discovery of ``live`` started (its oldest owner read), on
        this clock: believed until MAX_AGE_S after that, however long the run's gates and evidence
        exports lasted. A vendor not given: its listing is re-taken before the first write."""
        self._sessions = sessions
        self._clock = clock or (lambda: now())
        self._owners: dict[str, Owners] = {vendor: inventory.owners for vendor, inventory in live.items()}
        self._taken = {vendor: (taken or {}).get(vendor, float("-inf")) for vendor in live}
        self._lock = threading.Lock()  # each vendor's lane is its own thread
        self.retakes = dict.fromkeys(live, 0)

    def current(self, vendor: str) -> tuple[Owners, float]:
        """The vendor's owners as listed, and the listing's age in seconds (at most MAX_AGE_S)."""
        with self._lock:
            age = self._clock() - self._taken[vendor]
        if age >= MAX_AGE_S:
            started = self._clock()
            fresh = listed_owners(self._sessions.by_vendor[vendor])
            age = self._clock() - started
            if age >= MAX_AGE_S:
                raise BadInput(f"--trust-listing: re-taking the {vendor} listing took {age:.0f} s, longer than the "
                               f"{MAX_AGE_S:.0f} s it may be believed; resume without --trust-listing (each object "
                               "is then read alone before its write)")
            with self._lock:
                self._owners[vendor] = fresh
                self._taken[vendor] = started
                self.retakes[vendor] += 1
            collector.freeze_new()
        return self._owners[vendor], age
