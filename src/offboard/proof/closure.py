"""The customer closure note (Markdown): what was removed, what evidence was kept, what
stops updating, who owns monitoring after the exit. Built from the plan, the audit log
and the evidence manifest only, so it says nothing the run did not do."""

from __future__ import annotations

from collections import Counter
from typing import Any

from offboard.lifecycle import fold
from offboard.plan import Plan
from offboard.rundir import RunDir, atomic_write_text
from offboard.text import one_line


def render_closure_note(plan: Plan, records: list[dict[str, Any]], manifest: dict[str, Any]) -> str:
    last = fold(records).last
    out = [f"# {one_line(plan.customer)}: closure of security services", ""]
    if plan.end_of_service:
        out += [f"End of service: **{plan.end_of_service}**.", ""]
    out += ["## What was removed", ""]
    stops: list[str] = []
    for vp in plan.vendors:
        for step in vp.steps:
            if step.phase in ("evidence", "scope"):
                continue
            done: Counter[str] = Counter()
            for a in step.actions:
                rec = last.get(a.id)
                if rec and rec["event"] == "action.succeeded":
                    done["done by API"] += 1
                elif rec and rec["event"] == "manual.confirmed":
                    done[f"done by {rec['detail']['by']}"] += 1
                else:
                    done["still open"] += 1
            if not step.actions:
                continue
            summary = ", ".join(f"{n} {what}" for what, n in sorted(done.items()))
            out.append(f"- **{vp.display_name} — {step.title}**: {summary}.")
            if not done["still open"]:
                stops += [f"{vp.display_name}: {line}" for line in step.stops_updating]
    files = manifest.get("files", {})
    out += ["", "## Evidence retained", ""]
    if files:
        out.append(f"{len(files)} file(s), exported before anything was removed; each is listed with its "
                   "SHA-256 in `evidence/manifest.json`:")
        out += [f"- `{one_line(path)}`" for path in sorted(files)]
    else:
        out.append("No evidence was exported in this run.")
    out += ["", "## What no longer updates", ""]
    out += [f"- {line}" for line in dict.fromkeys(stops)] or ["- Nothing yet: the removals are not finished."]
    out += ["", "## Monitoring after the exit", ""]
    out.append(one_line(plan.monitoring_after_exit) or "Not recorded: set `monitoring_after_exit` under [customer] in "
               "the config so this note names who watches your systems after the exit date.")
    out.append("")
    return "\n".join(out)


def write_closure_note(run: RunDir, plan: Plan, records: list[dict[str, Any]], manifest: dict[str, Any]) -> None:
    atomic_write_text(run.path / "closure-note.md", render_closure_note(plan, records, manifest))

