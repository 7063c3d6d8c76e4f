"""A Huntress EDR exit through the engine against the in-process sandbox."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from pathlib import Path

import httpx
import pytest

from offboard import engine
from offboard.connectors.sandboxing import InProcessTransport
from offboard.errors import BadInput, ExitCode
from offboard.plan import Action, Plan
from offboard.proof.audit import read_records, verify_file
from offboard_huntress.sandbox import CUSTOMER_ORG, NEIGHBOUR_ORG, Fault, HuntressSandbox
from tests.conftest import Harness, load, write_config


def events(run_path: Path) -> list[dict]:  # type: ignore[type-arg]
    return list(read_records(run_path / "audit.jsonl"))


def uninstalls(plan: Plan) -> list[Action]:
    return [a for a in plan.actions() if a.operation == "uninstall_agent"]


def agent_deletes(sandbox: HuntressSandbox, *, landed: bool = True) -> Counter[str]:
    """Uninstall calls per agent path (isolation releases are a different path)."""
    return Counter(r.path for r in sandbox.requests if r.method == "DELETE" and AGENT_PATH.match(r.path)
                   and (not landed or r.status == 204))


AGENT_PATH = re.compile(r"^/v1/agents/\d+$")
LAB = engine.Overrides(preflight="lab")


def test_a_dry_run_plan_makes_no_write_call(harness: Harness) -> None:
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
    methods = {r.method for r in harness.sandbox.requests}
    assert methods == {"GET"}
    assert len(uninstalls(plan)) == 36
    assert len(harness.sandbox.agents_of(CUSTOMER_ORG)) == 36


def test_apply_removes_every_customer_agent_and_leaves_the_neighbour_whole(harness: Harness) -> None:
    neighbour_before = {a["id"] for a in harness.sandbox.agents_of(NEIGHBOUR_ORG)}
    customer = {a["id"] for a in harness.sandbox.agents_of(CUSTOMER_ORG)}
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        result = engine.apply(plan, harness.cfg, s,
                              overrides=engine.Overrides(preflight="isolated host is the lab box"))
    assert result.exit_code == ExitCode.MANUAL_PENDING  # the API work is done; manual items remain
    assert harness.sandbox.agents_of(CUSTOMER_ORG) == []
    assert {a["id"] for a in harness.sandbox.agents_of(NEIGHBOUR_ORG)} == neighbour_before
    assert agent_deletes(harness.sandbox, landed=False) == Counter(f"/v1/agents/{i}" for i in customer)
    log = events(result.run.path)
    kinds = Counter(e["event"] for e in log)
    assert kinds["action.planned"] == len(plan.actions())
    assert kinds["action.succeeded"] == len(plan.api_actions())
    assert kinds["verify.failed"] == 0 and kinds["verify.passed"] >= 38
    assert [e["event"] for e in log][:1] == ["run.started"] and log[-1]["event"] == "run.finished"
    override = next(e for e in log if e["event"] == "preflight.overridden")
    assert override["detail"]["reason"] == "isolated host is the lab box"
    done = next(e for e in log if e["event"] == "action.succeeded" and e["action_id"] == uninstalls(plan)[0].id)
    assert done["http"]["method"] == "DELETE" and done["http"]["status"] == 204 and done["outcome"] == "success"
    assert verify_file(result.run.audit_path).ok
    report = result.run.report_path.read_text()
    assert report.count("| Removed |") >= 36 and "**Overridden** at " in report
    assert "(preflight gates); the operator's reason" in report


def test_preflight_gates_stop_apply_with_exit_4_before_any_removal(harness: Harness) -> None:
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        result = engine.apply(plan, harness.cfg, s)
    assert result.exit_code == ExitCode.PREFLIGHT_BLOCKED
    assert [f.kind for f in result.blocking] == ["open_incident_reports", "isolated_hosts"]
    assert harness.sandbox.deletes() == []
    log = events(result.run.path)
    assert [e["event"] for e in log][-1] == "run.finished" and log[-1]["outcome"] == "failure"
    assert any(e["event"] == "preflight.checked" and e["outcome"] == "failure" for e in log)


def test_an_open_incident_for_the_customer_blocks_but_one_for_the_neighbour_does_not(harness: Harness) -> None:
    harness.sandbox.agents = {k: {**v, "firewall_status": "Enabled"} for k, v in harness.sandbox.agents.items()}
    harness.sandbox.incidents = [i for i in harness.sandbox.incidents
                                 if not (i["organization_id"] == CUSTOMER_ORG and i["status"] == "sent")]
    assert any(i["status"] == "sent" for i in harness.sandbox.incidents)  # the neighbour's is still open
    with harness.sessions() as s:
        assert not any(f.blocking for f in engine.make_plan(harness.cfg, s).vendors[0].findings)
        harness.sandbox.incidents.append({"id": 600, "organization_id": CUSTOMER_ORG, "status": "sent",
                                          "severity": "high", "subject": "HIGH - Incident on ACME-WS-02"})
        blocking = [f for f in engine.make_plan(harness.cfg, s).vendors[0].findings if f.blocking]
    assert [(f.kind, f.count) for f in blocking] == [("open_incident_reports", 1)]


def test_a_stale_plan_is_refused_before_anything_is_written(harness: Harness) -> None:
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        harness.sandbox.agents[5000] = {"id": 5000, "organization_id": CUSTOMER_ORG, "hostname": "ACME-NEW-01",
                                        "platform": "windows", "firewall_status": "Enabled"}
        with pytest.raises(BadInput, match="plan is stale") as refused:
            engine.apply(plan, harness.cfg, s, overrides=engine.Overrides(preflight="x"))
    # It names what changed (issue 22), and nothing that did not.
    said = str(refused.value)
    assert re.search(r"changed since the plan was made \([^)]*\): 1 new: ACME-NEW-01; make a new plan", said), said
    assert harness.sandbox.deletes() == []
    assert not any(p.is_dir() for p in harness.cfg.runs_dir.glob("*"))  # no run folder was made


def test_a_plan_made_for_another_customer_is_refused(harness: Harness, tmp_path: Path) -> None:
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = load(write_config(other_dir, extra=""))
    other = dataclasses.replace(other, core=other.core.model_copy(
        update={"customer": other.customer.model_copy(update={"name": "Globex"})}))
    with harness.sessions() as s, pytest.raises(BadInput) as refused:
        engine.apply(plan, other, s)
    said = str(refused.value)
    assert "customer is now 'Globex' (the plan's: 'Acme Dental')" in said and said.count(" is now ") == 1, said


def test_a_plan_for_the_same_customer_at_another_address_names_the_setting(harness: Harness) -> None:
    """A sandbox restarted on another port (issue 22): the refusal names huntress.base_url, not 'a
    different exit definition (customer ...)' of the very same customer."""
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
    vendor = harness.cfg.vendors["huntress"]
    moved = dataclasses.replace(harness.cfg, vendors={
        "huntress": vendor.model_copy(update={"base_url": "http://127.0.0.1:4999"})})
    with harness.sessions() as s, pytest.raises(BadInput) as refused:
        engine.apply(plan, moved, s)
    said = str(refused.value)
    assert f"huntress.base_url is now 'http://127.0.0.1:4999' (the plan's: '{vendor.base_url}')" in said, said
    assert "different exit definition" not in said and "`offboard plan -o FILE -c " in said


def test_a_plan_applied_twice_is_refused_naming_the_run_to_continue(harness: Harness) -> None:
    """The second apply of one plan: the change is the first run's own work, so the refusal names
    that run and the command that continues it, not only "make a new plan"."""
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        first = engine.apply(plan, harness.cfg, s, overrides=LAB)
    deletes = len(harness.sandbox.deletes())
    with harness.sessions() as s, pytest.raises(BadInput) as refused:
        engine.apply(plan, harness.cfg, s, overrides=LAB)
    said = str(refused.value)
    assert said.startswith(f"plan {plan.plan_id} was applied already (run {first.run.run_id}), and Huntress has "
                           "changed since: "), said
    assert f"continue that run with `offboard apply --resume {first.run.run_id} -c {harness.cfg.path}`" in said, said
    assert len(harness.sandbox.deletes()) == deletes  # nothing sent by the refused apply
    assert [p.name for p in harness.cfg.runs_dir.iterdir() if p.is_dir()] == [first.run.run_id]


class SimulatedCrash(BaseException):
    """Stands for kill -9: nothing after it runs in the engine's normal path."""


class CrashAfterDeletes(httpx.BaseTransport):
    """Lets the Nth DELETE reach the vendor, then 'dies' before the reply is recorded."""

    def __init__(self, inner: httpx.BaseTransport, n: int) -> None:
        self.inner, self.n, self.seen = inner, n, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "DELETE":
            self.seen += 1
            if self.seen == self.n:
                raise SimulatedCrash()
        return response


def test_crash_after_some_deletions_then_resume_removes_each_agent_exactly_once(harness: Harness) -> None:
    customer = {a["id"] for a in harness.sandbox.agents_of(CUSTOMER_ORG)}
    crash = CrashAfterDeletes(InProcessTransport(harness.sandbox.app), n=5)
    with harness.sessions(crash) as s:
        plan = engine.make_plan(harness.cfg, s)
        with pytest.raises(SimulatedCrash):
            engine.apply(plan, harness.cfg, s, overrides=LAB)
    run_id = next(harness.cfg.runs_dir.iterdir()).name
    assert len(harness.sandbox.deletes()) == 5
    with harness.sessions() as s:
        result = engine.resume(run_id, harness.cfg, s)
    assert result.exit_code == ExitCode.MANUAL_PENDING
    deleted = Counter(r.path for r in harness.sandbox.requests if r.method == "DELETE")
    assert set(agent_deletes(harness.sandbox)) == {f"/v1/agents/{i}" for i in customer}
    assert set(deleted.values()) == {1}  # the 5th landed before the crash and was not resent
    log = events(result.run.path)
    assert verify_file(result.run.audit_path).ok
    succeeded = Counter(e["action_id"] for e in log if e["event"] == "action.succeeded")
    assert len(succeeded) == len(plan.api_actions()) and set(succeeded.values()) == {1}
    settled = [e for e in log if e["event"] == "action.succeeded" and e["detail"].get("settled_by") == "re-read"]
    assert len(settled) == 1 and settled[0]["http"]["method"] == "GET" and settled[0]["http"]["status"] == 404
    assert "run.resumed" in {e["event"] for e in log}
    # each action planned once in the log, across the crash, before any other line of it
    planned = Counter(e["action_id"] for e in log if e["event"] == "action.planned")
    assert set(planned) == {a.id for a in plan.actions()} and set(planned.values()) == {1}
    assert all(next(e for e in log if e["action_id"] == a.id)["event"] == "action.planned" for a in plan.actions())


def test_each_actions_planned_line_is_written_as_its_lane_reaches_it(harness: Harness) -> None:
    # The plan is bound to the log from its start (its checksum in run.started); each action's own
    # `action.planned` line comes just before its first other line, not all of them before the first write.
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        result = engine.apply(plan, harness.cfg, s, overrides=LAB)
    log = events(result.run.path)
    assert next(e for e in log if e["event"] == "run.started")["detail"]["plan_checksum"] == plan.checksum
    ours = [e for e in log if e.get("action_id")]
    for n, e in enumerate(ours):
        if e["event"] == "action.planned":
            following = ours[n + 1]
            assert following["action_id"] == e["action_id"] and following["event"] != "action.planned", following
            assert e["detail"] == {"summary": plan.action(e["action_id"]).summary,
                                   "call": plan.action(e["action_id"]).call or "manual"}
    assert Counter(e["event"] for e in log)["action.planned"] == len(plan.actions())


class LoseDeleteReply(httpx.BaseTransport):
    """The DELETE reaches the vendor and lands; its reply is lost on the way back."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner, self.done = inner, False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "DELETE" and not self.done:
            self.done = True
            raise httpx.ReadTimeout("reply lost", request=request)
        return response


def test_a_delete_whose_reply_is_lost_is_reread_not_resent_and_recorded_unknown_then_success(
        harness: Harness) -> None:
    with harness.sessions(LoseDeleteReply(InProcessTransport(harness.sandbox.app))) as s:
        plan = engine.make_plan(harness.cfg, s)
        result = engine.apply(plan, harness.cfg, s, overrides=LAB)
    assert result.exit_code == ExitCode.MANUAL_PENDING
    first = uninstalls(plan)[0]
    assert agent_deletes(harness.sandbox, landed=False)[f"/v1/agents/{first.target.id}"] == 1
    trail = [(e["event"], e["outcome"]) for e in events(result.run.path)
             if e["action_id"] == first.id and e["event"].startswith("action.")]
    assert trail == [("action.planned", None), ("action.started", "unknown"), ("action.unknown", "unknown"),
                     ("action.succeeded", "success")]


def test_a_delete_refused_with_502_is_reread_and_only_then_sent_again(harness: Harness) -> None:
    harness.sandbox.faults.append(Fault(method="DELETE", path_prefix="/v1/agents/", status=502, times=1))
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        result = engine.apply(plan, harness.cfg, s, overrides=LAB)
    assert result.exit_code == ExitCode.MANUAL_PENDING
    first = uninstalls(plan)[0]
    trail = [(r.method, r.status) for r in harness.sandbox.requests if r.path == f"/v1/agents/{first.target.id}"]
    # the scope guard's read of the agent alone, the refused DELETE, its re-read, the DELETE again
    assert trail[:4] == [("GET", 200), ("DELETE", 502), ("GET", 200), ("DELETE", 204)]
    assert harness.sandbox.agents_of(CUSTOMER_ORG) == []


def test_a_vendor_that_stays_down_stops_the_run_with_exit_1_and_the_run_resumes_later(harness: Harness) -> None:
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        harness.sandbox.faults += [Fault(method="DELETE", path_prefix="/v1/agents/", status=503, times=10**6),
                                   Fault(method="GET", path_prefix="/v1/agents/", status=503, times=10**6)]
        result = engine.apply(plan, harness.cfg, s, overrides=LAB)
    assert result.exit_code == ExitCode.FAILED
    assert "Huntress: GET /v1/agents/" in result.message and "--resume" in result.message
    assert len(harness.sandbox.agents_of(CUSTOMER_ORG)) == 36  # nothing landed
    log = events(result.run.path)
    assert log[-1]["event"] == "run.finished" and log[-1]["outcome"] == "failure"

    harness.sandbox.faults.clear()
    with harness.sessions() as s:
        resumed = engine.resume(result.run.run_id, harness.cfg, s)
    assert resumed.exit_code == ExitCode.MANUAL_PENDING
    assert harness.sandbox.agents_of(CUSTOMER_ORG) == []
    landed = agent_deletes(harness.sandbox)
    assert len(landed) == 36 and set(landed.values()) == {1}
    assert verify_file(resumed.run.audit_path).ok


def test_a_plan_survives_a_change_of_tuning_but_not_of_scope(harness: Harness, tmp_path: Path) -> None:
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
    assert plan.end_of_service == "2026-12-31" and plan.approved_by == "J. Doe"
    tuned_dir, other_dir = tmp_path / "tuned", tmp_path / "other"
    tuned_dir.mkdir()
    other_dir.mkdir()
    tuned = load(write_config(tuned_dir, extra="requests_per_minute = 40\n"))
    assert tuned.fingerprint() == harness.cfg.fingerprint()
    write_config(other_dir)
    other_text = (other_dir / "config.toml").read_text().replace("organization_id = 42", "organization_id = 43")
    (other_dir / "config.toml").write_text(other_text)
    assert load(other_dir / "config.toml").fingerprint() != harness.cfg.fingerprint()


class CtrlCOnDelete(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport, n: int) -> None:
        self.inner, self.n, self.seen = inner, n, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            self.seen += 1
            if self.seen == self.n:
                raise KeyboardInterrupt
        return self.inner.handle_request(request)


def test_ctrl_c_is_audited_names_the_run_to_resume_and_the_resume_repeats_nothing(harness: Harness) -> None:
    from offboard.errors import RunInterrupted

    with harness.sessions(CtrlCOnDelete(InProcessTransport(harness.sandbox.app), n=3)) as s:
        plan = engine.make_plan(harness.cfg, s)
        with pytest.raises(RunInterrupted) as info:
            engine.apply(plan, harness.cfg, s, overrides=LAB)
    run_id = info.value.run_id
    assert f"offboard apply --resume {run_id}" in str(info.value) and info.value.exit_code == 130
    log = list(read_records(harness.cfg.runs_dir / run_id / "audit.jsonl"))
    assert log[-1]["event"] == "run.interrupted"
    assert len(harness.sandbox.deletes()) == 2
    with harness.sessions() as s:
        assert engine.resume(run_id, harness.cfg, s).exit_code == ExitCode.MANUAL_PENDING
    landed = agent_deletes(harness.sandbox)
    assert len(landed) == 36 and set(landed.values()) == {1}


def test_an_exit_rides_out_429_and_500_bursts_and_slow_replies(harness: Harness) -> None:
    harness.sandbox.faults += [
        Fault(method="GET", path_prefix="/v1/agents", status=429, times=4, retry_after="0.01", after=2),
        Fault(method="GET", path_prefix="/v1/organizations/", status=500, times=3),
        Fault(method="DELETE", path_prefix="/v1/agents/", status=429, times=3, after=10),
        Fault(method="GET", path_prefix="/v1/incident_reports", status=None, delay=0.05, times=2),
    ]
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        result = engine.apply(plan, harness.cfg, s, overrides=LAB)
    assert result.exit_code == ExitCode.MANUAL_PENDING and result.counts["failed"] == 0
    statuses = Counter(r.status for r in harness.sandbox.requests)
    assert statuses[429] == 7 and statuses[500] == 3
    assert all(f.times == 0 for f in harness.sandbox.faults)
    assert harness.sandbox.agents_of(CUSTOMER_ORG) == []
    landed = agent_deletes(harness.sandbox)
    assert len(landed) == 36 and set(landed.values()) == {1}
