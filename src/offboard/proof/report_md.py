"""The proof-of-stop report as Markdown (report.md), rendered from one ``model.Proof``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from offboard.proof.model import GLANCE, Proof, VendorView, glance, request_shown, signature_line
from offboard.text import one_line

# Everything that can start Markdown or HTML inline: emphasis, code, links and images (no link
# without its brackets, so parentheses stay readable), raw HTML and autolinks, entities, table
# cells, strikethrough, math, headings. Vendor strings (hostnames, names, messages) are escaped
# so a report shows them as text and nothing they spell becomes markup.
_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~&$])")
_LIST_START = re.compile(r"^(\s*)(?:([-+=])|(\d+)([.)]))")


def _text(value: Any) -> str:
    """A string as literal Markdown text (also inside a table cell)."""
    escaped = _SPECIAL.sub(r"\\\1", one_line(value))
    # A bullet is escaped before it; an ordered-list number after its digits (1\.): a backslash
    # before a digit is no escape in CommonMark and would show (\0. Notify ...).
    def unlist(m: re.Match[str]) -> str:
        return m.group(1) + ("\\" + m.group(2) if m.group(2) else m.group(3) + "\\" + m.group(4))

    return _LIST_START.sub(unlist, escaped, count=1)


def _code(value: Any, *, cell: bool = True) -> str:
    """A string as a code span: a fence longer than any backtick run in it, so it cannot end
    early; a pipe is escaped in a table cell (GFM splits cells before it reads code spans)."""
    text = one_line(value)
    fence = "`" * (max((len(r) for r in re.findall("`+", text)), default=0) + 1)
    if text.startswith("`") or text.endswith("`"):
        text = f" {text} "
    if cell:
        text = text.replace("|", "\\|")
    return f"{fence}{text}{fence}"


def _inline(value: str) -> str:
    """Our own sentence where `…` marks code (the signature line): its values as code, the rest as text."""
    parts = value.split("`")
    if len(parts) % 2 == 0:  # unbalanced: no markup at all
        return _text(value)
    return "".join(_code(p) if i % 2 else _text(p) for i, p in enumerate(parts))


def _evidence(v: VendorView) -> list[str]:
    """Each evidence file with its SHA-256 and the requests whose replies went into it."""
    files = [f for step in v.steps for r in step.rows for f in r.files]
    if not files:
        return []
    out = ["### Evidence files", "", "Each file with its SHA-256 and the requests whose replies it holds:", ""]
    for f in files:
        out.append(f"- {_code(f['path'], cell=False)} — {f.get('bytes', '?')} bytes, sha256 "
                   f"{_code(f['sha256'], cell=False)}")
        out += [f"  - {_code(request_shown(q), cell=False)}" for q in f.get("requests") or []]
    out.append("")
    return out


def _header(p: Proof) -> list[str]:
    end = p.finished
    out = [f"# Proof of service stop — {_text(p.customer)}", "",
           f"**{p.verdict}**", ""]  # our own sentence, counts only
    # Beside the verdict: what was overridden, and every re-read that did not pass.
    out += [f"- **Overridden** at {_text(when)}: {_text(what)}; the operator's reason: “{_text(reason)}”."
            for when, what, reason in p.overrides]
    out += [f"- **Check failed** at {_text(vendor)}: {_text(check)} — {_text(said)}"
            for vendor, check, said in p.failed]
    if p.overrides or p.failed:
        out.append("")
    return [
        *out, "| | |", "|---|---|",
        f"| End of service (requested) | {_text(p.end_of_service)} |",
        f"| Service proven stopped | {_text(p.proven_stopped)} |",
        f"| Approved by | {_text(p.approved_by)} |",
        f"| Ticket | {_text(p.ticket)} |",
        f"| Monitoring after the exit | {_text(p.monitoring_after_exit)} |",
        f"| Run | {_code(p.run_id)} (plan {_code(p.plan_id)}, made {_text(p.plan_made)}) |",
        f"| Started | {_text(p.started)} |",
        "| Last update | " + (f"{_text(end['ts'])} — {_text(end['event'])} **{_text(end['outcome'])}**" if end else
                               "not finished (resume the run)") + " |",
        f"| Audit log | `audit.jsonl`, {p.events} events, last hash {_code(p.last_hash)} |",
        f"| Signature | {_inline(signature_line(p))} |",
        ""]


def _removed(p: Proof) -> list[str]:
    out = ["## What was removed, and how it was proven", ""]
    for product, lines in p.removed:
        out += [f"### {_text(product)}", "", *(f"- {_text(line)}" for line in lines), ""]
    if not p.removed:
        out += ["Nothing has been removed yet.", ""]
    if p.not_finished:
        out += ["### Not removed yet", "", *(f"- {_text(line)}" for line in p.not_finished), ""]
    if p.stops:
        out += ["### What no longer updates", "", *(f"- {_text(line)}" for line in p.stops), ""]
    return out


def _glance(p: Proof) -> list[str]:
    out = ["## At a glance", "",
           "| Vendor | " + " | ".join(label for label, _ in GLANCE) + " |",
           "|---" * (len(GLANCE) + 1) + "|"]
    out += [f"| {_text(name)} | " + " | ".join(str(n) for n in counts) + " |" for name, counts in glance(p)]
    return [*out, ""]


def _vendors(p: Proof) -> list[str]:
    out: list[str] = []
    for v in p.vendors:
        out += [f"## {_text(v.display_name)} — {_text(v.scope)}", "", f"Credentials: {_text(v.account)}.", ""]
        for step in v.steps:
            out += [f"### {_text(step.title)}", ""]
            if step.why:
                out += [_text(step.why), ""]
            out += ["| Object | When | Result | Proof | How it was done | Verified by re-reading the vendor |",
                    "|---|---|---|---|---|---|"]
            for r in step.rows:
                how = _text(r.how)
                if r.files:
                    how += f"; {len(r.files)} file(s), listed under “Evidence files” below"
                verified = "" if r.verified_ok is None else (
                    ("passed: " if r.verified_ok else "FAILED: ") + _text(r.verified))
                name = _text(r.name) if r.kind != "manual" else f"{_text(r.name)} ({_code(r.action_id)})"
                out.append(f"| {name} | {_text(r.when)} | {_text(r.label)} | {_text(r.proof)} | {how} | {verified} |")
            out.append("")
        out += _evidence(v)
        if v.skipped:
            out += ["### Not touched (outside the exit's scope)", ""]
            out += [f"- {_text(name)} ({_code(oid, cell=False)}): {_text(why)}" for name, oid, why in v.skipped]
            out.append("")
        if v.checks:
            out += ["### Verification of the whole (re-read from the vendor)", "", "| Check | Result |", "|---|---|"]
            out += [f"| {_text(c)} | {'passed' if ok else 'FAILED'}: {_text(said)} |" for c, ok, said in v.checks]
            out.append("")
        if v.counts:
            out += ["### Billing-relevant counts, before and after", "",
                    "An unchanged count is of something this exit keeps or does not remove.", "",
                    "| Count | Before (when planned) | After (last re-read) |", "|---|---|---|"]
            out += [f"| {_text(k.replace('_', ' '))} | {_text(b)} | {_text(a)} |" for k, b, a in v.counts]
            out.append("")
    return out


def _timeline(p: Proof) -> list[str]:
    return ["## Timeline", "", *(f"- {_text(ts)} — {_text(text)}" for ts, text in p.timeline), ""]


def _how_to_check(p: Proof) -> list[str]:
    return ["## How to check this report", "",
            "Every line above comes from `audit.jsonl`. Check that the log is whole and was signed by the MSP, "
            "in the run's bundle unpacked (it holds the MSP's public key, `msp.pub`, beside the log), or with the "
            "`msp.pub` the MSP shared put beside it:",
            "", "    offboard audit verify audit.jsonl --public-key msp.pub", "",
            f"A copy of the final hash kept elsewhere ({_code(p.last_hash, cell=False)}) proves later that the log "
            "is unchanged.", ""]


# The report, in order: a new section is a function of the Proof inserted where it reads best.
SECTIONS: tuple[Callable[[Proof], list[str]], ...] = (_header, _glance, _removed, _vendors, _timeline, _how_to_check)


def render_markdown(p: Proof) -> str:
    return "\n".join(line for section in SECTIONS for line in section(p))
