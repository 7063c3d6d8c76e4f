"""Vendors run at once, each in its own order under its own limiter: a two-vendor exit overlaps
them, one vendor going down does not stop the other, and the shared audit chain stays whole."""

from __future__ import annotations

from pathlib import Path

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


def apply(h: HuntressSandbox, b: BlumiraSandbox, cfg: ExitConfig) -> engine.RunResult:
    transports = {"huntress": InProcessTransport(h.app), "blumira": InProcessTransport(b.app)}
    with engine.open_sessions(cfg, transports=transports, creds=DEMO_CREDS) as s:
        return engine.apply(engine.make_plan(cfg, s), cfg, s, overrides=LAB)


def test_both_vendors_work_at_once_and_the_audit_chain_stays_whole(tmp_path: Path) -> None:
    h, b, cfg = two_vendors(tmp_path)
    h.faults.append(Fault(method="DELETE", path_prefix="/v1/agents/", status=None, delay=0.01, times=10**6))
    # Blumira's lane (its evidence: ~60 reads) spans Huntress's removals whatever the machine's load.
    b.faults.append(Fault(method="GET", path_prefix=f"{API_PREFIX}/msp/accounts", status=None, delay=0.01,
                          times=10**6))
    result = apply(h, b, cfg)
    assert result.exit_code == ExitCode.MANUAL_PENDING, result.message
    huntress_writes = [r.at for r in h.requests if r.method == "DELETE"]
    blumira_reads = [r.at for r in b.requests if r.path.startswith(API_PREFIX) and r.at > min(huntress_writes)]
    assert blumira_reads and min(blumira_reads) < max(huntress_writes)  # Blumira did not wait for Huntress
    assert verify_file(result.run.audit_path).ok
    records = list(read_records(result.run.audit_path))
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
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
