"""Where each exit of a batch stands, read from its own run folder (its audit log is the truth):
the batch keeps no state of its own, so a crash between an exit's run and any batch file
cannot make the two disagree."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offboard import hints
from offboard.config import ExitConfig
from offboard.engine.guards import GATES_STOPPED
from offboard.errors import BadInput
from offboard.lifecycle import AWAITING_PERSON, TERMINAL, fold_actions, open_for_person, run_end
from offboard.plan import Plan
from offboard.proof.audit import read_records
from offboard.rundir import RUN_ID_RE, RunDir

NOT_STARTED = "not started"
RUNNING = "running"
INTERRUPTED = "interrupted"
FAILED = "failed"
GATED = "stopped by a gate"
WAITING = "waiting for a person"
DONE = "done"
VERIFIED = "verified"


@dataclass
class ExitState:
    state: str
    run: RunDir | None = None
    removed: int = 0  # planned removals done (or found already gone)
    removals: int = 0  # planned removals
    done_of: dict[str, int] = field(default_factory=dict)  # a vendor's key -> its actions done (its log says)
    pending: list[str] = field(default_factory=list)  # manual items waiting for a person
    held_by: list[str] = field(default_factory=list)  # gate items holding a vendor's changes
    resumable: bool = False  # a resume would run something (not only ask a person again)
    checks_failed: int = 0
    detail: str = ""
    next_command: str = ""  # what to run next for it, printed whole after a table (never folded in a cell)


def next_steps(states: Mapping[str, ExitState], batch_plan: Path) -> list[str]:
    """What to run next for a batch, whole, in the order to run them: the one rule behind `batch apply`'s
    last lines and `batch status`'s ``Next:``, so both say the same. Each exit names its own next command
    (``ExitState.next_command``); a batch none of whose exits has started is applied, not resumed."""
    if states and all(st.state == NOT_STARTED for st in states.values()):
        return [hints.command("batch", "apply", batch_plan)]
    return list(dict.fromkeys(st.next_command for st in sorted(states.values(), key=_order) if st.next_command))


def _order(st: ExitState) -> int:
    """Machine work first (a resume runs what is unblocked), then people's work: a gate to handle and
    pass, the items by id; then the re-reads."""
    words = st.next_command.split()
    if "apply" in words:
        return 1 if "--override-preflight" in words else 0
    return 2 if "--pending" in words else 3


def _plan_id_of(run_path: Path) -> str | None:
    try:
        state = json.loads((run_path / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = None
    if isinstance(state, dict) and isinstance(state.get("plan_id"), str):
        return str(state["plan_id"])
    try:  # a run that stopped before its first state with a plan id: its plan copy says
        plan = json.loads((run_path / "plan.json").read_bytes())
    except (OSError, ValueError):
        return None
    return str(plan["plan_id"]) if isinstance(plan, dict) and isinstance(plan.get("plan_id"), str) else None


def find_run(cfg: ExitConfig, plan: Plan) -> RunDir | None:
    """The latest run of this exit's plan in its runs folder, if it was started."""
    runs = cfg.runs_dir
    if not runs.is_dir():
        return None
    for p in sorted((p for p in runs.iterdir() if RUN_ID_RE.match(p.name) and p.is_dir()),
                    key=lambda p: p.name, reverse=True):
        if _plan_id_of(p) == plan.plan_id:
            return RunDir(runs, p.name)
    return None


def _running(run: RunDir) -> bool:
    try:
        with run.lock():
            return False
    except BadInput:
        return True


def resume_command(batch_plan: Path | None, flags: Sequence[str] = ()) -> str:
    """`offboard batch apply --resume [PLAN] [FLAGS]`: the one spelling of a batch's resume."""
    return hints.command("batch", "apply", "--resume", *([batch_plan] if batch_plan else []), extra=flags)


def exit_state(cfg: ExitConfig, plan: Plan, batch_plan: Path | None = None) -> ExitState:
    """``batch_plan``: the batch plan's path as the user gave it, carried by the commands the detail names."""
    resume = resume_command(batch_plan)
    run = find_run(cfg, plan)
    actions = plan.actions()
    removals = [a for a in actions if a.kind == "api" and a.destructive]
    if run is None:  # `batch apply --resume` starts the exits never started too; none of its removals is done
        return ExitState(NOT_STARTED, removals=len(removals), next_command=resume)
    records: list[dict[str, Any]] = list(read_records(run.audit_path)) if run.audit_path.exists() else []
    states = fold_actions(records)
    out = ExitState(INTERRUPTED, run, removals=len(removals))
    out.removed = sum(1 for a in removals if states.get(a.id) == "action.succeeded")
    for a in actions:
        out.done_of[a.vendor] = out.done_of.get(a.vendor, 0) + (states.get(a.id) in TERMINAL)
    out.pending = [a.id for a in actions if open_for_person(a, states.get(a.id)) and states.get(a.id) is not None]
    gates_open = {a.vendor: a.id for a in actions if a.gate and states.get(a.id) != "manual.confirmed"
                  and states.get(a.id) is not None}
    out.held_by = sorted(gates_open.values())
    # Never reached (held behind a gate since confirmed, or the run stopped first), or an API action
    # not settled: a resume runs it. An item waiting for a person only waits again.
    out.resumable = any(a.vendor not in gates_open and (states.get(a.id) is None or (
        a.kind == "api" and states.get(a.id) not in TERMINAL and states.get(a.id) not in AWAITING_PERSON))
        for a in actions)
    end = run_end(records)
    last_action = max((n for n, r in enumerate(records) if str(r.get("event", "")).startswith(("action.", "manual."))),
                      default=-1)
    checks = [r for r in records[last_action + 1:] if r.get("event") in ("verify.passed", "verify.failed")]
    out.checks_failed = sum(1 for r in checks if r["event"] == "verify.failed")
    if end.ended:
        out.state = VERIFIED if checks and not out.checks_failed else DONE
        out.detail = (f"{out.checks_failed} check(s) failed: `batch verify` re-reads" if out.checks_failed
                      else "" if checks else "not re-read since the last change: `batch verify`")
        if out.detail:
            out.next_command = hints.command("batch", "verify", *([batch_plan] if batch_plan else []))
        return out
    if end.event in ("run.started", "run.resumed") or not end.line:
        out.state = RUNNING if _running(run) else INTERRUPTED
        out.next_command = resume if out.state == INTERRUPTED else ""
        return out
    if end.event == "run.interrupted":
        out.next_command = resume
        return out
    detail = records[end.line - 1].get("detail")
    code = detail.get("exit_code") if isinstance(detail, dict) else None
    if code == 3:
        out.state = WAITING
        out.detail = (f"{len(out.pending)} manual item(s)" + (f"; {', '.join(out.held_by)} holds its vendor's "
                                                               "changes" if out.held_by else "")
                      + ("; the rest runs on `batch apply --resume`" if out.resumable else ""))
        if out.resumable:
            out.next_command = resume
        elif batch_plan:  # only people can move it: the items they are to do, by id (for `batch confirm`)
            out.next_command = hints.command("batch", "status", "--pending", batch_plan)
    elif code == 4 or detail == GATES_STOPPED:
        out.state = GATED
        gates = [f"{r.get('vendor')}: {r['detail'].get('finding')}" for r in records
                 if r.get("event") == "preflight.checked" and isinstance(r.get("detail"), dict)
                 and r["detail"].get("blocking")]
        out.detail = "stopped before any removal by " + ("; ".join(dict.fromkeys(gates)) or "a preflight gate")
        out.resumable = False
        # Once a person has handled the gate, only an override passes it (audited with its reason in the exit's
        # log): a resume without one stops here again. REASON is the placeholder the person fills in.
        out.next_command = resume_command(batch_plan, ["--override-preflight", "REASON"])
    else:
        out.state = FAILED
        out.detail = str(detail if not isinstance(detail, dict) else
                         f"{detail.get('failed', 0)} failed, {detail.get('unknown', 0)} unknown, "
                         f"{detail.get('blocked', 0)} held back, {detail.get('checks_failed', 0)} check(s) failed")
        out.resumable = True
        out.next_command = resume
    return out
