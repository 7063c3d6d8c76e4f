"""Manual items and run status: `offboard confirm` records that a person did an item (after
re-reading the vendor where its API can see the result); `offboard status` shows where every
item of a run stands. Both read the run's audit log, the source of truth."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from offboard import hints
from offboard.config import ExitConfig
from offboard.connectors import Check
from offboard.engine.guided import record_confirmation
from offboard.engine.runfolder import reopen, signer_for, write_documents, write_state
from offboard.engine.sessions import Sessions
from offboard.engine.ticket import PREFIX as TICKET_ITEM
from offboard.engine.ticket import summary as ticket_summary
from offboard.engine.verify import verify_run
from offboard.errors import BadInput
from offboard.lifecycle import DONE_STANDINGS, Tally, fold, fold_actions, tally
from offboard.plan import Action, Plan, Target, read_plan
from offboard.proof.audit import AuditLog, read_records
from offboard.rundir import RunDir


@dataclass
class ConfirmResult:
    run: RunDir
    action: Action
    accepted: bool
    check: Check | None
    remaining: list[Action]
    documents: list[Path]
    to_resume: list[Action] = field(default_factory=list)
    ticket: list[str] = field(default_factory=list)  # what reached the exit's PSA ticket
    tally: Tally | None = None  # where every action of the run stands after this confirmation

    def summary(self) -> str:
        """The run's one line of counts, the same words `apply` and `status` print."""
        return f"Run {self.run.run_id}: {self.tally.sentence()}" if self.tally is not None else ""


def latest_run_id(cfg: ExitConfig) -> str:
    runs = sorted(p.name for p in cfg.runs_dir.glob("*") if (p / "state.json").exists()) \
        if cfg.runs_dir.exists() else []
    if not runs:
        raise BadInput(f"no run in {cfg.runs_dir}; apply a plan first")
    return runs[-1]


def nearest_ids(given: str, ids: Sequence[str], shown: int = 4) -> str:
    """The item ids ``given`` may have meant, as "a, b or c" ('' when none is near): those it names
    without their vendor, every id ending in it ("remove"), else the closest spelling."""
    spellings = {**{i.split(".", 1)[-1]: i for i in ids}, **{i: i for i in ids}}
    near = ([i for i in ids if i.split(".", 1)[-1] == given] or [i for i in ids if i.rsplit(".", 1)[-1] == given]
            or list(dict.fromkeys(spellings[n] for n in difflib.get_close_matches(given, spellings, n=1, cutoff=0.6))))
    if not near:
        return ""
    some = near[:shown]
    either = ", ".join(some[:-1]) + " or " + some[-1] if len(some) > 1 else some[0]
    return either + (f" (and {len(near) - len(some)} more)" if len(near) > len(some) else "")


def full_item_id(given: str, ids: Iterable[str]) -> str | None:
    """``given`` as one of ``ids``: itself, or the one id it is the end of without its vendor
    (``notify.sent`` for ``<vendor>.notify.sent``); None when neither (or the end is two ids')."""
    ids = list(ids)
    if given in ids:
        return given
    short = {i for i in ids if i.split(".", 1)[-1] == given}
    return short.pop() if len(short) == 1 else None


def manual_item_id(plan: Plan, given: str, run_id: str, cfg: ExitConfig) -> str:
    """The manual item ``given`` names: its id as `status` shows it, or that id without its vendor
    when only one item ends so; else one line with the nearest ids ("did you mean")."""
    manual = [a.id for a in plan.actions() if a.manual is not None]
    found = full_item_id(given, manual)
    if found is not None:
        return found
    listing = hints.command("status", "--pending", run=run_id, config=cfg.path)
    near = nearest_ids(given, manual)
    guess = f"did you mean {near}? " if near else ""
    # The command last, after a colon: on a terminal it stands on its own line and no ";" is left dangling.
    raise BadInput(f"{given!r} is not a manual item of run {run_id}; {guess}its manual items are listed by: {listing}"
                   if manual else f"run {run_id} has no manual item")


def confirm(run_id: str, action_id: str, by: str, note: str, cfg: ExitConfig, sessions: Sessions) -> ConfirmResult:
    """Record that a person did a manual item, after re-reading the vendor where it can see it."""
    if not by.strip():
        raise BadInput("--by needs the name of the person who did the item")
    with reopen(run_id, cfg, sessions) as (run, plan, audit):
        if sessions.ticket is not None:
            sessions.ticket.bind(plan, run, audit)
        if action_id.startswith(TICKET_ITEM) and plan.action(action_id) is None:
            return _confirm_pasted(run, plan, audit, action_id, by, note, cfg, sessions)
        action_id = manual_item_id(plan, action_id, run_id, cfg)
        action = plan.action(action_id)
        assert action is not None and action.manual is not None
        state = fold_actions(audit.records)
        if state.get(action_id) == "manual.confirmed":
            who = next(r["detail"]["by"] for r in reversed(audit.records)
                       if r["event"] == "manual.confirmed" and r["action_id"] == action_id)
            status_hint = hints.command("status", run=run_id, config=cfg.path)
            raise BadInput(f"{action_id} was already confirmed by {who}; see `{status_hint}`")
        if state.get(action_id) is None:
            raise BadInput(f"{action_id} has not been reached yet in run {run_id}; resume the run first")
        if action.manual is not None and action.manual.record and not note.strip():
            raise BadInput(f"{action_id} needs --note recording {action.manual.record}")
        _after_the_removals(plan, action, tally(plan.actions(), audit.records), run_id, cfg)
        accepted, check = record_confirmation(audit, sessions.by_vendor[action.vendor], action, by, note,
                                              mode="confirm")
        standing = tally(plan.actions(), audit.records)
        remaining = [a for a in plan.actions() if standing.of[a.id] == "for_person"]
        # Never reached, or held behind a gate item now confirmed: a resume runs them (manual items too,
        # which then join the checklist). Those still behind an open gate wait for it.
        to_resume = [a for a in plan.actions() if standing.of[a.id] == "not_started"]
        closed = accepted and standing.complete
        if closed:
            # The last item is done: re-read every vendor so the record ends with the state after it.
            verify_run(plan, sessions, audit)
            audit.emit("run.closed", outcome="success", detail="every action done and every manual item confirmed")
            write_state(run, plan, audit, "closed")
        else:
            write_state(run, plan, audit, "finished-manual_pending")
        standing = tally(plan.actions(), audit.records)
        signer = signer_for(cfg)
        documents = write_documents(run, plan, audit, signer, sessions)
        ticket = sessions.ticket
        if ticket is not None and accepted and ticket.after_confirm(action, by, note, closed, signer):
            write_documents(run, plan, audit, signer, sessions)  # what was posted is signed too
        return ConfirmResult(run, action, accepted, check, remaining, documents, to_resume,
                             ticket=ticket_summary(ticket), tally=standing)


def _after_the_removals(plan: Plan, action: Action, standing: Tally, run_id: str, cfg: ExitConfig) -> None:
    """The runbook's order holds for a person's items too: a closure item no API re-read can check (a
    vendor support's confirmation that de-provisioning is complete) is confirmed only once every removal
    of its vendor is done; confirmed earlier, it would record a completion the vendor's own notice had not
    yet asked for. One the API can check (billing, re-read for every billed product) is held to that read."""
    if plan.step_of()[action.id].phase != "closure" or (action.manual is not None and action.manual.verify_hint):
        return
    open_ = [a.id for s in plan.vendor(action.vendor).steps if s.phase == "removal" for a in s.actions
             if standing.of.get(a.id) not in DONE_STANDINGS]
    if open_:
        more = f" and {len(open_) - 3} more" if len(open_) > 3 else ""
        listing = hints.command("status", "--pending", run=run_id, config=cfg.path)
        raise BadInput(f"{action.id} comes after {plan.vendor(action.vendor).display_name}'s removals, and "
                       f"{len(open_)} of them are not done: {', '.join(open_[:3])}{more}; do and confirm those "
                       f"first (listed by: {listing})")


def _confirm_pasted(run: RunDir, plan: Plan, audit: AuditLog, item: str, by: str, note: str, cfg: ExitConfig,
                    sessions: Sessions) -> ConfirmResult:
    """A note or file the PSA did not take, now put in the ticket by a person: re-read the ticket
    where it can be read, and record it."""
    ticket = sessions.ticket
    if ticket is None:
        raise BadInput(f"{item} is a ticket item, and this config has no [psa] section")
    accepted, seen = ticket.confirm_pasted(item.removeprefix(TICKET_ITEM), by, note)
    action = Action(id=item, vendor=ticket.session.name, step="ticket", kind="manual", operation=item,
                    target=Target(type="ticket", id=item, name=f"{ticket.ref}: {item}"), summary=seen)
    check = Check(f"{ticket.ref}: {item}", accepted, seen)
    standing = tally(plan.actions(), audit.records)
    remaining = [a for a in plan.actions() if standing.of[a.id] == "for_person"]
    documents = write_documents(run, plan, audit, signer_for(cfg), sessions) if accepted else []
    return ConfirmResult(run, action, accepted, check, remaining, documents, ticket=ticket_summary(ticket),
                         tally=standing)


# -- status ------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusRow:
    step: str
    action: Action
    state: str  # done / verified / manual-pending / confirmed / skipped / blocked / failed / unknown / not started
    detail: str


def run_tally(run_id: str, cfg: ExitConfig) -> Tally:
    """Where every action of a run stands, from its audit log: the counts `status` prints."""
    run = RunDir.existing(cfg.runs_dir, run_id)
    return tally(read_plan(run.plan_path).actions(),
                 list(read_records(run.audit_path)) if run.audit_path.exists() else [])


def status(run_id: str, cfg: ExitConfig) -> tuple[RunDir, list[StatusRow]]:
    run = RunDir.existing(cfg.runs_dir, run_id)
    plan = read_plan(run.plan_path)
    records = list(read_records(run.audit_path)) if run.audit_path.exists() else []
    folded = fold(records)
    standing = tally(plan.actions(), records)
    rows = []
    names = {"action.succeeded": "done", "action.failed": "failed", "action.skipped": "skipped",
             "action.blocked": "blocked", "action.unknown": "unknown", "action.started": "interrupted",
             "manual.pending": "manual-pending", "manual.confirmed": "confirmed",
             "manual.rejected": "manual-pending"}
    for step in plan.steps():
        for a in step.actions:
            rec = folded.last.get(a.id)
            proof = folded.proof.get(a.id)
            state = names.get(rec["event"], "?") if rec else (
                "waiting" if standing.of[a.id] == "waiting" else "not started")
            if state == "done" and proof is not None and proof["event"] == "verify.passed":
                state = "verified"
            detail = f"waits for {', '.join(standing.waiting_on)}" if state == "waiting" else ""
            if rec is not None:
                d = rec.get("detail")
                if rec["event"] == "manual.confirmed" and isinstance(d, dict):
                    when = rec["ts"][:16].replace("T", " ")
                    detail = f"by {d['by']}, {when} UTC" + (f": {d['note']}" if d.get("note") else "")
                elif rec["event"] == "manual.rejected" and isinstance(d, dict):
                    detail = f"confirmation refused: {d['why']}"
                elif rec["event"] == "manual.pending":
                    detail = a.manual.portal_path if a.manual else a.summary
                else:
                    detail = d.get("message", "") if isinstance(d, dict) else str(d or "")
            rows.append(StatusRow(step.title, a, state, detail))
    return run, rows
