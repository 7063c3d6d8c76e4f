"""`offboard sandbox serve`: every installed connector's sandbox on 127.0.0.1, to rehearse an exit
with the real commands (plan, apply, confirm, verify, bundle) before doing it for a customer.

It writes a ready config file and the sandboxes' credentials (sandbox-only: they open nothing but
these local test doubles) and keeps serving until Ctrl-C. The clock is real by default, so the
rehearsal runs at the vendors' real pace (e.g. 60 requests a minute); ``--fast`` compresses it
as `offboard demo` does. The sandboxes (starlette, uvicorn) are imported only when served.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from offboard import connectors as registry
from offboard import hints
from offboard.cli import render
from offboard.connectors import SandboxKit
from offboard.errors import BadInput
from offboard.rundir import LOCK_DIR_ENV, atomic_write_text
from offboard.wire.credentials import env_var

FAST = 0.02  # the demo's clock: a 60 s rate-limit window lasts 1.2 s
MARK = "# Written by `offboard sandbox serve`"  # a config without it is never overwritten
KEY_FILE = "signing-key.pem"

sandbox_app = typer.Typer(help="The built-in vendor sandboxes (test doubles on 127.0.0.1), to rehearse an exit.",
                          no_args_is_help=True)


def installed_kits() -> tuple[dict[str, SandboxKit], dict[str, str]]:
    """Each installed connector's sandbox, and the connectors' display names."""
    available = registry.installed()
    kits = {n: k for n, c in sorted(available.items()) if (k := c.sandbox()) is not None}
    if not kits:
        raise BadInput("no installed connector ships a sandbox; nothing to serve")
    return kits, {n: available[n].display_name for n in kits}


@contextlib.contextmanager
def serving(kits: Mapping[str, SandboxKit], time_scale: float, customers: int = 1) -> Iterator[dict[str, str]]:
    """Every sandbox served on a free loopback port (with ``customers`` customers of the account
    where it can seed more); yields vendor -> base URL."""
    from offboard.connectors.sandboxing import serve

    def app(k: SandboxKit) -> Any:
        return k.make_app_for(time_scale, customers) if customers > 1 and k.make_app_for else k.make_app(time_scale)

    with contextlib.ExitStack() as stack:
        yield {n: stack.enter_context(serve(app(k))) for n, k in kits.items()}


def toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(i) for i in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_text(kits: Mapping[str, SandboxKit], urls: Mapping[str, str], time_scale: float, *, customer: str,
                end_of_service: date, key_file: str, approved_by: str, header: tuple[str, ...] = (),
                index: int = 0, runs_dir: str = "runs", ticket: str = "SANDBOX-1") -> str:
    """A whole exit's config for the sandboxes: the sandbox customer (``index``: which of a batch
    rehearsal's), a runs folder beside it, the signing key file, and each vendor's section pointing
    at its sandbox."""
    lines = [*header, "[customer]", f"name = {toml_value(customer)}", f"approved_by = {toml_value(approved_by)}",
             f"end_of_service = {end_of_service.isoformat()}", f"ticket = {toml_value(ticket)}",
             f"monitoring_after_exit = {toml_value(f'{customer} IT, from the end-of-service date')}", "",
             "[run]", f"runs_dir = {toml_value(runs_dir)}", "", "[signing]", f"key_file = {toml_value(key_file)}", ""]
    for name, kit in kits.items():
        section = (kit.customer_section(urls[name], time_scale, index) if index and kit.customer_section
                   else kit.config_section(urls[name], time_scale))
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in section.items()]
        lines.append("")
    return "\n".join(lines)


def url_var(vendor: str) -> str:
    return f"SANDBOX_{vendor.upper()}_URL"


def env_text(kits: Mapping[str, SandboxKit], urls: Mapping[str, str], config: Path | None = None) -> str:
    """The shell lines a rehearsal needs: each sandbox's credentials (sandbox-only, not secrets), the
    keyring switched off (it would win over them), each sandbox's URL for its portal routes, and the
    config every command then reads without `-c` (an absolute path: it holds from any folder)."""
    lines = [f"{MARK}. Load it into your shell with: . <this file>",
             "# Sandbox-only demo credentials: they open nothing but the local test doubles (never a vendor).",
             *(f"export {env_var(n, f)}={shlex.quote(v)}" for n, k in kits.items() for f, v in k.credentials.items()),
             "# The OS keyring wins over these variables: it is off in this shell, so credentials kept there for",
             "# real exits are never sent to a sandbox.",
             "export PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring",
             "# Each sandbox's address: POST $URL/_sandbox/portal/ITEM plays the person doing a portal item.",
             *(f"export {url_var(n)}={urls[n]}" for n in kits)]
    if config is not None:
        lines += ["# The rehearsal's config: every offboard command reads it when no -c is given.",
                  f"export {hints.CONFIG_ENV}={shlex.quote(str(config.resolve()))}",
                  "# Every sandbox is the same vendor account: this rehearsal's exit locks stay in its folder, so",
                  "# two rehearsals (two users, a test suite) on one machine never exclude each other.",
                  f"export {LOCK_DIR_ENV}={shlex.quote(str((config.parent / '.locks').resolve()))}"]
    return "\n".join(lines) + "\n"


def announce(config: Path, env: Path, kits: Mapping[str, SandboxKit], urls: Mapping[str, str],
             names: Mapping[str, str]) -> None:
    out = render.out
    for n in kits:
        out.print(f"  {names[n]} sandbox: {urls[n]}", soft_wrap=True, markup=False)
    out.print(f"Config:      {config}  (offboard … -c {config}, or no -c once the credentials below are loaded)",
              soft_wrap=True, markup=False)
    out.print(f"Credentials: {env}  (. {env}), sandbox-only demo credentials, not secrets:", soft_wrap=True,
              markup=False)
    for line in env.read_text().splitlines():
        if line.startswith("export "):
            out.print(f"  {line}", soft_wrap=True, markup=False)


def wait_until_interrupted(what: str) -> None:
    """Serve until Ctrl-C (or SIGTERM): then return, so the sandboxes shut down cleanly."""
    render.out.print(f"{what} Ctrl-C stops them.", soft_wrap=True, markup=False)
    sys.stdout.flush()  # a caller reading a pipe sees it now, not at exit

    def stop(_signum: int, _frame: FrameType | None) -> Any:
        raise KeyboardInterrupt

    # Both set here: a shell starts a background job with SIGINT ignored, and it must still stop.
    previous = ({s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
                if threading.current_thread() is threading.main_thread() else {})
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _batch_configs(folder: Path, kits: Mapping[str, SandboxKit], urls: Mapping[str, str], scale: float,
                   customers: int) -> None:
    """One exit config per sandbox customer, for `offboard batch plan <dir>/exits`: each with its
    own runs folder, all signed with the rehearsal's key."""
    for path in folder.glob("*.toml") if folder.is_dir() else ():
        if not path.read_text(errors="replace").startswith(MARK):
            raise BadInput(f"{path} was not written by `offboard sandbox serve`; it is never overwritten: "
                           "choose another --dir")
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(customers):
        name = "Acme Dental (sandbox rehearsal)" if i == 0 else f"Sandbox customer {i + 1}"
        slug = "acme-dental" if i == 0 else f"customer-{i + 1}"
        atomic_write_text(folder / f"{slug}.toml", config_text(
            kits, urls, scale, customer=name, end_of_service=date.today() + timedelta(days=30),
            key_file=f"../{KEY_FILE}", approved_by="rehearsal", header=(f"{MARK}: customer {i + 1} of {customers}",
                                                                         ""),
            index=i, runs_dir=f"runs/{slug}", ticket=f"SANDBOX-{i + 1}"))


@sandbox_app.command("serve")
def serve_cmd(
    directory: Annotated[Path, typer.Option("--dir", help="Where to write the rehearsal's config.toml, "
                                            "sandbox.env (the credentials) and its runs.")] = Path("rehearsal"),
    fast: Annotated[bool, typer.Option("--fast", help="Compress the sandboxes' clock as `offboard demo` does "
                                       "(a 60 s rate-limit window lasts ~1 s). Default: the real clock, the "
                                       "vendors' real pace.")] = False,
    customers: Annotated[int, typer.Option("--customers", min=1, max=20, help="Serve this many customers of each "
                                           "account and write one exit config each in <dir>/exits/, to rehearse "
                                           "`offboard batch` (see docs/rehearsal.md).")] = 1,
) -> None:
    """Serve every installed vendor sandbox on 127.0.0.1 until Ctrl-C, with a ready config and the
    sandbox-only credentials, to rehearse an exit with the real commands (see docs/rehearsal.md).
    Each start is a fresh sandbox customer (Acme Dental)."""
    kits, names = installed_kits()
    config, env = directory / "config.toml", directory / "sandbox.env"
    for path in (config, env):
        if path.is_dir() or (path.exists() and not path.read_text(errors="replace").startswith(MARK)):
            raise BadInput(f"{path} exists and was not written by `offboard sandbox serve`; it is never "
                           "overwritten: choose another --dir")
    scale = FAST if fast else 1.0
    directory.mkdir(parents=True, exist_ok=True)
    ignore = directory / ".gitignore"
    if not ignore.exists():  # a folder of the user's choosing, anywhere: its signing key is never committed
        atomic_write_text(ignore, f"{MARK}: a rehearsal's folder (its signing key, runs and evidence) is never "
                                  "committed\n*\n")
    with serving(kits, scale, customers) as urls:
        header = (f"{MARK}: a rehearsal against local test doubles of the vendors, NOT the",
                  "# vendors. They live while it runs; each start is a fresh sandbox customer. Before the",
                  "# first apply, make the signing key it names: "
                  + hints.command("keys", "init", "--key-file", directory / KEY_FILE),
                  "")
        atomic_write_text(config, config_text(kits, urls, scale, customer="Acme Dental (sandbox rehearsal)",
                                              end_of_service=date.today() + timedelta(days=30), key_file=KEY_FILE,
                                              approved_by="rehearsal", header=header))
        if customers > 1:
            _batch_configs(directory / "exits", kits, urls, scale, customers)
        atomic_write_text(env, env_text(kits, urls, config))  # last: its presence says the sandboxes are ready
        render.out.print(f"[bold]offboard sandbox serve[/]: test doubles of "
                         f"{', '.join(names.values())} on 127.0.0.1, {'fast' if fast else 'real'} clock. "
                         "No vendor account is used.", soft_wrap=True)
        announce(config, env, kits, urls, names)
        if customers > 1:
            exits = directory / "exits"
            batch = hints.command("batch", "plan", exits, "-o", directory / "batch.plan.json")
            render.out.print(f"Each of the {customers} customers has its exit config in {exits}/ (one .toml each); "
                             f"plan them as one batch with: {batch}", soft_wrap=True, markup=False)
        if not (directory / KEY_FILE).exists():
            first = hints.command("keys", "init", "--key-file", directory / KEY_FILE, "--public-key",
                                  directory / "msp.pub", config=config)
            render.out.print(f"First, the signing key the config names: {first}", soft_wrap=True, markup=False)
        wait_until_interrupted("Sandboxes ready: rehearse with the steps of docs/rehearsal.md.")
    render.out.print("Sandboxes stopped.")
