"""bench.lane's stretches: where an exit's time went, against its calls at the vendor's rate."""

from __future__ import annotations

from typing import Any

import pytest
from bench.lane import stretches

from offboard.connectors.sandboxing import SandboxBase


def call(method: str, path: str, arrived: float, took: float = 0.002) -> dict[str, Any]:
    # the sandbox's clock is never 0 at a counted call: 0 means the rate window did not count it
    return {"method": method, "path": path, "arrived": 100 + arrived, "at": 100 + arrived + took}


def test_an_exit_is_split_at_its_first_and_last_write_each_stretch_against_its_calls_at_the_rate() -> None:
    log = [call("GET", "/v1/organizations/42", 0.0), call("GET", "/v1/agents", 0.05, took=0.02),
           call("GET", f"{SandboxBase.CONTROL}log", 0.06),  # the sandbox's own: not a vendor call
           call("GET", "/v1/agents", 0.40),  # the start's CPU before it: 0.3 s with nothing sent
           *(call("DELETE", f"/v1/agents/{n}", 0.5 + n * 0.01) for n in range(6)),
           call("GET", "/v1/agents", 0.58),  # a listing re-taken between two writes
           call("DELETE", "/v1/agents/9", 0.6),
           call("GET", "/v1/organizations/42", 0.7),
           {"method": "GET", "path": "/v1/agents", "arrived": 0.0, "at": 100.8}]
    start, writes, tail = stretches(log, limit=60, window=0.6)  # a call every 10 ms at the rate
    assert (start.calls, writes.calls, tail.calls) == (3, 8, 1)  # one the window did not count (arrived 0) is not
    assert start.seconds == pytest.approx(0.5) and start.at_ceiling == pytest.approx(0.03)
    assert writes.seconds == pytest.approx(0.602 - 0.5) and writes.at_ceiling == pytest.approx(0.08)
    assert tail.seconds == pytest.approx(0.702 - 0.602) and tail.lost == pytest.approx(0.1 - 0.01)


def test_a_listing_without_a_write_is_one_stretch() -> None:
    (only,) = stretches([call("GET", "/v1/agents", 1.0), call("GET", "/v1/agents", 1.5)], limit=60, window=60.0)
    assert only.calls == 2 and only.seconds == pytest.approx(0.502) and only.at_ceiling == pytest.approx(2.0)
