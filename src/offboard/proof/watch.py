"""After the exit (`offboard watch`), as the proof tells it: read from the audit log only.

Each watch appends one ``watch.checked`` event per check (a finding, a quiet check, or a check
the vendor cannot answer) and a ``watch.finished`` event; this module folds them into what
`status`, the report's "After the exit" section and the PSA ticket's notes say. Quiet days are
part of the proof: they are counted and dated, not left out.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any

from offboard.connectors.psa import Block, NoteDoc
from offboard.plan import Plan, canonical_json

CHECKED = "watch.checked"
FINISHED = "watch.finished"


@dataclass
class Finding:
    vendor: str
    key: str
    check: str
    detail: str
    remedy: str


@dataclass
class WatchRun:
    """One watch of the exit: when, what it checked, what came back, what could not be checked."""

    ts: str
    since: str
    checks: int
    found: list[Finding] = field(default_factory=list)
    not_available: list[tuple[str, str, str]] = field(default_factory=list)  # vendor, check, why
    last: bool = False  # the watch period's last day
    until: str = ""


def watches(records: list[dict[str, Any]]) -> list[WatchRun]:
    """Every finished watch of the run, oldest first (a watch cut short, with no finish, is left out)."""
    out: list[WatchRun] = []
    pending: list[dict[str, Any]] = []
    for r in records:
        if r.get("event") == CHECKED:
            pending.append(r)
        elif r.get("event") == FINISHED:
            d = _detail(r)
            run = WatchRun(ts=str(r["ts"]), since=str(d.get("since", "")), checks=len(pending),
                           last=bool(d.get("last")), until=str(d.get("until") or ""))
            for c in pending:
                cd = _detail(c)
                if cd.get("came_back"):
                    run.found.append(Finding(str(c.get("vendor")), str(cd.get("key", "")), str(cd.get("check", "")),
                                             str(cd.get("result", "")), str(cd.get("remedy", ""))))
                elif cd.get("available") is False:
                    run.not_available.append((str(c.get("vendor")), str(cd.get("check", "")),
                                              str(cd.get("result", ""))))
            out.append(run)
            pending = []
    return out


def _detail(record: dict[str, Any]) -> dict[str, Any]:
    d = record.get("detail")
    return d if isinstance(d, dict) else {}


def _day(ts: str) -> str:
    return ts[:10]


def _when(ts: str) -> str:
    return ts[:16].replace("T", " ") + " UTC" if len(ts) >= 16 else ts


def _cadence(runs: list[WatchRun]) -> str:
    """"daily" when every watch came 20 to 28 hours after the one before; else how many there were."""
    times = [datetime.fromisoformat(r.ts.replace("Z", "+00:00")) for r in runs]
    gaps = [(b - a).total_seconds() / 3600 for a, b in itertools.pairwise(times)]
    if gaps and all(20 <= g <= 28 for g in gaps):
        return "daily"
    return f"{len(runs)} time(s)"


def summary_lines(records: list[dict[str, Any]], names: Mapping[str, str] | None = None) -> list[str]:
    """A few sentences: how often the exit was checked after it ended, and what came back
    (``names``: each vendor's display name, from the plan)."""
    names = names or {}
    runs = watches(records)
    if not runs:
        return []
    first, last = runs[0], runs[-1]
    found = [(r, f) for r in runs for f in r.found]
    span = f"from {_day(first.ts)} to {_day(last.ts)}" if _day(first.ts) != _day(last.ts) else f"on {_day(first.ts)}"
    lines = [f"After the exit (ended {_when(first.since)}): checked {_cadence(runs)} {span}, "
             + ("nothing came back." if not found else
                f"{len({(f.vendor, f.key) for _, f in found})} thing(s) came back.")]
    seen: set[tuple[str, str]] = set()
    for r, f in found:
        if (f.vendor, f.key) in seen:
            continue  # said once, on the day it was first seen
        seen.add((f.vendor, f.key))
        lines.append(f"{_when(r.ts)}: {names.get(f.vendor, f.vendor)}: {f.detail}. To remove it: {f.remedy}")
    if not last.found and found:
        lines.append(f"The latest watch ({_when(last.ts)}) found nothing.")
    for vendor, check, why in {(v, c, w) for r in runs for v, c, w in r.not_available}:
        lines.append(f"{names.get(vendor, vendor)}: {check}: {why}")
    ended = next((r for r in runs if r.last), None)
    if ended is not None:
        lines.append(f"The watch period ended on {ended.until}.")
    return lines


def vendor_names(plan: Plan) -> dict[str, str]:
    return {vp.vendor: vp.display_name for vp in plan.vendors}


def after_exit_markdown(plan: Plan, records: list[dict[str, Any]]) -> str:
    """The report's "After the exit" section (Markdown), or nothing before the first watch."""
    from offboard.proof.report_md import _text  # the report's escaping: vendor strings stay text

    lines = summary_lines(records, vendor_names(plan))
    if not lines:
        return ""
    head, rest = lines[0], lines[1:]
    out = ["## After the exit", "", _text(head), ""]
    out += [f"- {_text(line)}" for line in rest]
    out += ["", "Each check is an event of `audit.jsonl` (`watch.checked`, `watch.finished`), signed with the rest.",
            "", ""]
    return "\n".join(out)


def after_exit_html(plan: Plan, records: list[dict[str, Any]]) -> str:
    """The same section for report.html."""
    lines = summary_lines(records, vendor_names(plan))
    if not lines:
        return ""
    head, rest = lines[0], lines[1:]
    items = "".join(f"<li>{escape(line)}</li>" for line in rest)
    return (f"<section><h2>After the exit</h2><p>{escape(head)}</p>" + (f"<ul>{items}</ul>" if items else "")
            + '<p class="why">Each check is an event of the audit log (watch.checked, watch.finished), signed with '
              "the rest.</p></section>")


def with_section(document: str, section: str, before: str) -> str:
    """``section`` placed before the first ``before`` (the report's timeline), else at the end."""
    if not section:
        return document
    at = document.find(before)
    return document + section if at < 0 else document[:at] + section + document[at:]


# -- the PSA ticket's notes -----------------------------------------------------------------------


def _facts(**kv: Any) -> str:
    return canonical_json(kv)


def _slug(text: str) -> str:
    """A note key safe in a marker and a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:80] or "finding"


def finding_note(plan: Plan, run_id: str, vendor: str, key: str, detail: str, remedy: str) -> NoteDoc:
    """One thing that came back after the exit: posted once however many watches see it again (its
    marker's facts are its identity, never its count or time)."""
    shown = vendor_names(plan).get(vendor, vendor)
    blocks = (Block("p", f"After the exit of {plan.customer} (run {run_id}), something came back at "
                         f"{shown}: {detail}."),
              Block("p", f"To remove it: {remedy}."),
              Block("p", f"Watch it again: offboard watch --run {run_id} --once"))
    return NoteDoc(f"watch.{_slug(vendor)}.{_slug(key)}", f"offboard: came back after the exit — {shown}",
                   blocks, _facts(note="watch", run=run_id, vendor=vendor, key=key))


def ended_note(plan: Plan, run_id: str, records: list[dict[str, Any]]) -> NoteDoc:
    """The watch period is over: what it saw, in one note, once."""
    lines = summary_lines(records, vendor_names(plan))
    runs = watches(records)
    until = next((r.until for r in runs if r.last), "")
    quiet = not any(r.found for r in runs)
    title = ("offboard: watch ended, nothing came back" if quiet else
             "offboard: watch ended — something came back during the watch")
    blocks = [Block("p", f"The watch of {plan.customer}'s exit (run {run_id}) ended on {until}.")]
    blocks += [Block("item", line) for line in lines]
    return NoteDoc("watch.ended", title, tuple(blocks), _facts(note="watch-ended", run=run_id, until=until))
