"""`offboard watch`: after the exit, see that it stays exited (one check now, or a scheduler entry)."""

from __future__ import annotations

import shutil
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from offboard import engine, hints
from offboard.cli import conventions, render, schedule
from offboard.config import ExitConfig
from offboard.errors import BadInput, ExitCode
from offboard.plan import write_plan
from offboard.proof.plan_signature import sign_plan
from offboard.rundir import RunDir, check_output_path, writing_output


def exe() -> str:
    """The offboard program a scheduler should start: this one, by its absolute path."""
    argv0 = Path(sys.argv[0])
    if argv0.name.startswith("offboard") and argv0.is_file():
        return str(argv0.resolve())
    beside = Path(sys.executable).parent  # the console script of this environment (a venv, pipx)
    for name in ("offboard", "offboard.exe"):
        if (beside / name).is_file():
            return str((beside / name).absolute())
    found = shutil.which("offboard")
    if found is None:
        raise BadInput("cannot tell where the offboard program is (it is not on PATH); run `offboard watch "
                       "--schedule` from the installed offboard")
    return str(Path(found).resolve())


def watch(
    config: Annotated[Path, typer.Option("--config", "-c", envvar="OFFBOARD_CONFIG",
                                         help="The exit definition.")] = Path("config.toml"),
    run: Annotated[str | None, typer.Option("--run", metavar="RUN_ID", help="The finished exit to watch "
                                            "(default: the latest run).")] = None,
    once: Annotated[bool, typer.Option("--once", help="Check once now, record it in the run's audit log, "
                                       "and exit: 0 all still stopped, 5 something came back.")] = False,
    until: Annotated[str | None, typer.Option("--until", metavar="YYYY-MM-DD", help="The watch period's last "
                                              "day: that day's check tells the ticket the watch ended; later "
                                              "runs check nothing.")] = None,
    plan_out: Annotated[Path | None, typer.Option(
        "--plan-out", metavar="FILE", help="When something came back: save a fresh plan for `offboard apply` "
                                           "(its removals are what came back; the usual guards apply).")] = None,
    schedule_kind: Annotated[str | None, typer.Option(
        "--schedule", metavar="systemd|cron|windows", help="Print a ready scheduler entry (unit and timer, "
                                                           "crontab line, or schtasks command) that runs "
                                                           "`--once`; changes nothing.")] = None,
    every_hours: Annotated[int, typer.Option("--every-hours", help="With --schedule: how often "
                                             f"({', '.join(map(str, schedule.HOURS))}).")] = 24,
    days: Annotated[int, typer.Option("--days", min=1, max=3650, help="With --schedule: how many days to watch "
                                      "from today.")] = 30,
    quiet: conventions.QuietOpt = False,
) -> None:
    """After the exit: check that nothing came back (agents re-enrolled, counts above zero, logs arriving,
    devices, keys, users or webhooks listed again), and record every check in the run's proof.

    Exit 0 when everything is still stopped, 5 when something came back (each named, with the runbook step
    that removes it). Not a daemon: `--schedule` prints an entry for systemd, cron or the Windows Task
    Scheduler that runs `offboard -q watch --once` daily for 30 days."""
    if (schedule_kind is None) == (not once):
        raise BadInput("give --once (check now) or --schedule systemd|cron|windows (print a scheduler entry), "
                       "e.g. offboard watch --once")
    cfg = conventions.load_exit_config(config)
    run_id = run or engine.latest_run_id(cfg)
    RunDir.existing(cfg.runs_dir, run_id)  # a typo costs no call and prints no entry that cannot run
    if schedule_kind is not None:
        if plan_out is not None or until is not None:
            raise BadInput("--schedule prints an entry whose --until is today plus --days; --plan-out and --until "
                           "go with --once")
        _print_schedule(schedule_kind, cfg, config, run_id, every_hours, days)
        return
    last_day = parse_until(until)
    if plan_out is not None:
        check_output_path(plan_out, "plan", "came-back.plan.json")
    with engine.open_sessions(cfg) as sessions:
        with render.err.status("Re-reading the vendors after the exit…"):
            result = engine.watch_run(run_id, cfg, sessions, until=last_day)
        if result.over:
            render.warning(f"the watch of run {run_id} ended on {result.over}; nothing was checked: remove the "
                           "scheduled entry")
            raise typer.Exit(ExitCode.OK)
        _show(result, config, {n: c.display_name for n, c in sessions.connectors.items()},
              planned=plan_out is not None)
        if engine.run_ended(run_id, cfg).ended:  # as `verify --run` says it (a line, not a warning: daily under cron)
            render.out.print(f"These checks were recorded in run {run_id}'s audit log, after its close, and signed. "
                             f"{hints.rebundle(run_id, cfg.path)}", soft_wrap=True, markup=False)
        if plan_out is not None and result.came_back:
            _plan_out(cfg, sessions, result, plan_out, config)
    for line in result.ticket:
        render.out.print(line, soft_wrap=True, markup=False)
    raise typer.Exit(ExitCode.CAME_BACK if result.came_back else ExitCode.OK)


def parse_until(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadInput(f"--until {text!r} is not a date; give YYYY-MM-DD, e.g. --until 2027-01-31") from None


def _show(result: engine.WatchResult, config: Path, names: dict[str, str], *, planned: bool) -> None:
    for key, w in result.items:
        vendor = names.get(key, key)
        if w.came_back:  # a warning: shown under -q, so a scheduler mails or logs it
            render.warning(f"{vendor}: CAME BACK — {w.detail}. To remove it: {w.remedy}")
        elif not w.available:
            render.out.print(f"{vendor}: not available — {w.check}: {w.detail}", soft_wrap=True, markup=False)
        else:
            render.out.print(f"{vendor}: still stopped — {w.check}: {w.detail}", soft_wrap=True, markup=False)
    back = result.came_back
    since = result.since[:16].replace("T", " ") + " UTC"
    render.out.print(f"Run {result.run.run_id}: {len(result.items)} check(s) since the exit ended ({since}): "
                     + (f"{len(back)} thing(s) came back." if back else "nothing came back.")
                     + " Recorded in the run's audit log and report.", soft_wrap=True, markup=False)
    if back and not result.last and not planned:
        render.out.print(f"Plan their removal: offboard watch -c {config} --run {result.run.run_id} --once --plan-out "
                         f"came-back.plan.json, then offboard apply came-back.plan.json -c {config}", soft_wrap=True,
                         markup=False)


def _plan_out(cfg: ExitConfig, sessions: engine.Sessions, result: engine.WatchResult, out: Path,
              config: Path) -> None:
    fresh = engine.make_plan(cfg, sessions)
    answers = engine.answering(fresh, result.came_back)
    signer = engine.signer_for(cfg)
    with writing_output(out, "plan"):
        write_plan(fresh, out)
        if signer is not None:
            sign_plan(signer, fresh, out)
    removals = [a for a in fresh.api_actions() if a.destructive]
    render.out.print(f"Saved a fresh plan to {out}: {len(removals)} removal(s) by API; these answer what came back: "
                     + (", ".join(f"{a.id} ({a.summary}: {a.target.name})" for a in answers) or "none (a person "
                        "does each: see the plan's manual items)")
                     + f". Review it, then run: offboard apply {out} -c {config}", soft_wrap=True, markup=False)


def _print_schedule(kind: str, cfg: ExitConfig, config: Path, run_id: str, every_hours: int, days: int) -> None:
    config = config.resolve()
    entry = schedule.Watch(exe=exe(), folder=config.parent, command=("watch", "-c", str(config), "--run", run_id,
                                                                     "--once"),
                           label=run_id, what=f"the exit of {cfg.customer.name} (run {run_id})",
                           until=schedule.until_after(days), every_hours=every_hours)
    sys.stdout.write(schedule.render(kind, entry))
