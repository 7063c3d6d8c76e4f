"""A shared budget: another tool uses part of the same Huntress account's limit during the run.
offboard reads the vendor's calls-left header when it is sent, backs off on 429 + Retry-After,
and finishes the exit with no error."""

from __future__ import annotations

from offboard import engine
from offboard.errors import ExitCode
from offboard_huntress.sandbox import CUSTOMER_ORG
from tests.conftest import Harness

LAB = engine.Overrides(preflight="lab")


def test_an_exit_finishes_while_another_client_uses_a_third_of_the_limit(harness: Harness) -> None:
    harness.sandbox.share_budget(1 / 3)
    try:
        with harness.sessions() as s:
            result = engine.apply(engine.make_plan(harness.cfg, s), harness.cfg, s, overrides=LAB)
    finally:
        harness.sandbox.stop_sharing()
    assert result.exit_code == ExitCode.MANUAL_PENDING, result.message
    assert harness.sandbox.agents_of(CUSTOMER_ORG) == [] and result.counts["failed"] == 0
    answered = [r for r in harness.sandbox.requests if not r.path.startswith("/_sandbox")]
    assert answered and all(r.status < 500 for r in answered)


def test_the_sandbox_tells_calls_left_the_way_huntress_was_seen_to(harness: Harness) -> None:
    with harness.sessions() as s:
        reply = s.by_vendor["huntress"].http.get("/v1/actor")  # type: ignore[attr-defined]
    assert reply.headers["x-huntress-api-call-limit"] == "60"
    assert 0 <= int(reply.headers["x-huntress-api-call-remaining"]) < 60
