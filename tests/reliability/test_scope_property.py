"""Scope, as a property (hypothesis): whatever mix of the customer's objects and others' the
vendors list, no write is ever planned or sent for an object outside the exit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offboard.connectors import ActionResult
from offboard.engine.execute import _run_action
from offboard.engine.listings import Listings
from offboard.engine.scope_guard import ScopeGuard
from offboard.engine.sessions import Sessions
from offboard.plan import Action, Inventory, InventoryItem, Target
from offboard.proof.audit import AuditLog
from offboard_blumira.settings import BlumiraSettings
from offboard_blumira.steps import plan_exit as blumira_plan
from offboard_huntress.settings import HuntressSettings
from offboard_huntress.steps import plan_exit as huntress_plan

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ORG = 42
ACCOUNT = 7
BLU = "acct-customer"

huntress_owner = st.sampled_from([f"organization:{ORG}", "organization:43", "organization:99", f"account:{ACCOUNT}",
                                  "account:8", "identity:5"])
huntress_item = st.builds(
    lambda kind, oid, owner: InventoryItem(target=Target(type=kind, id=str(oid), name=f"{kind}-{oid}"), owner=owner,
                                           attrs={"firewall_status": "Isolated" if oid % 5 == 0 else "Enabled"}),
    st.sampled_from(["agent", "membership", "unwanted_access_rule", "subscription"]), st.integers(1, 10_000),
    huntress_owner)


def unique(items: list[InventoryItem]) -> tuple[InventoryItem, ...]:
    return tuple({(i.target.type, i.target.id): i for i in items}.values())


@PROPERTY
@given(items=st.lists(huntress_item, max_size=40), delete_org=st.booleans(), subs=st.lists(st.integers(1, 10_000),
                                                                                               max_size=3))
def test_huntress_plans_writes_only_for_the_exits_organization_or_account(
        items: list[InventoryItem], delete_org: bool, subs: list[int]) -> None:
    org = InventoryItem(target=Target(type="organization", id=str(ORG), name="Acme"), owner=f"organization:{ORG}",
                        attrs={"report_recipients": 2})
    inventory = Inventory(vendor="huntress", scope="org", account="key", items=(org, *unique(items)))
    s = HuntressSettings(organization_id=ORG, account_id=ACCOUNT, delete_organization=delete_org,
                         stop_renewing_subscriptions=subs)
    parts = huntress_plan(inventory, s)
    allowed = {f"organization:{ORG}", f"account:{ACCOUNT}"}
    for action in (a for st_ in parts.steps for a in st_.actions if a.kind == "api" and a.destructive):
        assert action.owner in allowed
        assert inventory.owner_of(action.target) == action.owner, action
    skipped = {(k.target.type, k.target.id) for k in parts.skipped}
    for item in inventory.items:  # every listed object of another scope is named as not touched
        if item.target.type in ("agent", "membership", "unwanted_access_rule") and item.owner not in allowed:
            assert (item.target.type, item.target.id) in skipped


blumira_item = st.builds(
    lambda kind, oid, owner: InventoryItem(target=Target(type=kind, id=f"{kind}-{oid}", name=f"n{oid}"), owner=owner,
                                           attrs={"email": f"u{oid}@x.example", "mentions_customer": oid % 2 == 0}),
    st.sampled_from(["device", "agent_key", "user", "webhook"]), st.integers(1, 10_000),
    st.sampled_from([f"account:{BLU}", "account:other", "msp", f"accounts:{BLU},other"]))


@PROPERTY
@given(items=st.lists(blumira_item, max_size=40), uninstall=st.booleans())
def test_blumira_plans_writes_only_for_the_exits_sub_account(items: list[InventoryItem], uninstall: bool) -> None:
    cap = InventoryItem(target=Target(type="capability", id="agent_uninstall", name="uninstall"), owner="vendor",
                        attrs={"available": uninstall, "why": "test"})
    inventory = Inventory(vendor="blumira", scope="sub", account="msp", items=(cap, *unique(items)))
    parts = blumira_plan(inventory, BlumiraSettings(account_id=BLU))
    for action in (a for st_ in parts.steps for a in st_.actions if a.kind == "api" and a.destructive):
        assert action.owner == f"account:{BLU}"
        assert inventory.owner_of(action.target) == f"account:{BLU}", action


class Recorder:
    """A vendor session that records the writes it is asked to make."""

    def __init__(self, reread_owner: str | None, record_owner: str | None) -> None:
        self.executed: list[str] = []
        self.reread_owner = reread_owner
        self.record_owner = record_owner

    def execute(self, action: Action) -> ActionResult:
        self.executed.append(action.id)
        return ActionResult("success", "done")

    def reread(self, action: Action) -> ActionResult:
        return ActionResult("failure", "still there", owner=self.reread_owner)

    def owner_now(self, action: Action) -> ActionResult:
        return ActionResult("failure", "there", owner=self.record_owner)

    def discover(self) -> Inventory:
        raise AssertionError("no listing is re-taken within its window")

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the engine called {name} during a write")


@PROPERTY
@given(live_owner=st.none() | huntress_owner, reread_owner=st.none() | huntress_owner,
       record_owner=st.none() | huntress_owner, interrupted=st.booleans(), trust_listing=st.booleans())
def test_the_engine_sends_a_write_only_when_the_owner_is_the_plans(
        tmp_path: Path, live_owner: str | None, reread_owner: str | None, record_owner: str | None,
        interrupted: bool, trust_listing: bool) -> None:
    target = Target(type="agent", id="17", name="pc-17")
    action = Action(id="huntress.uninstall_agent.17", vendor="huntress", step="s", kind="api",
                    operation="uninstall_agent", target=target, summary="uninstall", owner=f"organization:{ORG}")
    live = Inventory(vendor="huntress", scope="x", account="y", items=() if live_owner is None else (
        InventoryItem(target=target, owner=live_owner),))
    session = Recorder(reread_owner, record_owner)
    sessions = Sessions({"huntress": session}, {})  # type: ignore[dict-item]
    # The listing's window is open (taken now): trust-listing mode believes it.
    guard = ScopeGuard("listing" if trust_listing else "object", Listings(sessions, {"huntress": live}, taken=0.0,
                                                                          clock=lambda: 1.0), {"huntress": live})
    audit = AuditLog(tmp_path / f"audit-{live_owner}-{reread_owner}-{record_owner}-{interrupted}-{trust_listing}.jsonl",
                     "run")
    try:
        event = _run_action(action, session, guard, audit, interrupted=interrupted)  # type: ignore[arg-type]
    finally:
        audit.close()
    # By default the object's own record decides, whatever the listing said.
    owner = (live_owner if live_owner is not None else reread_owner) if trust_listing else record_owner
    if owner == f"organization:{ORG}":
        assert session.executed == [action.id] and event == "action.succeeded"
    else:
        assert session.executed == [] and event == "action.skipped"
