"""The performance benchmark still runs (its figures are the benchmark's business, not a test's):
a tiny exit through it, with the sandbox in its own process, and a plan's cost."""

from __future__ import annotations

import pytest
from bench.performance import exit_run, huntress, plan_cost

pytestmark = pytest.mark.e2e


def test_the_benchmark_measures_an_exit_and_a_plan() -> None:
    wall, timing, none = exit_run(huntress(20), None)
    assert none is None and timing is not None
    assert timing.calls > 20 and timing.minimum >= 0 and wall > 0  # every agent's DELETE was counted
    seconds, peak, held = plan_cost(100)
    assert seconds > 0 and peak >= held > 0
