"""Fault-matrix rows for issue 20: the world moves during an exit. An agent another technician moves
to the neighbour's organization mid-run, and an agent listing that names a neighbour's agent as the
customer's (the agent's own record says otherwise). A write to either is a write outside the exit;
their removals are not "lost" (not doing them is the point), every other one must be done."""

from __future__ import annotations

import random
from pathlib import Path

from offboard.plan import Plan, read_plan
from offboard.proof.audit import read_records
from offboard_huntress.sandbox import CUSTOMER_ORG, NEIGHBOUR_ORG

from .matrix_world import HA, Row, World, exit_in_process, measure, route_writes, world


def moved_owner(path: Path, agents: int, rng: random.Random, row: Row) -> None:
    with world(path / "moved-owner", agents) as w:
        plan = w.plan()
        uninstalls = [a for a in plan.api_actions() if a.operation == "uninstall_agent"]
        victim = int(uninstalls[rng.randint(len(uninstalls) // 2, len(uninstalls) - 1)].target.id)
        w.h.moves[victim] = (NEIGHBOUR_ORG, rng.randint(1, 3))  # after the run's first few writes
        row.faults += 1
        row.kinds["moved owner"] += 1
        exit_in_process(w, plan, row)
        _count(w, plan, row, victim)


def lying_listing(path: Path, agents: int, rng: random.Random, row: Row) -> None:
    with world(path / "lying-listing", agents) as w:
        stray = rng.choice(w.h.agents_of(NEIGHBOUR_ORG))["id"]
        w.h.listed_as[stray] = CUSTOMER_ORG  # GET /v1/agents?organization_id=42 carries it; its record says 43
        plan = w.plan()
        row.faults += 1
        row.kinds["lying listing"] += 1
        if f"huntress.uninstall_agent.{stray}" not in {a.id for a in plan.api_actions()}:
            row.notes.append("the lying listing did not reach the plan: nothing was exercised")
        exit_in_process(w, plan, row)
        _count(w, plan, row, stray)


def _count(w: World, plan: Plan, row: Row, agent: int) -> None:
    """A DELETE reaching ``agent`` is outside the exit; its removal is not counted lost, and its
    skip must name both owners."""
    measure(w, plan, row, count_lost=False)
    row.outside += sum(1 for r in route_writes(w.h) if r.path.startswith(f"{HA}/agents/{agent}"))
    action_id = f"huntress.uninstall_agent.{agent}"
    last = {r.get("action_id"): r for run in w.run_folders() for r in read_records(run / "audit.jsonl")
            if r.get("action_id") and r["event"].startswith("action.")}
    row.lost = (row.lost or 0) + sum(1 for a in read_plan(w.plan_file).api_actions()
                                     if a.destructive and a.id != action_id
                                     and (last.get(a.id) or {}).get("event") != "action.succeeded")
    skipped = last.get(action_id) or {}
    detail = skipped.get("detail") if isinstance(skipped.get("detail"), dict) else {}
    if skipped.get("event") != "action.skipped" or detail.get("owner_now") != f"organization:{NEIGHBOUR_ORG}":
        row.notes.append(f"{action_id}: not recorded as skipped with both owners ({skipped.get('event')})")
