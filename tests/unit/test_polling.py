"""tests/polling.py's ``until``, and the rule it serves: no test reads the clock."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.polling import until

TESTS = Path(__file__).resolve().parents[1]
CLOCKS = {"time", "monotonic", "perf_counter", "time_ns", "monotonic_ns", "perf_counter_ns"}


def test_until_returns_at_the_first_look_that_sees_it_happen() -> None:
    looks: list[int] = []

    def happened() -> bool:
        looks.append(1)
        return len(looks) == 3

    until(happened, what="the third look", tries=5, step=0)
    assert len(looks) == 3


def test_until_fails_naming_what_never_happened_after_its_tries() -> None:
    looks: list[int] = []
    with pytest.raises(AssertionError, match=r"^the sandbox's DELETE never happened \(4 looks, 0 s apart\): the log$"):
        until(lambda: looks.append(1), what="the sandbox's DELETE", tries=4, step=0, detail=lambda: "the log")
    assert len(looks) == 5  # each try, and one after the last sleep


def clock_reads(source: str) -> list[str]:
    """Where ``source`` reads the clock: ``time.monotonic()`` and the like, or one imported from time."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "time"
                and node.attr in CLOCKS):
            found.append(f"line {node.lineno}: time.{node.attr}")
        if isinstance(node, ast.ImportFrom) and node.module == "time":
            found += [f"line {node.lineno}: from time import {a.name}" for a in node.names if a.name in CLOCKS]
    return found


def test_clock_reads_are_found_however_they_are_spelled() -> None:
    assert clock_reads("import time\ndeadline = time.monotonic() + 60\n") == ["line 2: time.monotonic"]
    assert clock_reads("from time import perf_counter\n") == ["line 1: from time import perf_counter"]
    assert clock_reads('"""time.monotonic() in words"""\nimport time\ntime.sleep(0.1)\n') == []


def test_no_test_reads_the_clock() -> None:
    # Timings belong in bench/; a test waits for an event (tests/polling.py) or runs on a FakeClock.
    reads = {str(p.relative_to(TESTS)): r for p in sorted(TESTS.rglob("*.py")) if (r := clock_reads(p.read_text()))}
    assert reads == {}
