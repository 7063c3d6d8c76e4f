"""What the operator sees: plan tables, progress, verification, run summaries (rich)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from offboard.connectors import Check
from offboard.engine import GuideAnswer
from offboard.plan import Action, Finding, Plan

if TYPE_CHECKING:
    from offboard.engine.confirm import StatusRow

MAX_ROWS_PER_STEP = 60  # a 10,000-agent plan prints a sample; the plan file has them all

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def error(message: str) -> None:
    """One line on stderr, never wrapped or styled, so scripts and people read it whole."""
    sys.stderr.write(" ".join(message.split()) + "\n")
    sys.stderr.flush()


def findings_table(findings: Sequence[Finding]) -> Table:
    table = Table(title="Preflight gates", title_justify="left")
    for col in ("Vendor", "Check", "Count", "Blocks apply", "Detail"):
        table.add_column(col)
    for f in findings:
        table.add_row(f.vendor, f.kind.replace("_", " "), str(f.count),
                      "[bold red]yes[/]" if f.blocking else "no", escape(f.detail))
    return table


def plan_view(plan: Plan) -> None:
    out.print(f"[bold]Exit plan[/] for [bold]{escape(plan.customer)}[/]  (plan {plan.plan_id}, {plan.created_at})")
    out.print(f"  end of service: {plan.end_of_service or 'not set'}; approved by: "
              f"{escape(plan.approved_by) or 'not recorded'}; ticket: {escape(plan.ticket) or 'none'}")
    for vp in plan.vendors:
        out.print(f"\n[bold]{vp.display_name}[/] — {escape(vp.scope)}\n  credentials: {escape(vp.account)}")
        if vp.snapshot:
            out.print("  now: " + ", ".join(f"{k}={v}" for k, v in vp.snapshot.items() if v is not None))
        if vp.findings:
            out.print(findings_table(vp.findings))
        for step in vp.steps:
            table = Table(title=f"{step.title}  ({len(step.actions)} actions)", title_justify="left")
            for col in ("#", "Object", "Planned action", "How"):
                table.add_column(col, overflow="fold")
            for n, a in enumerate(step.actions[:MAX_ROWS_PER_STEP], start=1):
                how = a.call if a.kind == "api" else f"MANUAL ({a.id}): {a.manual.portal_path if a.manual else ''}"
                if a.confirm:
                    how += f"  [needs --confirm \"{a.confirm}\"]"
                table.add_row(str(n), escape(f"{a.target.name} ({a.target.id})"), escape(a.summary), escape(how))
            if len(step.actions) > MAX_ROWS_PER_STEP:
                table.add_row("…", f"and {len(step.actions) - MAX_ROWS_PER_STEP} more", "(all in the plan file)", "")
            out.print(table)
        if vp.skipped:
            out.print("[yellow]Not touched (outside the exit's scope):[/]")
            for s in vp.skipped:
                out.print(f"  - {escape(s.target.name)} ({s.target.id}): {escape(s.reason)}")
    api = [a for a in plan.api_actions() if a.destructive]
    notes = sum(1 for a in plan.api_actions() if a.operation.startswith("ticket."))  # posted to the PSA ticket
    reads = len(plan.api_actions()) - len(api) - notes
    manual = len(plan.actions()) - len(plan.api_actions())
    ticket = f"{notes} ticket note(s), " if notes else ""
    out.print(f"\n[bold]Plan:[/] {len(api)} removal(s) by API, {reads} evidence export(s), {ticket}{manual} manual "
              "item(s). Nothing has been changed.")


def manual_table(actions: Sequence[Action]) -> Table:
    table = Table(title="Manual items (no API): do each, then `offboard confirm ITEM --by NAME`",
                  title_justify="left")
    for col in ("Item", "Where", "Done when", "Checked by API"):
        table.add_column(col, overflow="fold")
    for a in actions:
        m = a.manual
        table.add_row(escape(a.id), escape(m.portal_path if m else a.summary), escape(m.done_when if m else ""),
                      escape(m.verify_hint if m and m.verify_hint else "no (record what you saw in --note)"))
    return table


STATE_STYLE = {"done": "green", "verified": "green", "confirmed": "green", "manual-pending": "yellow",
               "skipped": "cyan", "failed": "bold red", "blocked": "bold red", "unknown": "bold red",
               "interrupted": "bold red", "not started": "dim"}


def status_table(run_id: str, rows: Sequence[StatusRow], *, every_object: bool = False) -> Table:
    """Manual items one per row; a step's API objects folded into counts per state
    (thousands of agents stay readable) unless ``every_object``."""
    table = Table(title=f"Run {run_id}", title_justify="left")
    for col in ("Step", "Item", "State", "Detail"):
        table.add_column(col, overflow="fold")

    def add(step: str, item: str, state: str, detail: str) -> None:
        style = STATE_STYLE.get(state, "")
        table.add_row(escape(step), escape(item), f"[{style}]{state}[/]" if style else state, escape(detail))

    entries: list[StatusRow | list[StatusRow]] = []  # in plan order; a list is a folded group
    groups: dict[tuple[str, str], list[StatusRow]] = {}
    for r in rows:
        if r.action.kind == "manual" or every_object or r.state not in ("done", "verified"):
            entries.append(r)
        elif (r.step, r.state) not in groups:
            groups[(r.step, r.state)] = [r]
            entries.append(groups[(r.step, r.state)])
        else:
            groups[(r.step, r.state)].append(r)
    for e in entries:
        if isinstance(e, list):
            names = ", ".join(r.action.target.name for r in e[:3]) + (" …" if len(e) > 3 else "")
            add(e[0].step, f"{len(e)} object(s): {names}", e[0].state, "")
        elif e.action.kind == "manual":
            add(e.step, f"{e.action.target.name}\n({e.action.id})", e.state, e.detail)
        else:
            add(e.step, e.action.target.name, e.state, e.detail)
    return table


def checks_table(checks: Sequence[Check]) -> Table:
    table = Table(title="Verification (re-read from the vendor)", title_justify="left")
    for col in ("Check", "Result", "Vendor says"):
        table.add_column(col, overflow="fold")
    failed = [c for c in checks if not c.passed]
    passed = [c for c in checks if c.passed]
    # Per-object checks can number thousands: show every failure, and a sample of passes.
    shown = failed + passed[: max(0, 12 - len(failed))]
    for c in shown:
        table.add_row(escape(c.name), "[green]passed[/]" if c.passed else "[bold red]FAILED[/]", escape(c.detail))
    if len(shown) < len(checks):
        table.add_row(f"… {len(checks) - len(shown)} more", "[green]passed[/]", "listed in the report")
    return table


class RichProgress:
    """The engine's Progress, drawn as a bar on stderr."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[last]}"), console=err, transient=False,
        )
        self._task: TaskID | None = None

    def start(self, total: int, done: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task("Removing", total=total, completed=done, last="")

    def advance(self, action: Action, event: str) -> None:
        if self._task is not None:
            word = {"action.succeeded": "done", "action.failed": "FAILED", "action.skipped": "skipped",
                    "manual.pending": "manual, pending", "action.blocked": "held back",
                    "action.held": "waits for a person's confirmation"}.get(event, event)
            self._progress.update(self._task, advance=1, last=escape(f"{action.target.name}: {word}"))

    def finish(self) -> None:
        self._progress.stop()

    def phase(self, text: str) -> None:
        err.print(text)

    def suspend(self) -> None:
        self._progress.stop()

    def resume(self) -> None:
        self._progress.start()


class RichGuide:
    """Guided mode at the terminal: show each manual item, wait, and say what was done."""

    def __init__(self, by: str, progress: RichProgress | None = None) -> None:
        self.by = by
        self._progress = progress

    def ask(self, action: Action, refused: Check | None) -> GuideAnswer:
        from rich.panel import Panel
        from rich.prompt import Prompt

        if self._progress is not None:
            self._progress.suspend()
        try:
            m = action.manual
            lines = [f"[bold]{escape(action.summary)}[/]"]
            if m is not None:
                lines += [f"Where: {escape(m.portal_path)}", f"Done when: {escape(m.done_when)}"]
                if m.verify_hint:
                    lines.append(f"Checked by API when you say done: {escape(m.verify_hint)}")
            if refused is not None:
                lines.append(f"[bold red]Not recorded: the vendor still shows {escape(refused.detail)}[/]")
            out.print(Panel("\n".join(lines), title=f"Manual item {action.id}", title_align="left"))
            choice = Prompt.ask("done / skip (leave it on the checklist) / stop (leave guided mode)",
                                choices=["done", "skip", "stop"], default="done", console=out)
            if choice != "done":
                return GuideAnswer(done=False, stop=choice == "stop")
            ask = f"Note ({m.record})" if m is not None and m.record else "Note (optional)"
            note = Prompt.ask(ask, default="", show_default=False, console=out).strip()
            while m is not None and m.record and not note:
                note = Prompt.ask(f"This item needs a note: {m.record}", default="", show_default=False,
                                  console=out).strip()
            return GuideAnswer(done=True, note=note)
        finally:
            if self._progress is not None:
                self._progress.resume()


def paths(audit: Path, report: Path, lines: int, last_hash: str) -> None:
    # Paths are never wrapped: they must copy and paste whole.
    out.print(f"Audit log: {audit}  ({lines} events, chain verified, last hash {last_hash[:16]}…)", soft_wrap=True)
    out.print(f"Report:    {report}  (and {report.with_suffix('.html').name} to open in a browser)", soft_wrap=True)


def documents(paths: Sequence[Path]) -> None:
    for path in paths:
        out.print(f"Draft:     {path}  (offboard never sends mail: review it and send it yourself)", soft_wrap=True)


def ticket_table(rows: list[tuple[str, str, str]], ref: str) -> Table:
    """The exit's PSA ticket: each note (its first line) and each file, with the PSA's ids."""
    table = Table(title=f"{ref}: its notes and files", show_lines=False)
    table.add_column("kind")
    table.add_column("id", justify="right")
    table.add_column("what")
    for kind, ident, what in rows:
        table.add_row(kind, ident, escape(what))
    return table
