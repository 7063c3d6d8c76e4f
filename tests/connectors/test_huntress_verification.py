"""Huntress verification fails closed: "stopped" is proven only by the vendor listing nothing of the
customer's under its organization. What it lists there that offboard cannot attribute is never
written to, counts against the stop, and is named in the check and the report."""

from __future__ import annotations

from pathlib import Path

from offboard import engine
from offboard.errors import ExitCode
from offboard.proof.audit import read_records
from offboard_huntress.sandbox import CUSTOMER_ORG, HuntressSandbox
from offboard_huntress.sandbox_examples import EXAMPLES
from tests.conftest import Harness, load, write_config

LAB = engine.Overrides(preflight="lab", yes_guarded=True)


def with_strays(sandbox: HuntressSandbox) -> None:
    """One agent, one membership and one rule, listed under the customer's organization, whose
    replies do not say whose they are (valid by the spec, which makes no field required)."""
    sandbox.strays["agents"].append({k: v for k, v in {**EXAMPLES["Agent"], "id": 99001,
                                                        "hostname": "ACME-GHOST"}.items() if k != "organization_id"})
    sandbox.strays["memberships"].append({"id": 99002, "permissions": "Admin",
                                          "user": {"id": 77, "email": "ghost@acme.example", "name": "ghost"}})
    sandbox.strays["unwanted_access_rules"].append({**EXAMPLES["UnwantedAccessRule"], "id": 99003,
                                                    "applied_to": {"type": "Organization", "name": "Acme Dental"},
                                                    "country_code": "CU"})


def test_an_object_whose_owner_is_unknown_is_never_touched_and_keeps_the_exit_from_passing(harness: Harness) -> None:
    with_strays(harness.sandbox)
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        result = engine.apply(plan, harness.cfg, s, overrides=LAB)
        later = engine.verify_run(None, s)
    assert not any("9900" in r.path for r in harness.sandbox.writes())  # never written to
    assert harness.sandbox.agents_of(CUSTOMER_ORG) == []  # everything attributable was removed
    skipped = {k.target.id: k.reason for k in plan.vendor("huntress").skipped}
    assert {"99001", "99002", "99003"} <= set(skipped)
    assert all(skipped[i].startswith("owner unknown") for i in ("99001", "99002", "99003"))
    assert result.exit_code == ExitCode.FAILED  # the service is not proven stopped
    for checks in (result.checks, later):
        failed = {c.name: c.detail for c in checks if not c.passed}
        assert "ACME-GHOST" in failed["no agent listed for the organization"]
        assert "owner unknown, counted as not stopped" in failed["no agent listed for the organization"]
        assert "ghost@acme.example" in failed["no membership listed for the organization"]
        assert "unauthorized country CU" in failed["no organization-scoped ITDR rule listed"]
    report = result.run.report_path.read_text()
    assert "ACME-GHOST" in report and "ghost@acme.example" in report
    failed_lines = [e for e in read_records(result.run.audit_path) if e["event"] == "verify.failed"]
    assert any("ACME-GHOST" in e["detail"]["result"] for e in failed_lines)


def test_another_scopes_objects_listed_there_are_named_and_left_as_the_plan_left_them(tmp_path: Path) -> None:
    h = Harness(HuntressSandbox(time_scale=0.005), load(write_config(tmp_path, extra='products = ["itdr"]\n')))
    with h.sessions() as s:
        engine.apply(engine.make_plan(h.cfg, s), h.cfg, s, overrides=LAB)
        checks = engine.verify_run(None, s)
    rules = next(c for c in checks if c.name == "no organization-scoped ITDR rule listed")
    assert rules.passed  # the identity's rule is not the organization's: named, not counted
    assert "another scope's, left untouched: expected country PT (identity:300)" in rules.detail
    assert not any(c.name == "no agent listed for the organization" for c in checks)  # EDR is not in scope
