"""The `offboard` command: parse, call the engine, render, exit with a documented code.

The exit codes are `offboard.errors.EXIT_CODE_MEANINGS`, printed at the end of `offboard --help`.
"""

from __future__ import annotations

import getpass
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from offboard import connectors as registry
from offboard import engine, hints
from offboard.cli import conventions, jsonout, pipes, render, stopped, watch_cmd
from offboard.cli.batch_cmd import batch_app
from offboard.cli.sandbox_cmd import sandbox_app
from offboard.config import ExitConfig
from offboard.connectors import psa as psa_registry
from offboard.errors import BadInput, ExitCode, OffboardError, RunInterrupted, RunStopped, read_input
from offboard.plan import Finding, Plan, read_plan, write_plan
from offboard.proof import signing
from offboard.proof.audit import VerifyResult, not_an_audit_log, verify_bytes, verify_file
from offboard.proof.plan_signature import check_plan_signature, sign_plan
from offboard.rundir import RunDir, check_output_path, writing_output
from offboard.wire import credentials
from offboard.wire.redact import REDACTOR

if TYPE_CHECKING:
    from offboard.proof import bundle as bundles

app = typer.Typer(
    name="offboard",
    epilog=conventions.exit_code_epilog(),
    help="Plan, execute, verify and prove a customer's exit from security vendors, from their APIs.\n\n"
         "Typical run: `offboard plan -o exit.plan.json`, review it, `offboard apply exit.plan.json`, "
         "`offboard verify`. Try `offboard demo` first: it runs a whole exit against a built-in sandbox.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    context_settings=conventions.CONTEXT_SETTINGS,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
audit_app = typer.Typer(help="Check an audit log's hash chain (and the MSP's signature over it).",
                        no_args_is_help=True)
auth_app = typer.Typer(help="Store vendor credentials in the OS keyring.", no_args_is_help=True)
keys_app = typer.Typer(help="The MSP's Ed25519 signing key: runs are signed with it, customers and auditors "
                            "check them with its public key.", no_args_is_help=True)


@app.callback()
def _everywhere(
    version: Annotated[bool, typer.Option("--version", callback=conventions.show_version, is_eager=True,
                                          help="Print offboard's version and its connectors, and exit.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=conventions.QUIET_HELP)] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also print each vendor call (method, URL, "
                                          "status) and, on an internal error, the traceback.")] = False,
) -> None:
    render.setup(quiet=quiet, loud=verbose)


app.add_typer(audit_app, name="audit")
app.add_typer(auth_app, name="auth")
app.add_typer(keys_app, name="keys")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(batch_app, name="batch")
app.command("watch")(watch_cmd.watch)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", envvar="OFFBOARD_CONFIG",
                                         help="The exit definition (start from config.example.toml).")]


def _config(path: Path) -> ExitConfig:
    return conventions.load_exit_config(path)


def _warn_if_late(cfg: ExitConfig) -> list[str]:
    warning = engine.end_of_service_warning(cfg.customer.end_of_service)
    if warning is None:
        return []
    render.warning(warning)
    return [warning]


JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else (its "
                                       "schema: schemas/<command>.v1.json); human lines go to stderr.")]

def _json(wanted: bool) -> bool:
    if wanted:
        jsonout.start()
        render.json_mode()
    return wanted


def _then_apply(the_plan: Plan, machine_gates: Sequence[Finding], out: Path, config: Path) -> str:
    """What to do with a saved plan: the apply that runs as printed, its gates' override in it when
    they can be passed (a plain apply is refused by them, exit 4); none when a gate has no override."""
    gates = [*the_plan.gates(), *machine_gates]
    if engine.hard_gates(gates):
        return "Apply refuses it while a gate with no override stands (above): fix that, then plan again."
    if engine.gates_stop(gates, None):
        then = hints.command("apply", out, config=config, extra=["--override-preflight", "REASON"])
        return f"Review it; once the gates above are handled, run: {then}"
    return f"Review it, then run: {hints.command('apply', out, config=config)}"


@app.command()
def plan(
    config: ConfigOpt = Path("config.toml"),
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Save the plan to this file for `apply`.")] = None,
    detailed_exitcode: Annotated[bool, typer.Option(
        "--detailed-exitcode", help="As Terraform's flag: exit 0 when there is nothing to remove by API, "
                                    "10 when there is (1 and 2 stay errors).")] = False,
    json_out: JsonOpt = False,
    quiet: conventions.QuietOpt = False,
) -> None:
    """Dry run: read what the customer still has and print every planned removal. Changes nothing.

    Exits 0 when the plan was made (with --detailed-exitcode: 10 when it has removals to make).
    """
    as_json = _json(json_out)
    cfg = _config(config)
    if out is not None:
        check_output_path(out, "plan", "exit.plan.json")  # before reading a vendor: a typo costs no calls
    ticket_note = None
    with engine.open_sessions(cfg) as sessions:
        with render.err.status("Reading what the customer still has (read-only)…"):
            the_plan = engine.make_plan(cfg, sessions)
        visibility = sessions.ticket.visibility_line if sessions.ticket is not None else None
        if not as_json and sessions.ticket is not None:  # before the plan, whose last lines name what blocks apply
            render.out.print(sessions.ticket.visibility_line or f"{sessions.ticket.ref}: its visibility could "
                             "not be read now; apply reads it before posting anything", soft_wrap=True,
                             markup=False)
        ready = engine.check_machine(cfg)  # this machine's gates, shown as the vendors' are: apply would refuse
        if not as_json:
            render.plan_view(the_plan, ready.gates)
        signature = None
        if out is not None:
            with writing_output(out, "plan"):
                write_plan(the_plan, out)
                signature = sign_plan(ready.signer, the_plan, out) if ready.signer is not None else None
            signed = f" and signed ({signature.name})" if signature is not None else ""
            render.out.print(f"Saved to {out}{signed}. {_then_apply(the_plan, ready.gates, out, config)}",
                             soft_wrap=True, markup=False)
            if sessions.ticket is not None:  # the exit's scope in its PSA ticket, once
                ticket_note = engine.record_scope(sessions.ticket, the_plan)
    if ticket_note is not None:
        render.out.print(ticket_note, soft_wrap=True, markup=False)
    warnings = _warn_if_late(cfg)
    removals = [a for a in the_plan.api_actions() if a.destructive]
    code = ExitCode.PLAN_HAS_CHANGES if removals and detailed_exitcode else ExitCode.OK
    if as_json:
        jsonout.plan(the_plan, code, saved_to=out, signature=signature, warnings=warnings,
                     ticket_visibility=visibility)
    raise typer.Exit(code)


@app.command()
def apply(
    plan_file: Annotated[Path | None, typer.Argument(help="A plan saved by `offboard plan -o`.")] = None,
    config: ConfigOpt = Path("config.toml"),
    resume: Annotated[str | None, typer.Option("--resume", metavar="RUN_ID",
                                               help="Continue an interrupted run; nothing done is redone.")] = None,
    override_preflight: Annotated[str | None, typer.Option(
        "--override-preflight", metavar="REASON",
        help="Proceed despite open incidents, escalations or isolated hosts; the reason is audited.")] = None,
    override_evidence: Annotated[str | None, typer.Option(
        "--override-evidence", metavar="REASON",
        help="Remove even though an evidence export failed; the reason is audited.")] = None,
    confirm_name: Annotated[str | None, typer.Option(
        "--confirm", metavar="NAME",
        help="Allow the plan's irreversible step (deleting the whole organization) by typing its name.")] = None,
    yes_delete: Annotated[bool, typer.Option(
        "--yes-delete-organization",
        help="Unattended runs: allow the plan's organization deletion without typing the name.")] = False,
    guided: Annotated[bool | None, typer.Option(
        "--guided/--unattended",
        help="Guided: stop at each manual item, wait for you, re-read the vendor and record it. "
             "Default: guided when a terminal is attached (and no --json), unattended otherwise (exit 3, "
             "checklist); a resumed run that began unattended stays unattended.")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Guided mode: who does the manual items "
                                                          "(default: your login name).")] = None,
    require_signature: Annotated[bool, typer.Option(
        "--require-signature", help="Refuse (exit 4, before anything is done) a run that would not be signed "
                                    "with the MSP's key. Without it an unsigned run is only warned about.")] = False,
    trust_listing: conventions.TrustListingOpt = False,
    take_over_claim: Annotated[str | None, typer.Option(
        "--take-over-claim", metavar="REASON",
        help="With a [psa] ticket: take over the exit's claim that another run still holds, once you know its "
             "machine has stopped; the reason is audited and noted in the ticket.")] = None,
    require_claim: Annotated[bool, typer.Option(
        "--require-claim",
        help="With a [psa] ticket: refuse (exit 2, before any vendor write) a run the ticket cannot claim (the PSA "
             "down, notes refused). Without it such a run goes on unclaimed, warned and audited.")] = False,
    json_out: JsonOpt = False,
    quiet: conventions.QuietOpt = False,
) -> None:
    """Execute a saved plan in the vendors' order, then verify and report.

    On a terminal it is guided (it stops at each manual item for you); in a script, or with
    --unattended, it does all the API work and leaves the manual items as a checklist.
    Refuses a plan whose inventory changed since it was made. Exit 4 when a preflight
    gate stops it, 3 when manual items remain (see `offboard status`), 1 when something failed.
    """
    as_json = _json(json_out)
    if (plan_file is None) == (resume is None):
        raise BadInput("give either a plan file (offboard apply exit.plan.json) or --resume RUN_ID")
    for flag, value in (("--override-preflight", override_preflight), ("--override-evidence", override_evidence),
                        ("--take-over-claim", take_over_claim)):
        if value is not None and not value.strip():
            raise BadInput(f"{flag} needs a reason, e.g. {flag} \"incident #12 closed by phone\"")
    overrides = engine.Overrides(override_preflight, override_evidence, confirm_name, yes_delete, trust_listing,
                                 take_over_claim, require_claim)
    cfg = _config(config)
    if guided is None and resume is not None and engine.began_guided(cfg, resume) is False:
        guided = False  # a run begun unattended continues so: the resume command it printed runs as it was
    if guided is None:  # a script asking for JSON never waits at a prompt unless it says --guided
        guided = not as_json and sys.stdin.isatty() and sys.stdout.isatty()
    ready = engine.check_machine(cfg, require_signature=require_signature)
    engine.refuse(ready.gates)  # exit 4 before the plan, the credentials or a vendor is read
    the_plan = read_plan(plan_file) if plan_file is not None else None
    signature = (check_plan_signature(the_plan, plan_file, ready.signer)
                 if the_plan is not None and plan_file is not None else None)
    progress = render.make_progress()
    guide = render.RichGuide(by or getpass.getuser(), progress) if guided else None
    with engine.open_sessions(cfg) as sessions:
        if the_plan is not None:
            result = engine.apply(the_plan, cfg, sessions, overrides=overrides, progress=progress, guide=guide,
                                  require_signature=require_signature)
        else:
            assert resume is not None
            result = engine.resume(resume, cfg, sessions, overrides=overrides, progress=progress, guide=guide,
                                   require_signature=require_signature)
    # Said once the run stands (a refusal is one line of its own): what the plan carried, and timing.
    if signature is not None:
        render.err.print(signature, soft_wrap=True)
    warnings = _warn_if_late(cfg)
    _finish(result, signature, warnings, as_json=as_json, config=config)


def _finish(result: engine.RunResult, signature: str | None, warnings: list[str], *, as_json: bool,
            config: Path | None = None) -> None:
    if not as_json:  # under --json the document carries them; the lines below go to stderr
        if result.blocking:
            render.out.print(render.findings_table(result.blocking))
        if result.checks:
            render.out.print(render.checks_table(result.checks))
        if result.pending:
            # How to record each is the run's last line (its message), said once.
            render.out.print(render.manual_table(result.pending, folded=True))
            if len(result.pending) > render.MAX_MANUAL_ROWS:
                listing = hints.command("status", "--pending", run=result.run.run_id, config=config)
                render.out.print(f"… and {len(result.pending) - render.MAX_MANUAL_ROWS} more manual item(s); "
                                 f"all of them: {listing}", soft_wrap=True, markup=False)
    if result.tally is not None:  # the engine's one count of the run (confirm and status print the same)
        render.out.print(result.summary(), markup=False, soft_wrap=True)
    check = verify_file(result.run.audit_path)
    render.paths(result.run.audit_path, result.run.report_path, check.lines, check.last_hash)
    render.documents(result.documents)
    for line in result.ticket:
        render.out.print(line, soft_wrap=True, markup=False)
    # -q (cron, an RMM): an outcome that is not a failure is the exit code's to say (0, or 3: a person's
    # items wait); a failure's message is an error, said all the same.
    if result.message and not (render.out.quiet and result.exit_code in (ExitCode.OK, ExitCode.MANUAL_PENDING)):
        render.error(REDACTOR.text(result.message))
    if as_json:
        jsonout.apply(result, check, plan_signature=signature, warnings=warnings)
    if result.exit_code not in stopped.NOT_RESUMABLE:
        stopped.last_line(result.run.run_id, config)
    raise typer.Exit(result.exit_code)


@app.command()
def verify(
    config: ConfigOpt = Path("config.toml"),
    run: Annotated[str | None, typer.Option("--run", metavar="RUN_ID",
                                            help="Also re-read each object that run removed, and "
                                                 "append the results to its audit log.")] = None,
    json_out: JsonOpt = False,
    quiet: conventions.QuietOpt = False,
) -> None:
    """Re-read each vendor and say whether the customer's service has stopped (exit 0) or not (1)."""
    as_json = _json(json_out)
    cfg = _config(config)
    closed = run is not None and engine.run_ended(run, cfg).ended
    with engine.open_sessions(cfg) as sessions, render.err.status("Re-reading the vendors…"):
        checks = engine.verify_recorded(run, cfg, sessions) if run is not None else engine.verify_run(None, sessions)
    if not as_json:
        render.out.print(render.checks_table(checks))
    if closed:
        assert run is not None
        # A closed run's log is its proof, and a bundle already made of it ends at its close: the
        # re-reads just added come after that (signed), so the person handing over a bundle hears it.
        render.warning(f"Run {run} was closed: these re-reads were added to its audit log after its close, and "
                       f"signed. {hints.rebundle(run, cfg.path)}")
    stopped = all(c.passed for c in checks)
    failed = sum(1 for c in checks if not c.passed)
    render.out.print("Service stopped: every check passed." if stopped else
                     f"[bold red]Service NOT stopped:[/] {failed} check(s) failed"
                     + (" (in the JSON document)." if as_json else ", see above."))
    code = ExitCode.OK if stopped else ExitCode.FAILED
    if as_json:
        jsonout.verify(checks, run, code)
    raise typer.Exit(code)


RunOpt = Annotated[str | None, typer.Option("--run", metavar="RUN_ID", help="Default: the latest run.")]


def _run_id(command: str, run: str | None, positional: str | None) -> str | None:
    """`--run RUN_ID` is the one spelling; a positional run id (the old spelling) still works."""
    if positional is None:
        return run
    if run is not None and run != positional:
        raise BadInput(f"two run ids given ({positional} and --run {run}); give one: offboard {command} --run RUN_ID")
    conventions.deprecated_run_argument(command, positional)
    return positional


@app.command("confirm")
def confirm_cmd(
    item: Annotated[str, typer.Argument(help="The manual item's id, as `offboard status` lists it.")],
    by: Annotated[str, typer.Option("--by", help="Who did it (recorded in the audit log).")],
    note: Annotated[str, typer.Option("--note", help="What was done or seen; some items require it.")] = "",
    run: RunOpt = None,
    config: ConfigOpt = Path("config.toml"),
    json_out: JsonOpt = False,
    quiet: conventions.QuietOpt = False,
) -> None:
    """Record that a person did a manual item. Where the vendor's API can see the result, it is
    re-read first, and the confirmation is refused (exit 1) while the vendor disagrees.

    Exits 0 once the confirmation is recorded, and lists what remains (`offboard status` exits 3
    while items are pending)."""
    as_json = _json(json_out)
    cfg = _config(config)
    run_id = run or engine.latest_run_id(cfg)
    with engine.open_sessions(cfg) as sessions:
        result = engine.confirm(run_id, item, by, note, cfg, sessions)
    if result.check is not None and not as_json:
        render.out.print(render.checks_table([result.check]))
    if not result.accepted:
        render.error(f"not confirmed: the vendor still shows {result.check.detail if result.check else '?'}; "
                     "finish the item and confirm again")
        if as_json:
            jsonout.confirm(result, by, ExitCode.FAILED)
        raise typer.Exit(ExitCode.FAILED)
    render.out.print(f"Confirmed {result.action.id} by {by} in run {run_id}.", markup=False)
    render.documents(result.documents)
    for line in result.ticket:
        render.out.print(line, soft_wrap=True, markup=False)
    render.out.print(result.summary(), markup=False, soft_wrap=True)  # the same counts apply and status print
    if result.to_resume:
        render.out.print(f"{len(result.to_resume)} action(s) of this run have not run yet; continue with: "
                         f"{hints.resume(run_id, config)}", markup=False, soft_wrap=True)
    # What waits behind a vendor's gate item is not on the list yet: `status --pending` lists the
    # items a person can do now, so the count says the same and names the rest apart.
    later = result.tally["waiting"] if result.tally is not None else 0
    behind = (f" ({later} more action(s) wait for {', '.join(result.tally.waiting_on)} and join the checklist "
              "when the run resumes)" if later and result.tally is not None else "")
    if result.remaining:  # the count and where the list is: the list itself is `status`'s job
        render.out.print(f"{len(result.remaining)} manual item(s) of this run remain{behind}; they are listed by: "
                         f"{hints.command('status', '--pending', run=run_id, config=config)}",
                         markup=False, soft_wrap=True)
    else:
        render.out.print("Every manual item reached so far is confirmed" + (behind or "") + "." if later
                         else "Every manual item of this run is confirmed.", markup=False, soft_wrap=True)
    if as_json:
        jsonout.confirm(result, by, ExitCode.OK)


@app.command("status", cls=conventions.OldSpellingHidden)
def status_cmd(
    old_run_id: Annotated[str | None, typer.Argument(hidden=True,
                                                     help="Deprecated: use --run.")] = None,
    run: RunOpt = None,
    config: ConfigOpt = Path("config.toml"),
    every_object: Annotated[bool, typer.Option("--all", help="One row per object, not counts per step.")] = False,
    pending: Annotated[bool, typer.Option("--pending", help="For scripts: only the ids of the manual items still "
                                          "pending, one per line (what `offboard confirm` takes).")] = False,
    last_run: Annotated[bool, typer.Option("--last-run", help="For scripts: only the run's id (default: the "
                                           "latest run's), one line.")] = False,
    json_out: JsonOpt = False,
    quiet: conventions.QuietOpt = False,
) -> None:
    """Every step of a run: done / verified / manual-pending / confirmed / skipped (with the reason).

    Exit 0 when everything is done, 3 while manual items are pending, 1 when something failed or
    the run stopped before its end (it then prints the command that continues it; with --pending
    or --last-run: 0 whenever the run was read)."""
    as_json = _json(json_out)
    cfg = _config(config)
    run_id = _run_id("status", run, old_run_id) or engine.latest_run_id(cfg)
    if last_run or pending:
        _status_for_scripts(run_id, cfg, pending=pending)
    run_dir, rows = engine.status(run_id, cfg)
    states = {r.state for r in rows}
    code = (ExitCode.FAILED if states & {"failed", "unknown", "blocked", "interrupted", "not started"} else
            ExitCode.MANUAL_PENDING if states & {"manual-pending", "waiting"} else ExitCode.OK)
    if as_json:
        jsonout.status(run_dir.run_id, rows, code)  # every object, whatever --all says
    else:
        render.out.print(render.status_table(run_dir.run_id, rows, every_object=every_object))
        render.out.print(f"Run {run_dir.run_id}: {engine.run_tally(run_dir.run_id, cfg).sentence()}",
                         markup=False, soft_wrap=True)
        for line in engine.watch_summary(run_dir):  # after the exit (`offboard watch`)
            render.out.print(line, soft_wrap=True, markup=False)
    if states & {"interrupted", "not started"}:  # shown with -q too: a run left half-way is worth a warning
        render.warning(f"run {run_dir.run_id} stopped before its end; continue it with: "
                       f"{hints.resume(run_dir.run_id, cfg.path)}")
    raise typer.Exit(code)


def _status_for_scripts(run_id: str, cfg: ExitConfig, *, pending: bool) -> NoReturn:
    """Bare lines a shell loop reads (`for item in $(offboard status --pending)`): no table, no color."""
    if not pending:
        sys.stdout.write(run_id + "\n")
        raise typer.Exit(ExitCode.OK)
    _, rows = engine.status(run_id, cfg)
    sys.stdout.write("".join(f"{r.action.id}\n" for r in rows if r.state == "manual-pending"))
    raise typer.Exit(ExitCode.OK)


@audit_app.command("verify")
def audit_verify(
    file: Annotated[Path, typer.Argument(help="An audit.jsonl from a run folder.")],
    public_key: Annotated[Path | None, typer.Option(
        "--public-key", help="The MSP's public key (msp.pub): also check the signed chain heads in "
                             "signatures.jsonl beside the log, so a rewritten or cut log is detected too.")] = None,
    quiet: conventions.QuietOpt = False,
) -> None:
    """Recompute the hash chain; name the first line that was changed, removed or inserted.
    With --public-key, also check the MSP's signatures over it, and that the signed record
    reaches the run's end (exit 1 when it does not: the log may have been cut).
    Exit 2 when the file is no audit log at all (empty, a config, a plan)."""
    raw = read_input(file, "audit log")
    signatures = file.parent / signing.SIGNATURES
    foreign = not_an_audit_log(raw)
    if foreign is not None:
        if not raw.strip() and signatures.is_file() and signatures.stat().st_size:
            render.error(f"{file}: BROKEN: the log is empty, but {signatures.name} beside it holds signed chain "
                         "heads: it was cut; compare with the run's bundle, report or the MSP's copy")
            raise typer.Exit(ExitCode.FAILED)
        raise BadInput(f"{file} is not an audit log: {foreign}; give the audit.jsonl of a run folder")
    result = verify_bytes(raw)
    if not result.ok:
        render.error(f"{file}: chain BROKEN at line {result.bad_line}: {result.reason}")
        raise typer.Exit(ExitCode.FAILED)
    render.out.print(f"{file}: chain intact, {result.lines} events, last hash {result.last_hash}", soft_wrap=True,
                     markup=False)
    if not signatures.exists():
        _unsigned_verdict(file, result, signed_asked=public_key is not None)
    if public_key is None:
        found = _public_key_near(file)
        check_it = hints.command("audit", "verify", file, extra=["--public-key", found or "msp.pub"])
        how = ("" if found is not None else
               f" (write it with `{hints.command('keys', 'export', '-o', 'msp.pub')}` where the signing key is, "
               "then run)")
        render.out.print(
            "This proves only that the log is internally consistent: a log cut short, or rewritten whole with "
            "every hash recomputed, passes this check too. To prove it is the MSP's record, check the MSP's "
            f"signatures with its public key{how}: {check_it}", soft_wrap=True, markup=False)
        raise typer.Exit(ExitCode.OK)
    check = signing.check_heads_file(result, file.parent / signing.SIGNATURES, signing.load_public(public_key))
    if not check.ok:
        render.error(f"{file}: signature check FAILED: {check.reason}")
        raise typer.Exit(ExitCode.FAILED)
    assert check.last is not None and check.end is not None
    signed = (f"signed: {check.heads} chain head(s) by {check.last['key']}; the last, at "
              f"{check.last['signed_at']}, covers all {check.last['audit_lines']} events")
    if not check.end.ended:
        render.error(f"{file}: POSSIBLY CUT: {signed}, but the record does not reach the run's end "
                     f"({check.end.describe()}). Either the run is not over, or the log and its signatures were cut "
                     "back to this earlier signed head: compare with the run's bundle, report or the MSP's copy")
        raise typer.Exit(ExitCode.FAILED)
    render.out.print(f"{signed}; the record reaches the run's end ({check.end.describe()})", soft_wrap=True,
                     markup=False)
    raise typer.Exit(ExitCode.OK)


def _public_key_near(file: Path) -> Path | None:
    """An msp.pub here or in a folder above the audit log (a run folder sits under its exit's folder,
    where `keys init` is told to write it), as the user types it from here; None when there is none."""
    places = [Path("msp.pub"), *(folder / "msp.pub" for folder in list(file.resolve().parents)[:5])]
    for place in dict.fromkeys(places):
        if place.is_file():
            try:
                return place.resolve().relative_to(Path.cwd())
            except ValueError:
                return place.resolve()
    return None


def _unsigned_verdict(file: Path, chain: VerifyResult, *, signed_asked: bool) -> NoReturn:
    """No signatures.jsonl: nothing outside the log vouches for where it ends. Exit 0 when only the
    chain was asked for (it is intact), 1 when --public-key asked for the MSP's signatures."""
    run_id = chain.records[0].get("run_id") if chain.records else None
    verdict = (
        f"{file}: UNSIGNED: no {signing.SIGNATURES} beside it (the run was never signed), so its tail cannot be "
        "proven: a log with lines cut from its end still has an intact chain, which proves only that the lines "
        "left are consistent. To sign: `offboard keys init` once (then every run's chain head is signed as it "
        f"goes), then `offboard verify --run {run_id or 'RUN_ID'}` signs this run's head as it stands now (that "
        "cannot vouch for lines cut before it)")
    if signed_asked:
        render.error(verdict)
        raise typer.Exit(ExitCode.FAILED)
    render.out.print(verdict, soft_wrap=True, markup=False)
    raise typer.Exit(ExitCode.OK)


@auth_app.command("set")
def auth_set(
    vendor: Annotated[str, typer.Argument(help="A vendor, as `offboard auth status` lists them, or `psa`.")],
    kind: Annotated[str | None, typer.Option("--kind", help="With `psa`: which PSA (default: [psa] kind in "
                                                            "the config).")] = None,
    config: ConfigOpt = Path("config.toml"),
) -> None:
    """Prompt for a vendor's API credentials (or the PSA's: `offboard auth set psa`) and store them
    in the OS keyring."""
    if vendor == psa_registry.SECTION:
        conn: registry.Connector | psa_registry.PsaConnector = psa_registry.get(kind or _psa_kind(config))
    else:
        conn = registry.get(vendor)
    if not sys.stdin.isatty():
        raise BadInput("`offboard auth set` needs a terminal to prompt; for unattended runs set "
                       + " and ".join(credentials.env_var(vendor, f.name) for f in conn.credential_fields))
    values = {f.name: typer.prompt(f.prompt, hide_input=True).strip() for f in conn.credential_fields}
    if not all(values.values()):
        raise BadInput("an empty value was entered; nothing was stored")
    credentials.store(vendor, values)
    render.out.print(f"Stored {conn.display_name} credentials in the OS keyring "
                     f"(service {credentials.SERVICE_PREFIX}:{vendor}).")


def _psa_kind(config: Path) -> str:
    if config.exists():
        psa = _config(config).psa
        if psa is not None:
            return str(getattr(psa, "kind", ""))
    known = ", ".join(sorted(psa_registry.installed())) or "none installed"
    raise BadInput(f"name the PSA: offboard auth set psa --kind KIND ({known}), or add a [psa] section to {config}")


@auth_app.command("status")
def auth_status() -> None:
    """Show, per vendor, where credentials would come from (never the values)."""
    has_keyring = credentials.keyring_available()
    if not has_keyring:
        render.out.print("OS keyring: not available on this machine; credentials come from the environment.")
    for name, conn in sorted(registry.installed().items()):
        in_keyring = credentials.stored_fields(name, conn.credential_fields) if has_keyring else []
        in_env = [f.name for f in conn.credential_fields if os.environ.get(credentials.env_var(name, f.name))]
        render.out.print(f"{name}: keyring has {in_keyring or 'nothing'}; environment has {in_env or 'nothing'}")
    for kind, pconn in sorted(psa_registry.installed().items()):
        section = psa_registry.SECTION
        in_keyring = credentials.stored_fields(section, pconn.credential_fields) if has_keyring else []
        in_env = [f.name for f in pconn.credential_fields if os.environ.get(credentials.env_var(section, f.name))]
        render.out.print(f"psa ({kind}): keyring has {in_keyring or 'nothing'}; environment has "
                         f"{in_env or 'nothing'}")


@app.command()
def bundle(
    target: Annotated[str | None, typer.Argument(metavar="verify", help="`verify` checks a bundle (a run id "
                                                "here is the deprecated spelling of --run).")] = None,
    file: Annotated[Path | None, typer.Argument(help="With `verify`: the bundle to check.")] = None,
    run: RunOpt = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Where to write the bundle "
                                             "(default: <run id>.tar.gz).")] = None,
    public_key: Annotated[Path | None, typer.Option(
        "--public-key", help="With `verify`: the MSP's public key; without it, the key inside the bundle is used, "
                             "which proves internal consistency only, not who signed (exit 3).")] = None,
    config: ConfigOpt = Path("config.toml"),
    quiet: conventions.QuietOpt = False,
) -> None:
    """`offboard bundle --run RUN_ID -o acme-exit.tar.gz`: one signed file with the plan, the audit log and its
    signatures, the evidence, the snapshots, every verification and confirmation, and the reports.

    `offboard bundle verify acme-exit.tar.gz [--public-key msp.pub]`: check it whole, offline.
    Exits 0 when it verifies with the given public key; 3 when it is consistent but was checked only
    with the key inside it (compare that key's fingerprint with the MSP's); 1 naming each problem."""
    from offboard.proof import bundle as bundles

    if target == "verify":
        if file is None:
            raise BadInput("`offboard bundle verify` needs the bundle file: offboard bundle verify FILE.tar.gz")
        _bundle_verdict(file, bundles.verify(file, public_key))
    if file is not None:
        raise BadInput(f"unexpected argument {str(file)!r}: use `offboard bundle --run RUN_ID -o FILE`")
    cfg = _config(config)
    run_dir = RunDir.existing(cfg.runs_dir, _run_id("bundle", run, target) or engine.latest_run_id(cfg))
    signer = engine.signer_for(cfg)
    if signer is None:
        raise BadInput("a bundle is signed with the MSP's key and there is none: make one with `offboard keys init`")
    dest = out or Path(f"{run_dir.run_id}.tar.gz")
    manifest = bundles.create(run_dir, signer, dest)
    key, export = _public_key_of(cfg, signer, config)
    check = hints.command("bundle", "verify", dest, extra=["--public-key", key])
    render.out.print(f"Bundle written to {dest}: {len(manifest.members)} members, signed by {signer.fingerprint}. "
                     + (f"Write its public key with `{export}`, then check" if export else "Check")
                     + f" it with: {check}", soft_wrap=True, markup=False)


def _public_key_of(cfg: ExitConfig, signer: signing.Signer, config: Path) -> tuple[Path, str | None]:
    """Where the signer's public key is (msp.pub here, beside the config or beside the key file), or
    where to write it and the command that does."""
    pem = signing.public_pem(signer.public)
    places = [Path("msp.pub"), cfg.path.parent / "msp.pub"]
    if cfg.signing_key_file is not None:
        places.append(cfg.signing_key_file.parent / "msp.pub")
    for place in dict.fromkeys(places):
        try:
            if place.read_bytes().strip() == pem.strip():
                return place, None
        except OSError:
            continue
    place = cfg.path.parent / "msp.pub"
    return place, hints.command("keys", "export", "-o", place, config=config)


def _bundle_verdict(file: Path, check: bundles.BundleCheck) -> NoReturn:
    """Exit 0: verified with the MSP's public key given; 3: consistent, but checked only with the key
    inside the bundle (a person must compare its fingerprint); 1: not verified, each problem named."""
    if not check.ok or check.manifest is None:
        for problem in check.problems:
            render.error(f"{file}: {problem}")
        render.error(f"{file}: NOT verified ({len(check.problems)} problem(s))")
        raise typer.Exit(ExitCode.FAILED)
    m = check.manifest
    end = check.end
    ended = ("the run ended in it" if end.ended else "the run had NOT ended when it was bundled") if end else "?"
    summary = (f"run {m.run_id} for {m.customer!r}, {len(m.members)} members, audit chain of {m.audit.lines} events "
               f"signed by {check.key}; {ended} ({end.describe() if end else '?'})")
    if not check.authenticated:
        render.out.print(
            f"{file}: internally consistent only, NOT authenticated — {summary}. It was checked with the key that "
            f"came inside the bundle: anyone can re-sign a changed bundle with a key of their own. Compare "
            f"{check.key} with the MSP's key fingerprint obtained another way (the MSP's `offboard keys export` "
            "prints it), "
            f"or check it with the MSP's public key: offboard bundle verify {file} --public-key msp.pub",
            soft_wrap=True, markup=False)
        raise typer.Exit(ExitCode.MANUAL_PENDING)
    render.out.print(f"{file}: verified — {summary} (checked with {check.key_source}).", soft_wrap=True, markup=False)
    raise typer.Exit(ExitCode.OK)


@keys_app.command("init")
def keys_init(
    key_file: Annotated[Path | None, typer.Option(
        "--key-file", help="Keep the private key in this file (mode 600) instead of the OS keyring; then set "
                           "[signing] key_file to it.")] = None,
    public_key: Annotated[Path, typer.Option("--public-key", "-o", help="Where to write the public key to "
                                             "share with customers and auditors.")] = Path("msp.pub"),
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key in the keyring (runs signed "
                                        "with the old key then need the old public key).")] = False,
    config: ConfigOpt = Path("config.toml"),
    quiet: conventions.QuietOpt = False,
) -> None:
    """Make the MSP's Ed25519 signing key and write its public key to share (msp.pub)."""
    if key_file is None and not force and signing.load_signer(None) is not None:
        raise BadInput("the OS keyring already holds a signing key; `offboard keys export` writes its public key, "
                       "or pass --force to replace it")
    # Both paths before the key is made: a bad -o must not leave a key nobody has the public half of.
    if key_file is not None:
        check_output_path(key_file, "private key", "msp-signing-key.pem", make_parents=True)
        if key_file.exists():
            raise BadInput(f"{key_file} already exists; choose another path (a key file is never overwritten)")
    check_output_path(public_key, "public key", "msp.pub")
    key = signing.generate()
    if key_file is None:
        signing.store_in_keyring(key)
        where = f"the OS keyring (service {signing.KEYRING_SERVICE})"
    else:
        with writing_output(key_file, "private key"):
            signing.write_key_file(key, key_file)
        where = f"{key_file} ({_key_file_setting(key_file, config)})"
    with writing_output(public_key, "public key"):
        public_key.write_bytes(signing.public_pem(key.public_key()))
    render.out.print(f"New signing key {signing.fingerprint(key.public_key())} made and stored in {where}.",
                     soft_wrap=True, markup=False)
    render.out.print(f"Public key written to {public_key}: share it with customers and auditors; "
                     f"`{hints.command('bundle', 'verify', 'FILE', extra=['--public-key', public_key])}` checks a "
                     "run's bundle with it.", soft_wrap=True, markup=False)


def _key_file_setting(key_file: Path, config: Path) -> str:
    """What the config needs for runs to be signed with ``key_file``: nothing when it names it already."""
    named = None
    if config.is_file():
        try:
            named = _config(config).signing_key_file
        except BadInput:
            named = None  # a config that does not load yet: say what to set
    if named is not None and named.resolve() == key_file.resolve():
        return f"{config} names it already: [signing] key_file"
    relative = Path(os.path.relpath(key_file.resolve(), config.resolve().parent))
    target = config if config.is_file() else "the exit's config"
    return f"set [signing] key_file = \"{relative}\" in {target}"


@keys_app.command("export")
def keys_export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the public key.")] = Path("msp.pub"),
    config: ConfigOpt = Path("config.toml"),
    key_file: Annotated[Path | None, typer.Option(
        "--key-file", help="A private key file made with `offboard keys init --key-file` (default: the config's "
                           "[signing] key_file, else the OS keyring's key).")] = None,
    quiet: conventions.QuietOpt = False,
) -> None:
    """Write the public half of the MSP's signing key (--key-file, else the configured key file, else the
    keyring's)."""
    signer = _signer_to_export(config, key_file)
    if signer is None:
        raise BadInput("no signing key: make one with `offboard keys init`")
    with writing_output(check_output_path(out, "public key", "msp.pub"), "public key"):
        out.write_bytes(signing.public_pem(signer.public))
    render.out.print(f"Public key {signer.fingerprint} written to {out}.")


def _signer_to_export(config: Path, key_file: Path | None) -> signing.Signer | None:
    if key_file is None and config.exists():
        key_file = _config(config).signing_key_file
    signer = signing.load_signer(key_file)
    if signer is None:
        unread = "" if config.exists() else f" ({config} does not exist, so no [signing] key_file was read)"
        raise BadInput(f"no signing key: the OS keyring holds none and no key file was given{unread}; "
                       "for a key made with `offboard keys init --key-file PATH` pass --key-file PATH (or set "
                       "[signing] key_file in the config), else make one with `offboard keys init`")
    return signer


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where the demo writes its config, plan and runs.")]
    = Path("offboard-demo"),
    keep: Annotated[bool, typer.Option("--keep", help="Leave the sandboxes up after the demo, until Ctrl-C, and "
                                       "print its config and the sandbox credentials to try commands on it.")]
    = False,
    psa: Annotated[str | None, typer.Option("--psa", metavar="KIND", help="Whose sandbox holds the exit's "
                                            "ticket (default: the first PSA connector installed).")] = None,
) -> None:
    """Run a whole exit (plan, apply, verify, audit) against the built-in vendor sandboxes.

    No vendor account is used: each connector's test double runs on 127.0.0.1, and a PSA's holds
    the exit's ticket.
    """
    from offboard.cli.demo import run_demo

    raise typer.Exit(run_demo(directory, keep=keep, psa=psa))


def main(argv: list[str] | None = None) -> int:
    """Entry point: every error a user can cause is one line on stderr and a documented code."""
    command = typer.main.get_command(app)
    jsonout.reset()
    render.setup()  # the root callback makes them again with -q / -v; --help and --version skip it
    with pipes.readers_may_leave():
        return _main(command, argv)


def _main(command: Any, argv: list[str] | None) -> int:
    try:
        rv = command.main(args=argv, prog_name="offboard", standalone_mode=False)
        if rv == ExitCode.INTERRUPTED:
            # Only typer returns it: a Ctrl-C it turned into a silent Exit(130). Offboard's own stops
            # are raised (a run's names its resume command).
            return _interrupted()
        return int(rv or 0)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.TyperException as exc:  # typer's (vendored click's) usage errors
        bare = conventions.help_for_bare_group(exc)
        if bare is not None:
            sys.stdout.write(bare + "\n")
            return ExitCode.OK
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        return _failed(ExitCode.BAD_INPUT, f"error: {REDACTOR.text(exc.format_message())}{hint}")
    except typer.Abort:
        return _failed(ExitCode.BAD_INPUT, "error: aborted; nothing more was done")
    except RunStopped as exc:  # after the run started: the error, then the run and how to continue it
        return stopped.report(exc)
    except RunInterrupted as exc:
        return stopped.interrupted(exc)
    except OffboardError as exc:
        return _failed(exc.exit_code, f"error: {REDACTOR.text(str(exc))}")
    except KeyboardInterrupt:
        return _interrupted()
    except Exception as exc:  # a bug: still one line, the detail only on request
        code = _failed(ExitCode.FAILED, f"internal error: {REDACTOR.text(f'{type(exc).__name__}: {exc}')} "
                                        "(run with -v or set OFFBOARD_DEBUG=1 for the traceback, and please report it)")
        if os.environ.get("OFFBOARD_DEBUG") or render.verbose:
            traceback.print_exc()
        return code


def _interrupted() -> int:
    """Ctrl-C before a run started or continued (one that had is a RunInterrupted, named with its
    resume command): nothing was changed."""
    return _failed(ExitCode.INTERRUPTED, "interrupted before any change was made (no run started or "
                                         "continued); run the same command again to go on")


def _failed(code: int, line: str) -> int:
    """The one line on stderr; under --json, the same as an error document on stdout."""
    render.error(line)
    if jsonout.requested:
        jsonout.error(code, line)
    return code


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
