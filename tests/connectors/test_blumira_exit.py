"""A Blumira sub-account exit against the in-process sandbox: the document's order, the calls
each step makes, the neighbour never touched or listed, manual items checked by API, the
last-administrator guard, feature detection with a manual fallback."""

from __future__ import annotations

import json
from collections import Counter
from email import message_from_bytes

import httpx
import pytest

from offboard import engine
from offboard.connectors import Check
from offboard.connectors.sandboxing import InProcessTransport
from offboard.engine import GuideAnswer
from offboard.errors import BadInput, ExitCode
from offboard.plan import Action
from offboard.proof.audit import read_records, verify_file
from offboard_blumira.sandbox import API_PREFIX, CUSTOMER_ACCOUNT, KEEP_USER, NEIGHBOUR_ACCOUNT, BlumiraSandbox
from tests.conftest import NOTIFY, BlumiraHarness, past_the_notification
from tests.connectors.blumira_unknowns import SETTLED_FIELD, settle_dispatch

ORDER = ["notify-blumira", "export-evidence", "remove-sensors", "remove-cloud-connectors", "remove-agent-devices",
         "delete-scheduled-reports", "remove-users", "remove-webhooks", "support-confirmation"]
ACCT = f"{API_PREFIX}/msp/accounts/{CUSTOMER_ACCOUNT}"


def api_paths(sandbox: BlumiraSandbox) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in sandbox.requests if r.path.startswith(API_PREFIX)]


def test_plan_follows_the_documents_order_reads_only_and_never_lists_the_neighbour(blumira: BlumiraHarness) -> None:
    with blumira.sessions() as s:
        plan = engine.make_plan(blumira.cfg, s)
    vp = plan.vendor("blumira")
    assert [st.id for st in vp.steps] == ORDER
    calls = api_paths(blumira.sandbox)
    assert {m for m, _ in calls} == {"GET"}  # a dry run changes nothing
    assert all(NEIGHBOUR_ACCOUNT not in p for _, p in calls)
    assert ("GET", f"{API_PREFIX}/msp/accounts") not in calls  # discovery reads the one sub-account directly
    # the neighbour's webhook and the MSP-wide one are not even named in the plan
    text = plan.model_dump_json()
    assert "Bright Smiles" not in text and "All accounts" not in text
    manual_ids = [a.id for a in plan.actions() if a.kind == "manual"]
    assert manual_ids == ["blumira.notify.sent", "blumira.sensors.remove", "blumira.cloud-connectors.remove",
                          "blumira.agents.remove-devices", "blumira.agents.remove-keys",
                          "blumira.reports.delete-scheduled", "blumira.users.remove", "blumira.support.confirmation"]
    users = plan.action("blumira.users.remove")
    assert users is not None and "frontdesk@acme.example" in users.summary and KEEP_USER in users.summary
    assert [a.call for a in plan.api_actions() if a.destructive] == ["DELETE /msp/webhooks/wh-1"]
    # every manual item says where to click and what done looks like
    for a in plan.actions():
        if a.kind == "manual":
            assert a.manual is not None and a.manual.portal_path and a.manual.done_when
    devices = plan.action("blumira.agents.remove-devices")
    assert devices is not None and devices.manual is not None
    assert "Blumira Agent > Devices > Device details" in devices.manual.portal_path


def test_unattended_apply_makes_each_steps_calls_in_order_and_stops_at_the_manual_items(
        blumira: BlumiraHarness) -> None:
    with blumira.sessions() as s:
        plan = engine.make_plan(blumira.cfg, s)
        blumira.sandbox.requests.clear()
        held = engine.apply(plan, blumira.cfg, s)
        # Notify first: reads and the evidence export run, then nothing changes until a person
        # confirms the email was sent.
        assert held.exit_code == ExitCode.MANUAL_PENDING, held.message
        assert [a.id for a in held.pending] == [NOTIFY]
        assert [c for c in api_paths(blumira.sandbox) if c[0] != "GET"] == []
        assert "wait for blumira.notify.sent" in held.message and "--resume" in held.message
        assert [r["action_id"] for r in read_records(held.run.audit_path) if r["event"] == "vendor.held"] == [NOTIFY]
        checklist = (held.run.path / "manual-checklist.md").read_text()
        assert NOTIFY in checklist
        engine.confirm(held.run.run_id, NOTIFY, "J. Doe", "sent 09:00, ticket 4711", blumira.cfg, s)
        result = engine.resume(held.run.run_id, blumira.cfg, s)
    assert result.exit_code == ExitCode.MANUAL_PENDING, result.message
    assert result.pending[0].id == "blumira.sensors.remove"
    calls = api_paths(blumira.sandbox)
    assert all(NEIGHBOUR_ACCOUNT not in p for _, p in calls)
    writes = [c for c in calls if c[0] != "GET"]
    assert writes == [("DELETE", f"{API_PREFIX}/msp/webhooks/wh-1")]  # only the hook limited to Acme
    first_write = calls.index(writes[0])
    for path in (f"{ACCT}/findings", f"{ACCT}/agents/devices", f"{ACCT}/agents/keys", f"{ACCT}/users",
                 f"{ACCT}/detection-rules"):
        assert calls.index(("GET", path)) < first_write  # evidence before any teardown
    evidence = [p for _, p in calls if p.endswith("/evidence") or p.endswith("/comments")]
    assert len(evidence) == 2 * 25  # every finding's evidence and comments
    assert set(blumira.sandbox.webhooks) == {"wh-2", "wh-3"}  # the neighbour's and the MSP-wide hook remain

    run = result.run.path
    files = json.loads((run / "evidence" / "manifest.json").read_text())["files"]
    assert {"blumira/findings.json", "blumira/devices.json", "blumira/keys.json", "blumira/users.json",
            "blumira/detection_rules.json", "blumira/account.json", "blumira/webhooks.json",
            "blumira/blumira-exit-request.eml"} <= set(files)
    findings = json.loads((run / "evidence" / "blumira" / "findings.json").read_text())
    assert len(findings) == 25 and all(f["evidence"]["rows"] and f["comments"] for f in findings)
    hooks = json.loads((run / "evidence" / "blumira" / "webhooks.json").read_text())
    assert [h["id"] for h in hooks] == ["wh-1"]  # other customers' endpoints are not copied into this exit
    checklist = (run / "manual-checklist.md").read_text()
    assert "Settings > Sensors > View details" in checklist and "Settings > Reporting > Scheduled Reports" in checklist
    assert "Checked by API on confirm: the API lists no agent device" in checklist
    order = [r["step"] for r in read_records(result.run.audit_path) if r["event"] in ("action.started",
                                                                                        "manual.pending")]
    assert [s for i, s in enumerate(order) if s not in order[:i]] == ORDER


def test_notification_draft_fills_every_field_of_the_documents_template(blumira: BlumiraHarness) -> None:
    blumira.extra = ('account_moves_to = "msp"\nincoming_msp_contact = "Nia <nia@next-msp.example>"\n'
                     'end_client_contact = "Ada <it-admin@acme.example>"\n')
    with blumira.sessions() as s:
        plan = engine.make_plan(blumira.cfg, s)
        result = engine.apply(plan, blumira.cfg, s)
    raw = (result.run.path / "evidence" / "blumira" / "blumira-exit-request.eml").read_bytes()
    msg = message_from_bytes(raw)
    assert msg["To"] == "support@blumira.com"
    assert msg["Cc"] == "msp@blumira.com, Nia <nia@next-msp.example>, Ada <it-admin@acme.example>"
    body = msg.get_payload()
    assert isinstance(body, str)
    for line in ("Organization: Acme Dental", "Current Blumira Edition: PRO",
                 "End-of-service date: 2026-12-31", "Is the account moving? yes — to another MSP",
                 "Incoming MSP contact (copied): Nia <nia@next-msp.example>", "De-provisioning complete? no",
                 "Okay to delete all account data? no (the account moves)", "Our reference: PSA-4711"):
        assert line in body


def test_last_administrator_guard_refuses_a_self_managed_move_that_keeps_no_administrator(
        blumira: BlumiraHarness) -> None:
    blumira.extra = 'account_moves_to = "self"\nnew_administrators = ["Ada <it-admin@acme.example>"]\n'
    blumira.sandbox.users["u-1"]["org_roles"] = [{"role_id": 40, "role_name": "responder"}]  # Ada is no admin now
    with blumira.sessions() as s, pytest.raises(BadInput) as err:
        engine.make_plan(blumira.cfg, s)
    assert "no Administrator would remain" in str(err.value) and "former-it@acme.example" in str(err.value)
    assert "keep_users" in str(err.value)
    blumira.sandbox.users["u-1"]["org_roles"] = [{"role_id": 10, "role_name": "Administrator"}]
    with blumira.sessions() as s:
        plan = engine.make_plan(blumira.cfg, s)  # Ada, kept, is an Administrator: the plan is made
    users = plan.action("blumira.users.remove")
    assert users is not None and "former-it@acme.example" in users.summary and KEEP_USER not in users.summary.split(
        "(keep")[0]


class PortalGuide:
    """A technician in guided mode: does the portal work (in the sandbox), then says done."""

    by = "J. Doe"

    def __init__(self, sandbox: BlumiraSandbox, leave_devices_first: int = 0) -> None:
        self.sandbox = sandbox
        self.leave = leave_devices_first
        self.asked: list[tuple[str, str | None]] = []

    def ask(self, action: Action, refused: Check | None) -> GuideAnswer:
        self.asked.append((action.id, refused.detail if refused else None))
        leave = self.leave if action.operation == "agents.remove-devices" and refused is None else 0
        params = {"leave": str(leave)}
        if action.kind == "api":
            params["target"] = action.target.id
        with httpx.Client(transport=InProcessTransport(self.sandbox.app), base_url="http://sandbox") as c:
            c.post(f"/_sandbox/portal/{action.operation}", params=params)
        return GuideAnswer(done=True, note=f"{action.operation}: done in the portal")


def test_guided_mode_records_each_confirmation_and_refuses_a_claim_the_device_list_contradicts(
        blumira: BlumiraHarness) -> None:
    guide = PortalGuide(blumira.sandbox, leave_devices_first=1)
    with blumira.sessions() as s:
        plan = engine.make_plan(blumira.cfg, s)
        result = engine.apply(plan, blumira.cfg, s, guide=guide)
    assert result.exit_code == ExitCode.OK, result.message
    devices = [refused for aid, refused in guide.asked if aid == "blumira.agents.remove-devices"]
    assert devices[0] is None and devices[1] is not None and "lists 1 device(s): ACME-PC00" in devices[1]
    records = list(read_records(result.run.audit_path))
    rejected = [r for r in records if r["event"] == "manual.rejected"]
    assert len(rejected) == 1 and rejected[0]["action_id"] == "blumira.agents.remove-devices"
    assert "the vendor still shows" in rejected[0]["detail"]["why"]
    confirmed = {r["action_id"]: r["detail"] for r in records if r["event"] == "manual.confirmed"}
    assert len(confirmed) == 8 and all(d["by"] == "J. Doe" and d["mode"] == "guided" for d in confirmed.values())
    assert {a for a, d in confirmed.items() if d["verified_by_api"]} == {
        "blumira.agents.remove-devices", "blumira.agents.remove-keys", "blumira.users.remove"}
    passed = [r for r in records if r["event"] == "verify.passed" and r.get("action_id") == "blumira.users.remove"]
    assert passed and "all in keep_users" in passed[0]["detail"]["result"]
    assert verify_file(result.run.audit_path).ok
    # the neighbour's devices and users were never touched
    assert len(blumira.sandbox.of(blumira.sandbox.devices, NEIGHBOUR_ACCOUNT)) == 5
    assert [u["email"] for u in blumira.sandbox.of(blumira.sandbox.users, CUSTOMER_ACCOUNT)] == [KEEP_USER]


def test_uninstall_action_is_used_only_when_the_catalog_offers_it_and_the_dispatch_body_is_settled(
        blumira: BlumiraHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    settle_dispatch(monkeypatch, blumira.sandbox)
    with blumira.sessions() as s:
        plan = engine.make_plan(blumira.cfg, s)
        blumira.sandbox.requests.clear()
        result = past_the_notification(blumira.cfg, plan, s)
    finding = next(f for f in plan.vendor("blumira").findings if f.kind == "agent_uninstall_by_api")
    assert "offers 'uninstall'" in finding.detail
    posts = [r for r in blumira.sandbox.requests if r.method == "POST" and r.path.endswith("/actions")]
    assert len(posts) == 8 and all(json.loads(r.body) == {SETTLED_FIELD: "uninstall"} for r in posts)
    assert all(f"{ACCT}/agents/devices/" in r.path for r in posts)
    assert blumira.sandbox.of(blumira.sandbox.devices, CUSTOMER_ACCOUNT) == []
    assert result.counts["succeeded"] == 9  # 8 uninstalls and the webhook
    assert len(blumira.sandbox.of(blumira.sandbox.devices, NEIGHBOUR_ACCOUNT)) == 5  # the neighbour's untouched
    assert all(NEIGHBOUR_ACCOUNT not in r.path for r in blumira.sandbox.requests)


def test_catalog_refused_to_msp_credentials_means_devices_stay_a_manual_item(blumira: BlumiraHarness) -> None:
    blumira.sandbox.catalog_status = 403
    with blumira.sessions() as s:
        plan = engine.make_plan(blumira.cfg, s)
    finding = next(f for f in plan.vendor("blumira").findings if f.kind == "agent_uninstall_by_api")
    assert "answered HTTP 403" in finding.detail and "manual item" in finding.detail
    assert not [a for a in plan.actions() if a.operation == "uninstall_device"]


def test_a_refused_webhook_delete_falls_back_to_a_manual_item_then_is_confirmed_by_re_read(
        blumira: BlumiraHarness) -> None:
    blumira.sandbox.webhook_writes = False  # MSP keys read-only, as the KB once said
    with blumira.sessions() as s:
        plan = engine.make_plan(blumira.cfg, s)
        result = past_the_notification(blumira.cfg, plan, s)
    assert result.exit_code == ExitCode.MANUAL_PENDING  # not a failure: a person does it instead
    assert "blumira.delete_webhook.wh-1" in [a.id for a in result.pending]
    records = list(read_records(result.run.audit_path))
    fell = next(r for r in records
                if r["event"] == "manual.pending" and r["action_id"] == "blumira.delete_webhook.wh-1")
    assert "HTTP 403" in fell["detail"]["fell_back"] and fell["detail"]["portal_path"].startswith("MSP Portal")
    run_id = result.run.run_id
    with blumira.sessions() as s:
        refused = engine.confirm(run_id, "blumira.delete_webhook.wh-1", "J. Doe", "deleted", blumira.cfg, s)
        assert not refused.accepted and refused.check is not None and "still listed" in refused.check.detail
        del blumira.sandbox.webhooks["wh-1"]  # the person deletes it in the portal
        done = engine.confirm(run_id, "blumira.delete_webhook.wh-1", "J. Doe", "deleted", blumira.cfg, s)
    assert done.accepted
    kinds = Counter(r["event"] for r in read_records(result.run.audit_path))
    assert kinds["manual.rejected"] == 1 and kinds["manual.confirmed"] == 2  # the notification, then the hook


def test_a_resume_does_not_resend_a_write_the_vendor_refused_it_stays_with_the_person(
        blumira: BlumiraHarness) -> None:
    blumira.sandbox.webhook_writes = False
    with blumira.sessions() as s:
        plan = engine.make_plan(blumira.cfg, s)
        first = past_the_notification(blumira.cfg, plan, s)
        again = engine.resume(first.run.run_id, blumira.cfg, s)
    assert again.exit_code == ExitCode.MANUAL_PENDING
    assert "blumira.delete_webhook.wh-1" in [a.id for a in again.pending]
    assert [r.method for r in blumira.sandbox.requests if r.path.endswith("/msp/webhooks/wh-1")].count("DELETE") == 1
    checklist = (first.run.path / "manual-checklist.md").read_text()
    assert "`blumira.delete_webhook.wh-1`" in checklist and "MSP Portal → Integrations → Webhooks" in checklist


class StepsShown(engine.NoProgress):
    def __init__(self) -> None:
        self.steps: list[str] = []

    def step(self, vendor: str, step: object, todo: int) -> None:
        self.steps.append(getattr(step, "id", ""))


def test_a_lane_held_at_its_gate_shows_the_gate_not_the_steps_it_skips(blumira: BlumiraHarness) -> None:
    """Held until the notification is confirmed, the Blumira lane's progress stays on the gate's
    step: the old code announced each step it passed over, ending on "8. Blumira support confirms"."""
    shown = StepsShown()
    with blumira.sessions() as s:
        plan = engine.make_plan(blumira.cfg, s)
        held = engine.apply(plan, blumira.cfg, s, progress=shown)
        assert held.exit_code == ExitCode.MANUAL_PENDING
        assert shown.steps == ORDER[:2], shown.steps  # the gate, and the evidence export that may run before it
        engine.confirm(held.run.run_id, NOTIFY, "J. Doe", "sent 09:00, ticket 4711", blumira.cfg, s)
        shown.steps.clear()
        engine.resume(held.run.run_id, blumira.cfg, s, progress=shown)
    assert shown.steps[0] == "remove-sensors" and "support-confirmation" in shown.steps
