"""The customer's closure note (Markdown): what was removed, as objects and counts per product, and
who did each; what was kept for them and how to get it; what stops updating; who monitors after
the exit. Written for the customer (the runbook's "the customer and the MSP agree on what
ended"): no runbook step numbers, no internal file names, and nothing listed as a removal that
removed nothing (a notice, a confirmation, a billing handoff). The words for each removal come
from the connector (``Action.removes``); the note is built from the plan and the audit log only,
so it says nothing the run did not do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from offboard.lifecycle import DONE_STANDINGS, fold, tally
from offboard.plan import Plan, Removal
from offboard.rundir import RunDir, atomic_write_text
from offboard.text import one_line


@dataclass
class _Line:
    """Removals of one kind, done the same way: summed into one line of the note."""

    removal: Removal
    who: str
    count: int | None = 0
    already_gone: int = 0
    rechecked: bool = True  # every one was re-read at the vendor afterwards
    notes: list[str] = field(default_factory=list)

    def add(self, n: int | None) -> None:
        self.count = None if self.count is None or n is None else self.count + n

    def render(self) -> str:
        text = f"{self.removal.phrase(self.count)} — {self.who}"
        if self.already_gone:
            text += f" ({self.already_gone} of them were already gone)"
        if self.notes:
            text += "; recorded: " + "; ".join(f"“{n}”" for n in self.notes)
        return text + "."


def _who(vendor: str, rec: dict[str, Any], proof: dict[str, Any] | None) -> str:
    if rec["event"] == "manual.confirmed":
        d = rec.get("detail") or {}
        who = f"by {one_line(d.get('by', 'a person'))}, your MSP's technician, attested {rec['ts'][:10]}"
        if d.get("verified_by_api"):
            return who + f"; {vendor}'s API confirmed it"
        return who + "; no API can show this, so it rests on their word"
    checked = proof is not None and proof.get("event") == "verify.passed"
    return f"by your MSP through {vendor}'s API" + (f"; checked again at {vendor} afterwards" if checked else "")


def removals(plan: Plan, records: list[dict[str, Any]]) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """What was removed, per product (its display name, one line per kind of object and who did it),
    and what is not removed yet: the closure note's words, which the report's first screen shows too."""
    standing = tally(plan.actions(), records)
    folded = fold(records)
    done: list[tuple[str, list[str]]] = []
    still: list[str] = []
    for vp in plan.vendors:
        lines: dict[tuple[str, str, str], _Line] = {}
        open_lines: dict[str, list[int | None]] = {}
        for a in (a for s in vp.steps for a in s.actions if a.removes is not None):
            assert a.removes is not None
            rec = folded.last.get(a.id)
            state = standing.of.get(a.id)
            if rec is None or state not in ("removed", "already_absent", "confirmed"):
                open_lines.setdefault(a.removes.many, []).append(a.removes.count)
                continue
            who = _who(vp.display_name, rec, folded.proof.get(a.id))
            key = (a.removes.one, a.removes.verb, who)
            line = lines.setdefault(key, _Line(a.removes, who))
            line.add(a.removes.count)
            line.already_gone += state == "already_absent"
            note = (rec.get("detail") or {}).get("note") if rec["event"] == "manual.confirmed" else None
            if note and a.manual is not None and a.manual.record:
                line.notes.append(one_line(note))
        if lines:
            done.append((vp.display_name, [line.render() for line in lines.values()]))
        for many, counts in open_lines.items():
            n = None if any(c is None for c in counts) else sum(c for c in counts if c is not None)
            still.append(f"{vp.display_name}: {many}" + (f" ({n})" if n is not None else "") + " — not removed yet.")
    return done, still


def stops_updating(plan: Plan, records: list[dict[str, Any]]) -> list[str]:
    """What no longer updates: each finished step's words, once."""
    standing = tally(plan.actions(), records)
    stops: list[str] = []
    for vp in plan.vendors:
        for step in vp.steps:
            if step.actions and all(standing.of.get(a.id) in DONE_STANDINGS for a in step.actions):
                stops += [line if line.startswith(vp.display_name) else f"{vp.display_name}: {line}"
                          for line in step.stops_updating]
    return list(dict.fromkeys(stops))


def _kept(plan: Plan, records: list[dict[str, Any]], manifest: dict[str, Any]) -> list[str]:
    """What was exported for the customer before anything was removed, in words (no file names)."""
    last = fold(records).last
    out: list[str] = []
    for vp in plan.vendors:
        kept = []
        for step in vp.steps:
            if step.phase != "evidence":
                continue
            for a in step.actions:
                event = last.get(a.id, {}).get("event")
                if event == "action.succeeded" and not a.destructive:
                    kept.append(a.target.name)
                elif event == "manual.confirmed":
                    kept.append(f"{a.target.name} (saved by {one_line(last[a.id]['detail'].get('by', 'a person'))})")
        if kept:
            out.append(f"- {vp.display_name}: " + "; ".join(kept) + ".")
    files = [e for e in manifest.get("files", {}).values() if isinstance(e, dict) and not e.get("draft_for")]
    if not out:
        return ["Nothing was exported in this exit."]
    where = (f"Your MSP keeps these {len(files)} file(s), each with a SHA-256 fingerprint, in this exit's signed "
             "evidence bundle, which shows that none of them was changed since; ask your MSP for a copy"
             + (f" (quote ticket {one_line(plan.ticket)})" if plan.ticket else "") + ".")
    return ["Exported from each vendor before anything was removed:", "", *out, "", where]


def render_closure_note(plan: Plan, records: list[dict[str, Any]], manifest: dict[str, Any]) -> str:
    vendors = " and ".join(vp.display_name for vp in plan.vendors)
    out = [f"# {one_line(plan.customer)}: closure of your security services", ""]
    intro = f"This note tells you what ended at {vendors}"
    if plan.end_of_service:
        intro += f" for the end of service on {plan.end_of_service}"
    out += [intro + ": what was removed and who did it, what was kept for you, what no longer updates, and who "
            "watches your systems from now on.", ""]
    done, still = removals(plan, records)
    out += ["## What was removed", ""]
    for product, lines in done:
        out += [f"### {product}", "", *(f"- {line}" for line in lines), ""]
    if not done:
        out += ["Nothing has been removed yet.", ""]
    if still:
        out += ["## Not finished yet", "", *(f"- {line}" for line in still), ""]
    out += ["## What we kept for you", "", *_kept(plan, records, manifest), ""]
    out += ["## What no longer updates", ""]
    out += [f"- {line}" for line in stops_updating(plan, records)] or ["- Nothing yet: the removals are not finished."]
    out += ["", "## Who monitors your systems after the exit", ""]
    out.append(one_line(plan.monitoring_after_exit) if plan.monitoring_after_exit else
               "Not recorded yet: ask your MSP who watches your systems after the exit date.")
    out.append("")
    return "\n".join(out)


def write_closure_note(run: RunDir, plan: Plan, records: list[dict[str, Any]], manifest: dict[str, Any]) -> None:
    atomic_write_text(run.path / "closure-note.md", render_closure_note(plan, records, manifest))
