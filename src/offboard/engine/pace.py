"""How long is left: the one ETA every progress shows (a run, a vendor's lane, an exit of a batch).

The pace so far, waits included, over what remains, and never less than the longest wait still to
sit through: a run held back by a vendor's rate limit says so, rather than "2 seconds left"
beside "waiting 48s for the rate limit".
"""

from __future__ import annotations

from collections.abc import Iterable


def remaining(elapsed: float, moved: int, left: int, waits: Iterable[float] = ()) -> float | None:
    """Seconds left, or None when nothing tells yet (nothing moved and nothing waits).
    ``elapsed``: since the work began (its waits included); ``moved``: what settled since then;
    ``left``: what remains; ``waits``: the seconds each wait still holds back."""
    ahead = [w for w in waits if w > 0]
    if left <= 0:
        return max(ahead, default=0.0)
    pace = elapsed / moved * left if moved > 0 else None
    if pace is None and not ahead:
        return None
    return max([pace or 0.0, *ahead])
