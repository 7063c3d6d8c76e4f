"""The checks a saved plan must pass before a run starts, and the preflight gate's decisions.
"""

from __future__ import annotations

from collections.abc import Mapping

from offboard.config import ExitConfig
from offboard.engine.types import Overrides
from offboard.errors import BadInput
from offboard.plan import Inventory, Plan

GATES_DECIDED = frozenset({"preflight.cleared", "preflight.overridden"})  # a run's gates were passed


GATES_STOPPED = "stopped by preflight gates before any removal"


def check_plan_fits(plan: Plan, cfg: ExitConfig) -> None:
    if plan.config_fingerprint != cfg.fingerprint():
        raise BadInput(
            f"plan {plan.plan_id} was made for a different exit definition (customer "
            f"{plan.customer!r}) than {cfg.path}; make a new plan with `offboard plan -o` from this config"
        )


def check_not_stale(plan: Plan, live: Mapping[str, Inventory]) -> None:
    for vp in plan.vendors:
        inv = live[vp.vendor]
        if inv.fingerprint() != vp.inventory_fingerprint:
            raise BadInput(
                f"plan is stale: {vp.display_name} inventory for {vp.scope} changed since the plan was "
                f"made ({plan.created_at}); make a new plan with `offboard plan -o` and review it"
            )


def check_guards(plan: Plan, overrides: Overrides) -> None:
    for action in plan.actions():
        if action.confirm is None or overrides.yes_guarded:
            continue
        if overrides.confirm_name is None:
            raise BadInput(f"this plan will {action.summary}; that cannot be undone: pass "
                           f"--confirm \"{action.confirm}\" (or --yes-delete-organization when unattended)")
        if overrides.confirm_name != action.confirm:
            raise BadInput(f"--confirm {overrides.confirm_name!r} does not match {action.confirm!r}; "
                           "type the name exactly as the plan shows it")
