"""Blumira as the notes leave it: ownership comes only from what the API proves, verification
fails closed on anything it cannot attribute, and what the notes do not confirm is asked,
never guessed (connectors/offboard_blumira/unknowns.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from offboard import engine
from offboard.connectors.sandboxing import InProcessTransport
from offboard.errors import BadInput, ExitCode
from offboard.plan import Finding, Plan
from offboard.proof.audit import read_records
from offboard_blumira import unknowns
from offboard_blumira.sandbox import (
    API_PREFIX,
    CUSTOMER_ACCOUNT,
    DEMO_CLIENT_ID,
    DEMO_SECRET,
    NEIGHBOUR_ACCOUNT,
    TOKEN_PATH,
    BlumiraSandbox,
)
from tests.conftest import DEMO_CREDS, BlumiraHarness, blumira_section, load, past_the_notification, write_config
from tests.connectors import blumira_notes as notes
from tests.connectors.blumira_unknowns import settle_dispatch

OTHER_ORG = "org-7f3e0b1c"  # an org_id the notes never relate to the sub-account's account_id


def leave_only(sandbox: BlumiraSandbox, store: dict[str, dict[str, object]], keep: str) -> None:
    for key in [k for k, v in store.items() if v["_account"] == CUSTOMER_ACCOUNT and k != keep]:
        del store[key]


def test_a_device_and_a_key_listed_under_the_account_with_another_org_id_fail_verification_by_name(
        blumira: BlumiraHarness) -> None:
    sb = blumira.sandbox
    leave_only(sb, sb.devices, "dev-0001-000")
    leave_only(sb, sb.keys, "key-0001-0")
    sb.devices["dev-0001-000"]["org_id"] = OTHER_ORG
    sb.keys["key-0001-0"]["org_id"] = OTHER_ORG
    with blumira.sessions() as s:
        checks = {c.name: c for c in engine.verify_run(None, s)}
    devices, keys = checks["no agent device listed"], checks["no agent key listed"]
    assert not devices.passed and "lists 1 device(s): ACME-PC00" in devices.detail
    assert "owner unknown" in devices.detail and OTHER_ORG in devices.detail
    assert not keys.passed and "lists 1 key(s): Acme Dental install key 1" in keys.detail


def test_a_confirmed_removal_is_refused_while_an_unattributed_device_is_still_listed(blumira: BlumiraHarness) -> None:
    sb = blumira.sandbox
    with blumira.sessions() as s:
        plan = engine.make_plan(blumira.cfg, s)
        leave_only(sb, sb.devices, "dev-0001-003")  # the person removed all but one...
        sb.devices["dev-0001-003"]["org_id"] = OTHER_ORG  # ...which the API now reports under another org_id
        action = plan.action("blumira.agents.remove-devices")
        assert action is not None
        check = s.by_vendor["blumira"].check_manual(action)
    assert check is not None and not check.passed
    assert "lists 1 device(s): ACME-PC03" in check.detail and "owner unknown" in check.detail


def uninstall_finding(plan: Plan) -> Finding:
    return next(f for f in plan.vendor("blumira").findings if f.kind == "agent_uninstall_by_api")


def dispatches(sandbox: BlumiraSandbox) -> list[str]:
    return [r.path for r in sandbox.requests if r.method == "POST" and r.path.endswith("/actions")]


@pytest.mark.parametrize("status", [401, 403, 404, 405, 501])
def test_a_refused_action_catalog_means_not_offered_with_the_reason_and_devices_stay_a_portal_item(
        blumira: BlumiraHarness, status: int) -> None:
    blumira.sandbox.catalog_status = status
    blumira.sandbox.offers_uninstall = True  # were it readable, it would offer one
    with blumira.sessions() as s:
        plan = engine.make_plan(blumira.cfg, s)
        engine.apply(plan, blumira.cfg, s)
    finding = uninstall_finding(plan)
    assert finding.count == 0
    assert f"GET /org/agents/actions answered HTTP {status} to these MSP credentials" in finding.detail
    assert "organization-credential endpoint" in finding.detail and "manual item" in finding.detail
    assert not [a for a in plan.actions() if a.operation == "uninstall_device"]
    devices = plan.action("blumira.agents.remove-devices")
    assert devices is not None and devices.kind == "manual" and devices.manual is not None
    assert "Blumira Agent > Devices" in devices.manual.portal_path
    assert dispatches(blumira.sandbox) == []


def test_an_offered_uninstall_is_not_dispatched_while_the_body_field_is_unconfirmed(blumira: BlumiraHarness) -> None:
    blumira.sandbox.catalog_status = 200
    blumira.sandbox.offers_uninstall = True
    assert unknowns.DISPATCH_ACTION_FIELD is None  # the notes name none of request_action_dispatch's fields
    with blumira.sessions() as s:
        plan = engine.make_plan(blumira.cfg, s)
        result = engine.apply(plan, blumira.cfg, s)
    finding = uninstall_finding(plan)
    assert "offers 'uninstall', but nothing is sent" in finding.detail and "request_action_dispatch" in finding.detail
    assert not [a for a in plan.actions() if a.operation == "uninstall_device"]
    assert dispatches(blumira.sandbox) == [] and blumira.sandbox.received == []  # no guessed body went out
    assert result.exit_code == ExitCode.MANUAL_PENDING
    assert len(blumira.sandbox.of(blumira.sandbox.devices, CUSTOMER_ACCOUNT)) == 8


def test_the_double_refuses_a_guessed_dispatch_field(blumira: BlumiraHarness) -> None:
    sb = blumira.sandbox
    sb.catalog_status, sb.offers_uninstall = 200, True
    with httpx.Client(transport=InProcessTransport(sb.app), base_url="http://sandbox") as c:
        token = c.post(TOKEN_PATH, json={"grant_type": "client_credentials", "client_id": DEMO_CLIENT_ID,
                                         "client_secret": DEMO_SECRET, "audience": "public-api"}).json()
        reply = c.post(f"{API_PREFIX}/msp/accounts/{CUSTOMER_ACCOUNT}/agents/devices/dev-0001-000/actions",
                       json={"action": "uninstall"}, headers={"Authorization": f"Bearer {token['access_token']}"})
    assert reply.status_code == 400 and "unknown field(s): action" in reply.json()["detail"]
    assert "dev-0001-000" in sb.devices


def test_an_unattributed_device_is_never_dispatched_to_but_is_on_the_portal_item(
        blumira: BlumiraHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    settle_dispatch(monkeypatch, blumira.sandbox)
    sb = blumira.sandbox
    sb.devices["dev-0001-002"]["org_id"] = OTHER_ORG
    with blumira.sessions() as s:
        plan = engine.make_plan(blumira.cfg, s)
        result = past_the_notification(blumira.cfg, plan, s)
    uninstalls = [a.target.id for a in plan.actions() if a.operation == "uninstall_device"]
    assert len(uninstalls) == 7 and "dev-0001-002" not in uninstalls
    assert not [p for p in dispatches(sb) if "dev-0001-002" in p]
    skipped = {k.target.id: k.reason for k in plan.vendor("blumira").skipped}
    assert "owner unknown" in skipped["dev-0001-002"] and OTHER_ORG in skipped["dev-0001-002"]
    devices = plan.action("blumira.agents.remove-devices")
    assert devices is not None and "ACME-PC02 (org_id 'org-7f3e0b1c')" in devices.summary
    assert "check each is the customer's" in devices.summary
    assert [d["device_id"] for d in sb.of(sb.devices, CUSTOMER_ACCOUNT)] == ["dev-0001-002"]  # only it is left
    assert result.exit_code == ExitCode.MANUAL_PENDING  # a person still has it to do


def test_verification_with_a_plan_counts_a_list_the_plan_had_nothing_for(blumira: BlumiraHarness) -> None:
    sb = blumira.sandbox
    for key in [k for k, v in sb.keys.items() if v["_account"] == CUSTOMER_ACCOUNT]:
        del sb.keys[key]
    with blumira.sessions() as s:
        plan = engine.make_plan(blumira.cfg, s)
        assert plan.action("blumira.agents.remove-keys") is None  # nothing to remove when planned
        sb.put(sb.keys, CUSTOMER_ACCOUNT, {"key_id": "key-late", "description": "enrolled after the plan",
                                           "org_id": OTHER_ORG}, "key-late")
        checks = engine.verify_run(plan, s)
    keys = next(c for c in checks if c.name == "no agent key listed")
    assert not keys.passed and "enrolled after the plan (owner unknown" in keys.detail


def test_a_webhook_whose_scoping_fields_disagree_is_not_deleted_but_reviewed(blumira: BlumiraHarness) -> None:
    blumira.sandbox.webhooks["wh-9"] = {"id": "wh-9", "name": "Acme Dental escalations", "url": "https://x.example",
                                        "account_ids": [CUSTOMER_ACCOUNT], "org_id": NEIGHBOUR_ACCOUNT}
    with blumira.sessions() as s:
        plan = engine.make_plan(blumira.cfg, s)
    assert plan.action("blumira.delete_webhook.wh-9") is None
    review = plan.action("blumira.webhook.review.wh-9")
    assert review is not None and review.kind == "manual"
    assert [a.call for a in plan.api_actions() if a.destructive] == ["DELETE /msp/webhooks/wh-1"]


def test_the_notes_example_objects_as_they_are_go_through_discovery_plan_and_verification(
        blumira: BlumiraHarness, tmp_path: Path) -> None:
    sb = blumira.sandbox
    acct = notes.ACCOUNT_ID
    sb.accounts[acct] = dict(notes.ACCOUNT_DETAIL)
    for store, obj, key in ((sb.devices, notes.DEVICE, "device_id"), (sb.keys, notes.AGENT_KEY, "key_id"),
                            (sb.users, notes.USER, "id"), (sb.findings, notes.FINDING, "finding_id")):
        sb.put(store, acct, obj, obj[key])
    cfg = load(write_config(tmp_path, huntress=False, blumira=blumira_section().replace(CUSTOMER_ACCOUNT, acct)))
    with blumira.sessions(cfg) as s:
        plan = engine.make_plan(cfg, s)
        inventory = s.by_vendor["blumira"].discover()
        checks = {c.name: c for c in engine.verify_run(None, s)}
    owners = {(i.target.type, i.target.name): i.owner for i in inventory.items}
    assert owners[("device", "WS-001")] == f"account:{acct}"  # org_id equals the account it is listed under
    assert owners[("agent_key", "Default key")] == f"account:{acct}"
    assert plan.vendor("blumira").snapshot["license"] == "PRO"
    users = plan.action("blumira.users.remove")
    assert users is not None and "responder@example.com" in users.summary
    assert "lists 1 device(s): WS-001" in checks["no agent device listed"].detail
    assert "owner unknown" not in checks["no agent device listed"].detail
    assert "lists 1 key(s): Default key" in checks["no agent key listed"].detail
    assert "of which not to keep: responder@example.com" in checks["only the users to keep remain"].detail


def test_only_the_portals_administrator_role_keeps_a_self_managed_account_administered(
        blumira: BlumiraHarness) -> None:
    blumira.extra = 'account_moves_to = "self"\nnew_administrators = ["Ada <it-admin@acme.example>"]\n'
    blumira.sandbox.users["u-1"]["org_roles"] = [{"role_id": 10, "role_name": "admin"}]  # not a name the notes give
    with blumira.sessions() as s, pytest.raises(BadInput) as err:
        engine.make_plan(blumira.cfg, s)
    assert "no Administrator would remain" in str(err.value)


class LoseDispatchReply(httpx.BaseTransport):
    """The uninstall's 202 never reaches offboard (a read timeout after the vendor acted)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner, self.lost = inner, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and request.url.path.endswith("/actions") and not self.lost:
            self.lost += 1
            raise httpx.ReadTimeout("reply lost", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def test_a_dispatch_whose_reply_was_lost_is_never_sent_again_while_the_device_is_listed(
        blumira: BlumiraHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 14, finding 5: the re-read still lists the device (the agent acts later), which does
    # not prove the dispatch failed; a second POST could act twice.
    settle_dispatch(monkeypatch, blumira.sandbox)
    sb = blumira.sandbox
    sb.uninstall_is_slow = True
    lossy = LoseDispatchReply(InProcessTransport(sb.app))
    with engine.open_sessions(blumira.cfg, transports={"blumira": lossy}, creds=DEMO_CREDS) as s:
        plan = engine.make_plan(blumira.cfg, s)
        first = past_the_notification(blumira.cfg, plan, s)
    victim = next(r.path for r in sb.requests if r.method == "POST" and r.path.endswith("/actions"))
    assert [r.path for r in sb.requests if r.method == "POST"].count(victim) == 1
    device_id = victim.split("/")[-2]
    records = list(read_records(first.run.audit_path))
    last = [r for r in records if r.get("action_id") == f"blumira.uninstall_device.{device_id}"
            and r["event"].startswith("action.")][-1]
    assert last["event"] == "action.unknown" and "may still be on its way" in last["detail"]["message"]
    assert first.exit_code == ExitCode.FAILED

    with blumira.sessions() as s:
        again = engine.resume(first.run.run_id, blumira.cfg, s)  # still listed: still not resent
    assert [r.path for r in sb.requests if r.method == "POST"].count(victim) == 1
    assert again.exit_code == ExitCode.FAILED

    sb.devices.pop(next(k for k, v in sb.devices.items() if v.get("device_id") == device_id or k == device_id))
    with blumira.sessions() as s:
        settled = engine.resume(first.run.run_id, blumira.cfg, s)  # the agent acted: the re-read settles it
    assert [r.path for r in sb.requests if r.method == "POST"].count(victim) == 1
    last = [r for r in read_records(settled.run.audit_path)
            if r.get("action_id") == f"blumira.uninstall_device.{device_id}" and r["event"].startswith("action.")][-1]
    assert last["event"] == "action.succeeded"
