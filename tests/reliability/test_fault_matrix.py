"""The fault matrix (bench/fault_matrix.py), one seeded run per fault, in CI: every fault is
really injected, and nothing is acted on twice, lost, broken or leaked."""

from __future__ import annotations

import pytest
from bench.fault_matrix import MUST_BE_ZERO, run_matrix, table

pytestmark = pytest.mark.e2e


def test_every_fault_is_ridden_out_with_nothing_acted_twice_lost_broken_or_leaked() -> None:
    rows = run_matrix(runs=1, agents=6, seed=7)
    report = table(rows)
    for row in rows:
        assert row.faults > 0, f"{row.scenario}: no fault was injected\n{report}"
        for column in MUST_BE_ZERO:
            assert getattr(row, column) == 0, f"{row.scenario}: {column}\n{report}"
        assert not row.notes, f"{row.scenario}: {row.notes}"
    resumed = {r.scenario: r.resumes for r in rows}
    assert resumed["kill -9 mid-run, resumed"] >= 1 and resumed["vendor down, resumed later"] >= 1
