"""What the proof-of-stop report says, built only from the plan, the audit log and the
signed chain head — so the Markdown and the HTML page say the same thing, and nothing
the log does not."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from offboard.lifecycle import TERMINAL, fold, tally
from offboard.plan import Action, Plan
from offboard.proof.closure import removals, stops_updating
from offboard.proof.signing import SIGNATURES
from offboard.wire.http import request_line

# What each state is called for a reader who is not an engineer.
STATE_LABEL = {
    "removed": "Removed", "already_absent": "Already gone", "exported": "Exported", "drafted": "Drafted",
    "noted": "Posted to the ticket",
    "confirmed": "Done by hand", "pending": "Waiting for a person", "waiting": "Waits for an earlier step",
    "failed": "FAILED", "unknown": "Outcome unknown", "held": "Held back", "skipped": "Not touched",
    "not_started": "Not started", "interrupted": "Interrupted",
}
PROBLEM_STATES = ("failed", "unknown", "held", "interrupted")


@dataclass
class Row:
    name: str
    action_id: str
    kind: str  # "api", "export" or "manual"
    state: str  # a key of STATE_LABEL
    when: str
    how: str  # how it was done: the call and the vendor's answer, or who confirmed it
    verified: str = ""  # the re-read that proves it, if any
    verified_ok: bool | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    proof: str = ""  # the proof in a reader's words: re-read at the vendor, or who attested it and when

    @property
    def label(self) -> str:
        return STATE_LABEL[self.state]


@dataclass
class StepView:
    title: str
    why: str
    rows: list[Row]
    stops_updating: tuple[str, ...]

    def tally(self) -> Counter[str]:
        return Counter(r.state for r in self.rows)


@dataclass
class VendorView:
    name: str
    display_name: str
    scope: str
    account: str
    steps: list[StepView]
    skipped: list[tuple[str, str, str]]  # name, id, why
    checks: list[tuple[str, bool, str]]  # whole-vendor re-reads: check, passed, what the vendor said
    counts: list[tuple[str, Any, Any]]  # billing-relevant count, before, after


@dataclass
class Proof:
    customer: str
    run_id: str
    plan_id: str
    plan_made: str
    end_of_service: str
    approved_by: str
    ticket: str
    monitoring_after_exit: str
    started: str
    finished: dict[str, Any] | None
    events: int
    last_hash: str
    signature: dict[str, Any] | None
    vendors: list[VendorView]
    timeline: list[tuple[str, str]]
    totals: Counter[str]
    checks_failed: int
    overrides: list[tuple[str, str, str]]  # when, what, reason
    # The customer's layer, in the closure note's words: per product what was removed and by whom,
    # what is not removed yet, what no longer updates, and the re-reads that did not pass (vendor, check, said).
    removed: list[tuple[str, list[str]]] = field(default_factory=list)
    not_finished: list[str] = field(default_factory=list)
    stops: list[str] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def stopped(self) -> bool:
        """Every removal done and verified, every manual item confirmed, every re-read passed."""
        return (self.finished is not None and not self.checks_failed and not self.totals["pending"]
                and not any(self.totals[s] for s in (*PROBLEM_STATES, "not_started", "waiting")))

    @property
    def proven_stopped(self) -> str:
        """When the vendors' re-reads last proved the stop, against the requested end of service."""
        if not self.stopped or self.finished is None:
            return "not yet proven"
        stopped_on = self.finished["ts"][:10]
        late = ""
        if self.end_of_service[:10] < stopped_on and self.end_of_service != "not set":
            days = (date.fromisoformat(stopped_on) - date.fromisoformat(self.end_of_service[:10])).days
            late = f" — {days} day(s) after the requested end of service"
        return when(self.finished["ts"]) + late

    @property
    def verdict(self) -> str:
        if self.stopped:
            return "Service stopped: every removal is done and was re-read at the vendor, every manual step confirmed."
        parts = []
        if self.totals["pending"]:
            parts.append(f"{self.totals['pending']} manual step(s) still waiting for a person")
        problems = sum(self.totals[s] for s in PROBLEM_STATES)
        if problems:
            parts.append(f"{problems} action(s) failed, held back or unknown")
        if self.totals["waiting"]:
            parts.append(f"{self.totals['waiting']} action(s) waiting for an earlier manual step")
        if self.totals["not_started"]:
            parts.append(f"{self.totals['not_started']} action(s) not started")
        if self.checks_failed:
            parts.append(f"{self.checks_failed} verification re-read(s) did not pass")
        if self.finished is None:
            parts.append("the run has not finished")
        return "Not finished yet: " + "; ".join(parts) + "."


def when(ts: str | None) -> str:
    """``2026-11-23 14:12 UTC`` from the log's ISO timestamps."""
    if not ts:
        return "-"
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return ts


def last_signature(run_path: Path) -> dict[str, Any] | None:
    try:
        lines = (run_path / SIGNATURES).read_bytes().split(b"\n")  # "\n" only, as it is written
    except FileNotFoundError:
        return None
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            return record
    return None


def _message(detail: Any) -> str:
    if isinstance(detail, dict):
        return str(detail.get("message") or detail.get("result") or detail.get("note") or "")
    return str(detail or "")


def request_shown(http: dict[str, Any]) -> str:
    """One request as every document shows it: ``GET /v1/agents?organization_id=42 → 200``."""
    return f"{request_line(http['method'], http['path'], http.get('query', ''))} → {http['status']}"


def _http(rec: dict[str, Any] | None) -> str:
    http = rec.get("http") if rec else None
    return request_shown(http) if http else ""


_OVERRIDDEN = "the safety checks made before the run (preflight gates)"
# The report's words for the run's standings (offboard.lifecycle.STANDINGS, which every command counts).
_STATE_OF = {"for_person": "pending", "blocked": "held"}


def _proof_words(a: Action, vendor: str, state: str, rec: dict[str, Any] | None, proof: dict[str, Any] | None) -> str:
    """What proves the row, for a reader who is not an engineer."""
    detail = rec.get("detail") if rec else None
    checked = proof is not None and proof["event"] == "verify.passed"
    if state == "confirmed" and isinstance(detail, dict) and rec is not None:
        said = f"Attested by {detail.get('by', '?')} on {when(rec['ts'])}"
        if detail.get("verified_by_api"):
            return said + f"; {vendor}'s API was re-read and agreed"
        if a.manual is not None and a.manual.verify_hint:
            return said + f"; {vendor}'s API could not be re-read for it"
        return said + "; no API can show this, so it rests on their word"
    if state in ("removed", "already_absent"):
        if checked:
            return f"Re-read at {vendor} afterwards: gone" if a.kind == "api" else f"Re-read at {vendor}: done"
        if proof is not None:
            return f"Re-read at {vendor} afterwards: NOT gone"
        return f"Done through {vendor}'s API; not re-read yet"
    if state == "exported":
        return "Saved before anything was removed; each file's SHA-256 is in the details"
    if state == "drafted":
        return "A draft for a person to send (offboard sends no mail)"
    if state == "noted":
        return "Posted to the exit's PSA ticket"
    if state == "pending" and a.manual is not None:
        return f"Done when: {a.manual.done_when}"
    if state == "waiting":
        return "Runs once the earlier manual step is confirmed"
    if state == "skipped":
        return "Not touched: it did not belong to this customer"
    return _message(detail)


def _row(a: Action, rec: dict[str, Any] | None, proof: dict[str, Any] | None, standing: str,
         vendor: str = "the vendor") -> Row:
    kind = "manual" if a.kind == "manual" else ("api" if a.destructive else "export")
    event = rec["event"] if rec else None
    detail = rec.get("detail") if rec else None
    state = _STATE_OF.get(standing, standing)
    how = ""
    files: list[dict[str, Any]] = []
    if event == "manual.confirmed" and isinstance(detail, dict):
        how = f"confirmed by {detail['by']}" + (f": “{detail['note']}”" if detail.get("note") else "")
        if detail.get("verified_by_api"):
            how += " (the vendor's API agreed)"
    elif event in ("manual.pending", "manual.rejected") and a.manual is not None:
        how = f"to do: {a.manual.portal_path} — done when {a.manual.done_when}"
        if event == "manual.rejected" and isinstance(detail, dict):
            how += f" (last confirmation refused: {detail.get('why', '')})"
    elif rec is not None:
        how = "; ".join(x for x in (_http(rec), _message(detail)) if x)
        if isinstance(detail, dict) and isinstance(detail.get("files"), list):
            files = detail["files"]
    verified, ok = "", None
    if proof is not None:
        ok = proof["event"] == "verify.passed"
        verified = (proof.get("detail") or {}).get("result", "") + (f" ({_http(proof)})" if _http(proof) else "")
    # Hostnames and emails as the vendor spells them; descriptions capitalised.
    name = a.target.name if kind == "api" else a.target.name[:1].upper() + a.target.name[1:]
    return Row(name, a.id, kind, state, when(rec["ts"]) if rec else "-", how, verified, ok, files,
               _proof_words(a, vendor, state, rec, proof))


def _timeline(plan: Plan, records: list[dict[str, Any]], signature: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The run's story in a few lines: start, overrides, when each step was completed, the end."""
    out: list[tuple[str, str]] = []
    last = fold(records).last
    for r in records:
        ev, ts = r["event"], r["ts"]
        text = {"run.started": "The run started", "run.resumed": "The run was resumed",
                "run.interrupted": "The run was interrupted",
                "run.finished": f"The automated part finished ({r['outcome']})",
                "verify.finished": "The vendors were re-read to verify the run",
                "run.closed": "Every action done and every manual step confirmed: the exit is complete"}.get(ev)
        if ev == "preflight.overridden":
            text = f"Preflight gates overridden: “{r['detail']['reason']}”"
        if text:
            out.append((ts, text))
    for vp in plan.vendors:
        for step in vp.steps:
            ends = [last[a.id] for a in step.actions if a.id in last]
            if len(ends) == len(step.actions) and all(e["event"] in TERMINAL for e in ends):
                out.append((max(e["ts"] for e in ends), f"{vp.display_name}: “{step.title}” completed"))
    if signature is not None:
        out.append((signature["signed_at"], f"The audit log (all {signature['audit_lines']} events to here) was "
                                             f"signed with the MSP's key {signature['key']}"))
    out.sort(key=lambda t: t[0])
    return [(when(ts), text) for ts, text in out]


def build(run_id: str, plan: Plan, records: list[dict[str, Any]], signature: dict[str, Any] | None) -> Proof:
    folded = fold(records)
    standing = tally(plan.actions(), records)
    totals: Counter[str] = Counter()
    vendors = []
    after = {r["vendor"]: r["detail"]["snapshot"] for r in records if r["event"] == "snapshot.taken"}
    whole: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        if r["event"] in ("verify.passed", "verify.failed") and not r.get("action_id"):
            whole[(r["vendor"], r["detail"]["check"])] = r  # the latest re-read of each check
    checks_failed = sum(1 for r in whole.values() if r["event"] == "verify.failed")
    checks_failed += sum(1 for p in folded.proof.values() if p["event"] == "verify.failed"
                         and folded.last.get(p["action_id"], {}).get("event") not in ("manual.pending",
                                                                                      "manual.rejected"))
    for vp in plan.vendors:
        steps = []
        for step in vp.steps:
            rows = [_row(a, folded.last.get(a.id), folded.proof.get(a.id), standing.of[a.id], vp.display_name)
                    for a in step.actions]
            totals.update(r.state for r in rows)
            steps.append(StepView(step.title, step.why, rows, step.stops_updating))
        now = after.get(vp.vendor, {})
        vendors.append(VendorView(
            vp.vendor, vp.display_name, vp.scope, vp.account, steps,
            [(s.target.name, s.target.id, s.reason) for s in vp.skipped],
            [(r["detail"]["check"], r["event"] == "verify.passed", r["detail"]["result"])
             for (v, _), r in whole.items() if v == vp.vendor],
            # Counts only: the snapshot's names and ids (an account's name, its licence) are no count.
            [(k, v, now.get(k, "-")) for k, v in vp.snapshot.items()
             if isinstance(v, int | float) and not isinstance(v, bool)]))
    finished = next((r for r in reversed(records) if r["event"] in ("run.finished", "run.closed")), None)
    failed = [(plan.vendor(v).display_name, c, r["detail"]["result"]) for (v, c), r in whole.items()
              if r["event"] == "verify.failed" and v in {vp.vendor for vp in plan.vendors}]
    failed += [(plan.vendor(p["vendor"]).display_name, p["detail"]["check"], p["detail"]["result"])
               for p in folded.proof.values() if p["event"] == "verify.failed"
               and folded.last.get(p["action_id"], {}).get("event") not in ("manual.pending", "manual.rejected")]
    removed, not_finished = removals(plan, records)
    overrides = [(when(r["ts"]), _OVERRIDDEN if r["event"] == "preflight.overridden" else
                  f"a failed evidence export ({r.get('vendor')}), so removals went ahead without it",
                  str(r["detail"]["reason"]))
                 for r in records if r["event"] in ("preflight.overridden", "evidence.overridden")]
    return Proof(
        customer=plan.customer, run_id=run_id, plan_id=plan.plan_id, plan_made=when(plan.created_at),
        end_of_service=plan.end_of_service or "not set", approved_by=plan.approved_by or "not recorded",
        ticket=plan.ticket or "none", monitoring_after_exit=plan.monitoring_after_exit or "not recorded",
        started=when(records[0]["ts"]) if records else "-", finished=finished, events=len(records),
        last_hash=records[-1]["hash"] if records else "-", signature=signature, vendors=vendors,
        timeline=_timeline(plan, records, signature), totals=totals, checks_failed=checks_failed,
        overrides=overrides, removed=removed, not_finished=not_finished, stops=stops_updating(plan, records),
        failed=failed)


# The "at a glance" columns: each label says what it counts (objects at the vendor, or steps of the runbook).
GLANCE = (("Objects removed by API", ("removed",)), ("Objects already gone", ("already_absent",)),
          ("Steps done by a person", ("confirmed",)), ("Steps waiting for a person", ("pending",)),
          ("Actions waiting for an earlier step", ("waiting", "not_started")),
          ("Failed, held back or unknown", PROBLEM_STATES), ("Evidence exports", ("exported",)),
          ("Objects not touched (not this customer's)", ("skipped",)))


def signature_line(p: Proof) -> str:
    s = p.signature
    if s is None:
        return "not signed — the MSP had no signing key when this run ran (`offboard keys init`)"
    covers = "all events" if s["audit_lines"] == p.events else f"events 1 to {s['audit_lines']} of {p.events}"
    return (f"signed with the MSP's key `{s['key']}` at {s['signed_at']}, covering {covers} "
            f"(head hash `{s['last_hash']}`)")


def glance(p: Proof) -> list[tuple[str, list[int]]]:
    """Per vendor, how many objects ended in each state (the 'at a glance' table)."""
    out = []
    for v in p.vendors:
        tally: Counter[str] = Counter()
        for step in v.steps:
            tally.update(step.tally())
        counts = [sum(tally[s] for s in states) for _, states in GLANCE[:-1]]
        counts.append(len(v.skipped) + tally["skipped"])
        out.append((v.display_name, counts))
    return out
