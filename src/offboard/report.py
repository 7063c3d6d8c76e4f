"""The proof-of-stop report: built only from the plan and the audit log, so it cannot
say anything the log does not."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from offboard.plan import Plan
from offboard.runstate import RunDir, atomic_write_text


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _message(detail: Any) -> str:
    if isinstance(detail, dict):
        return str(detail.get("message") or detail.get("result") or detail.get("note") or "")
    return str(detail or "")


def render_report(run_id: str, plan: Plan, records: list[dict[str, Any]]) -> str:
    by_action: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("action_id"):
            by_action[r["action_id"]].append(r)
    started = records[0]["ts"] if records else "-"
    finished = next((r for r in reversed(records) if r["event"] == "run.finished"), None)
    out = [
        f"# Proof of service stop — {plan.customer}",
        "",
        f"- Run: `{run_id}` (plan `{plan.plan_id}`, made {plan.created_at})",
        f"- End of service: {plan.end_of_service or 'not set'}; approved by: {plan.approved_by or 'not recorded'}; "
        f"ticket: {plan.ticket or 'none'}",
        f"- Started: {started}",
        f"- Finished: {finished['ts'] if finished else 'not finished (resume the run)'}"
        + (f" — outcome **{finished['outcome']}**" if finished else ""),
        f"- Audit log: `audit.jsonl`, {len(records)} events, last hash `{records[-1]['hash'] if records else '-'}`"
        " (check with `offboard audit verify audit.jsonl`)",
        "",
    ]
    overrides = [r for r in records if r["event"] == "preflight.overridden"]
    gates = [r for r in records if r["event"] == "preflight.checked"]
    if gates:
        out += ["## Preflight", "", "| Vendor | Check | Count | Blocking | Finding |", "|---|---|---|---|---|"]
        for g in gates:
            d = g["detail"]
            out.append(f"| {g['vendor']} | {_cell(d['kind'])} | {d['count']} | {'yes' if d['blocking'] else 'no'}"
                       f" | {_cell(d['finding'])} |")
        for o in overrides:
            out.append(f"\nGates overridden at {o['ts']}: “{_cell(o['detail']['reason'])}”.")
        out.append("")
    for vp in plan.vendors:
        out += [f"## {vp.display_name} — {vp.scope}", "", f"Credentials: {vp.account}.", ""]
        for step in vp.steps:
            out += [f"### {step.title}", "", "| Object | Done at | Result | How it is known |", "|---|---|---|---|"]
            for a in step.actions:
                events = by_action.get(a.id, [])
                last = next((e for e in reversed(events) if e["event"] not in ("action.planned",)), None)
                when = last["ts"] if last else "-"
                result = {"action.succeeded": "removed", "action.failed": "FAILED",
                          "action.skipped": "skipped", "action.unknown": "UNKNOWN",
                          "action.started": "interrupted", "manual.pending": "manual, pending"}.get(
                    last["event"] if last else "", "not started")
                if last and last["event"] == "action.succeeded" and last["detail"].get("already_absent"):
                    result = "already absent"
                http = last.get("http") if last else None
                how = f"{http['method']} {http['path']} → {http['status']}" if http else ""
                how = "; ".join(x for x in (how, _message(last["detail"]) if last else "") if x)
                out.append(f"| {_cell(a.target.name)} (`{a.target.id}`) | {when} | {result} | {_cell(how)} |")
            out.append("")
        if vp.skipped:
            out += ["### Not touched (outside the exit's scope)", ""]
            out += [f"- {_cell(s.target.name)} (`{s.target.id}`): {_cell(s.reason)}" for s in vp.skipped]
            out.append("")
        checks = [r for r in records if r["event"] in ("verify.passed", "verify.failed")
                  and r["vendor"] == vp.vendor]
        if checks:
            out += ["### Verification (re-read from the vendor after removal)", "",
                    "| Check | Result | Re-read |", "|---|---|---|"]
            for c in checks:
                http = c.get("http")
                rr = f"{http['method']} {http['path']} → {http['status']}" if http else ""
                mark = "passed" if c["event"] == "verify.passed" else "FAILED"
                out.append(f"| {_cell(c['detail']['check'])} | {mark}: {_cell(c['detail']['result'])} | {rr} |")
            out.append("")
        if vp.snapshot:
            out += ["### Before the exit (snapshot at planning)", ""]
            out += [f"- {k}: {_cell(v)}" for k, v in vp.snapshot.items()]
            out.append("")
    return "\n".join(out) + "\n"


def write_report(run: RunDir, plan: Plan, records: list[dict[str, Any]]) -> None:
    atomic_write_text(run.report_path, render_report(run.run_id, plan, records))
