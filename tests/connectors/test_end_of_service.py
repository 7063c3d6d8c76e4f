""""Stop sending logs and alerts before the end-of-service date": the plan warns when it is made
late, and the report states the requested date and the date the stop was proven (issue 13, 8)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from offboard.connectors.sandboxing import serve
from offboard.engine import end_of_service_warning
from offboard.proof.model import Proof
from offboard_huntress.sandbox import DEMO_KEY, DEMO_SECRET, HuntressSandbox
from tests.conftest import write_config


@pytest.fixture
def late_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    sandbox = HuntressSandbox(time_scale=0.002)
    with serve(sandbox.app) as url:
        monkeypatch.setenv("OFFBOARD_HUNTRESS_API_KEY", DEMO_KEY)
        monkeypatch.setenv("OFFBOARD_HUNTRESS_API_SECRET", DEMO_SECRET)
        monkeypatch.chdir(tmp_path)

        def make(end: date) -> Path:
            path = write_config(tmp_path, url, window=60 * 0.002)
            path.write_text(path.read_text().replace("end_of_service = 2026-12-31", f"end_of_service = {end}"))
            return path

        yield make


def test_a_plan_made_after_the_end_of_service_warns_and_names_both_dates(cli: Any, late_config: Any) -> None:
    past = date.today() - timedelta(days=9)
    out = cli("plan", "-c", str(late_config(past)), "--detailed-exitcode")
    assert out.code == 10
    assert f"end of service was {past.isoformat()}, 9 day(s) ago" in out.err
    assert "logs and alerts stop before it" in out.err


def test_a_plan_made_in_time_does_not_warn(cli: Any, late_config: Any) -> None:
    out = cli("plan", "-c", str(late_config(date.today() + timedelta(days=3))), "--detailed-exitcode")
    assert out.code == 10 and "end of service" not in out.err


def test_the_warning_starts_the_day_after_the_end_of_service() -> None:
    eos = date(2026, 11, 20)
    assert end_of_service_warning(eos, date(2026, 11, 20)) is None
    assert end_of_service_warning(None, date(2026, 11, 21)) is None
    warning = end_of_service_warning(eos, date(2026, 11, 21))
    assert warning is not None and "1 day(s) ago" in warning


def proof(end_of_service: str, finished_ts: str | None, pending: int = 0) -> Proof:
    from collections import Counter

    return Proof(customer="Acme", run_id="r", plan_id="p", plan_made="-", end_of_service=end_of_service,
                 approved_by="-", ticket="-", monitoring_after_exit="-", started="-",
                 finished=None if finished_ts is None else {"ts": finished_ts, "event": "run.closed",
                                                            "outcome": "success"},
                 events=1, last_hash="h", signature=None, vendors=[], timeline=[],
                 totals=Counter({"pending": pending}), checks_failed=0, overrides=[])


def test_the_report_states_when_the_stop_was_proven_and_how_late() -> None:
    assert proof("2026-11-20", "2026-11-24T10:02:03.000Z").proven_stopped == \
        "2026-11-24 10:02 UTC — 4 day(s) after the requested end of service"
    assert proof("2026-12-31", "2026-11-24T10:02:03.000Z").proven_stopped == "2026-11-24 10:02 UTC"
    assert proof("2026-11-20", "2026-11-24T10:02:03.000Z", pending=1).proven_stopped == "not yet proven"
    assert proof("not set", "2026-11-24T10:02:03.000Z").proven_stopped == "2026-11-24 10:02 UTC"
