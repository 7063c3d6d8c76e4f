"""`offboard batch …`: many customers at once (a vendor migration, a contract end).

A batch is named by its plan file (default ``batch.plan.json``): every command after `plan`
reads it, finds each exit's config beside it, and each exit's run in that exit's runs folder.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from offboard import batch as batches
from offboard import connectors as registry
from offboard import engine, hints
from offboard.batch.run import Report
from offboard.cli import batch_live, conventions, render, schedule
from offboard.cli import watch_cmd as watch_cmd_module
from offboard.cli.conventions import TrustListingOpt
from offboard.config import SectionSettings
from offboard.errors import BadInput, ExitCode, OffboardError
from offboard.wire.redact import REDACTOR

batch_app = typer.Typer(
    help="Many customers at once: one plan of every exit, run side by side at each vendor account's rate "
         "limit, resumable for days. Each exit keeps its own run folder, audit log, report and bundle.",
    no_args_is_help=True)

PlanArg = Annotated[Path, typer.Argument(help="The batch plan (from `offboard batch plan -o`).")]
DEFAULT_PLAN = Path("batch.plan.json")
ParallelOpt = Annotated[int, typer.Option("--parallel", min=1, max=64,
                                          help="Exits run at once (they share each vendor account's limit).")]


def _models() -> dict[str, type[SectionSettings]]:
    return {n: c.settings_model for n, c in registry.installed().items()}


def _exits_folder(out: Path) -> Path:
    """Where a listing's exits are written: beside the plan, named after it (batch.plan.json → batch/)."""
    name = out.name
    for suffix in (".plan.json", ".json"):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return out.parent / name


def _say() -> Report:
    """A batch's log line per exit: timestamped in UTC, as single `apply`'s log lines are."""
    def report(slug: str, text: str) -> None:
        render.err.print(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} {escape(slug)}: {escape(REDACTOR.text(text))}",
                         soft_wrap=True)
    return report


def _customer_columns(table: Table) -> None:
    """Every batch table and line names an exit by its short name, what `--customer` takes and the live
    table shows: whole, first; its full name beside it wraps where the screen is short of room."""
    table.add_column("Customer", no_wrap=True)
    table.add_column("Name")


def _shown(path: Path) -> str:
    """A path as the user would type it from here: relative when it is below this folder."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _duration(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{s} s"
    h, rem = divmod(s, 3600)
    return f"{h} h {rem // 60:02d} min" if h else f"{rem // 60} min {rem % 60:02d} s"


def plan_table(bp: batches.BatchPlan) -> Table:
    # Short headers, explained in the caption: at 120 columns the long ones folded each row onto six lines.
    table = Table(title=f"Batch plan: {len(bp.exits)} customer(s)", title_justify="left", caption_justify="left",
                  caption="Removals: by API. Manual: a person's items (those that hold a vendor's removals). "
                          "Account time: its share of its busiest account's wall time at the ceiling.")
    _customer_columns(table)
    for col in ("Vendors", "Removals", "Exports", "Manual", "Calls (≈)", "Account time", "Blocks apply"):
        table.add_column(col, overflow="fold")
    for e in bp.exits:
        est = e.estimate
        holds = f" ({est.gates} hold)" if est.gates else ""
        gates = batches.gate_names(list(e.plan.gates()))
        table.add_row(escape(e.slug), escape(e.customer), ",".join(v.vendor for v in est.loads), f"{est.removals:,}",
                      f"{est.exports:,}", f"{est.manual:,}{holds}", f"{est.calls:,}",
                      _duration(batches.share_of_account_time(e, bp.accounts)),
                      f"[bold red]{escape(gates)}[/]" if gates else "no")
    table.add_row("[bold]all[/]", "", "", f"{sum(e.estimate.removals for e in bp.exits):,}",
                  f"{sum(e.estimate.exports for e in bp.exits):,}", f"{sum(e.estimate.manual for e in bp.exits):,}",
                  f"{sum(e.estimate.calls for e in bp.exits):,}", "", "")
    return table


NO_OVERRIDE = "[no override passes it]"


def gate_lines(bp: batches.BatchPlan) -> list[str]:
    """Each exit's blocking gates in full, last: `batch apply` stops those exits (exit 4) until
    they are handled and passed with --override-preflight."""
    lines = [f"{e.slug}: " + "; ".join(f"{f.vendor}: {f.detail}" + ("" if f.overridable else f" {NO_OVERRIDE}")
                                        for f in gates)
             for e in bp.exits if (gates := e.plan.gates())]
    if not lines:
        return ["No gate blocks any exit."]
    hard = any(engine.hard_gates(e.plan.gates()) for e in bp.exits)
    return [f"Blocks apply for {len(lines)} exit(s) (those stop with exit 4 until handled and passed with "
            "--override-preflight REASON" + (f"; a gate marked {NO_OVERRIDE} is passed by none: fix it, then plan "
                                              "the batch again" if hard else "") + "):",
            *(f"  {line}" for line in lines)]


def accounts_table(bp: batches.BatchPlan) -> Table:
    table = Table(title="Vendor accounts (the batch's wall time is the busiest account's)", title_justify="left")
    for col in ("Account", "Exits", "Calls (≈)", "Limit", "Wall time at the ceiling"):
        table.add_column(col, overflow="fold")
    for a in bp.accounts:
        limit = f"{a.limit} per {a.window_seconds:g} s" if a.limit else "?"
        # Calls that all fit one window wait for none at the ceiling: said so, not "0.0 s" (nor "under 60 s",
        # which read as up to a minute).
        wall = ("0 s: one window holds them" if a.limit and 0 < a.calls <= a.limit
                else _duration(a.seconds_at_ceiling))
        table.add_row(escape(a.account), str(a.exits), f"{a.calls:,}", limit, wall)
    return table


def status_table(b: batches.Batch, states: dict[str, batches.ExitState]) -> Table:
    table = Table(title=f"Batch {b.plan.batch_id}: {len(b.exits)} customer(s)", title_justify="left")
    _customer_columns(table)  # a run id to paste stays whole; the detail gives way
    for col in ("State", "Removed", "Run"):
        table.add_column(col, no_wrap=True)
    table.add_column("Detail", overflow="fold")
    colour = {"verified": "green", "done": "green", "failed": "bold red", "interrupted": "yellow",
              "waiting for a person": "cyan", "stopped by a gate": "bold red"}
    for e in b.exits:
        st = states[e.slug]
        style = colour.get(st.state)
        state = f"[{style}]{st.state}[/]" if style else st.state
        table.add_row(escape(e.slug), escape(e.customer), state, f"{st.removed:,}/{st.removals:,}",
                      st.run.run_id if st.run else "", escape(st.detail))
    counts: dict[str, int] = {}
    for st in states.values():
        counts[st.state] = counts.get(st.state, 0) + 1
    # left, as the title: centred, a log got it behind a run of spaces
    table.caption, table.caption_justify = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())), "left"
    return table


def next_commands(states: dict[str, batches.ExitState], plan: Path,
                  overrides: engine.Overrides | None = None) -> None:
    """What to run next (the batch's one rule, ``batches.next_steps``), each command whole on a line
    of its own (a table cell folds): `batch apply` ends with it and `batch status` prints it. ``overrides``:
    those of a `batch apply` stopped by Ctrl-C, carried on its resume."""
    resume = batches.resume_command(plan)
    for command in batches.next_steps(states, plan):
        if overrides is not None and command == resume:
            command = batches.resume_command(plan, batches.override_args(overrides))
        render.out.print(f"Next: {command}", markup=False, soft_wrap=True)


@batch_app.command("plan")
def plan_cmd(
    source: Annotated[Path, typer.Argument(help="A folder of exit configs (one *.toml per customer), or a listing "
                                                "of customers: a .csv or a .toml with [[customers]].")],
    template: Annotated[Path | None, typer.Option("--template", "-t", help="With a listing: the config every "
                                                  "customer's exit is expanded from.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Save the batch plan (and, for a listing, each "
                                             "exit's config in a folder named after it).")] = None,
    parallel: ParallelOpt = batches.PARALLEL,
    quiet: conventions.QuietOpt = False,
) -> None:
    """Dry run of every exit: read what each customer still has, plan each exit, and estimate the
    calls and the wall time at each vendor account's rate limit. Changes nothing at any vendor."""
    with tempfile.TemporaryDirectory(prefix="offboard-batch-") as scratch:
        base = (out.parent if out is not None else Path(scratch)).resolve()
        expand_into = _exits_folder(out).resolve() if out is not None else Path(scratch) / "exits"
        specs = batches.load_source(source, _models(), template=template, expand_into=expand_into)
        render.err.print(f"Planning {len(specs)} exit(s) (read-only)…")
        bp = batches.plan_batch(specs, base, str(source), parallel=parallel, report=_say())
    render.out.print(plan_table(bp))
    render.out.print(accounts_table(bp))
    render.out.print(f"Estimated wall time at the accounts' ceilings: {_duration(bp.seconds_at_ceiling)} "
                     "(the accounts are drawn on at once; manual items are extra).", soft_wrap=True)
    for line in gate_lines(bp):
        render.out.print(line, soft_wrap=True, markup=False)
    if out is not None:
        batches.write_batch_plan(bp, out)
        if any(s.cfg.path.resolve().is_relative_to(expand_into) for s in specs):
            render.out.print(f"Each customer's exit config was written to {_shown(expand_into)}/<customer>/config.toml "
                             "(its runs go beside it).", soft_wrap=True, markup=False)
        render.out.print(f"Saved to {out}. {_then_apply(bp, out)}", soft_wrap=True, markup=False)


def _then_apply(bp: batches.BatchPlan, out: Path) -> str:
    """What to do with a saved batch plan. The exits its gates stop are named: the apply runs the
    others, and its `Next:` lines then give the resume that passes those gates once they are handled
    (a second plain apply of a started batch is refused)."""
    apply = hints.command("batch", "apply", out)
    hard = [e.slug for e in bp.exits if engine.hard_gates(e.plan.gates())]
    if len(hard) == len(bp.exits):  # an apply would refuse every exit: nothing to run yet
        return ("Apply refuses every exit while a gate no override passes stands (above): fix it, then plan the "
                "batch again.")
    gated = [e.slug for e in bp.exits if engine.gates_stop(e.plan.gates(), None) and e.slug not in hard]
    stopped = ([f"{', '.join(gated)}: stopped by the gates above, exit 4, until they are handled and passed with "
                "--override-preflight REASON, here or on the resume it prints"] if gated else []) + (
        [f"{', '.join(hard)}: stopped by a gate no override passes (above): fix it, then plan the batch again"]
        if hard else [])
    return f"Review it ({'; '.join(stopped)}), then run: {apply}" if stopped else f"Review it, then run: {apply}"


@batch_app.command("apply")
def apply_cmd(
    plan: PlanArg = DEFAULT_PLAN,
    resume: Annotated[bool, typer.Option("--resume", help="Continue every unfinished exit (after a crash, a reboot, "
                                                          "Ctrl-C, or a person's confirmations).")] = False,
    override_preflight: Annotated[str | None, typer.Option(
        "--override-preflight", metavar="REASON", help="Proceed despite preflight gates; audited.")] = None,
    override_evidence: Annotated[str | None, typer.Option(
        "--override-evidence", metavar="REASON", help="Remove although an evidence export failed; audited.")] = None,
    yes_delete: Annotated[bool, typer.Option("--yes-delete-organization",
                                             help="Allow the exits' organization deletions.")] = False,
    parallel: ParallelOpt = batches.PARALLEL,
    trust_listing: TrustListingOpt = False,
    quiet: conventions.QuietOpt = False,
) -> None:
    """Apply every exit of a batch plan, unattended, side by side; each is re-planned from its config
    and the live vendor first. Manual items go to each exit's checklist (`offboard batch status`).
    Exit 0 all done, 3 some wait for a person, 1 some failed or unfinished, 4 a preflight gate stopped some."""
    for flag, value in (("--override-preflight", override_preflight), ("--override-evidence", override_evidence)):
        if value is not None and not value.strip():
            raise BadInput(f"{flag} needs a reason, e.g. {flag} \"incident #12 closed by phone\"")
    b = batches.open_batch(plan, _models())
    overrides = engine.Overrides(override_preflight, override_evidence, None, yes_delete, trust_listing)
    board = batches.board_of(b, parallel, overrides)
    try:
        if render.err.is_terminal and not render.err.quiet:  # a live table, a row per exit
            with batch_live.live(board.snapshot, render.err, lambda: board.stopping):
                outcomes = batches.apply_batch(b, resume=resume, overrides=overrides, parallel=parallel, board=board)
        else:  # a log: a line per exit per step
            outcomes = batches.apply_batch(b, resume=resume, overrides=overrides, parallel=parallel, board=board,
                                           report=_say())
    except batches.BatchInterrupted:
        # The live table leaves the screen: where each exit stopped stays, and what to run next (the
        # resume with this run's overrides), as at a batch's end.
        states = batches.states_of(b)
        render.out.print(status_table(b, states))
        next_commands(states, plan, overrides)
        raise batches.BatchInterrupted(plan, overrides, told=not render.out.quiet) from None  # -q: no Next: line
    states = batches.states_of(b)
    render.out.print(status_table(b, states))
    code = batches.batch_exit_code(outcomes, states)
    refused = batches.refused_by_gates(outcomes)
    if refused:  # no override passes their gate: this plan stops them again, whatever the flags
        render.error(f"{', '.join(refused)}: stopped before the run by a gate no override passes (above): fix it, "
                     "then make a new batch plan and apply it")
        states = {slug: st for slug, st in states.items() if slug not in refused}
    elif code != ExitCode.OK and not batches.next_steps(states, plan):  # e.g. only gates stop it: the table says
        render.error(f"some exits are not done: `{hints.command('batch', 'status', plan)}` shows each")
    if states:
        next_commands(states, plan)  # what `batch status` says next, word for word
    if refused:
        render.out.print(f"Next: {b.replan}", markup=False, soft_wrap=True)
    raise typer.Exit(code)


@batch_app.command("status")
def status_cmd(plan: PlanArg = DEFAULT_PLAN,
               pending: Annotated[bool, typer.Option(
                   "--pending", help="For scripts: each manual item still waiting for a person, one per line "
                                     "(its id, what `offboard batch confirm` takes, then the customers it waits "
                                     "in).")] = False,
    quiet: conventions.QuietOpt = False,
) -> None:
    """Per customer: not started / interrupted / waiting for a person / failed / stopped by a gate / done /
    verified. Exit 0 when every exit is verified or done, 3 while some wait for a person, 4 when a gate
    stopped one, 1 when one failed or is unfinished (interrupted, never started), 2 when an exit's config
    changed since the batch plan (the runs are still shown; with --pending: 0 whenever the batch was read)."""
    b = batches.open_batch(plan, _models(), changed_ok=True)  # read-only: a changed config still shows its runs
    states = batches.states_of(b)
    if pending:
        where: dict[str, list[str]] = {}
        for slug, st in states.items():
            for item in st.pending:
                where.setdefault(item, []).append(slug)
        # In the runbook's order, as each exit lists them: a loop confirming them line by line confirms a
        # vendor's removals before its closure items, which wait for them (offboard confirm refuses those first).
        sys.stdout.write("".join(f"{item} {','.join(slugs)}\n" for item, slugs in where.items()))
        raise typer.Exit(ExitCode.OK)
    render.out.print(status_table(b, states))
    if b.changed:  # no apply, resume or verify runs on these plans: each exit's run re-plans from its config
        for slug, why in b.changed.items():
            render.error(f"{slug}: {why}")
        render.error(f"{len(b.changed)} exit(s) changed since the batch plan was made; make a new batch plan from "
                     "the exits' configs as they are now, review it, then apply it")
        render.out.print(f"Next: {b.replan}", markup=False, soft_wrap=True)
        raise typer.Exit(ExitCode.BAD_INPUT)
    next_commands(states, plan)
    raise typer.Exit(batches.batch_exit_code([], states))


@batch_app.command("verify")
def verify_cmd(plan: PlanArg = DEFAULT_PLAN, parallel: ParallelOpt = batches.PARALLEL,
               quiet: conventions.QuietOpt = False) -> None:
    """Re-read every exit's vendors: has each customer's service stopped? The re-reads are added to each
    exit's audit log. Exit 0 when every exit's checks pass."""
    b = batches.open_batch(plan, _models())
    results = batches.verify_batch(b, parallel=parallel)
    table = Table(title="Verification", title_justify="left")
    _customer_columns(table)
    for col in ("Service stopped", "Checks", "Failed"):
        table.add_column(col, overflow="fold")
    for e, r in zip(b.exits, results, strict=True):
        failed = [c for c in r.checks if not c.passed]
        detail = r.error or "; ".join(f"{c.name}: {c.detail}" for c in failed[:3])
        table.add_row(escape(e.slug), escape(e.customer), "[green]yes[/]" if r.stopped else "[bold red]NO[/]",
                      str(len(r.checks)), escape(detail))
    render.out.print(table)
    closed = [r.slug for r in results if r.after_close]
    if closed:  # as `offboard verify --run` says it of one run
        render.warning(f"{len(closed)} exit(s) were closed ({', '.join(closed)}): these re-reads were added to their "
                       "audit logs after the close, and signed. Bundles of them made before now, if any, still "
                       f"verify but do not hold them; to hand them over, make them again: "
                       f"{hints.command('batch', 'bundle', plan)}")
    raise typer.Exit(ExitCode.OK if all(r.stopped for r in results) else ExitCode.FAILED)


@batch_app.command("confirm")
def confirm_cmd(
    item: Annotated[str, typer.Argument(help="The manual item's id, as each exit's checklist names it.")],
    by: Annotated[str, typer.Option("--by", help="Who did it (recorded in each exit's audit log).")],
    note: Annotated[str, typer.Option("--note", help="What was done or seen; some items require it.")] = "",
    customer: Annotated[list[str] | None, typer.Option(
        "--customer", help="Only this customer (its short name: its folder); repeatable.")] = None,
    plan: Annotated[Path, typer.Option("--plan", help="The batch plan.")] = DEFAULT_PLAN,
    quiet: conventions.QuietOpt = False,
) -> None:
    """Record a manual item as done in every exit where it waits (or those named with --customer), after
    re-reading the vendor where its API can see it. Then `offboard batch apply --resume` runs what it held.
    Exit 0 all confirmed, 1 some not (the vendor still shows it, or an exit refused it), 2 every exit refused
    it as `offboard confirm` would (e.g. confirmed before its vendor's removals are done)."""
    if not by.strip():
        raise BadInput("--by needs the name of the person who did the item")
    b = batches.open_batch(plan, _models())
    results = batches.confirm_batch(b, item, by, note, only=customer or None)
    refusals: list[OffboardError] = []
    unconfirmed = 0
    for slug, r in results:
        if isinstance(r, OffboardError):
            refusals.append(r)
            render.error(f"{slug}: {REDACTOR.text(str(r))}")
        elif not r.accepted:
            unconfirmed += 1
            render.error(f"{slug}: not confirmed: the vendor still shows "
                         f"{r.check.detail if r.check else '?'}")
        else:  # what it re-read, as `offboard confirm` shows it
            seen = f"; re-read: {r.check.name}: {r.check.detail}" if r.check is not None else ""
            render.out.print(f"{slug}: confirmed {r.action.id} (run {r.run.run_id}){seen}", markup=False,
                             soft_wrap=True)
    if any(not isinstance(r, OffboardError) and r.to_resume for _, r in results):
        render.out.print(f"Actions held until now run with: {batches.resume_command(plan)}",
                         markup=False, soft_wrap=True)
    if refusals and len(refusals) == len(results) and {int(r.exit_code) for r in refusals} == {ExitCode.BAD_INPUT}:
        raise typer.Exit(ExitCode.BAD_INPUT)  # as the single confirm: nothing was recorded anywhere
    raise typer.Exit(ExitCode.FAILED if refusals or unconfirmed else ExitCode.OK)


@batch_app.command("watch")
def watch_cmd(
    plan: PlanArg = DEFAULT_PLAN,
    once: Annotated[bool, typer.Option("--once", help="Check every exit once now and record it in its run's "
                                       "audit log.")] = False,
    until: Annotated[str | None, typer.Option("--until", metavar="YYYY-MM-DD", help="The watch period's last "
                                              "day (as `offboard watch --until`).")] = None,
    schedule_kind: Annotated[str | None, typer.Option(
        "--schedule", metavar="systemd|cron|windows", help="Print a ready scheduler entry that runs `offboard -q "
                                                           "batch watch --once`; changes nothing.")] = None,
    every_hours: Annotated[int, typer.Option("--every-hours", help="With --schedule: how often.")] = 24,
    days: Annotated[int, typer.Option("--days", min=1, max=3650, help="With --schedule: how many days.")] = 30,
    parallel: ParallelOpt = batches.PARALLEL,
    quiet: conventions.QuietOpt = False,
) -> None:
    """After the exits: `offboard watch` of every exit of the batch, within each vendor account's shared
    rate budget. Exit 0 when every exit is still stopped, 5 when something came back in one, 1 when an
    exit could not be checked."""
    if (schedule_kind is None) == (not once):
        raise BadInput("give --once (check every exit now) or --schedule systemd|cron|windows, e.g. "
                       f"offboard batch watch {plan} --once")
    b = batches.open_batch(plan, _models())
    if schedule_kind is not None:
        if until is not None:
            raise BadInput("--schedule writes --until itself (today plus --days); --until goes with --once")
        path = plan.resolve()
        entry = schedule.Watch(exe=watch_cmd_module.exe(), folder=path.parent,
                               command=("batch", "watch", str(path), "--once"), label=path.stem.replace(".", "-"),
                               what=f"the {len(b.exits)} exits of {path.name}", until=schedule.until_after(days),
                               every_hours=every_hours)
        sys.stdout.write(schedule.render(schedule_kind, entry))
        return
    results = batches.watch_batch(b, until=watch_cmd_module.parse_until(until), parallel=parallel)
    table = Table(title="After the exits", title_justify="left")
    _customer_columns(table)
    for col in ("Came back", "Checks", "What"):
        table.add_column(col, overflow="fold")
    back = failed = 0
    names = {n: c.display_name for n, c in registry.installed().items()}
    for e, w in zip(b.exits, results, strict=True):
        found = w.result.came_back if w.result is not None else []
        back += bool(found)
        failed += bool(w.error)
        for vendor, item in found:  # a warning: shown under -q, so a scheduler mails or logs it
            render.warning(f"{e.slug}: {names.get(vendor, vendor)}: CAME BACK — {item.detail}. To remove it: "
                           f"{item.remedy}")
        if w.error:
            render.error(f"{e.slug}: not checked: {REDACTOR.text(w.error)}")
        what = w.error or ("; ".join(item.detail for _, item in found[:3]) if found else "nothing came back")
        table.add_row(escape(e.slug), escape(e.customer),
                      "not checked" if w.error else "[bold red]YES[/]" if found else "no",
                      str(len(w.result.items)) if w.result is not None else "-", escape(what))
    render.out.print(table)
    raise typer.Exit(ExitCode.FAILED if failed else ExitCode.CAME_BACK if back else ExitCode.OK)


@batch_app.command("bundle")
def bundle_cmd(
    plan: PlanArg = DEFAULT_PLAN,
    out: Annotated[Path, typer.Option("--out", "-o", help="The folder the bundles are written to.")] = Path("bundles"),
    quiet: conventions.QuietOpt = False,
) -> None:
    """One signed evidence bundle per exit (`offboard bundle` of each run), named <customer>-<run id>.tar.gz."""
    b = batches.open_batch(plan, _models())
    if out.exists() and not out.is_dir():
        raise BadInput(f"{out} is a file; --out names the folder the bundles go to")
    failed = 0
    for slug, made in batches.bundle_batch(b, out):
        if isinstance(made, Path):
            render.out.print(f"{slug}: {made}", markup=False)
        else:
            failed += 1
            render.error(f"{slug}: not bundled: {REDACTOR.text(made)}")
    raise typer.Exit(ExitCode.FAILED if failed else ExitCode.OK)
