"""The paging guard: a listing's pages are believed only while they make sense.

A vendor's paging is hostile input like the rest of its reply. A listing stops being believed,
in one line naming the vendor, the listing and what was wrong (``VendorReplyRefused``, exit 1),
when a page:

- names as the next page one already read (any repeated page token, not only the current one);
- holds exactly the items of a page read before (a new token on every page over the same items);
- is one more than the listing's own totals allow (``Totals``: items or pages it says it has,
  the largest it said, with room for a listing that grows while it is read);
- is past the absolute cap (``ReplyLimits.max_pages``), the last resort for a listing that sends
  new items and no totals forever.

The guard keeps a digest per page, never the pages: memory stays bounded by the cap.
"""

from __future__ import annotations

import hashlib
import math
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from offboard.errors import VendorReplyRefused

# A listing read while it changes (machines enrolling as others are removed) may bring a little more
# than the total it stated: 10 % and one page more are believed, nothing beyond.
GROWTH = 1.1


@dataclass(frozen=True)
class Totals:
    """What a listing says about its own size, where it says it (None: not said)."""

    items: int | None = None
    pages: int | None = None


def count(value: Any) -> int | None:
    """A total as the vendor sent it, when it is a plain non-negative integer (nothing else is believed)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _digest(value: Any) -> str:
    """Equal JSON values, decoded alike, give equal digests. Pickled, not re-encoded as JSON: a page of
    500 agents costs a fifth of the time, and any string a reply decodes to (a lone surrogate
    included) pickles, where a strict JSON encoder would refuse it."""
    return hashlib.sha256(pickle.dumps(value, protocol=5)).hexdigest()


class PageGuard:
    """One listing's pages, checked as they arrive: ``request`` before each page is asked for,
    ``received`` once it has arrived. A page that repeats an earlier one is refused only when it
    names yet another page (a last page may be empty after an empty one)."""

    def __init__(self, vendor: str, call: str, max_pages: int, where: str = "the vendor's config section") -> None:
        self.vendor = vendor
        self.call = call
        self.max_pages = max_pages
        self.where = where
        self.pages = 0
        self.items = 0
        self._requests: dict[str, int] = {}  # each page's request (its token) -> the page it fetched
        self._contents: dict[str, int] = {}  # each page's items -> the page that held them
        self._stated_items: int | None = None
        self._stated_pages: int | None = None
        self._shortest = 0  # the fewest items a non-empty page held: the vendor's page size at most
        self._repeats = ""  # the page just received repeats an earlier one: it must not name another

    def request(self, params: Mapping[str, Any]) -> None:
        """The next page is about to be asked for with ``params``: refused when it would loop or overrun."""
        n = self.pages + 1
        if self._repeats:
            self._refuse(f"{self._repeats}, and still names another page")
        key = _digest(dict(params))
        if key in self._requests:
            self._refuse(f"page {self.pages} names as its next page the one already read as page "
                         f"{self._requests[key]} (a repeated page token)")
        allowed = self.allowed()
        if allowed is not None and n > allowed:
            self._refuse(f"the listing says it holds {self._said()}, yet page {self.pages} names a page {n}")
        if n > self.max_pages:
            self._refuse(f"page {self.pages} still names another page; offboard reads at most {self.max_pages:,} "
                         f"pages of one listing (max_pages in {self.where}; raise it only if the listing is "
                         "genuinely that long)")
        self._requests[key] = n

    def received(self, items: Sequence[Any], totals: Totals | None = None) -> None:
        """A page arrived with ``items`` (and the listing's ``totals``, where it states them)."""
        self.pages += 1
        self.items += len(items)
        if items:
            self._shortest = min(self._shortest, len(items)) if self._shortest else len(items)
        key = _digest(list(items))
        if key in self._contents:
            same = "is empty like" if not items else "holds exactly the items of"
            self._repeats = f"page {self.pages} {same} page {self._contents[key]}"
        else:
            self._contents[key] = self.pages
        if totals is not None:
            if totals.items is not None:
                self._stated_items = max(self._stated_items or 0, totals.items)
            if totals.pages is not None:
                self._stated_pages = max(self._stated_pages or 0, totals.pages)

    def allowed(self) -> int | None:
        """The most pages the listing's own totals allow (None: it states none)."""
        bounds = []
        if self._stated_pages is not None:
            bounds.append(self._stated_pages)
        if self._stated_items is not None and (self._shortest or self._stated_items == 0):
            bounds.append(math.ceil(self._stated_items / self._shortest) if self._shortest else 1)
        if not bounds:
            return None
        return math.ceil(min(bounds) * GROWTH) + 1

    def _said(self) -> str:
        said = []
        if self._stated_items is not None:
            said.append(f"{self._stated_items:,} items")
        if self._stated_pages is not None:
            said.append(f"{self._stated_pages:,} pages")
        return " in ".join(said)

    def _refuse(self, why: str) -> None:
        raise VendorReplyRefused(self.vendor, self.call, f"the vendor's reply pages without end: {why}; offboard "
                                 f"stopped after {self.pages:,} pages ({self.items:,} items): try again later or "
                                 "ask the vendor")
