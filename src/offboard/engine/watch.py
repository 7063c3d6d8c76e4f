"""`offboard watch`: re-verify a finished exit, on the MSP's scheduler, and add every check to its proof.

Each connector says what would show its service came back (``VendorSession.watch``); this
module records each check in the run's audit log (``watch.checked``, then ``watch.finished``),
tells the exit's PSA ticket of each new finding once (the notes' markers), and rewrites the
signed documents, as `verify --run` does. It never writes to a vendor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from offboard.config import ExitConfig
from offboard.connectors import Watched
from offboard.engine.runfolder import reopen, signer_for, write_documents
from offboard.engine.sessions import Sessions
from offboard.engine.ticket import Ticket
from offboard.engine.ticket import summary as ticket_summary
from offboard.engine.types import http_of
from offboard.errors import BadInput
from offboard.lifecycle import run_end
from offboard.plan import Action, Plan, read_plan
from offboard.proof import watch as proof
from offboard.proof.audit import AuditLog, read_records
from offboard.rundir import RunDir


@dataclass
class WatchResult:
    run: RunDir
    since: str  # when the exit ended: what came after it is news
    items: list[tuple[str, Watched]]  # (vendor, check), in the order checked
    last: bool = False  # the watch period's last day (the "watch ended" note)
    over: str = ""  # the period ended before today: nothing was checked
    ticket: list[str] = field(default_factory=list)
    documents: list[Path] = field(default_factory=list)

    @property
    def came_back(self) -> list[tuple[str, Watched]]:
        return [(v, w) for v, w in self.items if w.came_back]


def _parse_ts(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def watch_run(run_id: str, cfg: ExitConfig, sessions: Sessions, *, until: date | None = None,
              now: datetime | None = None) -> WatchResult:
    """One watch of a finished exit: every vendor's checks, recorded; the ticket told of what is new."""
    now = now or datetime.now(UTC)
    if until is not None and now.date() > until:
        # After its period a scheduled watch calls no vendor, not even the exit lock's identity
        # read: whether the period's last watch ran is read from the log alone (no decision to write).
        run = RunDir.existing(cfg.runs_dir, run_id)
        ended = next((w for w in proof.watches(list(read_records(run.audit_path))) if w.last), None)
        if ended is not None:
            return WatchResult(run, "", [], over=ended.until or until.isoformat())
    with reopen(run_id, cfg, sessions) as (run, plan, audit):
        end = run_end(audit.records)
        if not end.ended:
            raise BadInput(f"run {run_id} has not ended ({end.describe()}): `offboard watch` re-verifies a finished "
                           f"exit; see `offboard status --run {run_id}`")
        since = str(audit.records[end.line - 1]["ts"])
        earlier = proof.watches(list(audit.records))
        ended = next((w for w in earlier if w.last), None)
        if until is not None and ended is not None and now.date() > until:
            return WatchResult(run, since, [], over=ended.until or until.isoformat())
        # Every vendor answers before anything is written: a vendor that fails leaves no watch half
        # recorded (the next run checks again), and each watch's events stand together in the log.
        items = [(name, w) for name, session in sessions.by_vendor.items() for w in session.watch(_parse_ts(since))]
        for name, w in items:
            _emit(audit, name, w)
        last = until is not None and now.date() >= until
        back = [f"{v}:{w.key}" for v, w in items if w.came_back]
        audit.emit(proof.FINISHED, step="watch", outcome="failure" if back else "success", detail={
            "since": since, "checks": len(items), "came_back": back,
            "not_available": sum(1 for _, w in items if not w.available),
            "until": until.isoformat() if until else None, "last": last})
        result = WatchResult(run, since, items, last=last)
        if sessions.ticket is not None:
            _tell_ticket(sessions.ticket, plan, run, audit, result)
            result.ticket = ticket_summary(sessions.ticket)
        result.documents = write_documents(run, plan, audit, signer_for(cfg), sessions)
    return result


def _emit(audit: AuditLog, vendor: str, w: Watched) -> None:
    audit.emit(proof.CHECKED, vendor=vendor, step="watch", target=w.target.model_dump() if w.target else None,
               http=http_of(w.http), outcome="failure" if w.came_back else "success" if w.available else "unknown",
               detail={"check": w.check, "result": w.detail, "came_back": w.came_back, "available": w.available,
                       "key": w.key or None, "remedy": w.remedy or None})


def _tell_ticket(ticket: Ticket, plan: Plan, run: RunDir, audit: AuditLog, result: WatchResult) -> None:
    """One note per finding, once across every watch (the marker's facts are the finding's identity);
    on the period's last day, the note that the watch ended."""
    ticket.bind(plan, run, audit)
    for vendor, w in result.came_back:
        ticket.publish(proof.finding_note(plan, run.run_id, vendor, w.key, w.detail, w.remedy))
    if result.last:
        ticket.publish(proof.ended_note(plan, run.run_id, list(audit.records)))


def watch_summary(run: RunDir) -> list[str]:
    """What `offboard status` says of the watches after the exit (nothing before the first)."""
    if not run.audit_path.exists():
        return []
    return proof.summary_lines(list(read_records(run.audit_path)), proof.vendor_names(read_plan(run.plan_path)))


def answering(plan: Plan, found: list[tuple[str, Watched]]) -> list[Action]:
    """The actions of a fresh plan that remove what came back: the operations each finding names,
    on its object when it names one."""
    out = []
    for a in plan.actions():
        for vendor, w in found:
            if a.vendor == vendor and a.operation in w.removed_by and (
                    w.target is None or a.kind == "manual" or a.target.id == w.target.id):
                out.append(a)
                break
    return out
