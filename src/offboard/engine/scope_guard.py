"""The scope guard: the owner of every object is confirmed immediately before its write.

Two modes, chosen per run and recorded in its audit log (``scope_guard.mode``, at every start
and resume):

- ``object`` (the default): each write is preceded by one read of that object alone
  (``VendorSession.owner_now``, e.g. ``GET`` of the one object by its id), and the write is sent
  only when that read names the exit's owner. Nothing of this run happens between the read and
  the write: they are consecutive calls of the vendor's lane. A listing is never believed, so a
  listing that disagrees with the object's own record changes nothing. Cost: one read per write;
  at a vendor's rate ceiling a write takes two calls of the budget (a vendor allowing 60 a minute: 30
  writes a minute at most).
- ``listing`` (``--trust-listing``): the vendor's listing is believed, re-taken so that no write
  relies on an owner read older than ``listings.MAX_AGE_S`` seconds (the cost is there). An
  object the listing no longer holds is re-read alone before anything is decided. A listing that
  lies about an object is believed in this mode: that is what the option trades for its calls.

Whatever the mode, an object whose owner is not the plan's (another customer's, or one nothing
names) is never written: its action is recorded ``action.skipped`` with both owners, and counts
against "stopped" (verification fails closed on it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from offboard.connectors import ActionResult, VendorSession
from offboard.engine import listings as window
from offboard.engine.listings import Listings
from offboard.plan import Action, Inventory

Mode = Literal["object", "listing"]
OWNER_READS_PER_WRITE = 1  # the default mode's cost: one read of the object before each write


def calls_of(actions: Iterable[Action], *, trust_listing: bool = False) -> int:
    """The API calls ``actions`` cost the vendor: one each, and each removal's owner read before it
    unless --trust-listing (its listings are counted apart). One rule for the batch plan's estimate
    and the progress bar's floor."""
    reads_per_write = 0 if trust_listing else OWNER_READS_PER_WRITE
    return sum(1 + (reads_per_write if a.destructive else 0) for a in actions if a.kind == "api")


@dataclass(frozen=True)
class OwnerSeen:
    """What the guard learnt of an object just before its write."""

    owner: str | None  # as the vendor says now; None: nothing says
    source: str  # where it was learnt, for the audit line
    read: ActionResult | None = None  # the read of the object alone, when one was made
    settled: bool = False  # the read shows nothing is left to send (gone, or its effect in place)


def describe(mode: Mode) -> dict[str, object]:
    """The mode as the run's audit log records it."""
    if mode == "listing":
        return {"mode": "listing", "max_age_s": window.MAX_AGE_S,
                "promise": f"each write's owner comes from the vendor's listing, taken at most "
                           f"{window.MAX_AGE_S:.0f} s before the write (--trust-listing)"}
    return {"mode": "object", "promise": "each write is preceded by a read of its object alone; sent only when "
                                         "that read names the exit's owner"}


class ScopeGuard:
    def __init__(self, mode: Mode, listings: Listings, live: dict[str, Inventory]) -> None:
        self.mode = mode
        self._listings = listings
        self._live = live  # apply's listing: only quoted beside the owner read, never believed by default

    def owner(self, action: Action, session: VendorSession) -> OwnerSeen:
        if self.mode == "listing":
            return self._from_listing(action, session)
        read = session.owner_now(action)
        where = f"{read.http.method} {read.http.path}" if read.http else "a read of the object alone"
        if read.outcome == "unknown":
            return OwnerSeen(None, f"{where}: {read.detail}", read)
        settled = read.outcome == "success" and (read.already_absent or read.owner == action.owner)
        return OwnerSeen(read.owner, where, read, settled=settled)

    def listed_owner(self, action: Action) -> str | None:
        inventory = self._live.get(action.vendor)
        return None if inventory is None else inventory.owner_of(action.target)

    def _from_listing(self, action: Action, session: VendorSession) -> OwnerSeen:
        owners, age = self._listings.current(action.vendor)
        owner = owners.get((action.target.type, action.target.id))
        if owner is not None:
            return OwnerSeen(owner, f"the {action.vendor} listing, taken {age:.0f} s before (--trust-listing)")
        # Gone from the listing: only its own re-read can say whether it is gone or moved.
        read = session.reread(action)
        where = f"{read.http.method} {read.http.path}" if read.http else "a re-read"
        return OwnerSeen(read.owner, f"{where} (no longer listed)", read, settled=read.outcome == "success")
