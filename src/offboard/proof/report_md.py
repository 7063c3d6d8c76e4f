"""The proof-of-stop report as Markdown (report.md), rendered from one ``model.Proof``."""

from __future__ import annotations

from typing import Any

from offboard.proof.model import GLANCE, Proof, glance, signature_line


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_markdown(p: Proof) -> str:
    end = p.finished
    out = [
        f"# Proof of service stop — {p.customer}", "",
        f"**{p.verdict}**", "",
        "| | |", "|---|---|",
        f"| End of service (requested) | {_cell(p.end_of_service)} |",
        f"| Service proven stopped | {_cell(p.proven_stopped)} |",
        f"| Approved by | {_cell(p.approved_by)} |",
        f"| Ticket | {_cell(p.ticket)} |",
        f"| Monitoring after the exit | {_cell(p.monitoring_after_exit)} |",
        f"| Run | `{p.run_id}` (plan `{p.plan_id}`, made {p.plan_made}) |",
        f"| Started | {p.started} |",
        "| Last update | " + (f"{_cell(end['ts'])} — {end['event']} **{end['outcome']}**" if end else
                               "not finished (resume the run)") + " |",
        f"| Audit log | `audit.jsonl`, {p.events} events, last hash `{p.last_hash}` |",
        f"| Signature | {_cell(signature_line(p))} |",
        "",
        "## At a glance", "",
        "| Vendor | " + " | ".join(label for label, _ in GLANCE) + " |",
        "|---" * (len(GLANCE) + 1) + "|",
    ]
    out += [f"| {name} | " + " | ".join(str(n) for n in counts) + " |" for name, counts in glance(p)]
    out.append("")
    for when, what, reason in p.overrides:
        out.append(f"- {what} overridden at {when}: “{_cell(reason)}”.")
    if p.overrides:
        out.append("")
    for v in p.vendors:
        out += [f"## {v.display_name} — {v.scope}", "", f"Credentials: {v.account}.", ""]
        for step in v.steps:
            out += [f"### {step.title}", ""]
            if step.why:
                out += [step.why, ""]
            out += ["| Object | When | Result | How it was done | Verified by re-reading the vendor |",
                    "|---|---|---|---|---|"]
            for r in step.rows:
                how = r.how
                if r.files:
                    how += "; " + ", ".join(f"`{f['path']}` sha256 {f['sha256'][:12]}…" for f in r.files[:4])
                    how += f" and {len(r.files) - 4} more" if len(r.files) > 4 else ""
                verified = "" if r.verified_ok is None else (
                    ("passed: " if r.verified_ok else "FAILED: ") + r.verified)
                name = r.name if r.kind != "manual" else f"{r.name} (`{r.action_id}`)"
                out.append(f"| {_cell(name)} | {r.when} | {r.label} | {_cell(how)} | {_cell(verified)} |")
            out.append("")
        if v.skipped:
            out += ["### Not touched (outside the exit's scope)", ""]
            out += [f"- {_cell(name)} (`{oid}`): {_cell(why)}" for name, oid, why in v.skipped]
            out.append("")
        if v.checks:
            out += ["### Verification of the whole (re-read from the vendor)", "", "| Check | Result |", "|---|---|"]
            out += [f"| {_cell(c)} | {'passed' if ok else 'FAILED'}: {_cell(said)} |" for c, ok, said in v.checks]
            out.append("")
        if v.counts:
            out += ["### Billing-relevant counts, before and after", "",
                    "| Count | Before (when planned) | After (last re-read) |", "|---|---|---|"]
            out += [f"| {k.replace('_', ' ')} | {_cell(b)} | {_cell(a)} |" for k, b, a in v.counts]
            out.append("")
    out += ["## Timeline", ""]
    out += [f"- {ts} — {_cell(text)}" for ts, text in p.timeline]
    out += ["", "## How to check this report", "",
            "Every line above comes from `audit.jsonl`. Check that the log is whole and was signed by the MSP:",
            "", "    offboard audit verify audit.jsonl --public-key msp.pub", "",
            f"A copy of the final hash kept elsewhere (`{p.last_hash}`) proves later that the log is unchanged.", ""]
    return "\n".join(out)
