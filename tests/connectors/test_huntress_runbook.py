"""The Huntress runbook beyond EDR: order, evidence, guarded deletion, partial exits, manual items."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from offboard import engine
from offboard.errors import BadInput, ExitCode
from offboard.proof.audit import read_records, verify_file
from offboard.proof.evidence import EvidenceStore
from offboard_huntress.sandbox import ACCOUNT, CUSTOMER_ORG, NEIGHBOUR_ORG, Fault, HuntressSandbox
from offboard_huntress.steps import owner_of_rule
from tests.conftest import Harness, load, write_config

LAB = engine.Overrides(preflight="lab")


def harness_with(tmp_path: Path, extra: str, **sandbox_args: object) -> Harness:
    return Harness(HuntressSandbox(time_scale=0.005, **sandbox_args), load(write_config(tmp_path, extra=extra)))  # type: ignore[arg-type]


def test_every_evidence_read_happens_before_the_first_write(harness: Harness) -> None:
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        engine.apply(plan, harness.cfg, s, overrides=LAB)
    log = harness.sandbox.requests
    first_write = next(i for i, r in enumerate(log) if r.method in ("DELETE", "PATCH"))
    evidence_paths = ("/v1/signals", "/v1/reports", "/v1/identities", "/v1/invoices", "/_sandbox/files/",
                      "/v1/incident_reports/501/remediations")
    last_read = max(i for i, r in enumerate(log) if r.path.startswith(evidence_paths))
    assert last_read < first_write
    steps = [step.id for step in plan.steps()]
    assert steps == ["confirm-scope", "export-evidence", "remove-endpoint-coverage", "remove-stale-agents",
                     "remove-cloud-integrations", "close-routing-and-automation", "billing-handoff", "closure-note"]


def test_evidence_files_match_their_manifest_and_hold_every_remediation(harness: Harness) -> None:
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        result = engine.apply(plan, harness.cfg, s, overrides=LAB)
    store = EvidenceStore(result.run.path)
    files = store.manifest()["files"]
    assert set(files) == {f"huntress/{n}.json" for n in (
        "organization", "agents", "incident_reports", "signals", "escalations", "reports", "identities",
        "memberships", "invoices")} | {"huntress/reports/601-monthly_summary.pdf",
                                       "huntress/reports/602-monthly_summary.pdf"}
    for rel, entry in files.items():
        assert hashlib.sha256((store.root / rel).read_bytes()).hexdigest() == entry["sha256"]
    assert store.verify() == []
    incidents = json.loads((store.root / "huntress/incident_reports.json").read_text())
    assert {i["organization_id"] for i in incidents} == {CUSTOMER_ORG}  # no neighbour data kept
    big = next(i for i in incidents if i["id"] == 501)
    assert len(big["remediations"]["items"]) == 12  # beyond the 10 the list carries
    agents = json.loads((store.root / "huntress/agents.json").read_text())
    assert len(agents) == 36  # the snapshot was taken before the removals
    pdfs = [r for r in harness.sandbox.requests if r.path.startswith("/_sandbox/files/")]
    assert len(pdfs) == 2 and not any(r.authorized for r in pdfs)  # never our credentials to another host
    (store.root / "huntress/signals.json").write_text("[]")
    assert store.verify() == ["huntress/signals.json"]


def test_a_failed_evidence_export_holds_back_every_removal_until_overridden(harness: Harness) -> None:
    harness.sandbox.faults.append(Fault(method="GET", path_prefix="/v1/signals", status=404, times=10**6))
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        result = engine.apply(plan, harness.cfg, s, overrides=LAB)
    assert result.exit_code == ExitCode.FAILED and "evidence export failed" in result.message
    assert harness.sandbox.writes() == []
    assert result.counts["blocked"] == len([a for a in plan.api_actions() if a.destructive])
    with harness.sessions() as s:
        resumed = engine.resume(result.run.run_id, harness.cfg, s,
                                overrides=engine.Overrides(evidence="signals export is not licensed here"))
    assert resumed.exit_code == ExitCode.FAILED  # removed under the override, but an export did fail
    assert harness.sandbox.agents_of(CUSTOMER_ORG) == []
    events = list(read_records(result.run.audit_path))
    override = next(e for e in events if e["event"] == "evidence.overridden")
    assert override["detail"]["reason"] == "signals export is not licensed here"
    assert verify_file(result.run.audit_path).ok


def test_organization_deletion_is_refused_without_the_typed_name_and_runs_with_it(tmp_path: Path) -> None:
    h = harness_with(tmp_path, "delete_organization = true\n")
    with h.sessions() as s:
        plan = engine.make_plan(h.cfg, s)
        guarded = [a for a in plan.actions() if a.confirm]
        assert [(a.operation, a.confirm) for a in guarded] == [("delete_organization", "Acme Dental")]
        assert plan.steps()[-3].id == "delete-organization"  # technical removal: before billing and closure
        # the cheaper path: one deletion queues every agent's uninstall, so none is planned per agent
        assert not [a for a in plan.actions() if a.operation in ("uninstall_agent", "release_isolation")]
        assert "1 call instead of 37 per-agent call(s)" in plan.steps()[-3].why
        with pytest.raises(BadInput, match="--confirm 'Acme Dental'"):
            engine.apply(plan, h.cfg, s, overrides=LAB)
        with pytest.raises(BadInput, match="does not match"):
            engine.apply(plan, h.cfg, s, overrides=engine.Overrides(preflight="lab", confirm_name="acme dental"))
        assert h.sandbox.writes() == [] and not h.cfg.runs_dir.exists()
        result = engine.apply(plan, h.cfg, s, overrides=engine.Overrides(preflight="lab", confirm_name="Acme Dental"))
    assert result.exit_code == ExitCode.MANUAL_PENDING
    deletes = [(r.path, r.status) for r in h.sandbox.requests if r.method == "DELETE" and "organizations" in r.path]
    assert deletes == [("/v1/organizations/42", 202)]
    assert CUSTOMER_ORG not in h.sandbox.orgs and NEIGHBOUR_ORG in h.sandbox.orgs
    assert len(h.sandbox.agents_of(NEIGHBOUR_ORG)) == 12
    checks = {c.name: c.passed for c in result.checks}
    assert checks["organization is deleted"] is True
    events = list(read_records(result.run.audit_path))
    guard = next(e for e in events if e["event"] == "guard.confirmed")
    assert guard["detail"]["typed"] == "Acme Dental"


@pytest.mark.parametrize(("status", "message"), [(409, "Organization has an active SIEM retention hold"),
                                                  (422, "Organization could not be deleted, contact support")])
def test_a_refused_organization_deletion_is_surfaced_verbatim(tmp_path: Path, status: int, message: str) -> None:
    h = harness_with(tmp_path, "delete_organization = true\n", org_delete_error=(status, message))
    with h.sessions() as s:
        plan = engine.make_plan(h.cfg, s)
        result = engine.apply(plan, h.cfg, s, overrides=engine.Overrides(preflight="lab", yes_guarded=True))
    assert result.exit_code == ExitCode.FAILED
    failed = next(e for e in read_records(result.run.audit_path)
                  if e["event"] == "action.failed" and e["action_id"].startswith("huntress.delete_organization"))
    assert f"HTTP {status}" in failed["detail"]["message"] and message in failed["detail"]["message"]
    assert CUSTOMER_ORG in h.sandbox.orgs


def test_deleting_the_organization_needs_a_whole_exit(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match='delete_organization needs products = "all"'):
        load(write_config(tmp_path, extra='products = ["edr"]\ndelete_organization = true\n'))


def test_an_itdr_only_exit_touches_nothing_else(tmp_path: Path) -> None:
    h = harness_with(tmp_path, 'products = ["itdr"]\n')
    with h.sessions() as s:
        plan = engine.make_plan(h.cfg, s)
        result = engine.apply(plan, h.cfg, s, overrides=LAB)
    writes = [(r.method, r.path) for r in h.sandbox.writes()]
    assert sorted(writes) == [("DELETE", "/v1/unwanted_access_rules/41"), ("DELETE", "/v1/unwanted_access_rules/42")]
    assert len(h.sandbox.agents_of(CUSTOMER_ORG)) == 36 and len(h.sandbox.memberships_of(CUSTOMER_ORG)) == 2
    assert set(h.sandbox.rules) == {43, 44, 45}  # identity-, account- and neighbour-scoped rules stay
    manual = [a.operation for a in plan.actions() if a.kind == "manual"]
    assert "itdr.unmap-tenant" in manual and "evidence.identity-security-assessment" in manual
    assert not any(m.startswith(("sat.", "siem.", "psa.", "api.")) for m in manual)
    assert result.exit_code == ExitCode.MANUAL_PENDING


def test_account_level_memberships_are_never_removed_even_when_listed(harness: Harness) -> None:
    account_member = next(m for m in harness.sandbox.memberships.values() if "organization" not in m)
    # A listing that wrongly includes an account-level membership must not make it a target.
    original = harness.sandbox.memberships_of
    harness.sandbox.memberships_of = lambda org: original(org) + ([account_member] if org else [])  # type: ignore[method-assign]
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        engine.apply(plan, harness.cfg, s, overrides=LAB)
    skipped = [(k.target.type, k.reason) for k in plan.vendor("huntress").skipped]
    assert ("membership", f"belongs to account:{ACCOUNT['id']}, not organization:42 (scope guard)") in skipped
    deleted = sorted(r.path for r in harness.sandbox.writes() if "memberships" in r.path)
    assert deleted == ["/v1/memberships/1", "/v1/memberships/2"]
    assert account_member["id"] in harness.sandbox.memberships


def test_confirm_rules_unknown_item_missing_note_refusal_and_no_double_confirmation(harness: Harness) -> None:
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        run_id = engine.apply(plan, harness.cfg, s, overrides=LAB).run.run_id
        with pytest.raises(BadInput, match=r"is not a manual item.*did you mean huntress\.\S+\?.*status --pending"):
            engine.confirm(run_id, "huntress.nope", "J. Doe", "", harness.cfg, s)
        with pytest.raises(BadInput, match="needs --note recording who approved the Microsoft 365 consent"):
            engine.confirm(run_id, "huntress.itdr.unmap-tenant", "J. Doe", "", harness.cfg, s)
        refused = engine.confirm(run_id, "huntress.itdr.unmap-tenant", "J. Doe", "CTO approved", harness.cfg, s)
        assert not refused.accepted and refused.check is not None and "tenant-acme-m365" in refused.check.detail
        ok = engine.confirm(run_id, "huntress.psa.webhooks", "J. Doe", "none existed", harness.cfg, s)
        assert ok.accepted and ok.check is None
        with pytest.raises(BadInput, match=r"already confirmed by J\. Doe"):
            engine.confirm(run_id, "huntress.psa.webhooks", "J. Doe", "again", harness.cfg, s)
    _, rows = engine.status(run_id, harness.cfg)
    states = {r.action.id: r.state for r in rows}
    assert states["huntress.psa.webhooks"] == "confirmed" and states["huntress.itdr.unmap-tenant"] == "manual-pending"
    assert states[next(a.id for a in plan.actions() if a.operation == "uninstall_agent")] == "verified"


def test_reseller_subscriptions_stop_renewing_only_when_configured_and_only_in_the_account(tmp_path: Path) -> None:
    h = harness_with(tmp_path, "account_id = 7001\nstop_renewing_subscriptions = [5001, 5003]\n")
    with h.sessions() as s:
        plan = engine.make_plan(h.cfg, s)
        renewals = [a for a in plan.actions() if a.operation == "stop_auto_renew"]
        assert [a.target.id for a in renewals] == ["5001"]  # 5003 is another account's
        assert [k.target.id for k in plan.vendor("huntress").skipped if k.target.type == "subscription"] == ["5003"]
        engine.apply(plan, h.cfg, s, overrides=LAB)
    patches = [(r.path, json.loads(r.body)) for r in h.sandbox.writes() if "subscriptions" in r.path]
    assert patches == [("/v1/reseller/subscriptions/5001", {"auto_renew": False})]
    assert h.sandbox.subscriptions[5001]["auto_renew"] is False
    assert h.sandbox.subscriptions[5002]["auto_renew"] is True and h.sandbox.subscriptions[5003]["auto_renew"] is True


def test_without_configured_subscriptions_nothing_touches_billing(harness: Harness) -> None:
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        engine.apply(plan, harness.cfg, s, overrides=LAB)
    assert not any("subscriptions" in r.path for r in harness.sandbox.requests)


def test_an_unattended_run_leaves_the_manual_checklist_in_its_folder(harness: Harness) -> None:
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        result = engine.apply(plan, harness.cfg, s, overrides=LAB)
        checklist = (result.run.path / "manual-checklist.md").read_text()
        manual_ids = [a.id for a in plan.actions() if a.kind == "manual"]
        assert all(f"`{i}`" in checklist for i in manual_ids) and "manual-checklist.md" in result.message
        assert "Record in --note: who approved the Microsoft 365 consent removal" in checklist
        engine.confirm(result.run.run_id, "huntress.psa.webhooks", "J. Doe", "none", harness.cfg, s)
    checklist = (result.run.path / "manual-checklist.md").read_text()
    assert "`huntress.psa.webhooks`" not in checklist and "`huntress.psa.email-routing`" in checklist


def test_an_export_that_failed_then_succeeds_on_resume_releases_the_removals(harness: Harness) -> None:
    harness.sandbox.faults.append(Fault(method="GET", path_prefix="/v1/identities", status=404, times=1))
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        first = engine.apply(plan, harness.cfg, s, overrides=LAB)
        assert first.exit_code == ExitCode.FAILED and harness.sandbox.writes() == []
        resumed = engine.resume(first.run.run_id, harness.cfg, s)  # no override: the export now works
    assert resumed.exit_code == ExitCode.MANUAL_PENDING
    assert harness.sandbox.agents_of(CUSTOMER_ORG) == []
    events = [e["event"] for e in read_records(first.run.audit_path)]
    assert "evidence.overridden" not in events
    assert (first.run.path / "evidence/huntress/identities.json").exists()


def test_organization_rules_sent_as_the_spec_spells_them_are_removed_and_the_neighbours_kept(tmp_path: Path) -> None:
    # The spec's example is {"type": "Organization", ...}: the type's case must not decide ownership.
    h = harness_with(tmp_path, 'products = ["itdr"]\n')
    for rule in h.sandbox.rules.values():
        rule["applied_to"]["type"] = rule["applied_to"]["type"].capitalize()
    with h.sessions() as s:
        plan = engine.make_plan(h.cfg, s)
        engine.apply(plan, h.cfg, s, overrides=LAB)
    deleted = sorted(r.path for r in h.sandbox.writes())
    assert deleted == ["/v1/unwanted_access_rules/41", "/v1/unwanted_access_rules/42"]
    assert set(h.sandbox.rules) == {43, 44, 45}  # identity-, account- and neighbour-scoped rules stay
    skipped = {k.target.id: k.reason for k in plan.vendor("huntress").skipped}
    assert skipped == {"43": f"belongs to identity:300, not organization:{CUSTOMER_ORG} (scope guard)"}


@pytest.mark.parametrize(("kind", "scope_id", "owner"), [
    ("Organization", 42, "organization:42"), ("organization", 42, "organization:42"),
    (" ORGANIZATION", 43, "organization:43"), ("Account", 7001, "account:7001"), ("Identity", 300, "identity:300"),
    ("Organization", None, "unknown"), ("Tenant", 42, "unknown"), ("", 42, "unknown"), (None, 42, "unknown"),
])
def test_a_rules_owner_is_read_without_case_and_unknown_when_unsaid(kind: str | None, scope_id: int | None,
                                                                     owner: str) -> None:
    assert owner_of_rule(kind, scope_id) == owner


def test_billing_comes_after_every_technical_removal_the_organizations_deletion_included(tmp_path: Path) -> None:
    # Runbook: "contact the account manager for billing concerns after technical removal".
    h = harness_with(tmp_path, "account_id = 7001\ndelete_organization = true\nstop_renewing_subscriptions = [5001]\n")
    with h.sessions() as s:
        plan = engine.make_plan(h.cfg, s)
        result = engine.apply(plan, h.cfg, s, overrides=engine.Overrides(preflight="lab", yes_guarded=True))
    assert [step.id for step in plan.steps()] == [
        "confirm-scope", "export-evidence", "remove-cloud-integrations", "close-routing-and-automation",
        "delete-organization", "billing-handoff", "closure-note"]
    assert [a.operation for a in plan.steps()[-2].actions] == ["stop_auto_renew", "billing.account-manager"]
    writes = [(r.method, r.path) for r in h.sandbox.writes()]
    assert writes[-2:] == [("DELETE", "/v1/accounts/7001/organizations/42"),
                           ("PATCH", "/v1/reseller/subscriptions/5001")]
    lines = [(e["event"], (e["action_id"] or "").split(".")[1]) for e in read_records(result.run.audit_path)
             if e["event"] in ("action.succeeded", "manual.pending")
             and e["step"] in ("delete-organization", "billing-handoff", "closure-note")]
    assert lines == [("action.succeeded", "delete_organization"), ("action.succeeded", "stop_auto_renew"),
                     ("manual.pending", "billing"), ("manual.pending", "closure")]


def test_a_partial_exits_billing_reconciles_only_what_it_removed(tmp_path: Path) -> None:
    h = harness_with(tmp_path, 'products = ["itdr"]\n')
    with h.sessions() as s:
        plan = engine.make_plan(h.cfg, s)
        billing = next(a for a in plan.actions() if a.operation == "billing.account-manager")
        assert billing.manual is not None
        assert "itdr" in billing.manual.verify_hint and "agent" not in billing.manual.verify_hint
        run_id = engine.apply(plan, h.cfg, s, overrides=LAB).run.run_id
        refused = engine.confirm(run_id, billing.id, "J. Doe", "AM acknowledged", h.cfg, s)
        assert not refused.accepted and refused.check is not None
        assert "billable_identity_count=5" in refused.check.detail and "agents_count" not in refused.check.detail
        h.sandbox.identities = [i for i in h.sandbox.identities if i["organization"]["id"] != CUSTOMER_ORG]
        h.sandbox.orgs[CUSTOMER_ORG].pop("identity_provider_tenant_id")  # the tenant unmapped at the portal
        accepted = engine.confirm(run_id, billing.id, "J. Doe", "AM acknowledged", h.cfg, s)
    assert accepted.accepted and accepted.check is not None and accepted.check.passed
    assert len(h.sandbox.agents_of(CUSTOMER_ORG)) == 36  # the agents stay: EDR is not part of this exit
    _, rows = engine.status(run_id, h.cfg)
    assert {r.action.id: r.state for r in rows}[billing.id] == "confirmed"


def test_a_whole_exits_billing_waits_for_every_billed_product(harness: Harness) -> None:
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        run_id = engine.apply(plan, harness.cfg, s, overrides=LAB).run.run_id
        refused = engine.confirm(run_id, "huntress.billing.account-manager", "J. Doe", "AM", harness.cfg, s)
    assert not refused.accepted and refused.check is not None
    detail = refused.check.detail
    assert "agents_count=0" in detail and "billable_identity_count=5" in detail and "logs_sources_count=3" in detail
    assert "sat_learner_count=20" in detail
