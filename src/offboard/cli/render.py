"""What the operator sees: plan tables, progress, verification, run summaries (rich)."""

from __future__ import annotations

import logging
import math
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.markup import escape as rich_escape
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
)
from rich.rule import Rule
from rich.segment import Segment
from rich.table import Column, Table
from rich.text import Text

from offboard.cli.message import lay_out
from offboard.connectors import Check
from offboard.engine import GuideAnswer, Limit, pace
from offboard.engine.guards import confirm_option
from offboard.lifecycle import planned_reads
from offboard.plan import Action, Finding, Plan, Step
from offboard.text import one_line
from offboard.wire.redact import REDACTOR
from offboard.wire.waits import Sent, Wait

if TYPE_CHECKING:
    from offboard.engine.confirm import StatusRow

MAX_ROWS_PER_STEP = 60  # a 10,000-agent plan prints a sample; the plan file has them all
PIPE_WIDTH = 1000  # not a terminal: tables as wide as their content, so no id or path is folded
_TRAILING = re.compile(r"[ \t]+\n")  # what a pipe's lines end with: padding, never asked for
RULE_WIDTH = 100
WORD_SHARE = 0.55  # the most of a terminal's width one unbreakable word may claim in a table


def keep_words_whole(table: Table, width: int) -> None:
    """Ids, paths and calls are what a person pastes: when a table is wider than the screen, each
    column is given at least its longest word (up to ``WORD_SHARE`` of the width) and the rest of
    the width is shared by how much more each needs, so cells wrap at spaces; rich's own collapse
    narrows the widest columns first, whatever they hold, and folds their words mid-way."""
    columns = [c for c in table.columns if c.width is None]
    if not columns:
        return
    pad = table.padding[1] + table.padding[3] if len(table.padding) == 4 else 2
    frame = len(table.columns) * pad + ((len(table.columns) - 1) + (2 if table.show_edge else 0) if table.box else 0)
    frame += sum(c.width for c in table.columns if c.width is not None)
    avail = width - frame
    cap = max(8, int(width * WORD_SHARE))

    def plain(cell: Text | str) -> str:
        if isinstance(cell, Text):
            return cell.plain
        try:
            return Text.from_markup(cell).plain  # what is shown: "[bold red]x[/]" is one short word
        except Exception:  # not markup after all: its characters as they are
            return cell

    def texts(c: Column) -> list[str]:
        return [plain(x) for x in (c.header, *c._cells) if isinstance(x, Text | str)]

    # A column's own max_width bounds it (an id column: its ids whole, its other cells, a name or a count,
    # wrap within it): its longest cell is no claim on the screen.
    natural = {id(c): min(max((len(line) for x in texts(c) for line in x.splitlines() or [""]), default=0),
                          c.max_width or width) for c in columns}
    if sum(natural.values()) <= avail:
        return  # it fits as it is: rich lays it out without wrapping a cell
    # A column that must not wrap (a name, a run id, a state) keeps its whole width; the others their longest word.
    floor = {id(c): natural[id(c)] if c.no_wrap else
             min(max((len(w) for x in texts(c) for w in x.split()), default=1), cap, natural[id(c)]) for c in columns}
    bendable = {id(c) for c in columns if not c.no_wrap}
    while sum(floor.values()) > avail and bendable and max(floor[k] for k in bendable) > 8:
        widest = max(bendable, key=lambda k: floor[k])  # words too long for one screen: fold the longest
        floor[widest] -= 1
    extra = max(0, avail - sum(floor.values()))
    need = {k: natural[k] - floor[k] for k in floor}
    total_need = sum(need.values()) or 1
    for c in columns:
        c.width = floor[id(c)] + extra * need[id(c)] // total_need
        c.overflow = "fold"  # a word longer than even that is folded, never cut short


class _Screen(Console):
    def print(self, *objects: Any, **kwargs: Any) -> None:
        for table in objects:
            if isinstance(table, Table):
                keep_words_whole(table, self.width)
        if kwargs.get("soft_wrap") and len(objects) == 1 and isinstance(objects[0], str | Text) and self.is_terminal:
            # A message (soft_wrap: one line in a log) wider than the terminal: laid out by the one
            # rule (cli/message.py), never wrapped mid-word by the terminal.
            objects = (self.laid_out(objects[0], markup=kwargs.get("markup")),)
        super().print(*objects, **kwargs)

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        text = super()._render_buffer(buffer)
        # Not a terminal: the width is PIPE_WIDTH so no id folds, and a table's title, caption or
        # padded cell would carry its spaces to the line's end; a log or a file gets none of them.
        return text if self.is_terminal else _TRAILING.sub("\n", text)

    def laid_out(self, message: str | Text, *, markup: bool | None = None) -> Text:
        text = message if isinstance(message, Text) else self.render_str(message, markup=markup, highlight=False)
        lines = []
        for line in text.split("\n", allow_blank=True):
            lines += [Text(before) + line[start:end] + Text(after)
                      for start, end, before, after in lay_out(line.plain, self.width)]
        return Text("\n").join(lines)


def _console(*, stderr: bool, quiet: bool = False) -> Console:
    # Rich reads NO_COLOR (and FORCE_COLOR) from the environment when a Console is made.
    console = _Screen(stderr=stderr, highlight=False, quiet=quiet)
    if not console.is_terminal:
        # A pipe, a log file or an RMM's capture: rich would fold every table to 80 columns and
        # break ids mid-word, which defeats grep and copy-paste.
        console.width = PIPE_WIDTH
    return console


out = _console(stderr=False)
err = _console(stderr=True)
verbose = False
_http_log = logging.StreamHandler(sys.stderr)


class _Redacted(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = REDACTOR.text(record.getMessage()), None
        return True


def setup(*, quiet: bool = False, loud: bool = False) -> None:
    """Made once per command, when the streams it writes to are known: ``quiet`` prints nothing but
    errors and warnings; ``loud`` (``-v``) adds each HTTP call and the traceback of an internal error."""
    global out, err, verbose
    out, err, verbose = _console(stderr=False, quiet=quiet), _console(stderr=True, quiet=quiet), loud
    http = logging.getLogger("httpx")
    http.removeHandler(_http_log)
    if loud:
        _http_log.setStream(sys.stderr)
        _http_log.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        _http_log.filters = [_Redacted()]
        http.addHandler(_http_log)
        http.setLevel(logging.INFO)
    else:
        http.setLevel(logging.WARNING)


def escape(value: object) -> str:
    """A string as text in rich markup: one line (a vendor's line breaks, controls and escapes made
    harmless, see offboard.text), and nothing it spells read as markup."""
    return rich_escape(one_line(value))


def json_mode() -> None:
    """``--json``: stdout carries the JSON document alone; every human line goes to stderr."""
    global out
    out = _console(stderr=True, quiet=out.quiet)


def error(message: str) -> None:
    """One line on stderr, never styled, so scripts read it whole; on a terminal narrower than it, laid
    out as every message is (cli/message.py: commands on lines of their own, no word split)."""
    line = " ".join(one_line(message).split())
    if err.is_terminal:
        line = "\n".join(before + line[start:end] + after for start, end, before, after in lay_out(line, err.width))
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def warning(message: str) -> None:
    """A warning on stderr: shown even with ``-q``; one line in a log, laid out on a terminal."""
    _console(stderr=True).print(message, style="yellow", markup=False, soft_wrap=True)


def rule(title: str) -> None:
    out.print(Rule(title), width=min(out.width, RULE_WIDTH))


def findings_table(findings: Sequence[Finding]) -> Table:
    table = Table(title="Preflight gates", title_justify="left")
    for col in ("Vendor", "Check", "Count", "Blocks apply", "Detail"):
        table.add_column(col)
    for f in findings:
        table.add_row(f.vendor, f.kind.replace("_", " "), str(f.count),
                      ("[bold red]yes[/]" if f.overridable else "[bold red]yes, no override[/]") if f.blocking
                      else "no", escape(f.detail))
    return table


def id_column(table: Table, header: str, ids: Sequence[str], *, max_width: int | None = None) -> None:
    """A column of ids a person pastes: never wrapped or cut; the other columns give way. Cells that are
    no id (a name, a count) are given as ``Text(..., no_wrap=False)`` and wrap within ``max_width``."""
    # no_wrap keeps the column out of rich's collapsing; min_width holds it even in the last resort.
    widest = max((len(i) for i in ids), default=0)
    table.add_column(header, no_wrap=True, overflow="fold", min_width=widest,
                     max_width=None if max_width is None else max(widest, max_width))


_PATH = re.compile(r"[\w.-]+(?:/[\w.-]+)+\.\w+")  # a relative file path, e.g. evidence/<vendor>/x.eml


def pasted_width(texts: Sequence[str]) -> int | None:
    """The width a text column needs so no file path in it is folded mid-word (None: it has none)."""
    paths = [len(m) for t in texts for m in _PATH.findall(t)]
    return max(paths) if paths else None


def folded(items: Sequence[str], shown: int) -> str:
    """A long list as its first few and a count of the rest."""
    if len(items) <= shown:
        return ", ".join(items)
    return ", ".join(items[:shown]) + f", … (+{len(items) - shown})"


def plan_outline(plan: Plan, machine_gates: Sequence[Finding] = ()) -> None:
    """The plan in a line per step (the demo's view; `offboard plan` prints every object)."""
    out.print(f"[bold]Exit plan[/] for [bold]{escape(plan.customer)}[/]  (plan {plan.plan_id})")
    for vp in plan.vendors:
        out.print(f"[bold]{vp.display_name}[/] — {escape(vp.scope)}", soft_wrap=True)
        for step in vp.steps:
            api = [a for a in step.actions if a.kind == "api"]
            manual = [a.id for a in step.actions if a.kind == "manual"]
            what = []
            if api:
                what.append(f"{len(api)} by API: " + folded([a.target.name for a in api], 3))
            if manual:
                what.append(f"{len(manual)} manual: " + folded(manual, 2))
            out.print(f"  {escape(step.title)} — {escape('; '.join(what))}")
        if vp.skipped:
            out.print("  [yellow]not touched (outside the exit's scope):[/] "
                      + escape(folded([f"{s.target.name} ({s.reason})" for s in vp.skipped], 2)), soft_wrap=True)
    _print_summary(plan, machine_gates)


def plan_view(plan: Plan, machine_gates: Sequence[Finding] = ()) -> None:
    out.print(f"[bold]Exit plan[/] for [bold]{escape(plan.customer)}[/]  (plan {plan.plan_id}, {plan.created_at})")
    out.print(f"  end of service: {plan.end_of_service or 'not set'}; approved by: "
              f"{escape(plan.approved_by) or 'not recorded'}; ticket: {escape(plan.ticket) or 'none'}")
    for vp in plan.vendors:
        out.print(f"\n[bold]{vp.display_name}[/] — {escape(vp.scope)}\n  credentials: {escape(vp.account)}")
        if vp.snapshot:
            now = ", ".join(f"{escape(k)}={escape(v)}" for k, v in vp.snapshot.items() if v is not None)
            out.print("  now: " + now)
        if vp.findings:
            out.print(findings_table(vp.findings))
        for step in vp.steps:
            count = f"{len(step.actions)} action{'' if len(step.actions) == 1 else 's'}"
            table = Table(title=f"{step.title}  ({count})", title_justify="left")
            shown = step.actions[:MAX_ROWS_PER_STEP]
            table.add_column("#")
            # A manual item by the id `confirm` takes; an API object by its name and the vendor's id.
            objects = [a.id if a.kind == "manual" else f"{a.target.name} ({a.target.id})" for a in shown]
            table.add_column("Object", overflow="fold")  # ids kept whole by the console (keep_words_whole)
            table.add_column("Planned action", overflow="fold")
            table.add_column("How", overflow="fold")
            for n, (a, obj) in enumerate(zip(shown, objects, strict=True), start=1):
                how = a.call if a.kind == "api" else f"MANUAL: {a.manual.portal_path if a.manual else ''}"
                if a.confirm:
                    how += f"  [needs {confirm_option(a.confirm)}]"
                table.add_row(str(n), escape(obj), escape(a.summary), escape(how))
            if len(step.actions) > MAX_ROWS_PER_STEP:
                table.add_row("…", f"and {len(step.actions) - MAX_ROWS_PER_STEP} more", "(all in the plan file)", "")
            out.print(table)
        if vp.skipped:
            out.print("[yellow]Not touched (outside the exit's scope):[/]")
            for s in vp.skipped:
                out.print(f"  - {escape(s.target.name)} ({s.target.id}): {escape(s.reason)}")
    if machine_gates:
        out.print(findings_table(machine_gates))
    out.print()
    _print_summary(plan, machine_gates)


def _print_summary(plan: Plan, machine_gates: Sequence[Finding]) -> None:
    for line in plan_summary(plan, machine_gates):
        if out.quiet and line.startswith(BLOCKS):  # -q: what blocks apply is a warning, said all the same
            warning(Text.from_markup(line).plain)
        else:
            out.print(line, soft_wrap=True)


BLOCKS = "[bold red]Blocks apply"


def plan_summary(plan: Plan, machine_gates: Sequence[Finding] = ()) -> list[str]:
    """The plan's last lines: what `apply` will do, and what blocks it (each gate, and how it is passed)."""
    api = [a for a in plan.api_actions() if a.destructive]
    manual = len(plan.actions()) - len(plan.api_actions())
    # The reads in the words (and by the rule) the run's own count uses: the two agree.
    reads = planned_reads(plan.api_actions())
    lines = [f"[bold]Plan:[/] {len(api)} removal(s) by API, {reads}, {manual} manual item(s). Nothing has been "
             "changed."]
    gates = [*plan.gates(), *(f for f in machine_gates if f.blocking)]
    hard = [f for f in gates if not f.overridable]
    soft = [f for f in gates if f.overridable]
    if hard:
        lines.append(f"{BLOCKS} (no override):[/] "
                     + "; ".join(escape(f"{f.vendor}: {f.detail}") for f in hard))
    if soft:
        lines.append(f"{BLOCKS}:[/] " + "; ".join(escape(f"{f.vendor}: {f.detail}") for f in soft)
                     + " — once handled, pass them with --override-preflight REASON")
    if not gates:
        lines.append("No gate blocks apply.")
    return lines


MAX_MANUAL_ROWS = 10  # the rest are counted; the checklist file and `status --pending` hold them all


def manual_table(actions: Sequence[Action], *, folded: bool = False) -> Table:
    """The manual items, each by the id `confirm` takes (the caller prints the exact command on a
    line of its own: a table's title is wrapped). ``folded``: the first MAX_MANUAL_ROWS only (the
    caller says how many more, and where)."""
    shown = actions[:MAX_MANUAL_ROWS] if folded else actions
    table = Table(title="Manual items (no API)", title_justify="left")
    ids = [a.id for a in shown]
    id_column(table, "Item", ids)
    where = [a.manual.portal_path if a.manual else a.summary for a in shown]
    done = [(m.done_when if (m := a.manual) else "") + "\n" + (f"API re-reads: {m.verify_hint}" if m and m.verify_hint
                                                              else "no API sees it: record what you saw in --note")
            for a in shown]
    # Widths set here, not left to rich: its last resort shrinks every column, then holds the ids'
    # and the paths' minimums, and the table runs off the screen. A path stays whole while the
    # last column keeps a readable width.
    id_w, path = max(map(len, ids), default=0), pasted_width(where) or 0
    where_w = max(path, 30)
    done_w = min(out.width - id_w - where_w - 10, max((len(x) for d in done for x in d.split("\n")), default=0))
    fixed = done_w >= 20
    table.add_column("Where", overflow="fold", width=where_w if fixed else None)
    table.add_column("Done when (and what the API re-reads)", overflow="fold", width=done_w if fixed else None)
    for a, w, d in zip(shown, where, done, strict=True):
        first, _, check = d.partition("\n")
        table.add_row(escape(a.id), escape(w), f"{escape(first)}\n[dim]{escape(check)}[/]")
    return table


STATE_STYLE = {"done": "green", "verified": "green", "confirmed": "green", "manual-pending": "yellow",
               "waiting": "yellow", "skipped": "cyan", "failed": "bold red", "blocked": "bold red",
               "unknown": "bold red", "interrupted": "bold red", "not started": "dim"}


def status_table(run_id: str, rows: Sequence[StatusRow], *, every_object: bool = False) -> Table:
    """Manual items one per row; a step's API objects folded into counts per state
    (thousands of agents stay readable) unless ``every_object``."""
    table = Table(title=f"Run {run_id}", title_justify="left")
    table.add_column("Step", overflow="fold")
    id_column(table, "Item", [r.action.id for r in rows if r.action.kind == "manual"], max_width=30)
    for col in ("State", "Detail"):
        table.add_column(col, overflow="fold")

    def add(step: str, item: str | Text, state: str, detail: str) -> None:
        style = STATE_STYLE.get(state, "")
        table.add_row(escape(step), item, f"[{style}]{state}[/]" if style else state, escape(detail))

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
            add(e[0].step, Text(f"{len(e)} object(s): {names}", no_wrap=False), e[0].state, "")
        elif e.action.kind == "manual":
            add(e.step, Text(e.action.id), e.state, e.detail)
        else:
            add(e.step, Text(e.action.target.name, no_wrap=False), e.state, e.detail)
    return table


def checks_table(checks: Sequence[Check], *, sample: int = 12) -> Table:
    table = Table(title="Verification (re-read from the vendor)", title_justify="left")
    for col in ("Check", "Result", "Vendor says"):
        table.add_column(col, overflow="fold")
    failed = [c for c in checks if not c.passed]
    passed = [c for c in checks if c.passed]
    # Per-object checks can number thousands: show every failure, and a sample of passes.
    shown = failed + passed[: max(0, sample - len(failed))]
    for c in shown:
        table.add_row(escape(c.name), "[green]passed[/]" if c.passed else "[bold red]FAILED[/]", escape(c.detail))
    if len(shown) < len(checks):
        table.add_row(f"… {len(checks) - len(shown)} more", "[green]passed[/]", "listed in the report")
    return table


# An action's audit event in a person's words; the event names are for code and never shown.
_OUTCOME_WORDS = {
    "action.failed": "FAILED",
    "action.skipped": "skipped, not touched",
    "action.unknown": "outcome unknown, re-read before anything is resent",
    "action.blocked": "held back: the evidence export failed",
    "action.held": "waits for a person's confirmation",
    "manual.pending": "manual, pending",
    "manual.confirmed": "confirmed by a person",
}
_SAID_AT_ONCE = frozenset({"action.failed", "action.unknown", "action.blocked"})  # a log shows these each


def outcome_words(action: Action, event: str) -> str:
    if event == "action.succeeded":
        return "done" if action.destructive else "exported"
    return _OUTCOME_WORDS.get(event, "recorded")


def _clock_text(seconds: float) -> str:
    return str(timedelta(seconds=max(0, round(seconds))))


def make_progress() -> RichProgress | LineProgress:
    """A live bar on a terminal; timestamped lines when stderr goes to a file, a pipe or an RMM log."""
    return RichProgress() if err.is_terminal else LineProgress()


class _EtaColumn(ProgressColumn):
    """The run's ETA on its overall line; on a lane's line, that vendor's own (its waits counted).
    Blank once nothing is left to run (what waits for a person is not the run's time)."""

    def __init__(self, eta: Callable[[str | None], float | None]) -> None:
        super().__init__()
        self._eta = eta

    def render(self, task: Task) -> Text:
        if task.finished or task.total is None:
            return Text("")
        remaining = self._eta(task.fields.get("lane"))
        if remaining is not None and remaining <= 0:
            return Text("")
        # rounded up, as a wait's "waiting Ns" is: never "ETA 0:00:07" beside "waiting 8s"
        shown = f"ETA {_clock_text(math.ceil(remaining))}" if remaining is not None else "ETA …"
        return Text(shown, style="progress.remaining")


class _ElapsedColumn(ProgressColumn):
    """The run's time so far, on every line: counted from the command's first words (its re-read of
    the vendors, before the bar), so it never starts again at 0 when the bar appears."""

    def __init__(self, elapsed: Callable[[], float]) -> None:
        super().__init__()
        self._elapsed = elapsed

    def render(self, task: Task) -> Text:
        return Text(_clock_text(self._elapsed()), style="progress.elapsed")


class _DescriptionColumn(ProgressColumn):
    """The line's name and, on a lane's line, its runbook step: cut short with an ellipsis, never
    wrapped, when the status beside it needs the room."""

    def __init__(self, width: Callable[[], int]) -> None:
        super().__init__(table_column=Column(no_wrap=True, overflow="ellipsis"))
        self._width = width

    def render(self, task: Task) -> Text:
        text = Text.from_markup(task.description, overflow="ellipsis")
        text.no_wrap = True
        text.truncate(max(len("All vendors"), self._width()), overflow="ellipsis")
        return text


class _StatusColumn(ProgressColumn):
    """The latest outcome, or, while a vendor's calls wait, the wait counting down: on a lane's line
    that vendor's own; on the overall line every vendor's."""

    def __init__(self, status: Callable[[str | None], str]) -> None:
        # Room for "14 held until a person confirms" and "waiting 27s for the rate limit" at 120 columns:
        # the step's title gives way first.
        super().__init__(table_column=Column(min_width=STATUS_WIDTH))  # the column that gives way at the end
        self._status = status

    def render(self, task: Task) -> Text:
        return Text(self._status(task.fields.get("lane")), no_wrap=True, overflow="ellipsis")


class _CountColumn(ProgressColumn):
    """``done/total``, on the overall line and on each lane's line (its own)."""

    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text(f"{int(task.completed)} done", style="progress.download")
        return Text(f"{int(task.completed)}/{int(task.total or 0)}", style="progress.download")


STATUS_WIDTH = 31  # "14 held until a person confirms", "waiting 27s for the rate limit" whole
BAR_WIDTH = 16  # the overall bar; a lane's status ("14 held until a person confirms") keeps room at 120 columns
# What stands right of the description, but its count ("81/81"): the bar, "0:00:00", "ETA 0:00:00",
# the status, and the gaps between the six columns: the step's title gives way to them.
BESIDE_DESCRIPTION = BAR_WIDTH + 7 + 11 + STATUS_WIDTH + 5


class _LaneBar(BarColumn):
    def render(self, task: Task) -> Text:  # type: ignore[override]
        if task.fields.get("lane"):
            return Text("")
        return super().render(task)  # type: ignore[return-value]


class RichProgress:
    """The engine's Progress on a terminal (stderr): an overall bar with an ETA, and a line per
    vendor lane with its own runbook step, count and ETA, and its latest outcome or, while the rate
    limiter or a vendor's Retry-After holds its calls back, "waiting Ns for the rate limit" counting
    down. The counts are of what is done (engine/pace.py): a lane at its gate shows the gate's
    step and "N held until a person confirms". Each ETA counts the waits (engine/pace.py). While the
    run verifies (after the bar), a wait is a line of its own counting down until the re-reads end."""

    WAIT_SHOWN = 0.5  # seconds: shorter waits are the limiter's ordinary pacing

    def __init__(self, console: Console | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console or err
        self._clock = clock
        self._progress = Progress(
            _DescriptionColumn(self._description_width), _LaneBar(bar_width=BAR_WIDTH), _CountColumn(),
            _ElapsedColumn(self.elapsed), _EtaColumn(self.eta), _StatusColumn(self.lane_text),
            console=self.console, transient=False,
        )
        self._task: TaskID | None = None
        self._lanes: dict[str, TaskID] = {}  # a vendor's display name -> its line
        self._names: dict[str, str] = {}  # a vendor's key -> its display name
        self._live = False
        self._last = ""
        self._last_of: dict[str, str] = {}  # per lane
        self._waits: dict[str, tuple[float, float, Wait]] = {}  # vendor -> (when it began, when it ends, the wait)
        self._lock = threading.Lock()
        self._began: float | None = None  # the command's first words: the elapsed time's start
        self._all = pace.Count()
        self._all_eta = pace.Eta(self._all)
        self._counts: dict[str, pace.Count] = {}  # a vendor's display name -> its lane's count
        self._etas: dict[str, pace.Eta] = {}  # a vendor's display name -> its lane's ETA
        self._ceilings: dict[str, Limit] = {}  # a vendor's display name -> its rate limit (Progress.ceilings)
        self._after: Live | None = None  # the verification's wait line
        self._steps: dict[str, str] = {}  # a vendor's display name -> the step its lane is on
        self._gates: dict[str, str] = {}  # a vendor's display name -> its gate's step, once handed to a person
        self._reading = False  # the re-read before the bar is under way (its line not yet said done)
        self._suspended: float | None = None  # when a guided prompt took the screen
        self._stopped = False  # the actions ended with work left (Ctrl-C, a vendor down): no ETA is true

    def _description_width(self) -> int:
        total = self._all.total
        return self.console.width - BESIDE_DESCRIPTION - len(f"{total}/{total}")

    def elapsed(self) -> float:
        """Seconds since the command's first words (its re-read of the vendors), never since the bar."""
        return self._clock() - self._began if self._began is not None else 0.0

    def _begin(self) -> float:
        now = self._clock()
        if self._began is None:
            self._began = now
        return now

    def start(self, total: int, done: int) -> None:
        now = self._begin()
        self.end()  # the re-read's wait line, if it waited: the bar takes its place
        if self._reading:  # its line stays above the bar: said done, not read as still going
            self.console.print("Re-read done: the plan still holds.", markup=False, highlight=False)
            self._reading = False
        self._progress.start()
        self._live = True
        with self._lock:
            self._all = pace.Count(total, done, done)
            self._all_eta = pace.Eta(self._all)
            self._all_eta.begin(now)
        self._task = self._progress.add_task("All vendors", total=total, completed=done)

    def lanes(self, counts: Mapping[str, tuple[int, int]]) -> None:
        now = self._clock()
        with self._lock:
            self._counts = {vendor: pace.Count(total, before, before) for vendor, (total, before) in counts.items()}
            self._etas = {vendor: pace.Eta(count) for vendor, count in self._counts.items()}
            for vendor, eta in self._etas.items():
                if vendor in self._ceilings:
                    eta.limit(self._ceilings[vendor].window, self._ceilings[vendor].seconds)
                eta.begin(now)
        for vendor, (total, before) in counts.items():
            self._progress.update(self._lane(vendor), total=total, completed=before)

    def ceilings(self, limits: Mapping[str, Limit]) -> None:
        with self._lock:
            self._ceilings = dict(limits)
            for vendor, eta in self._etas.items():
                if vendor in self._ceilings:
                    eta.limit(self._ceilings[vendor].window, self._ceilings[vendor].seconds)

    def _lane(self, vendor: str) -> TaskID:
        # Never call rich under self._lock: its refresh thread holds its own lock while it asks
        # lane_text and eta, which take self._lock. A lane is added by its vendor's thread only.
        lane = self._lanes.get(vendor)
        if lane is None:
            lane = self._lanes[vendor] = self._progress.add_task(escape(f"  {vendor}"), total=None, lane=vendor)
        return lane

    def step(self, vendor: str, step: Step, todo: int) -> None:
        with self._lock:
            self._names[step.vendor] = vendor
            self._steps[vendor] = step.title
        self._progress.update(self._lane(vendor), description=escape(f"  {vendor}: {step.title}"))

    def advance(self, action: Action, event: str) -> None:
        vendor = self._names.get(action.vendor, action.vendor)
        now = self._clock()
        with self._lock:
            lane = self._counts.get(vendor)
            for count, eta in ((self._all, self._all_eta), (lane, self._etas.get(vendor))):
                if count is not None:
                    count.settle(event)
                if eta is not None:
                    eta.settled(now, action.id)
            if event == pace.HELD:  # not the held item's name: the lane is not at its step
                self._last = self._last_of[vendor] = pace.held_words((lane or self._all).for_person)
            else:
                self._last = self._last_of[vendor] = f"{action.target.name}: {outcome_words(action, event)}"
            # All it has left waits behind its gate: back on the gate's step (its exports, not held,
            # ran after the gate was handed to a person and left "1. Export retained…" showing).
            gate = self._gates.get(vendor) if lane is not None and not lane.left and lane.waiting_for_person else None
        if gate:
            self._progress.update(self._lane(vendor), description=escape(f"  {vendor}: {gate}"))
        if self._task is not None and event not in (pace.HELD, pace.HANDED):  # only what is done counts
            self._progress.update(self._task, advance=1)
            self._progress.update(self._lane(vendor), advance=1)

    def held(self, vendor: str, action_ids: Sequence[str]) -> None:
        now = self._clock()
        with self._lock:
            self._gates.setdefault(vendor, self._steps.get(vendor, ""))  # announced as the gate began
            for c, eta in ((self._all, self._all_eta), (self._counts.get(vendor), self._etas.get(vendor))):
                if c is not None:
                    c.gated(c.ahead_held + len(action_ids) if c is self._all else len(action_ids))
                if eta is not None:
                    eta.drop(action_ids)
                    eta.settled(now)

    def sent(self, call: Sent) -> None:
        pass  # one exit's bar: its lanes' own ETAs (engine/pace.py) already hold the limit

    def waiting(self, wait: Wait) -> None:
        now = self._begin()
        with self._lock:
            if wait.seconds < self.WAIT_SHOWN:
                return
            for eta in (self._all_eta, self._etas.get(wait.vendor)):
                if eta is not None:
                    eta.waiting(now, wait.seconds)
            began, ends, _ = self._waits.get(wait.vendor, (now, 0.0, wait))
            self._waits[wait.vendor] = (began if ends > now else now, now + wait.seconds, wait)
        if not self._live:  # before the bar (the run's first reads): a line of its own, counting down
            self._wait_line()

    def eta(self, vendor: str | None = None) -> float | None:
        """Seconds left (engine/pace.py's rule): a lane's own; the run's is its slowest lane's."""
        now = self._clock()
        with self._lock:
            if self._stopped:
                return 0.0  # shown blank: the run stopped, its last frame promises nothing
            if vendor is not None:
                lane = self._etas.get(vendor)
                return lane.seconds(now) if lane is not None else None
            known = [s for eta in self._etas.values() if (s := eta.seconds(now)) is not None]
            return max(known) if known else self._all_eta.seconds(now)

    def _waiting(self, vendor: str | None, now: float) -> list[str]:
        """The waits still running, the longest first (review11: the run's line named a lane's 1 s wait
        while the other's 58 s held the run)."""
        running = sorted(((ends, w) for v, (_, ends, w) in self._waits.items() if ends > now and vendor in (None, v)),
                         key=lambda ew: -ew[0])
        return [f"{w.vendor}: waiting {math.ceil(ends - now)}s {w.why}" for ends, w in running]

    def wait_text(self) -> str:
        """Every vendor's wait still running, counting down ("" when none)."""
        now = self._clock()
        with self._lock:
            return "; ".join(self._waiting(None, now))

    def lane_text(self, vendor: str | None = None) -> str:
        now = self._clock()
        with self._lock:
            waiting = self._waiting(vendor, now)
            count = self._all if vendor is None else self._counts.get(vendor)
            if waiting and not self._stopped:
                return waiting[0].split(": ", 1)[1] if vendor is not None else "; ".join(waiting)
            if count is not None and self._stopped and count.left:  # the last frame of a run stopped half-way
                return f"stopped, {count.left} left" + (f"; {pace.held_words(count.waiting_for_person)}"
                                                         if count.waiting_for_person else "")
            if count is not None and count.waiting_for_person and not count.left:  # all it has left waits for a person
                return pace.held_words(count.waiting_for_person)
            return self._last_of.get(vendor, "") if vendor is not None else self._last

    def status_text(self) -> str:
        return self.lane_text(None)

    def finish(self) -> None:
        with self._lock:
            self._stopped = self._all.left > 0
        self._progress.stop()  # its last frame drawn now, stopped or not
        self._live = False

    def phase(self, text: str) -> None:
        self._begin()
        self.console.print(text, markup=False, highlight=False)
        self._reading = self._task is None  # before the bar: the re-read that checks the plan
        if self._task is not None and not self._live:
            # After the bar: the run re-reads its vendors (verification) until ``end``; a rate-limit
            # wait then counts down on a line of its own, as on the bar.
            self._wait_line()

    def _wait_line(self) -> None:
        """Where there is no bar (the re-read before it, a resume's first reads, the verification after
        it): the waits count down on a line of their own (review11: a resume's "waiting 49s" stood still)."""
        if self._after is None:
            self._after = Live(get_renderable=lambda: Text(self.wait_text(), no_wrap=True, overflow="ellipsis"),
                               console=self.console, transient=True, refresh_per_second=4,
                               redirect_stdout=False, redirect_stderr=False)
            self._after.start()

    def end(self) -> None:
        if self._after is not None:
            self._after.stop()
            self._after = None

    def warning(self, text: str) -> None:
        if self._live and not self.console.quiet:  # above the live bar, which would draw over a line of its own
            self.console.print(text, style="yellow", markup=False, highlight=False, soft_wrap=True)
        else:
            warning(text)

    def suspend(self) -> None:
        """A guided prompt takes the screen: the bar leaves it (no frozen copy above the prompt) and its
        ETAs stand still until ``resume``."""
        self._progress.live.transient = True
        self._progress.stop()
        self._progress.live.transient = False
        # Rich keeps the erased bar's height and, drawing again, moves the cursor up that many lines first:
        # over the prompt's last lines and the person's answer (review9). The bar starts anew below them.
        self._progress.live._live_render._shape = None
        self._live = False
        with self._lock:
            self._suspended = self._clock()

    def resume(self) -> None:
        with self._lock:
            if self._suspended is not None:
                stood = self._clock() - self._suspended
                for eta in (self._all_eta, *self._etas.values()):
                    eta.paused(stood)
                self._suspended = None
        self._progress.start()
        self._live = True


class LineProgress:
    """The engine's Progress for a log (not a terminal): timestamped lines that read
    top to bottom — each phase and each runbook step as it begins, every failure, the waits a
    vendor's rate limit imposes, and in between at most one progress line every INTERVAL seconds."""

    INTERVAL = 5.0
    WAIT_SHOWN = 1.0  # seconds: shorter waits are the limiter's ordinary pacing

    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._clock = clock
        self._lock = threading.Lock()
        self._count = pace.Count()  # what is done (engine/pace.py): not what waits for a person
        self._started = 0.0
        self._said = -math.inf  # when the last line was written
        self._waits_said: dict[str, float] = {}

    def _line(self, text: str) -> None:
        # With the rest of the output (stdout; stderr under --json), looked up each time: a refusal
        # then stays the one line on stderr, and a log of stdout reads top to bottom. `-q` (cron,
        # an RMM) keeps only warnings and errors: no progress line.
        if self._stream is None and out.quiet:
            self._said = self._clock()
            return
        stream = self._stream or out.file
        stream.write(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} {' '.join(text.split())}\n")
        stream.flush()
        self._said = self._clock()

    def phase(self, text: str) -> None:
        with self._lock:
            self._line(text)

    def warning(self, text: str) -> None:
        with self._lock:
            warning(text)  # stderr, with the errors: not a progress line

    def start(self, total: int, done: int) -> None:
        with self._lock:
            self._count = pace.Count(total, done, done)
            self._started = self._clock()
            self._line(f"{total - done} action(s) to run" + (f" ({done} of {total} done before)" if done else ""))

    def lanes(self, counts: Mapping[str, tuple[int, int]]) -> None:
        pass  # a log says each lane's steps and waits as they come; its pace is the run's

    def ceilings(self, limits: Mapping[str, Limit]) -> None:
        pass  # a log's lines carry counts, not an ETA

    def held(self, vendor: str, action_ids: Sequence[str]) -> None:
        with self._lock:
            self._count.gated(self._count.ahead_held + len(action_ids))  # "about N left" is of the work, not a person's

    def step(self, vendor: str, step: Step, todo: int) -> None:
        with self._lock:
            self._line(f"{vendor}: {step.title} ({todo} to do)")

    def advance(self, action: Action, event: str) -> None:
        with self._lock:
            self._count.settle(event)
            words = f"{action.target.name}: {outcome_words(action, event)}"
            if event in _SAID_AT_ONCE:
                self._line(words)
            elif self._clock() - self._said >= self.INTERVAL:
                self._line(f"{self._where()}; last: {words}")

    def _where(self) -> str:
        elapsed = self._clock() - self._started
        c = self._count
        text = f"{c.done}/{c.total} done, {_clock_text(elapsed)} elapsed"
        if c.moved and c.left:
            text += f", about {_clock_text(elapsed / c.moved * c.left)} left"
        if c.for_person:
            text += f", {pace.held_words(c.for_person)}"
        return text

    def sent(self, call: Sent) -> None:
        pass  # a log says the waits, not each call

    def waiting(self, wait: Wait) -> None:
        if wait.seconds < self.WAIT_SHOWN:
            return
        with self._lock:
            now = self._clock()
            # A long wait is always said; the limiter's steady pacing once every INTERVAL per vendor.
            if wait.seconds >= self.INTERVAL or now - self._waits_said.get(wait.vendor, -math.inf) >= self.INTERVAL:
                self._waits_said[wait.vendor] = now
                self._line(wait.describe())

    def finish(self) -> None:
        with self._lock:
            self._line(f"Actions finished: {self._where()}")

    def end(self) -> None:
        pass  # a log said each wait as it came

    def suspend(self) -> None:
        pass

    def resume(self) -> None:
        pass


class RichGuide:
    """Guided mode at the terminal: show each manual item, wait, and say what was done."""

    def __init__(self, by: str, progress: RichProgress | LineProgress | None = None) -> None:
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
            lines.append(f"Done is recorded in the audit log as confirmed by {escape(self.by)} (--by NAME to change).")
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
        except KeyboardInterrupt:
            out.line()  # Ctrl-C at the prompt left the cursor after "^C": the bar's last frame starts below it
            raise
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


def _fold_runs(rows: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    kept: list[tuple[str, str, str]] = []
    run: list[tuple[str, str, str]] = []

    def flush() -> None:
        kept.extend(run if len(run) <= 3 else [run[0], ("…", "", f"{len(run) - 2} more like these"), run[-1]])
        run.clear()

    for row in rows:
        if run and row[2].split(" — ")[0] != run[-1][2].split(" — ")[0]:
            flush()
        run.append(row)
    flush()
    return kept


def ticket_table(rows: list[tuple[str, str, str]], ref: str, *, fold: bool = False) -> Table:
    """The exit's PSA ticket: each note (its first line) and each file, with the PSA's ids; with
    ``fold``, a run of notes of one kind (the checklist's updates) as its first, a count, its last."""
    table = Table(title=f"{ref}: its notes and files", show_lines=False)
    table.add_column("kind")
    table.add_column("id", justify="right")
    table.add_column("what")
    if fold:
        rows = _fold_runs(rows)
    for kind, ident, what in rows:
        table.add_row(kind, ident, escape(what))
    return table
