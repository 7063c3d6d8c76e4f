"""Vendors run at once, each in its own order under its own limiter: a two-vendor exit overlaps
them, one vendor going down does not stop the other, and the shared audit chain stays whole."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from offboard import engine
from offboard.config import ExitConfig
from offboard.connectors.sandboxing import InProcessTransport
from offboard.errors import ExitCode
from offboard.plan import read_plan
from offboard.proof.audit import read_records, verify_file
from offboard_blumira.sandbox import API_PREFIX, BlumiraSandbox
from offboard_huntress.sandbox import CUSTOMER_ORG, Fault, HuntressSandbox
from tests.conftest import DEMO_CREDS, FAST, blumira_section, load, write_config

LAB = engine.Overrides(preflight="lab")


def two_vendors(tmp_path: Path) -> tuple[HuntressSandbox, BlumiraSandbox, ExitConfig]:
    h, b = HuntressSandbox(time_scale=FAST), BlumiraSandbox(time_scale=FAST)
    return h, b, load(write_config(tmp_path, blumira=blumira_section()))


class Calls:
    """One log of every call both vendors received, in the order they arrived (no clock)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()

    def transport(self, vendor: str, inner: httpx.BaseTransport) -> httpx.BaseTransport:
        calls = self

        class Logged(httpx.BaseTransport):
            def handle_request(self, request: httpx.Request) -> httpx.Response:
                with calls.lock:
                    calls.seen.append((vendor, request.method, request.url.path))
                return inner.handle_request(request)

        return Logged()


def apply(h: HuntressSandbox, b: BlumiraSandbox, cfg: ExitConfig, calls: Calls | None = None) -> engine.RunResult:
    calls = calls or Calls()
    transports = {"huntress": calls.transport("huntress", InProcessTransport(h.app)),
                  "blumira": calls.transport("blumira", InProcessTransport(b.app))}
    with engine.open_sessions(cfg, transports=transports, creds=DEMO_CREDS) as s:
        return engine.apply(engine.make_plan(cfg, s), cfg, s, overrides=LAB)


def test_both_vendors_work_at_once_and_the_audit_chain_stays_whole(tmp_path: Path) -> None:
    h, b, cfg = two_vendors(tmp_path)
    h.faults.append(Fault(method="DELETE", path_prefix="/v1/agents/", status=None, delay=0.01, times=10**6))
    # Blumira's lane (its evidence: ~60 reads) spans Huntress's removals whatever the machine's load.
    b.faults.append(Fault(method="GET", path_prefix=f"{API_PREFIX}/msp/accounts", status=None, delay=0.01,
                          times=10**6))
    calls = Calls()
    result = apply(h, b, cfg, calls)
    assert result.exit_code == ExitCode.MANUAL_PENDING, result.message
    deletes = [i for i, (vendor, method, _) in enumerate(calls.seen) if vendor == "huntress" and method == "DELETE"]
    between = [c for c in calls.seen[deletes[0]:deletes[-1]] if c[0] == "blumira"]
    assert between  # Blumira's calls arrived between Huntress's first and last removal: it did not wait
    assert verify_file(result.run.audit_path).ok
    records = list(read_records(result.run.audit_path))
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    lanes = [r["vendor"] for r in records if r["event"] == "action.started"]
    assert lanes != sorted(lanes, key=lanes.index)  # the log interleaves the two lanes' actions
    for vendor in ("huntress", "blumira"):  # each vendor's own order is the plan's
        started = [r["action_id"] for r in records if r["event"] == "action.started" and r["vendor"] == vendor]
        planned = [a.id for a in read_plan(result.run.plan_path).actions()
                   if a.vendor == vendor and a.id in started]
        assert started == planned


def test_a_vendor_that_stays_down_does_not_stop_the_other(tmp_path: Path) -> None:
    h, b, cfg = two_vendors(tmp_path)
    h.faults.append(Fault(method="DELETE", path_prefix="/v1/agents/", status=503, times=10**6))
    h.faults.append(Fault(method="GET", path_prefix="/v1/agents/", status=503, times=10**6))
    result = apply(h, b, cfg)
    assert result.exit_code == ExitCode.FAILED and "Huntress" in result.message and "resume" in result.message
    # Blumira's lane finished its reads and evidence, then stopped at "notify Blumira first"
    records = list(read_records(result.run.audit_path))
    assert [r["vendor"] for r in records if r["event"] == "vendor.held"] == ["blumira"]
    assert (result.run.path / "evidence" / "blumira" / "findings.json").exists()
    assert "wh-1" in b.webhooks
    assert len(h.agents_of(CUSTOMER_ORG)) == 36
    assert verify_file(result.run.audit_path).ok
