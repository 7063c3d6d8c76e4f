"""The proof-of-stop report as one self-contained HTML page (no script, no external file),
written for the customer, the vendor's billing team and an auditor, not for engineers."""

from __future__ import annotations

from html import escape

from offboard.proof.model import GLANCE, STATE_LABEL, Proof, Row, StepView, glance, signature_line
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
.verdict { border-radius: 8px; padding: 14px 18px; font-weight: 600; font-size: 16px; margin: 12px 0 20px; }
.verdict.ok { background: #e6f4ea; color: var(--ok); border: 1px solid #a8d5b5; }
.verdict.open { background: #fff4e5; color: var(--warn); border: 1px solid #f0c58a; }
dl.facts { display: grid; grid-template-columns: 220px 1fr; gap: 6px 16px; margin: 0; }
dl.facts dt { color: var(--mute); } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; }
th, td { text-align: left; vertical-align: top; padding: 6px 8px; border-bottom: 1px solid var(--line); }
th { font-size: 13px; color: var(--mute); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.why { color: var(--mute); margin: 0 0 6px; }
.tag { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 13px; white-space: nowrap; }
.s-removed, .s-already_absent, .s-confirmed, .s-exported { background: #e6f4ea; color: var(--ok); }
.s-pending, .s-not_started, .s-skipped { background: #fff4e5; color: var(--warn); }
.s-failed, .s-unknown, .s-held, .s-interrupted { background: #fde7e9; color: var(--bad); }
.pass { color: var(--ok); } .fail { color: var(--bad); font-weight: 600; }
.how { color: var(--mute); font-size: 13px; overflow-wrap: anywhere; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; background: #f6f8fa; padding: 1px 4px;
       border-radius: 4px; overflow-wrap: anywhere; }
details summary { cursor: pointer; color: #0969da; margin: 4px 0; }
ol.timeline { padding-left: 20px; } ol.timeline li { margin: 2px 0; }
ol.timeline .ts { color: var(--mute); font-variant-numeric: tabular-nums; margin-right: 8px; }
footer { margin-top: 40px; color: var(--mute); font-size: 13px; }
@media print { details { display: block; } details > summary { display: none; } }
"""


def _e(value: object) -> str:
    return escape(one_line(value), quote=True)


def _row(r: Row) -> str:
    verified = ""
    if r.verified_ok is not None:
        verified = (f'<span class="{"pass" if r.verified_ok else "fail"}">'
                    f'{"✓ passed" if r.verified_ok else "✗ FAILED"}</span><div class="how">{_e(r.verified)}</div>')
    files = "".join(f"<div><code>{_e(f['path'])}</code> sha256 <code>{_e(f['sha256'][:16])}…</code></div>"
                    for f in r.files)
    return (f"<tr><td>{_e(r.name)}</td><td>{_e(r.when)}</td>"
            f'<td><span class="tag s-{_e(r.state)}">{_e(r.label)}</span></td>'
            f'<td class="how">{_e(r.how)}{files}</td><td>{verified}</td></tr>')


def _step(step: StepView) -> str:
    tally = step.tally()
    summary = ", ".join(f"{n} {_e(STATE_LABEL[state].lower())}" for state, n in tally.most_common())
    verified = [r for r in step.rows if r.verified_ok is not None]
    if verified:
        passed = sum(1 for r in verified if r.verified_ok)
        summary += f"; {passed} of {len(verified)} checked again at the vendor and passed"
    head = ("<table><thead><tr><th>What</th><th>When</th><th>Result</th><th>How it was done</th>"
            "<th>Proof (re-read from the vendor)</th></tr></thead><tbody>")
    rows = [_row(r) for r in step.rows]
    body = head + "".join(rows[:FOLD_AFTER]) + "</tbody></table>"
    if len(rows) > FOLD_AFTER:
        body += (f"<details><summary>Show the other {len(rows) - FOLD_AFTER}</summary>{head}"
                 + "".join(rows[FOLD_AFTER:]) + "</tbody></table></details>")
    why = f'<p class="why">{_e(step.why)}</p>' if step.why else ""
    return f"<h3>{_e(step.title)}</h3>{why}<p>{summary}.</p>{body}"


def render_html(p: Proof) -> str:
    end = p.finished
    facts = [("End of service (requested)", p.end_of_service), ("Service proven stopped", p.proven_stopped),
             ("Approved by", p.approved_by), ("Ticket", p.ticket),
             ("Who monitors after the exit", p.monitoring_after_exit), ("Run started", p.started),
             ("Last update", f"{end['ts'][:16].replace('T', ' ')} UTC — {end['event']} ({end['outcome']})"
              if end else "not finished"),
             ("Run id", p.run_id), ("Audit log", f"{p.events} events; final hash {p.last_hash}"),
             ("Signature", signature_line(p).replace("`", ""))]
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>Proof of service stop — {_e(p.customer)}</title><style>{CSS}</style></head><body>",
           f"<header><h1>Proof of service stop — {_e(p.customer)}</h1>",
           '<p class="sub">What was removed at each security vendor, when, by whom, and how it was checked. '
           "Generated from the run's tamper-evident audit log.</p></header>",
           f'<div class="verdict {"ok" if p.stopped else "open"}">{_e(p.verdict)}</div>',
           '<dl class="facts">' + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts) + "</dl>",
           "<h2>At a glance</h2><table><thead><tr><th>Vendor</th>"
           + "".join(f'<th class="num">{_e(label)}</th>' for label, _ in GLANCE) + "</tr></thead><tbody>"]
    for name, counts in glance(p):
        out.append(f"<tr><td>{_e(name)}</td>" + "".join(f'<td class="num">{n}</td>' for n in counts) + "</tr>")
    out.append("</tbody></table>")
    for when, what, reason in p.overrides:
        out.append(f'<p class="why">Overridden at {_e(when)}: {_e(what)} — “{_e(reason)}”.</p>')
    for v in p.vendors:
        out.append(f"<section><h2>{_e(v.display_name)}</h2>"
                   f'<p class="why">{_e(v.scope)}. Credentials: {_e(v.account)}.</p>')
        out += [_step(s) for s in v.steps]
        if v.checks:
            out.append("<h3>Is the service stopped? (re-read from the vendor)</h3><table><thead><tr><th>Check</th>"
                       "<th>Result</th><th>What the vendor said</th></tr></thead><tbody>")
            out += [f'<tr><td>{_e(c)}</td><td class="{"pass" if ok else "fail"}">{"✓ passed" if ok else "✗ FAILED"}'
                    f'</td><td class="how">{_e(said)}</td></tr>' for c, ok, said in v.checks]
            out.append("</tbody></table>")
        if v.counts:
            out.append('<h3>Billing-relevant counts</h3><table><thead><tr><th>Count</th>'
                       '<th class="num">Before (when planned)</th><th class="num">After (last re-read)</th>'
                       '</tr></thead><tbody>')
            out += [f'<tr><td>{_e(k.replace("_", " "))}</td><td class="num">{_e(b)}</td>'
                    f'<td class="num">{_e(a)}</td></tr>' for k, b, a in v.counts]
            out.append("</tbody></table>")
        if v.skipped:
            out.append(f"<details><summary>{len(v.skipped)} object(s) seen but not touched (outside this exit)"
                       "</summary><ul>" + "".join(f"<li>{_e(n)} (<code>{_e(i)}</code>): {_e(w)}</li>"
                                                   for n, i, w in v.skipped) + "</ul></details>")
        out.append("</section>")
    out.append('<h2>Timeline</h2><ol class="timeline">'
               + "".join(f'<li><span class="ts">{_e(ts)}</span>{_e(text)}</li>' for ts, text in p.timeline)
               + "</ol>")
    out.append("<footer><p>How to check: every line of this page comes from the run's <code>audit.jsonl</code>, "
               "in which each event carries the hash of the one before it. "
               "<code>offboard audit verify audit.jsonl --public-key msp.pub</code> recomputes the chain and checks "
               f"the MSP's signature. Final hash: <code>{_e(p.last_hash)}</code>.</p></footer></body></html>")
    return "\n".join(out) + "\n"
