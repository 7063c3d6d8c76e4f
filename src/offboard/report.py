"""The proof-of-stop report: built only from the plan and the audit log, so it cannot
say anything the log does not."""

from __future__ import annotations

from typing import Any

from offboard.lifecycle import fold
from offboard.plan import Plan
from offboard.runstate import RunDir, atomic_write_text

RESULT = {"action.succeeded": "removed", "action.failed": "FAILED", "action.skipped": "skipped",
          "action.blocked": "held back", "action.unknown": "UNKNOWN", "action.started": "interrupted",
          "manual.pending": "manual, pending", "manual.confirmed": "confirmed", "manual.rejected": "manual, pending"}


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _message(detail: Any) -> str:
    if isinstance(detail, dict):
        return str(detail.get("message") or detail.get("result") or detail.get("note") or "")
    return str(detail or "")


def _http(rec: dict[str, Any] | None) -> str:
    http = rec.get("http") if rec else None
    return f"{http['method']} {http['path']} → {http['status']}" if http else ""


def render_report(run_id: str, plan: Plan, records: list[dict[str, Any]]) -> str:
    folded = fold(records)
    last, proof = folded.last, folded.proof
    started = records[0]["ts"] if records else "-"
    finished = next((r for r in reversed(records) if r["event"] in ("run.finished", "run.closed")), None)
    out = [
        f"# Proof of service stop — {plan.customer}",
        "",
        f"- Run: `{run_id}` (plan `{plan.plan_id}`, made {plan.created_at})",
        f"- End of service: {plan.end_of_service or 'not set'}; approved by: {plan.approved_by or 'not recorded'}; "
        f"ticket: {plan.ticket or 'none'}",
        f"- Started: {started}",
        f"- Last update: {finished['ts'] if finished else 'not finished (resume the run)'}"
        + (f" — {finished['event']} **{finished['outcome']}**" if finished else ""),
        f"- Audit log: `audit.jsonl`, {len(records)} events, last hash `{records[-1]['hash'] if records else '-'}`"
        " (check with `offboard audit verify audit.jsonl`)",
        "",
    ]
    gates = [r for r in records if r["event"] == "preflight.checked"]
    if gates:
        out += ["## Preflight", "", "| Vendor | Check | Count | Blocking | Finding |", "|---|---|---|---|---|"]
        for g in gates:
            d = g["detail"]
            out.append(f"| {g['vendor']} | {_cell(d['kind'])} | {d['count']} | {'yes' if d['blocking'] else 'no'}"
                       f" | {_cell(d['finding'])} |")
        for o in (r for r in records if r["event"] in ("preflight.overridden", "evidence.overridden")):
            what = "Gates" if o["event"] == "preflight.overridden" else "Failed evidence export"
            out.append(f"\n{what} overridden at {o['ts']}: “{_cell(o['detail']['reason'])}”.")
        out.append("")
    after = {r["vendor"]: r["detail"]["snapshot"] for r in records if r["event"] == "snapshot.taken"}
    for vp in plan.vendors:
        out += [f"## {vp.display_name} — {vp.scope}", "", f"Credentials: {vp.account}.", ""]
        for step in vp.steps:
            out += [f"### {step.title}", "", "| Object | When | Result | How it is known | Verified |",
                    "|---|---|---|---|---|"]
            for a in step.actions:
                rec = last.get(a.id)
                result = RESULT.get(rec["event"], "?") if rec else "not started"
                if rec and rec["event"] == "action.succeeded":
                    if rec["detail"].get("already_absent"):
                        result = "already absent"
                    elif not a.destructive:
                        result = "exported"
                how = ""
                if rec and rec["event"] == "manual.confirmed":
                    d = rec["detail"]
                    how = f"confirmed by {d['by']}" + (f": {d['note']}" if d.get("note") else "")
                elif rec and rec["event"] == "manual.pending" and a.manual:
                    how = f"{a.manual.portal_path}; done when {a.manual.done_when}"
                elif rec:
                    how = "; ".join(x for x in (_http(rec), _message(rec["detail"])) if x)
                    files = rec["detail"].get("files") if isinstance(rec["detail"], dict) else None
                    if files:
                        how += "; " + ", ".join(f"`{f['path']}` sha256 {f['sha256'][:12]}…" for f in files[:4])
                        if len(files) > 4:
                            how += f" and {len(files) - 4} more"
                p = proof.get(a.id)
                verified = "" if p is None else (
                    ("passed" if p["event"] == "verify.passed" else "FAILED")
                    + f": {_cell(p['detail']['result'])}" + (f" ({_http(p)})" if _http(p) else ""))
                name = a.target.name if a.kind == "api" else f"{a.target.name} (`{a.id}`)"
                when = rec["ts"] if rec else "-"
                out.append(f"| {_cell(name)} | {when} | {result} | {_cell(how)} | {verified} |")
            out.append("")
        if vp.skipped:
            out += ["### Not touched (outside the exit's scope)", ""]
            out += [f"- {_cell(s.target.name)} (`{s.target.id}`): {_cell(s.reason)}" for s in vp.skipped]
            out.append("")
        checks = [r for r in records if r["event"] in ("verify.passed", "verify.failed")
                  and r["vendor"] == vp.vendor and not r.get("action_id")]
        if checks:
            out += ["### Verification of the whole (re-read from the vendor)", "", "| Check | Result |", "|---|---|"]
            for c in checks:
                mark = "passed" if c["event"] == "verify.passed" else "FAILED"
                out.append(f"| {_cell(c['detail']['check'])} | {mark}: {_cell(c['detail']['result'])} |")
            out.append("")
        if vp.snapshot:
            now = after.get(vp.vendor, {})
            out += ["### Billing-relevant counts, before and after", "", "| Count | Before (plan) | After |",
                    "|---|---|---|"]
            for k, v in vp.snapshot.items():
                out.append(f"| {k} | {_cell(v)} | {_cell(now.get(k, '-'))} |")
            out.append("")
    return "\n".join(out) + "\n"


def write_report(run: RunDir, plan: Plan, records: list[dict[str, Any]]) -> None:
    atomic_write_text(run.report_path, render_report(run.run_id, plan, records))
