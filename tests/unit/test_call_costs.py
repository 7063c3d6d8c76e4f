"""What a plan's actions cost a vendor in calls (scope_guard.calls_of): the one rule behind the batch
plan's "Calls (≈)" column and the progress bar's floor at the vendor's rate limit."""

from __future__ import annotations

from offboard.engine.scope_guard import calls_of
from offboard.plan import Action, Manual, Target


def action(n: int, *, kind: str = "api", destructive: bool = True) -> Action:
    return Action(id=f"v.s.{n}", vendor="v", step="s", kind=kind,  # type: ignore[arg-type]
                  operation="remove" if destructive else "export", target=Target(type="agent", id=str(n)),
                  summary="x", destructive=destructive,
                  manual=Manual(portal_path="p", done_when="d") if kind == "manual" else None)


PLAN = [action(1), action(2), action(3, destructive=False), action(4, kind="manual")]


def test_by_default_each_removal_costs_its_call_and_its_owner_read_and_a_read_costs_one() -> None:
    # 2 removals x (the DELETE + the read of the object alone before it) + 1 export; a person's item: none
    assert calls_of(PLAN) == 5
    assert calls_of(PLAN, trust_listing=False) == 5


def test_with_trust_listing_a_removal_costs_its_call_alone() -> None:
    assert calls_of(PLAN, trust_listing=True) == 3  # the listings' own calls are counted apart


def test_no_action_costs_nothing_and_a_persons_items_cost_no_call() -> None:
    assert calls_of([]) == 0
    assert calls_of([action(5, kind="manual"), action(6, kind="manual", destructive=False)]) == 0
    assert calls_of([action(7, destructive=False)]) == 1
