"""When a vendor account's next calls may be sent, as its rate limiter's window stands: what a screen
reads for an honest ETA (wire/ratelimit.py makes it; a batch's board reads it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outlook:
    """When the account's next calls may be sent, as its window stands at one moment: what a screen
    needs for an honest ETA (a model of the window, kept beside it, rose at each wait and fell to a
    second with calls left; only the window knows which of its slots free when)."""

    window: float  # seconds
    slots: tuple[float, ...]  # seconds from that moment until each of the next ``limit`` calls fits
    ours: tuple[float, ...] = ()  # the same under offboard's share of the limit (empty: the whole limit)

    @classmethod
    def quiet(cls, limit: int, window: float) -> Outlook:
        """An account nothing has called lately: a window's worth at once."""
        return cls(window, (0.0,) * max(1, limit))

    def seconds_until(self, calls: int) -> float:
        """Seconds until the last of ``calls`` more calls may be sent: each waits for the call a whole
        limit before it to age out of the window (a window's worth a window apart, once the slots
        free now are used)."""
        if calls <= 0:
            return 0.0
        out = 0.0
        for slots in (self.slots, self.ours):
            if slots:
                windows, slot = divmod(calls - 1, len(slots))
                out = max(out, slots[slot] + windows * self.window)
        return out
