"""What a technician who lives in Terraform, `gh` and an RMM console expects of any CLI: `--version`,
`-h`, help (with the exit codes) for a bare group, shell completion, one spelling for run ids."""

from __future__ import annotations

import textwrap
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import typer

from offboard import connectors as registry
from offboard.cli import render
from offboard.config import ExitConfig, load_config
from offboard.connectors import psa as psa_registry
from offboard.engine.listings import MAX_AGE_S
from offboard.errors import EXIT_CODE_MEANINGS

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}

RUN_IDS = ("Run ids: `--run RUN_ID` on status, confirm, verify and bundle (default: the latest run); "
           "`apply --resume RUN_ID` continues one.")


def exit_code_epilog() -> str:
    # "\b" keeps click from re-flowing the table into one paragraph.
    lines = ["\b", "Exit codes:"]
    for code, meaning in EXIT_CODE_MEANINGS.items():
        wrapped = textwrap.wrap(meaning, 70)
        lines.append(f"  {int(code):<4} {wrapped[0]}")
        lines += [f"       {more}" for more in wrapped[1:]]
    return "\n".join(lines) + "\n\n" + RUN_IDS


def version_text() -> str:
    try:
        version = metadata.version("offboard")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        version = "unknown"
    names = ", ".join(sorted(registry.installed())) or "none"
    return f"offboard {version} (connectors: {names})"


def show_version(value: bool) -> None:
    if value:
        render.out.print(version_text(), markup=False, soft_wrap=True)
        raise typer.Exit(0)


def help_for_bare_group(exc: Exception) -> str | None:
    """A group given no command (`offboard`, `offboard audit`): its help, to print and exit 0 as
    `gh` and `git` do, not click's usage error squashed into one line. None for any other error."""
    ctx = getattr(exc, "ctx", None)
    # Matched by name as typer does itself: the class lives in typer's vendored click.
    if type(exc).__name__ != "NoArgsIsHelpError" or ctx is None:
        return None
    return str(ctx.get_help())


class OldSpellingHidden(typer.core.TyperCommand):
    """A command whose usage line names only the current spelling: a hidden argument (an old
    spelling kept so existing scripts still work) is left out of it, as it is of the help."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if not getattr(param, "hidden", False):
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


def deprecated_run_argument(command: str, run_id: str) -> None:
    """Old scripts pass the run id positionally: it still works, and says the one spelling."""
    render.warning(f"note: `offboard {command} {run_id}` is deprecated; use `offboard {command} --run {run_id}`")


def load_exit_config(path: Path) -> ExitConfig:
    """The exit's config, validated by every installed connector's (and PSA's) settings model."""
    return load_config(path, {n: c.settings_model for n, c in registry.installed().items()},
                       {n: c.settings_model for n, c in psa_registry.installed().items()})
TrustListingOpt = Annotated[bool, typer.Option(
    "--trust-listing",
    help=f"Take each write's owner from the vendor's listing, re-taken so it is never more than {MAX_AGE_S:.0f} s "
         "old, instead of reading each object alone just before its write (about half the calls; a listing that "
         "is wrong about an owner is then believed). Recorded in the run's audit log.")]

QUIET_HELP = "Print only errors and warnings (and --json's document): the exit code says the rest."


def _quiet(value: bool) -> None:
    # After the root's callback made the consoles (`offboard -v apply … -q` keeps -v's calls).
    if value:
        render.setup(quiet=True, loud=render.verbose)


# `-q` anywhere, as gh and git take their flags: before the command (the root's option) or after it.
# Not passed to the command: it only makes the consoles quiet, as the root's does.
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", callback=_quiet, expose_value=False, help=QUIET_HELP)]
