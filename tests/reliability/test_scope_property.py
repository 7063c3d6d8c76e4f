"""Scope, as a property (hypothesis): whatever mix of the customer's objects and others' the
vendors list, no write is ever planned or sent for an object outside the exit."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offboard.connectors import ActionResult
from offboard.engine.execute import execute
from offboard.engine.sessions import Sessions
from offboard.engine.types import NoProgress, Overrides
from offboard.plan import Action, Inventory, InventoryItem, Plan, Step, Target, VendorPlan
from offboard.proof.audit import AuditLog, read_records
from offboard.rundir import RunDir
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


class Vendor:
    """A vendor the engine drives: the listing it was given, the object's own record (the scope
    guard's read of it alone), and a re-read that answers as drawn."""

    def __init__(self, live: Inventory, reread: ActionResult, record_owner: str | None) -> None:
        self.live, self.answer, self.record_owner = live, reread, record_owner
        self.executed: list[str] = []
        self.rereads: list[str] = []
        self.owner_reads: list[str] = []

    def discover(self) -> Inventory:
        return self.live

    def owner_now(self, action: Action) -> ActionResult:
        self.owner_reads.append(action.id)
        return ActionResult("failure", "still there", owner=self.record_owner)  # present: the write is to make

    def execute(self, action: Action) -> ActionResult:
        self.executed.append(action.id)
        return ActionResult("success", "done")

    def reread(self, action: Action) -> ActionResult:
        self.rereads.append(action.id)
        return self.answer

    def verify(self, vendor_plan: VendorPlan | None, inventory: Inventory) -> list[Any]:
        return []

    def documents(self, vendor_plan: VendorPlan, states: Any) -> tuple[Any, ...]:
        return ()

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the engine called {name} during a write")


ENGINE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PLANS_OWNER = f"organization:{ORG}"


@ENGINE
@given(live_owner=st.none() | huntress_owner, reread=st.sampled_from(["success", "unknown", "failure"]),
       reread_owner=st.none() | huntress_owner, record_owner=st.none() | huntress_owner,
       interrupted=st.booleans(), trust_listing=st.booleans())
def test_the_engine_sends_a_write_only_when_the_owner_is_the_plans(
        tmp_path_factory: pytest.TempPathFactory, live_owner: str | None, reread: str, reread_owner: str | None,
        record_owner: str | None, interrupted: bool, trust_listing: bool) -> None:
    """Through the engine's executor: it folds the run's audit log itself (a write `started` and
    never finished is an interrupted one: re-read first), then asks the scope guard. By default the
    object's own record decides, whatever the listing says; with --trust-listing the listing does,
    and an object it no longer holds is re-read alone."""
    target = Target(type="agent", id="17", name="pc-17")
    action = Action(id="huntress.uninstall_agent.17", vendor="huntress", step="huntress.uninstall", kind="api",
                    operation="uninstall_agent", target=target, summary="uninstall", owner=PLANS_OWNER,
                    call="DELETE /v1/agents/17")
    live = Inventory(vendor="huntress", scope="x", account="y", items=() if live_owner is None else (
        InventoryItem(target=target, owner=live_owner),))
    plan = Plan(plan_id="p1", created_at="2026-11-23T10:00:00Z", customer="Acme", config_fingerprint="f", vendors=(
        VendorPlan(vendor="huntress", display_name="Huntress", scope="x", account="y",
                   inventory_fingerprint=live.fingerprint(),
                   steps=(Step(id="huntress.uninstall", vendor="huntress", title="Uninstall", actions=(action,)),)),))
    vendor = Vendor(live, ActionResult(reread, "re-read", owner=reread_owner), record_owner)  # type: ignore[arg-type]
    run = RunDir.create(tmp_path_factory.mktemp("runs"))
    audit = AuditLog(run.audit_path, run.run_id)
    try:
        if interrupted:  # an earlier process fsynced `started`, then died: the write may have landed
            audit.emit("action.started", vendor="huntress", step=action.step, action_id=action.id,
                       target=target.model_dump(), outcome="unknown", detail={"call": action.call})
        execute(run, plan, Sessions({"huntress": vendor}, {}), audit, {"huntress": live},  # type: ignore[dict-item]
                Overrides(trust_listing=trust_listing), NoProgress(), None, None)
    finally:
        audit.close()
    last = [r["event"] for r in read_records(run.audit_path)
            if r.get("action_id") == action.id and r["event"].startswith("action.")][-1]

    rereads = [action.id] if interrupted else []
    if interrupted and reread == "success":
        assert vendor.executed == [] and last == "action.succeeded"  # the re-read shows it done
    elif interrupted and reread == "unknown":
        assert vendor.executed == [] and last == "action.unknown"  # may have landed: never resent
    else:
        if not trust_listing:
            owner = record_owner  # the object's own record, read alone just before the write
            assert vendor.owner_reads == [action.id]
        elif live_owner is not None:
            owner = live_owner
            assert vendor.owner_reads == []
        else:  # no longer listed: only its own re-read can say whether it is gone or moved
            rereads.append(action.id)
            owner = None if reread == "success" else reread_owner
        if trust_listing and live_owner is None and reread == "success":
            assert vendor.executed == [] and last == "action.succeeded"
        elif owner == PLANS_OWNER:
            assert vendor.executed == [action.id] and last == "action.succeeded"
        else:
            assert vendor.executed == [] and last == "action.skipped"
