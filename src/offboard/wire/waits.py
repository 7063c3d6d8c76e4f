"""Waits the wire sits through — the rate limiter's, a vendor's Retry-After, a backoff before a
retry — told to whoever shows progress, so a person or a log sees why nothing moves.

The wire knows no engine and no screen: it reports each wait here, and a listener registered for
the length of a run (the engine registers its Progress) hears it. A listener is called in the
thread that waits, before the sleep; it must be quick, and one that raises is ignored: showing
progress never fails a vendor call.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

WaitKind = Literal["rate_limit", "retry"]


@dataclass(frozen=True)
class Wait:
    vendor: str  # the vendor's display name
    seconds: float
    kind: WaitKind  # rate_limit: the window is full or the vendor said to wait; retry: backing off
    why: str  # how a person reads it, after "waiting Ns": "for the rate limit", "before retrying (HTTP 503)"

    def describe(self) -> str:
        return f"{self.vendor}: waiting {math.ceil(self.seconds)}s {self.why}"


Listener = Callable[[Wait], None]

_listeners: list[Listener] = []
_lock = threading.Lock()


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Hear every wait while the block runs (in every thread: vendors run in lanes of their own)."""
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)


def report(wait: Wait) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        with contextlib.suppress(Exception):
            listener(wait)
