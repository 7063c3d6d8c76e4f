"""The performance benchmark still runs (its figures are the benchmark's business, not a test's):
a tiny exit through it, with the sandbox in its own process, and a plan's cost."""

from __future__ import annotations

import pytest
from bench.performance import ceiling_span, exit_run, huntress, plan_cost

pytestmark = pytest.mark.e2e


def test_the_benchmark_measures_an_exit_and_a_plan() -> None:
    wall, timing, none = exit_run(huntress(20), None)
    assert none is None and timing is not None
    assert timing.calls > 20 and timing.minimum >= 0 and wall > 0  # every agent's DELETE was counted
    seconds, peak, held = plan_cost(100)
    assert seconds > 0 and peak >= held > 0


@pytest.mark.parametrize("limit", [1, 3, 60])
def test_the_ceiling_is_the_earliest_schedule_the_sliding_window_allows(limit: int) -> None:
    """The ratio's minimum: the calls sent as early as "limit requests in any window" lets them
    (the first `limit` at once, then each a window after the one `limit` before it), first to last.
    The even spread it replaced, (calls - limit) / limit windows, let 134 calls at 60 a window look
    possible in 1.23 windows, where the limit allows no fewer than 2."""
    window = 0.6
    for calls in range(1, 400):
        at: list[float] = []
        for k in range(calls):
            at.append(0.0 if k < limit else at[k - limit] + window)
        assert ceiling_span(calls, limit, window) == pytest.approx(at[-1]), calls
    assert ceiling_span(134, 60, 60.0) == 120.0
