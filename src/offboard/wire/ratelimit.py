"""A client-side sliding-window limiter: at most N calls in any window of W seconds."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path


class SlidingWindowLimiter:
    """Blocks ``acquire`` until a call fits in the window.

    ``margin`` widens the window a little: the vendor measures arrival times, we
    measure send times, and a slow first request can make the vendor see the
    window as shorter than we did.
    """

    def __init__(
        self,
        max_calls: int,
        window_seconds: float,
        *,
        margin: float = 0.005,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_calls < 1 or window_seconds <= 0:
            raise ValueError("max_calls must be >= 1 and window_seconds > 0")
        self.max_calls = max_calls
        self.window = window_seconds * (1 + margin)
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()
        self._blocked_until = 0.0

    def acquire(self, on_wait: Callable[[float, bool], None] | None = None) -> float:
        """Wait for a free slot and take it; returns the seconds waited. ``on_wait(seconds,
        vendor_said)`` hears each wait before it starts (``vendor_said``: a 429 set it, not the window)."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and now - self._sent[0] >= self.window:
                    self._sent.popleft()
                delay = max(0.0, self._blocked_until - now)
                vendor_said = bool(delay)
                if not delay and len(self._sent) < self.max_calls:
                    self._sent.append(now)
                    return waited
                if not delay:
                    delay = self.window - (now - self._sent[0])
            if on_wait is not None:
                on_wait(delay, vendor_said)
            self._sleep(delay)
            waited += delay

    def completed(self) -> None:
        """The call taken last has its reply: count it from now, not from when it was sent. The
        vendor saw it somewhere in between, so our window then never ends before the vendor's
        (calls of one vendor are sequential, so the last stamp is that call's)."""
        with self._lock:
            if self._sent:
                self._sent[-1] = max(self._sent[-1], self._clock())

    def observe_remaining(self, remaining: int) -> None:
        """The vendor said how many calls its window has left. Fewer than we count means another
        tool is using the same account: its calls are counted as ours from now on (they age out
        a window later), so we slow down before the vendor has to answer 429."""
        with self._lock:
            now = self._clock()
            while self._sent and now - self._sent[0] >= self.window:
                self._sent.popleft()
            others = (self.max_calls - len(self._sent)) - max(0, remaining)
            self._sent.extend([now] * max(0, others))

    def block_for(self, seconds: float) -> None:
        """The vendor said to wait (429 + Retry-After): hold every caller, not just one."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock() + seconds)

    # -- sharing the budget across processes ------------------------------------------
    # `offboard plan` then `offboard apply` a few seconds later draw on the same vendor
    # window; without this, the second process would believe the window is empty.

    def load(self, path: Path) -> None:
        """Adopt the send times another process of ours recorded for this account."""
        try:
            stamps = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # no history, or unreadable: start empty (the vendor's 429 is the backstop)
        if not isinstance(stamps, list):
            return
        wall, mono = time.time(), self._clock()
        with self._lock:
            recent = sorted(mono - (wall - float(t)) for t in stamps if isinstance(t, int | float))
            self._sent = deque(t for t in recent if mono - t < self.window)

    def save(self, path: Path) -> None:
        wall, mono = time.time(), self._clock()
        with self._lock:
            stamps = [wall - (mono - t) for t in self._sent if mono - t < self.window]
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(stamps), encoding="utf-8")
            os.replace(tmp, path)


def budget_path(vendor: str, identity: str) -> Path:
    """Where one vendor account's recent send times are kept (a hash names it, not a key)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "offboard"
    digest = hashlib.sha256(f"{vendor}\0{identity}".encode()).hexdigest()[:24]
    return base / f"ratelimit-{digest}.json"
