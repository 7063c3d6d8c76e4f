"""`offboard demo`: a whole exit against every installed connector's sandbox.

The sandboxes are test doubles served on 127.0.0.1 with a compressed clock (a
vendor's 60 s rate-limit window lasts about a second), so the demo shows the real
plan -> apply -> verify -> audit path in seconds, with no vendor account.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

from pydantic import SecretStr

from offboard import connectors as registry
from offboard import engine, hints
from offboard.cli import render
from offboard.cli.sandbox_cmd import (
    FAST,
    announce,
    config_text,
    env_text,
    installed_kits,
    serving,
    toml_value,
    wait_until_interrupted,
)
from offboard.config import load_config
from offboard.connectors import psa as psa_registry
from offboard.errors import ExitCode, OffboardError
from offboard.plan import write_plan
from offboard.proof import signing
from offboard.proof.audit import verify_file
from offboard.rundir import LOCK_DIR_ENV, atomic_write_text

TIME_SCALE = FAST  # a 60 s window lasts 1.2 s
DEMO_OVERRIDE = "demo: the sandbox customer's isolated host is part of the exercise"


def _demo_key(directory: Path) -> tuple[Path, Path]:
    """A signing key for the demo's runs only (a file in the demo folder, never the keyring)."""
    key_file, public_key = directory / "demo-signing-key.pem", directory / "msp.pub"
    if not key_file.exists():
        key = signing.generate()
        signing.write_key_file(key, key_file)
        public_key.write_bytes(signing.public_pem(key.public_key()))
    return key_file, public_key


def run_demo(directory: Path, *, keep: bool = False, psa: str | None = None) -> int:
    available = registry.installed()
    kits, names = installed_kits()
    psas = psa_registry.installed()
    # The ticket lives in one PSA's sandbox: the one asked for, else the one that offers itself for the
    # demo, else the first installed.
    preferred = [n for n, c in psas.items() if getattr(c, "demo_default", False)]
    psa_name = psa_registry.get(psa, psas).name if psa else next(iter(preferred or psas), None)
    psa_kit = psas[psa_name].sandbox() if psa_name is not None else None
    ticket_of = f" and the exit's ticket in a test double of {psas[psa_name].display_name}" if (
        psa_name is not None and psa_kit is not None) else ""
    directory.mkdir(parents=True, exist_ok=True)
    # The sandboxes' accounts are the demo's own, not real ones: two demos on one machine (two users,
    # a test suite) must not exclude each other, so their exit locks stay in the demo's folder.
    os.environ.setdefault(LOCK_DIR_ENV, str((directory / ".locks").resolve()))
    render.out.print("[bold]offboard demo[/]: a customer exit against built-in sandboxes — test doubles of "
                     f"{', '.join(names[n] for n in kits)} on 127.0.0.1{ticket_of}. "
                     "No vendor account is used.\n")
    ticket_rows: list[tuple[str, str, str]] = []
    ticket_ref = ""
    psa_kits = {psa_registry.SECTION: psa_kit} if psa_kit is not None else {}
    with serving(kits, TIME_SCALE) as urls, serving(psa_kits, TIME_SCALE) as psa_urls:
        key_file, public_key = _demo_key(directory)
        config_path = directory / "config.toml"
        text = config_text(kits, urls, TIME_SCALE, customer="Acme Dental (sandbox demo)",
                           end_of_service=date.today(), key_file=key_file.name, approved_by="demo")
        creds = {n: {f: SecretStr(v) for f, v in k.credentials.items()} for n, k in kits.items()}
        for section, kit in psa_kits.items():
            text += "\n".join([f"[{section}]", *(f"{k} = {toml_value(v)}" for k, v in
                                                  kit.config_section(psa_urls[section], TIME_SCALE).items()), ""])
            creds[section] = {f: SecretStr(v) for f, v in kit.credentials.items()}
        atomic_write_text(config_path, text)
        cfg = load_config(config_path, {n: c.settings_model for n, c in available.items()},
                          {n: c.settings_model for n, c in psas.items()})

        with engine.open_sessions(cfg, available, creds=creds) as sessions:
            render.rule("1. plan (dry run: read-only)")
            plan = engine.make_plan(cfg, sessions)
            render.plan_outline(plan)
            plan_path = directory / "exit.plan.json"
            write_plan(plan, plan_path)
            render.out.print(f"Plan saved to {plan_path}: every object and call of it.",
                             soft_wrap=True, markup=False)
            if sessions.ticket is not None:
                render.out.print(engine.record_scope(sessions.ticket, plan), soft_wrap=True, markup=False)

            render.rule("2. apply (unattended: all API work, then the manual checklist)")
            if plan.gates():
                render.out.print(f"A preflight gate would stop a real run (exit 4). The demo overrides it "
                                 f"with an audited reason: “{DEMO_OVERRIDE}”.")
            result = engine.apply(plan, cfg, sessions, overrides=engine.Overrides(preflight=DEMO_OVERRIDE),
                                  progress=render.make_progress())
            c = result.counts
            outside = sum(len(v.skipped) for v in plan.vendors) + c["skipped"]
            # Counted as the plan's summary and the run's tally count them (lifecycle.counted_as).
            exported = result.tally["exported"] if result.tally else 0
            # What the plan said removals would be, and why any is not done yet (a removal behind a vendor's
            # gate item): the counts agree with the plan's and status's, or the difference is said.
            rest = result.tally.removals_not_done() if result.tally else ""
            planned = f" of {len(result.tally.removals)} planned ({rest})" if result.tally and rest else ""
            render.out.print(f"Exported {exported} evidence file set(s); removed {c['succeeded']} object(s) by "
                             f"API{planned}, failed {c['failed']}. Every write was checked against the exit's scope "
                             f"first; {outside} object(s) seen outside it were left untouched.")
            while result.pending:
                confirm_hint = hints.confirm(result.run.run_id, config_path)
                render.out.print(f"{len(result.pending)} manual item(s) (no API) are on the checklist: a real "
                                 "run stops here with exit 3. The demo plays the technician: it does each item in the "
                                 f"sandbox and confirms it with: {confirm_hint}", markup=False, soft_wrap=True)
                to_resume = []
                for action in result.pending:
                    kit = kits[action.vendor]
                    if kit.portal is not None:
                        kit.portal(urls[action.vendor], action)
                    done = engine.confirm(result.run.run_id, action.id, "demo operator",
                                          "done in the sandbox by the demo", cfg, sessions)
                    verified = (f"API re-read: {done.check.detail}" if done.check is not None
                                else "no API can see it; recorded with the note")
                    render.out.print(f"  confirmed {action.id} — {verified}")
                    to_resume = done.to_resume
                if not to_resume:
                    break
                render.out.print(f"{len(to_resume)} action(s) waited for those confirmations; the run continues "
                                 f"with: {hints.resume(result.run.run_id, config_path)}", markup=False, soft_wrap=True)
                result = engine.resume(result.run.run_id, cfg, sessions, progress=render.make_progress())
            if sessions.ticket is not None:
                ticket_rows, ticket_ref = _ticket_rows(sessions.ticket), sessions.ticket.ref

        render.rule("3. status and verification")
        run_obj, rows = engine.status(result.run.run_id, cfg)
        # The run's one count, as apply, confirm and status print it (and in the plan's words).
        render.out.print(f"Run {run_obj.run_id}: {engine.run_tally(run_obj.run_id, cfg).sentence()} Every step: "
                         f"{hints.command('status', run=run_obj.run_id, config=config_path)}", soft_wrap=True,
                         markup=False)
        render.out.print(render.checks_table(result.checks, sample=5))
        render.rule("4. audit")
        check = verify_file(result.run.audit_path)
        if not check.ok:
            render.error(f"audit chain broken at line {check.bad_line}: {check.reason}")
            return ExitCode.FAILED
        render.paths(result.run.audit_path, result.run.report_path, check.lines, check.last_hash)
        render.out.print(f"Closure note: {result.run.path / 'closure-note.md'}", soft_wrap=True)
        for notice in sorted(result.run.path.rglob("*.eml")):
            render.out.print(f"Notice:    {notice}  (in a real exit you send it yourself; the demo recorded it "
                             "as sent)", soft_wrap=True)
        audit_check = hints.command("audit", "verify", result.run.audit_path, extra=["--public-key", public_key])
        # On a terminal too narrow for the line, the command goes on a line of its own (cli/message.py).
        render.out.print(f"Check it yourself: {audit_check}", soft_wrap=True, markup=False)
        if ticket_rows:
            render.rule("5. the exit's PSA ticket")
            render.out.print(render.ticket_table(ticket_rows, ticket_ref, fold=True))
        unfinished = [r for r in rows if r.state not in ("done", "verified", "confirmed", "skipped")]
        if unfinished or any(not c.passed for c in result.checks):
            render.error(f"demo: {len(unfinished)} item(s) not finished; see the status table above")
            return ExitCode.FAILED
        if keep:
            env = directory / "sandbox.env"
            atomic_write_text(env, env_text({**kits, **psa_kits}, {**urls, **psa_urls}, config_path))
            render.rule("6. the sandboxes stay up")
            announce(config_path, env, {**kits, **psa_kits}, {**urls, **psa_urls},
                     {**names, **{n: psas[psa_name].display_name for n in psa_kits if psa_name}})
            wait_until_interrupted(f"Try any command on them once `. {env}` is run in your shell, e.g. "
                                   f"`{hints.command('verify', config=config_path)}`.")
    return ExitCode.OK


def _ticket_rows(ticket: engine.Ticket) -> list[tuple[str, str, str]]:
    """What the sandbox's ticket holds now, as a service manager opening it would see it."""
    rows: list[tuple[str, str, str]] = []
    try:
        for note in ticket.session.notes():
            first = (note.text.strip().splitlines() or [""])[0]
            rows.append(("note", note.id, first if len(first) <= 90 else first[:89] + "…"))
        for f in ticket.session.files():
            rows.append(("file", f.id, f"{f.name} ({f.size:,} bytes)" if f.size is not None else f.name))
    except OffboardError as exc:
        rows.append(("-", "-", f"the ticket could not be read: {exc}"))
    return rows
