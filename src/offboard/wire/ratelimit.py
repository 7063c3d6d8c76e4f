"""One vendor account's rate budget: at most N calls in any window of W seconds, shared.

The budget is the account's, not a process's: every limiter of one account, in this process (the
exits of a batch) and in every offboard process on the machine (two `offboard apply` of two
customers), draws on one sliding window kept in a file under the cache folder, read and written
under an OS lock. Within a process, callers are served first come, first served, so exits that
share an account take turns call by call: a small exit is never stuck behind a large one.

The window adapts to other tools on the account (a PSA sync, an RMM): offboard's part of the
limit, the *share*, is cut to what the vendor's calls-left header shows is free, and cut
multiplicatively on a 429; it grows back additively, by a call per window while another client
was seen lately, and by a tenth of the limit per window once none has been (AIMD).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import filelock

from offboard.wire import waits
from offboard.wire.outlook import Outlook

if sys.platform != "win32":  # flock(2) on the budget file itself: one blocking syscall, no polling
    import fcntl

    def _flock(fd: int, exclusive: bool) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_UN)

    NATIVE_LOCK = True
else:  # filelock's lock on a file beside it
    def _flock(fd: int, exclusive: bool) -> None:
        raise OSError("no flock here")

    NATIVE_LOCK = False

OTHERS = ""  # the tag of a call another client made (seen in the vendor's count, not sent by us)
DECREASE = 0.7  # a 429: offboard's share of the window is multiplied by this
QUIET_GROWTH = 0.1  # per window with no other client seen: the share grows by this part of the limit


@dataclass
class Window:
    """The calls counted in the account's window, and how much of it offboard may use."""

    calls: list[list[Any]] = field(default_factory=list)  # [stamp, tag], oldest first; tag OTHERS or ours
    blocked_until: float = 0.0  # the vendor said to wait (429 + Retry-After) until then
    share: float = 1.0  # the part of the limit offboard's calls may take
    share_at: float = 0.0  # when the share last changed (it grows a step per whole window since)
    crowded_at: float = float("-inf")  # when another client was last seen on the account

    def as_json(self) -> dict[str, Any]:
        return {"calls": self.calls, "blocked_until": self.blocked_until, "share": self.share,
                "share_at": self.share_at, "crowded_at": self.crowded_at if self.crowded_at > float("-inf") else None}

    @classmethod
    def from_json(cls, data: Any) -> Window:
        """A budget file as another process left it; anything unexpected reads as an empty window
        (the vendor's 429 is the backstop), never as an error."""
        if isinstance(data, list):  # the format before the window was shared: send times only
            data = {"calls": [[t, OTHERS] for t in data]}
        if not isinstance(data, dict):
            return cls()
        calls = [[float(c[0]), str(c[1])] for c in data.get("calls") or []
                 if isinstance(c, list) and len(c) == 2 and isinstance(c[0], int | float)]

        def num(key: str, default: float) -> float:
            v = data.get(key)
            return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else default

        share = min(1.0, max(0.0, num("share", 1.0)))
        return cls(sorted(calls, key=lambda c: c[0]), num("blocked_until", 0.0), share or 1.0,
                   num("share_at", 0.0), num("crowded_at", float("-inf")))


def _slots(stamps: list[float], cap: int, window: float, now: float, blocked: float) -> tuple[float, ...]:
    """When each of the next ``cap`` calls fits, given the sends already in the window (oldest first)."""
    first = len(stamps) - cap  # the next call waits for the stamp ``cap`` calls before it to age out
    return tuple(max(0.0, blocked - now, (stamps[first + j] + window - now) if first + j >= 0 else 0.0)
                 for j in range(cap))


class _Turns:
    """First come, first served among this process's callers on one account. A caller queued
    behind one that sleeps for the window hears how long that sleep lasts (``on_queue``): its own
    wait is at least as long, and a screen says so rather than showing it silently stuck."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next = 0
        self._serving = 0
        self._abandoned: set[int] = set()
        self._resting: float | None = None  # when the caller at its turn wakes from its wait (its clock)

    @contextlib.contextmanager
    def turn(self, clock: Callable[[], float] = time.monotonic,
             on_queue: Callable[[float], None] | None = None) -> Iterator[None]:
        with self._cond:
            mine = self._next
            self._next += 1
            told: float | None = None
            try:
                while self._serving != mine:
                    if on_queue is not None and self._resting is not None and self._resting != told:
                        told = self._resting
                        if (ahead := told - clock()) > 0:
                            on_queue(ahead)
                    self._cond.wait()
            except BaseException:
                # Ctrl-C reaches a caller queued here: its place is given up, or every caller behind
                # it would wait for a turn nobody will take.
                self._abandoned.add(mine)
                self._pass_on()
                raise
        try:
            yield
        finally:
            with self._cond:
                self._serving += 1
                self._resting = None
                self._pass_on()

    def rest(self, until: float | None) -> None:
        """The caller at its turn sleeps until ``until`` (None: it woke); the queue hears it."""
        with self._cond:
            self._resting = until
            self._cond.notify_all()

    def _pass_on(self) -> None:
        """Skip the places given up, then wake the queue (called holding the condition)."""
        while self._serving in self._abandoned:
            self._abandoned.discard(self._serving)
            self._serving += 1
        self._cond.notify_all()


class _MemoryStore:
    """The window of one limiter alone (tests, and an account no file was given for)."""

    def __init__(self) -> None:
        self.turns = _Turns()
        self._lock = threading.Lock()
        self._window = Window()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Window]:
        with self._lock:
            yield self._window


class _FileStore:
    """One account's window in a file, changed under an OS lock: shared by every limiter of the
    account in this process (one store per file) and by every offboard process on the machine."""

    _stores: ClassVar[dict[str, _FileStore]] = {}
    _stores_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def for_path(cls, path: Path) -> _FileStore:
        key = os.path.abspath(path)
        with cls._stores_lock:
            store = cls._stores.get(key)
            if store is None:
                store = cls._stores[key] = cls(Path(key))
            return store

    def __init__(self, path: Path) -> None:
        self.path = path
        self.turns = _Turns()
        self._thread_lock = threading.Lock()  # one transaction at a time in this process
        self._fallback = Window()
        self._fd: int | None = None  # the budget file, open for the process's life
        # What this process last wrote there, and the window it wrote: read back unchanged (no other
        # process wrote meanwhile), it is taken as is instead of parsed again (twice a call).
        self._wrote: tuple[bytes, Window] | None = None
        # fallback_to_soft=False: a soft lock file would outlive a killed holder.
        self._os_lock = filelock.FileLock(str(path.with_suffix(".lock")), mode=0o600, thread_local=False,
                                          fallback_to_soft=False, preserve_lock_file=True)

    def _lock(self, fd: int) -> None:
        if NATIVE_LOCK:  # taken twice a call: one blocking syscall on the open file, no polling
            _flock(fd, True)
        else:
            self._os_lock.acquire(poll_interval=0.0005)

    def _unlock(self, fd: int) -> None:
        if NATIVE_LOCK:
            _flock(fd, False)
        else:
            self._os_lock.release()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Window]:
        with self._thread_lock:
            try:
                fd = self._open()
                self._lock(fd)
            except OSError:
                # No lockable cache folder: this process keeps its own window (the vendor's 429 is the backstop).
                yield self._private()
                return
            try:
                try:
                    os.lseek(fd, 0, os.SEEK_SET)
                    read = os.read(fd, 1 << 20)
                    if self._wrote is not None and read == self._wrote[0]:
                        window = self._wrote[1]
                        window.calls.sort(key=lambda c: c[0])  # as from_json would have it
                    else:
                        window = Window.from_json(json.loads(read or b"null"))
                except (OSError, ValueError):
                    window = Window()
                self._wrote = None
                yield window
                # Rewritten in place under the lock (a rename costs more than the call it counts, and the
                # window is a minute's worth: a crash mid-write reads back as an empty window).
                data = json.dumps(window.as_json(), separators=(",", ":")).encode()
                with contextlib.suppress(OSError):
                    os.lseek(fd, 0, os.SEEK_SET)
                    os.write(fd, data)
                    os.ftruncate(fd, len(data))
                    self._wrote = (data, window)
            finally:
                self._unlock(fd)

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                               | getattr(os, "O_CLOEXEC", 0), 0o600)
        return self._fd

    def _private(self) -> Window:
        return self._fallback


class SlidingWindowLimiter:
    """Blocks ``acquire`` until a call fits in the account's window and offboard's share of it.

    ``margin`` widens the window a little (0.5 %). Each call is counted from its reply
    (``completed``), after the vendor saw it, so on clocks that run alike our window never ends
    before the vendor's; the margin is for two clocks that do not quite (at the benchmark's x100
    it costs 0.5 % of an exit, at the real limit 0.3 s a minute).
    """

    def __init__(
        self,
        max_calls: int,
        window_seconds: float,
        *,
        margin: float = 0.005,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = waits.sleep,
    ) -> None:
        if max_calls < 1 or window_seconds <= 0:
            raise ValueError("max_calls must be >= 1 and window_seconds > 0")
        self.max_calls = max_calls
        self.window = window_seconds * (1 + margin)
        self._given_clock = clock
        self._clock = clock or time.monotonic
        self._sleep = sleep
        self._store: _MemoryStore | _FileStore = _MemoryStore()
        self._ids = 0
        self._tag = f"{os.getpid()}.{id(self):x}"
        self._last: str | None = None

    def share(self, path: Path) -> None:
        """Draw on the account's budget kept in ``path`` with every other limiter of the account,
        in this process and in every offboard process on the machine. Stamps are wall-clock time
        there (processes share no other clock)."""
        self._store = _FileStore.for_path(path)
        if self._given_clock is None:
            self._clock = time.time

    @property
    def shared_with(self) -> Path | None:
        return self._store.path if isinstance(self._store, _FileStore) else None

    # -- the window ---------------------------------------------------------------------------

    def _prune(self, w: Window, now: float) -> None:
        # A stamp a window or more in the future means the clock went back: it would never age out.
        w.calls = [c for c in w.calls if -self.window < now - c[0] < self.window]
        if w.blocked_until - now > 3600:
            w.blocked_until = 0.0

    def _grow(self, w: Window, now: float) -> None:
        """Additive increase: a step per whole window since the share last changed."""
        if w.share >= 1.0:
            return
        windows = int((now - w.share_at) // self.window) if now >= w.share_at else 0
        if windows < 1:
            return
        quiet = now - w.crowded_at >= self.window
        step = QUIET_GROWTH if quiet else 1.0 / self.max_calls
        w.share = min(1.0, w.share + windows * step)
        w.share_at = now

    def _cap(self, w: Window) -> int:
        return max(1, int(w.share * self.max_calls + 1e-9))

    def acquire(self, on_wait: Callable[[float, bool], None] | None = None) -> str:
        """Wait for a free slot and take it; returns the call's token (for ``completed``).
        ``on_wait(seconds, vendor_said)`` hears each wait before it starts (``vendor_said``: a 429
        or Retry-After set it, not the window)."""
        queued = (lambda seconds: on_wait(seconds, False)) if on_wait is not None else None
        with self._store.turns.turn(self._clock, queued):
            while True:
                with self._store.transaction() as w:
                    now = self._clock()
                    self._prune(w, now)
                    self._grow(w, now)
                    delay = max(0.0, w.blocked_until - now)
                    vendor_said = bool(delay)
                    if not delay:
                        ours = [c[0] for c in w.calls if c[1] != OTHERS]
                        cap = self._cap(w)
                        frees: list[float] = []
                        if len(w.calls) >= self.max_calls:
                            frees.append(w.calls[len(w.calls) - self.max_calls][0] + self.window)
                        if len(ours) >= cap:
                            frees.append(ours[len(ours) - cap] + self.window)
                        if not frees:
                            self._ids += 1
                            token = f"{self._tag}.{self._ids}"
                            w.calls.append([now, token])
                            self._last = token
                            return token
                        delay = max(frees) - now
                if on_wait is not None:
                    on_wait(max(delay, 0.0), vendor_said)
                self._store.turns.rest(self._clock() + max(delay, 0.0))
                try:
                    self._sleep(max(delay, 0.0))
                finally:
                    self._store.turns.rest(None)

    def completed(self, token: str | None = None, *, remaining: int | None = None, throttled: bool = False) -> None:
        """The call has its reply: count it from now, not from when it was sent. The vendor saw it
        somewhere in between, so our window then never ends before the vendor's. What the reply said
        of the window (calls left, a 429) is taken in the same step."""
        token = token or self._last
        with self._store.transaction() as w:
            now = self._clock()
            for c in reversed(w.calls):
                if c[1] == token:
                    c[0] = max(c[0], now)
                    break
            w.calls.sort(key=lambda c: c[0])
            if remaining is not None:
                self._observe(w, now, remaining)
            if throttled:
                self._decrease(w, now)

    def observe_remaining(self, remaining: int) -> None:
        with self._store.transaction() as w:
            self._observe(w, self._clock(), remaining)

    def _observe(self, w: Window, now: float, remaining: int) -> None:
        """The vendor said how many calls its window has left. Fewer than we count means another
        tool is using the account: its calls are counted from now on (they age out a window
        later), and offboard's share is cut to what that leaves, so the next call does not meet a
        429. More than we count is the vendor's window ending before ours: nothing changes."""
        self._prune(w, now)
        counted_others = sum(1 for c in w.calls if c[1] == OTHERS)
        others = (self.max_calls - max(0, remaining)) - (len(w.calls) - counted_others)
        if others <= 0:
            return
        w.crowded_at = now
        if others > counted_others:
            w.calls.extend([[now, OTHERS]] * (others - counted_others))
        room = max(1.0 / self.max_calls, (self.max_calls - others) / self.max_calls)
        if w.share > room:
            w.share = room
            w.share_at = now

    def rate_limited(self) -> None:
        with self._store.transaction() as w:
            self._decrease(w, self._clock())

    def _decrease(self, w: Window, now: float) -> None:
        """The vendor answered 429: someone we could not see took the window. Multiplicative
        decrease of offboard's share."""
        w.crowded_at = now
        w.share = max(1.0 / self.max_calls, w.share * DECREASE)
        w.share_at = now

    def block_for(self, seconds: float) -> None:
        """The vendor said to wait (429 + Retry-After): hold every caller, not just one."""
        with self._store.transaction() as w:
            w.blocked_until = max(w.blocked_until, self._clock() + seconds)

    def current_share(self) -> float:
        with self._store.transaction() as w:
            self._grow(w, self._clock())
            return w.share

    def outlook(self) -> Outlook:
        """When the account's next calls may go, as its window stands now (every offboard process's
        calls on the account in it, and the other clients the vendor's count showed)."""
        with self._store.transaction() as w:
            now = self._clock()
            self._prune(w, now)
            self._grow(w, now)
            stamps = [c[0] for c in w.calls]
            cap = self._cap(w)
            ours = (_slots([c[0] for c in w.calls if c[1] != OTHERS], cap, self.window, now, w.blocked_until)
                    if cap < self.max_calls else ())
            return Outlook(self.window, _slots(stamps, self.max_calls, self.window, now, w.blocked_until), ours)

    def in_window(self) -> int:
        with self._store.transaction() as w:
            self._prune(w, self._clock())
            return len(w.calls)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / "offboard"


def budget_path(vendor: str, identity: str) -> Path:
    """Where one vendor account's window is kept (a hash names it, not a key)."""
    digest = hashlib.sha256(f"{vendor}\0{identity}".encode()).hexdigest()[:24]
    return cache_dir() / f"ratelimit-{digest}.json"

