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
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from offboard.wire.outlook import Outlook

WaitKind = Literal["rate_limit", "retry"]


@dataclass(frozen=True)
class Wait:
    vendor: str  # the vendor's display name
    seconds: float
    kind: WaitKind  # rate_limit: the window is full or the vendor said to wait; retry: backing off
    why: str  # how a person reads it, after "waiting Ns": "for the rate limit", "before retrying (HTTP 503)"
    # The account's window, for a screen's ETA (the limiter's waits: a run's first call may wait for a
    # window other processes filled, before any call of its own went out)
    outlook: Callable[[], Outlook] | None = field(default=None, compare=False)

    def describe(self) -> str:
        return f"{self.vendor}: waiting {math.ceil(self.seconds)}s {self.why}"


@dataclass(frozen=True)
class Sent:
    """A call went out: where its account's window stands is ``outlook()`` (a screen's ETA reads it
    live, never a model of the window beside it)."""

    vendor: str  # the vendor's display name
    outlook: Callable[[], Outlook]


Listener = Callable[[Wait], None]
SentListener = Callable[[Sent], None]

_listeners: list[tuple[Listener, SentListener | None]] = []
_lock = threading.Lock()


@contextlib.contextmanager
def listening(listener: Listener, sent: SentListener | None = None) -> Iterator[None]:
    """Hear every wait (and with ``sent``, every call sent) while the block runs, in every thread:
    vendors run in lanes of their own."""
    entry = (listener, sent)
    with _lock:
        _listeners.append(entry)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(entry)


def report(event: Wait | Sent) -> None:
    with _lock:
        listeners = list(_listeners)
    for on_wait, on_sent in listeners:
        with contextlib.suppress(Exception):
            if isinstance(event, Wait):
                on_wait(event)
            elif on_sent is not None:
                on_sent(event)


# -- stopping -----------------------------------------------------------------------------------
# The operator's Ctrl-C reaches the main thread only; the vendors' lanes sleep through the rate
# limiter's waits and a vendor's Retry-After in threads of their own. A stop requested here wakes
# every such wait at once: the call it held back is never sent, and the lane stops.

SLICE = 0.2  # seconds: how soon a sleeping lane sees a stop

_stop = threading.Event()


class WaitInterrupted(KeyboardInterrupt):
    """A wait cut short by the operator's Ctrl-C: the call it held back was not sent."""


_thread = threading.local()


def request_stop() -> None:
    _stop.set()


@contextlib.contextmanager
def stopped_by(event: threading.Event) -> Iterator[None]:
    """This thread's waits also end when ``event`` is set (e.g. a page read ahead for a listing its
    reader stopped reading): the call a wait held back is not sent."""
    _thread.stop = event
    try:
        yield
    finally:
        del _thread.stop


def origin() -> int:
    """The thread whose work this thread does: a page read ahead in a client's reader thread is its
    caller's, and a screen that tells exits apart by thread counts its waits and calls there."""
    own: int | None = getattr(_thread, "origin", None)
    return own if own is not None else threading.get_ident()


@contextlib.contextmanager
def working_for(ident: int) -> Iterator[None]:
    _thread.origin = ident
    try:
        yield
    finally:
        del _thread.origin


def _stopped() -> bool:
    own: threading.Event | None = getattr(_thread, "stop", None)
    return _stop.is_set() or (own is not None and own.is_set())


def clear_stop() -> None:
    _stop.clear()


def sleep(seconds: float) -> None:
    """The wire's every wait: as ``time.sleep`` (looked up at each call, so tests can replace it),
    in slices, raising ``WaitInterrupted`` as soon as a stop is requested."""
    remaining = max(0.0, seconds)
    while True:
        if _stopped():
            raise WaitInterrupted
        if remaining <= 0:
            return
        step = min(SLICE, remaining)
        time.sleep(step)
        remaining -= step
