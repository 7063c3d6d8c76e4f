"""`offboard batch apply` on a terminal: a live table of the batch's board, a row per exit.

It draws what the board says (batch/progress.py decides each row's state, steps and ETA) and
fits the terminal: nothing wraps (the steps give way first, with an ellipsis; the customer's short
name, the counts and the ETA stand whole), and rows beyond its height fold into one line with a
count of each state ("… and 37 more: 30 done, 7 waiting for a person"), the exits at work shown
first. A log (not a terminal), -q and --json keep the line per exit per step instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta

from rich import box
from rich.console import Console
from rich.constrain import Constrain
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from offboard.batch import progress as board
from offboard.batch.progress import ACTIVE, BUDGET, DONE, FAILED, GATE, INTERRUPTED, PERSON, QUEUED, REFUSED, ExitRow
from offboard.engine.pace import held_words
from offboard.text import one_line

REFRESH_PER_SECOND = 4
ECHO = 3  # columns the live table leaves free at its right: the terminal's "^C" and the cursor after it
LANE_RATIO, STATE_RATIO = 5, 10  # at 120 columns, two lanes: "re-reading, waiting 28s for the rate limit" whole
CHROME = 6  # rows that are not an exit's: the title, the header and its rule, the fold line, a margin
STYLE = {DONE: "green", FAILED: "bold red", REFUSED: "bold red", GATE: "bold red", INTERRUPTED: "yellow",
         PERSON: "cyan", BUDGET: "yellow"}
# Which rows stay when the terminal is too short for all: those at work, then those that stopped
# short, then the ones waiting for a person, the queue, and last the ones done.
_RANK = {**{s: 0 for s in ACTIVE}, FAILED: 1, REFUSED: 1, GATE: 1, INTERRUPTED: 1, PERSON: 2, QUEUED: 3}


def _clock(seconds: float | None) -> str:
    return "…" if seconds is None else str(timedelta(seconds=max(0, round(seconds))))


def _eta_cell(row: ExitRow) -> str:
    """Its ETA; while it verifies past its re-reads' estimate, "verifying" (never a bare "…")."""
    if not row.active:
        return ""
    if row.eta is None and row.doing == board.VERIFYING:
        return board.VERIFYING
    return _clock(row.eta)


def _lane_cell(row: ExitRow, vendor: str) -> Text:
    lane = next((lane for lane in row.lanes if lane.vendor == vendor), None)
    if lane is None:
        return Text("")
    count = f"{lane.done}/{lane.total}"
    if not row.active:
        return Text(count)
    if lane.waiting >= 1:  # why is in the row's state (the longest wait's), whole
        return Text(f"{count} waiting {math.ceil(lane.waiting)}s")
    # Only what is done counts: a lane at its gate stays on the gate's step (its state says how many wait).
    return Text(f"{count} {one_line(lane.step)}" if lane.step and lane.done < lane.total else count)


def _state_cell(row: ExitRow) -> Text:
    words = row.state
    if row.state == GATE and row.detail:
        words = f"{GATE} {row.detail}"  # the gates by name: the full words are in the table after the run
    elif row.active and row.waiting >= 1:  # what it does under the wait, the wait counting down
        words = f"{row.doing}, waiting {math.ceil(row.waiting)}s {row.why}"
    elif row.active and row.for_person:  # what is left of it waits for a person (single apply says it so too)
        words = f"{row.state}, {held_words(row.for_person)}"
    return Text(one_line(words), style=STYLE.get(row.state, ""))


def shown(rows: Sequence[ExitRow], room: int) -> tuple[list[ExitRow], list[ExitRow]]:
    """The rows that fit in ``room`` (the most telling first, kept in the batch's order), and the rest."""
    if len(rows) <= room:
        return list(rows), []
    room = max(1, room - 1)  # the fold line takes one
    ranked = sorted(range(len(rows)), key=lambda n: (_RANK.get(rows[n].state, 4), n))
    keep = set(ranked[:room])
    return [r for n, r in enumerate(rows) if n in keep], [r for n, r in enumerate(rows) if n not in keep]


def folded(rows: Sequence[ExitRow]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    return f"… and {len(rows)} more: " + ", ".join(f"{n} {state}" for state, n in counts.items())


STOPPING = "Stopping: each exit after the action it is on — Ctrl-C again to stop now"


def table(rows: Sequence[ExitRow], height: int, *, stopping: bool = False) -> Table:
    """The board as a table at most ``height`` rows tall."""
    vendors = list(dict.fromkeys(lane.vendor for row in rows for lane in row.lanes))
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    title = f"Batch: {len(rows)} exit(s): " + ", ".join(f"{n} {state}" for state, n in counts.items())
    # Ctrl-C, acknowledged at once: a lane may still finish the action it is on.
    title = f"[bold yellow]{STOPPING}[/]\n{escape(title)}" if stopping else escape(title)
    grid = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, expand=True, pad_edge=False,
                 collapse_padding=True)
    names = max((len(row.slug) for row in rows), default=8)
    grid.add_column("Customer", no_wrap=True, min_width=min(names, 40), overflow="ellipsis")
    for vendor in vendors:  # a vendor's lane: its own count and step
        grid.add_column(one_line(vendor), no_wrap=True, overflow="ellipsis", ratio=LANE_RATIO, min_width=9)
    grid.add_column("Done", no_wrap=True, justify="right")
    # A state says what an exit does under its wait, counting down: it has the most room.
    grid.add_column("State", no_wrap=True, overflow="ellipsis", ratio=STATE_RATIO, min_width=16)
    grid.add_column("ETA", no_wrap=True, justify="right")
    visible, rest = shown(rows, max(1, height - CHROME))
    for row in visible:
        grid.add_row(Text(one_line(row.slug)), *(_lane_cell(row, v) for v in vendors),
                     f"{row.done}/{row.total}" if row.total else "", _state_cell(row),
                     _eta_cell(row))
    if rest:
        grid.caption, grid.caption_justify = folded(rest), "left"
    return grid


@contextmanager
def live(snapshot: Callable[[], Sequence[ExitRow]], console: Console,
         stopping: Callable[[], bool] = lambda: False) -> Iterator[None]:
    """The table redrawn in place while the block runs; it leaves the screen when the run ends (the
    batch's status table follows, with each exit's end)."""

    def draw() -> Constrain:
        # Room for the terminal's echo of the operator's Ctrl-C ("^C", where the cursor is): past the last
        # column it wrapped to a line the live table did not count, so its top line ("Batch: 3 exit(s): …")
        # stayed on the screen when the table left it.
        return Constrain(table(snapshot(), console.size.height, stopping=stopping()), console.size.width - ECHO)

    with Live(get_renderable=draw, console=console, refresh_per_second=REFRESH_PER_SECOND, transient=True,
              redirect_stdout=False, redirect_stderr=False):
        yield
