"""What the operator reads last when a run stops on an error after it started: the run, and the
exact command that continues it (whatever came before it on the screen or in a log)."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

from offboard import hints
from offboard.cli import render
from offboard.errors import ExitCode, OffboardError, RunInterrupted, RunStopped
from offboard.wire.redact import REDACTOR

# A run that ended with one of these has nothing a resume would continue (or was stopped by a
# gate a resume refuses): no resume line.
NOT_RESUMABLE = frozenset({ExitCode.OK, ExitCode.MANUAL_PENDING, ExitCode.PREFLIGHT_BLOCKED})


def resume_command(run_id: str, config: Path | None) -> str:
    return hints.resume(run_id, config)


def last_line(run_id: str, config: Path | None, *, after_error: bool = True) -> None:
    # stdout is block-buffered when piped: flushed first, so this stays the last line of a merged log.
    sys.stdout.flush()
    fix = "once the cause above is fixed, " if after_error else ""
    render.error(f"run {run_id} stopped before its end; {fix}continue it with: {resume_command(run_id, config)}")


def interrupted(stop: RunInterrupted) -> int:
    render.error("interrupted: everything done so far is in the audit log")
    last_line(stop.run_id, stop.config, after_error=False)
    return int(stop.exit_code)


def report(stopped: RunStopped) -> int:
    """The error as `offboard` prints any error, then the run and its resume command."""
    cause = stopped.cause
    if isinstance(cause, OffboardError):
        render.error(f"error: {REDACTOR.text(str(cause))}")
    else:  # a bug: still one line, the detail only on request
        render.error(f"internal error: {REDACTOR.text(f'{type(cause).__name__}: {cause}')} "
                     "(set OFFBOARD_DEBUG=1 for the traceback, and please report it)")
        if os.environ.get("OFFBOARD_DEBUG"):
            traceback.print_exception(cause)
    last_line(stopped.run_id, stopped.config)
    return int(stopped.exit_code)
