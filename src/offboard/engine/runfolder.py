"""A run's folder as the engine keeps it: the exit lock, reopening a past run, its state file,
and the documents written from its audit log.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from offboard.config import ExitConfig
from offboard.engine.guards import check_plan_fits
from offboard.engine.sessions import Sessions
from offboard.lifecycle import RunEnd, fold_actions, run_end
from offboard.plan import Plan, now_iso, read_plan
from offboard.proof.audit import AuditLog, read_records, repair_torn_tail
from offboard.proof.checklist import write_checklist
from offboard.proof.closure import write_closure_note
from offboard.proof.evidence import EvidenceStore
from offboard.proof.report import write_report
from offboard.proof.signing import SIGNATURES, Signer, load_signer
from offboard.rundir import RUN_ID_RE, RunDir, atomic_write_bytes, identity_lock


@contextmanager
def exit_lock(cfg: ExitConfig, sessions: Sessions) -> Iterator[None]:
    """One process at a time per exit, machine-wide: a second apply must not interleave its writes
    with the first's, whichever config file, spelling of the API's address, runs folder, user or
    cache folder it uses. Each vendor names the exit itself (``VendorSession.exit_identity``: a
    call or two); the locks live in one folder of the machine (``rundir.shared_lock_dir``); all
    are taken, in one order, or none."""
    with contextlib.ExitStack() as held:
        named = []
        for vendor in sorted(cfg.vendors):
            identity = sessions.by_vendor[vendor].exit_identity()
            named.append(identity)
            held.enter_context(identity_lock(identity, f"exit of {cfg.customer.name!r}, runs in "
                                                       f"{cfg.runs_dir.resolve()}"))
        sessions.identities = tuple(named)
        yield


def signer_for(cfg: ExitConfig) -> Signer | None:
    """The MSP's signing key for this exit, if it has one (runs are unsigned otherwise)."""
    return load_signer(cfg.signing_key_file)


@contextmanager
def reopen(run_id: str, cfg: ExitConfig, sessions: Sessions) -> Iterator[tuple[RunDir, Plan, AuditLog]]:
    """An earlier run, locked, with its plan and its audit log open for appending."""
    run = RunDir.existing(cfg.runs_dir, run_id)
    plan = read_plan(run.plan_path)
    check_plan_fits(plan, cfg)
    with exit_lock(cfg, sessions), run.lock():
        audit = AuditLog(run.audit_path, run.run_id)
        try:
            yield run, plan, audit
        finally:
            audit.close()


def run_ended(run_id: str, cfg: ExitConfig) -> RunEnd:
    """Where a past run's record stands, from its own audit log: closed (every action done and every
    item confirmed, or finished with nothing left) or not. A closed run's log is the exit's proof: a
    resume must not add to it."""
    run = RunDir.existing(cfg.runs_dir, run_id)
    return run_end(list(read_records(run.audit_path)) if run.audit_path.exists() else [])


def runs_of_plan(cfg: ExitConfig, plan_id: str) -> list[str]:
    """The runs already made from a plan, oldest first, as their state files say: for a message
    only (which run to continue), never for a decision."""
    found = []
    for state in sorted(cfg.runs_dir.glob("*/state.json")):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            if json.loads(state.read_text(encoding="utf-8")).get("plan_id") == plan_id:
                found.append(state.parent.name)
    return found


def began_guided(cfg: ExitConfig, run_id: str) -> bool | None:
    """Whether the run began guided (a person at each manual item) or unattended, as its log's
    ``run.started`` says (None: not said). A resume given neither flag continues it the same way: the
    resume command a stopped unattended run prints must not turn into a prompt on a terminal."""
    if not RUN_ID_RE.match(run_id):
        return None  # the resume itself refuses it, in one line
    with contextlib.suppress(OSError, ValueError):
        for record in read_records(RunDir(cfg.runs_dir, run_id).audit_path):
            if record.get("event") == "run.started":
                detail = record.get("detail")
                guided = detail.get("guided") if isinstance(detail, dict) else None
                return guided if isinstance(guided, bool) else None
    return None


def write_state(run: RunDir, plan: Plan, audit: AuditLog, status: str) -> None:
    run.write_state({
        "run_id": run.run_id,
        "status": status,
        "plan_id": plan.plan_id,
        "plan_checksum": plan.checksum,
        "customer": plan.customer,
        "updated_at": now_iso(),
        "audit_lines": len(audit.records),
        "audit_last_hash": audit.last_hash,
        "actions": fold_actions(audit.records),
    })


def write_documents(run: RunDir, plan: Plan, audit: AuditLog, signer: Signer | None,
                    sessions: Sessions | None = None) -> list[Path]:
    """Sign the chain head as it stands (when the MSP has a key), then write the documents
    that quote it, and each vendor's own (e.g. its completion notice). Returns the drafts a
    person still has to send (offboard never sends mail): those, and drafts kept as evidence,
    whose sending is not confirmed yet; a draft already sent is not pointed at again."""
    if signer is not None and audit.records and (torn := repair_torn_tail(run.path / SIGNATURES)):
        audit.emit("signatures.repaired", outcome="success",
                   detail=f"a torn last line of {torn} bytes in {SIGNATURES} (a crash while signing) was removed "
                          "before signing again; every complete signed head is intact")
    audit.sync()
    if signer is not None and audit.records:
        signer.sign_head(run.path, run.run_id, len(audit.records), audit.last_hash)
    states = fold_actions(audit.records)
    evidence = EvidenceStore(run.path)
    to_send = evidence.drafts_to_send(states)
    if sessions is not None:
        for vp in plan.vendors:
            for doc in sessions.by_vendor[vp.vendor].documents(vp, states):
                path = run.path / "documents" / vp.vendor / PurePosixPath(doc.name).name
                atomic_write_bytes(path, doc.content)
                if doc.draft_for and states.get(doc.draft_for) != "manual.confirmed":
                    to_send.append(path)
    write_report(run, plan, audit.records)
    write_closure_note(run, plan, audit.records, evidence.manifest())
    write_checklist(run, plan, audit.records, sessions.config if sessions is not None else None)
    return to_send
