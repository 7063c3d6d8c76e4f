"""Waiting in a test for something another process or thread does, without reading the clock.

A test that waits by a deadline (``time.monotonic() + 60``) leans on the wall clock, which the
project keeps out of tests (timings belong in ``bench/``). ``until`` looks a bounded number of
times, a fixed step apart, so how long it may wait is a count, not a time read; it fails naming
what never happened rather than letting the test go on as if it had.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def until(happened: Callable[[], object], *, what: str, tries: int = 6000, step: float = 0.01,
          detail: Callable[[], str] | None = None) -> None:
    """Return once ``happened()`` is true; look at most ``tries`` times, sleeping ``step`` seconds
    between looks, then fail with ``what`` (and ``detail()``, e.g. a log, read only then)."""
    for _ in range(tries):
        if happened():
            return
        time.sleep(step)
    if happened():  # the last sleep's worth
        return
    raise AssertionError(f"{what} never happened ({tries} looks, {step} s apart)"
                         + (f": {detail()}" if detail else ""))
