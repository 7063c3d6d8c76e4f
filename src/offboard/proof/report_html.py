"""The proof-of-stop report as one self-contained HTML page (no script, no external file), for two
readers: the customer's first screen (what stopped, when, proven how, in words, with any override
or failed check beside the verdict) and the auditor's detail a click away (every request, hash and
id, in <details>). The page is a list of sections (``SECTIONS``); a new one is a function of the
``Proof`` added to it."""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

from offboard.proof.model import (
    GLANCE,
    STATE_LABEL,
    Proof,
    Row,
    StepView,
    VendorView,
    glance,
    request_shown,
    signature_line,
)
from offboard.text import one_line

FOLD_AFTER = 8  # longer lists of objects fold under a "show all" line

CSS = """
:root { --ok: #1b7f3b; --warn: #a15c00; --bad: #b3261e; --ink: #1f2328; --mute: #59636e; --line: #d0d7de; }
* { box-sizing: border-box; }
body { font: 15px/1.5 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: var(--ink);
       margin: 0 auto; max-width: 1080px; padding: 32px 24px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 36px 0 8px; border-bottom: 1px solid
var(--line); padding-bottom: 4px; } h3 { font-size: 16px; margin: 22px 0 4px; }
.sub { color: var(--mute); margin: 0 0 18px; }
.verdict { border-radius: 8px; padding: 14px 18px; margin: 12px 0 20px; }
.verdict > p { font-weight: 600; font-size: 16px; margin: 0; }
.verdict.ok { background: #e6f4ea; color: var(--ok); border: 1px solid #a8d5b5; }
.verdict.open { background: #fff4e5; color: var(--warn); border: 1px solid #f0c58a; }
.verdict.bad { background: #fde7e9; color: var(--bad); border: 1px solid #f1a7ae; }
.verdict ul { margin: 8px 0 0; padding-left: 20px; color: var(--ink); font-weight: 400; }
.verdict li strong { color: var(--bad); }
dl.facts { display: grid; grid-template-columns: 240px 1fr; gap: 6px 16px; margin: 0; }
dl.facts dt { color: var(--mute); } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
ul.stopped { padding-left: 20px; } ul.stopped li { margin: 3px 0; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; }
th, td { text-align: left; vertical-align: top; padding: 6px 8px; border-bottom: 1px solid var(--line); }
th { font-size: 13px; color: var(--mute); font-weight: 600; }
table.steps { table-layout: fixed; } table.steps th:nth-child(1) { width: 28%; }
table.steps th:nth-child(2), table.steps th:nth-child(3) { width: 15%; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.why { color: var(--mute); margin: 0 0 6px; }
.tag { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 13px; white-space: nowrap; }
.s-removed, .s-already_absent, .s-confirmed, .s-exported, .s-drafted { background: #e6f4ea; color: var(--ok); }
.s-pending, .s-waiting, .s-not_started, .s-skipped { background: #fff4e5; color: var(--warn); }
.s-failed, .s-unknown, .s-held, .s-interrupted { background: #fde7e9; color: var(--bad); }
.pass { color: var(--ok); } .fail { color: var(--bad); font-weight: 600; }
.detail { color: var(--mute); font-size: 13px; overflow-wrap: anywhere; }
.detail ul { margin: 2px 0 6px; padding-left: 18px; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; background: #f6f8fa; padding: 1px 4px;
       border-radius: 4px; overflow-wrap: anywhere; }
details summary { cursor: pointer; color: #0969da; margin: 4px 0; }
section.auditor { margin-top: 48px; border-top: 3px double var(--line); }
ol.timeline { padding-left: 20px; } ol.timeline li { margin: 2px 0; }
ol.timeline .ts { color: var(--mute); font-variant-numeric: tabular-nums; margin-right: 8px; }
footer { margin-top: 40px; color: var(--mute); font-size: 13px; }
@media print { details { display: block; } details > summary { display: none; } }
"""


def _e(value: object) -> str:
    return escape(one_line(value), quote=True)


# -- the customer's layer -------------------------------------------------------------------------


def _banner(p: Proof) -> str:
    """The verdict, with every override and failed check beside it (not under a table)."""
    tone = "ok" if p.stopped else ("bad" if p.failed or p.overrides or p.checks_failed else "open")
    notes = [f"<li><strong>Overridden</strong> on {_e(when)}: {_e(what)}; the operator's reason: “{_e(reason)}”</li>"
             for when, what, reason in p.overrides]
    notes += [f"<li><strong>Check failed</strong>: re-read at {_e(vendor)}, “{_e(check)}” did not hold. "
              f'<details class="detail"><summary>What {_e(vendor)} answered</summary>{_e(said)}</details></li>'
              for vendor, check, said in p.failed]
    listed = f"<ul>{''.join(notes)}</ul>" if notes else ""
    return f'<div class="verdict {tone}"><p>{_e(p.verdict)}</p>{listed}</div>'


def _header(p: Proof) -> str:
    facts = [("End of service (requested)", p.end_of_service), ("Service proven stopped", p.proven_stopped),
             ("Approved by", p.approved_by), ("Ticket", p.ticket),
             ("Who monitors after the exit", p.monitoring_after_exit)]
    return "".join([
        f"<header><h1>Proof of service stop — {_e(p.customer)}</h1>",
        '<p class="sub">What was removed at each security vendor, when, by whom, and how each removal was '
        "checked. Generated from the run's tamper-evident audit log; the requests, hashes and ids behind every "
        "line are under “For the auditor” below.</p></header>",
        _banner(p),
        '<dl class="facts">' + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts) + "</dl>"])


def _stopped(p: Proof) -> str:
    out = ["<h2>What was removed, and how it was proven</h2>"]
    for product, lines in p.removed:
        out.append(f"<h3>{_e(product)}</h3><ul class=\"stopped\">" + "".join(f"<li>{_e(x)}</li>" for x in lines)
                   + "</ul>")
    if not p.removed:
        out.append("<p>Nothing has been removed yet.</p>")
    if p.not_finished:
        out.append("<h3>Not removed yet</h3><ul class=\"stopped\">"
                   + "".join(f"<li>{_e(x)}</li>" for x in p.not_finished) + "</ul>")
    if p.stops:
        out.append("<h3>What no longer updates</h3><ul class=\"stopped\">"
                   + "".join(f"<li>{_e(x)}</li>" for x in p.stops) + "</ul>")
    return "".join(out)


def _glance(p: Proof) -> str:
    out = ["<h2>At a glance</h2><table><thead><tr><th>Vendor</th>"
           + "".join(f'<th class="num">{_e(label)}</th>' for label, _ in GLANCE) + "</tr></thead><tbody>"]
    for name, counts in glance(p):
        out.append(f"<tr><td>{_e(name)}</td>" + "".join(f'<td class="num">{n}</td>' for n in counts) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


# -- the auditor's layer: every row, a click away from its requests, hashes and ids ---------------


def _requests(reqs: list[dict[str, Any]]) -> str:
    return "<ul>" + "".join(f"<li><code>{_e(request_shown(q))}</code></li>" for q in reqs) + "</ul>"


def _file(f: dict[str, Any]) -> str:
    """An evidence file: its name, SHA-256 and size, and the requests whose replies it holds."""
    return (f"<div><code>{_e(f['path'])}</code> — {_e(f.get('bytes', '?'))} bytes, sha256 <code>{_e(f['sha256'])}"
            f"</code>; made from:</div>{_requests(f.get('requests') or [])}")


def _row(r: Row) -> str:
    proof = _e(r.proof)
    if r.verified_ok is not None:
        proof = (f'<span class="{"pass" if r.verified_ok else "fail"}">{"✓" if r.verified_ok else "✗"}</span> '
                 + proof)
    detail = [f"<div>Action <code>{_e(r.action_id)}</code></div>"]
    if r.how:
        detail.append(f"<div>{_e(r.how)}</div>")
    if r.verified:
        detail.append(f"<div>Re-read: {_e(r.verified)}</div>")
    detail += [_file(f) for f in r.files]
    return (f"<tr><td>{_e(r.name)}</td><td>{_e(r.when)}</td>"
            f'<td><span class="tag s-{_e(r.state)}">{_e(r.label)}</span></td>'
            f'<td>{proof}<details class="detail"><summary>Requests, hashes, ids</summary>{"".join(detail)}'
            "</details></td></tr>")


def _step(step: StepView) -> str:
    tally = step.tally()
    summary = ", ".join(f"{n} {_e(STATE_LABEL[state].lower())}" for state, n in tally.most_common())
    head = ('<table class="steps"><thead><tr><th>What</th><th>When</th><th>Result</th><th>Proof</th></tr></thead>'
            "<tbody>")
    rows = [_row(r) for r in step.rows]
    body = head + "".join(rows[:FOLD_AFTER]) + "</tbody></table>"
    if len(rows) > FOLD_AFTER:
        body += (f"<details><summary>Show the other {len(rows) - FOLD_AFTER}</summary>{head}"
                 + "".join(rows[FOLD_AFTER:]) + "</tbody></table></details>")
    why = f'<p class="why">{_e(step.why)}</p>' if step.why else ""
    return f"<h3>{_e(step.title)}</h3>{why}<p>{summary}.</p>{body}"


def _vendor(v: VendorView) -> str:
    out = [f"<section><h2>{_e(v.display_name)}, step by step</h2>"
           f'<p class="why">{_e(v.scope)}. Credentials: {_e(v.account)}.</p>']
    out += [_step(s) for s in v.steps]
    if v.checks:
        out.append("<h3>Is the service stopped? (re-read from the vendor)</h3><table><thead><tr><th>Check</th>"
                   "<th>Result</th><th>What the vendor said</th></tr></thead><tbody>")
        out += [f'<tr><td>{_e(c)}</td><td class="{"pass" if ok else "fail"}">{"✓ passed" if ok else "✗ FAILED"}'
                f'</td><td class="detail">{_e(said)}</td></tr>' for c, ok, said in v.checks]
        out.append("</tbody></table>")
    numbers = v.counts  # counts only (the model leaves names and ids out)
    if numbers:
        out.append('<h3>Counts the vendor bills or reports on, before and after</h3>'
                   '<p class="why">An unchanged count is of something this exit keeps or does not remove.</p>'
                   '<table><thead><tr><th>Count</th><th class="num">Before (when planned)</th>'
                   '<th class="num">After (last re-read)</th></tr></thead><tbody>')
        out += [f'<tr><td>{_e(k.replace("_", " "))}</td><td class="num">{_e(b)}</td>'
                f'<td class="num">{_e(a)}</td></tr>' for k, b, a in numbers]
        out.append("</tbody></table>")
    if v.skipped:
        out.append(f"<details><summary>{len(v.skipped)} object(s) seen but not touched (not this customer's)"
                   "</summary><ul>" + "".join(f"<li>{_e(n)} (<code>{_e(i)}</code>): {_e(w)}</li>"
                                               for n, i, w in v.skipped) + "</ul></details>")
    out.append("</section>")
    return "".join(out)


def _auditor(p: Proof) -> str:
    facts = [("Run id", p.run_id), ("Plan", f"{p.plan_id}, made {p.plan_made}"), ("Run started", p.started),
             ("Last update", f"{p.finished['ts'][:16].replace('T', ' ')} UTC — {p.finished['event']} "
              f"({p.finished['outcome']})" if p.finished else "not finished"),
             ("Audit log", f"{p.events} events; final hash {p.last_hash}"),
             ("Signature", signature_line(p).replace("`", ""))]
    return ('<section class="auditor"><h2>For the auditor</h2><p class="why">Every line above, step by step: each '
            "row's requests (method, path and query, with the vendor's status), the SHA-256 of each file kept, "
            "and the ids, under “Requests, hashes, ids”.</p>"
            '<dl class="facts">' + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts) + "</dl>"
            + "".join(_vendor(v) for v in p.vendors) + "</section>")


def _timeline(p: Proof) -> str:
    return ('<h2>Timeline</h2><ol class="timeline">'
            + "".join(f'<li><span class="ts">{_e(ts)}</span>{_e(text)}</li>' for ts, text in p.timeline) + "</ol>")


def _footer(p: Proof) -> str:
    return ("<footer><p>How to check: every line of this page comes from the run's <code>audit.jsonl</code>, "
            "in which each event carries the hash of the one before it. "
            "<code>offboard audit verify audit.jsonl --public-key msp.pub</code> (in the run's bundle unpacked, "
            "which holds the MSP's public key <code>msp.pub</code>, or with the one the MSP shared beside the log) "
            "recomputes the chain and checks the MSP's signature. "
            f"Final hash: <code>{_e(p.last_hash)}</code>.</p></footer>")


# The page, in order: the customer's first screen, then the auditor's detail. A new section (e.g. what
# happens after the exit) is a function of the Proof inserted where it reads best.
SECTIONS: tuple[Callable[[Proof], str], ...] = (_header, _stopped, _glance, _auditor, _timeline, _footer)


def render_html(p: Proof) -> str:
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>Proof of service stop — {_e(p.customer)}</title><style>{CSS}</style></head><body>"]
    out += [section(p) for section in SECTIONS]
    out.append("</body></html>")
    return "\n".join(out) + "\n"
