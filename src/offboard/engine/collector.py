"""The garbage collector kept off a run's lanes.

A run holds tens of thousands of long-lived objects (the plan, each vendor's listing, the audit
log's records). Python's collector walks every one of them on each of its full passes, which an
exit of 10,000 agents triggers every few hundred writes: a pause of 50-200 ms each time, while
the lane sends nothing (at the benchmark's compressed window, 9 of the 14 s a 10,000-agent
exit lost with ``--trust-listing``). What is alive when the lanes start, and each listing re-taken
during them, is moved out of the collector's sight (``gc.freeze``); it is still freed by reference
counting once unused, and handed back to the collector when the run ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def run_objects_frozen() -> Iterator[None]:
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def freeze_new() -> None:
    """A listing just taken lives until the next one: out of the collector's sight too."""
    gc.freeze()
