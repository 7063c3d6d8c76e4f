"""The manual checklist a run leaves in its folder: what is still to do by hand, in order."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from offboard.lifecycle import fold, open_for_person
from offboard.plan import Plan
from offboard.proof.ticket_notes import open_pastes
from offboard.rundir import RunDir, atomic_write_text
from offboard.text import one_line


def _confirm(item: str, run_id: str, config: Path | None, *note: str) -> str:
    """The confirm command as a person runs it from any folder: a file is read later, elsewhere, so
    it names the exit's config by its absolute path."""
    where = ["-c", str(config.resolve())] if config is not None else []
    return shlex.join(["offboard", "confirm", item, "--by", "Your Name", *note, "--run", run_id, *where])


def render_checklist(plan: Plan, records: list[dict[str, Any]], run_id: str, config: Path | None = None) -> str:
    """The manual items still to do, in the runbook's order, with how to confirm each."""
    last = fold(records).last
    out = [f"# Manual checklist — {plan.customer}", "",
           "Each item has no vendor API. Do it, then record it (where the vendor's API can see the result, it is",
           "re-read first and the confirmation is refused while the vendor disagrees):", "",
           f"    {_confirm('ITEM', run_id, config, '--note', 'what you did or saw')}", ""]
    todo = [a for a in plan.actions() if (rec := last.get(a.id)) is not None and open_for_person(a, rec["event"])]
    if not todo:
        out.append("Nothing left: every manual item is confirmed.")
    for a in todo:
        m = a.manual
        out += [f"## [ ] {one_line(a.target.name)} — `{a.id}`", "", one_line(a.summary), ""]
        if m is not None:
            out.append(f"- Where: {one_line(m.portal_path)}")
            out.append(f"- Done when: {one_line(m.done_when)}")
            if m.verify_hint:
                out.append(f"- Checked by API on confirm: {one_line(m.verify_hint)}")
            if m.record:
                out.append(f"- Record in --note: {one_line(m.record)}")
        out.append("")
    pastes = open_pastes(records)
    if pastes:
        out += ["## The exit's PSA ticket", "",
                "offboard could not post these to the ticket (the audit log says why). Put each in the ticket, "
                "then record it; offboard re-reads the ticket first where it can:", ""]
        for key, d in sorted(pastes.items()):
            what = f"paste `{d['paste']}` (its last line is the marker offboard looks for)" if d.get("paste") else (
                f"attach `{d['file']}` (SHA-256 {d.get('sha256', '?')})" if d.get("file") else d.get("title", key))
            out += [f"## [ ] {one_line(d.get('title', key))} — `ticket.{key}`", "",
                    f"- Why: {one_line(d.get('reason', '?'))}", f"- Do: {one_line(what)}",
                    f"- Then: {_confirm(f'ticket.{key}', run_id, config)}", ""]
    return "\n".join(out) + "\n"


def write_checklist(run: RunDir, plan: Plan, records: list[dict[str, Any]], config: Path | None = None) -> None:
    atomic_write_text(run.path / "manual-checklist.md", render_checklist(plan, records, run.run_id, config))
