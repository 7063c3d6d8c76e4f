"""Exit codes and the errors that map onto them.

Every error a user can cause or meet is an ``OffboardError``: the CLI prints its
message on one line and exits with its code, never with a traceback.
"""

from __future__ import annotations

import difflib
import itertools
from enum import IntEnum
from pathlib import Path

from offboard import hints


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    BAD_INPUT = 2
    MANUAL_PENDING = 3
    PREFLIGHT_BLOCKED = 4
    CAME_BACK = 5  # `offboard watch`: something came back after the exit
    PLAN_HAS_CHANGES = 10  # only with `plan --detailed-exitcode`, as Terraform's flag
    INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


# The one table of exit codes: `offboard --help` prints it and docs/exit-codes.md's table must match it
# (tests/unit/test_cli_conventions.py), so scripts can rely on a single documented meaning.
EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success: the command did what it was asked (`plan`: the plan was made; `confirm`: the confirmation "
                 "was recorded, even if other items remain; `status`: every item is done)",
    ExitCode.FAILED: "failed: an action or a verification failed, an evidence export failed (removals held back), a "
                     "confirmation was refused (the vendor still shows the item), the vendor stayed down, or its "
                     "reply was past offboard's limits (size, nesting, endless paging; resumable); `status`: also a "
                     "run stopped before its end (the "
                     "command that continues it is printed); `batch status`: also an exit interrupted or never "
                     "started (`Next:` prints the command); `audit verify`, `bundle verify`: not verified (or "
                     "possibly cut), each problem named",
    ExitCode.BAD_INPUT: "bad input or usage (config, credentials, plan file, arguments, a malformed vendor reply or "
                        "audit log, an item confirmed before what the runbook puts first): one line says what and "
                        "how to fix it; nothing was done; `batch status`: an "
                        "exit's config changed since the batch plan (the table still shows each exit's runs, `Next:` "
                        "the `batch plan` that makes a new one)",
    ExitCode.MANUAL_PENDING: "finished, manual items pending (`apply`, `status`: `offboard status` lists them; `batch"
                             " apply`, `batch status`: only when nothing else is left to a machine, a gate or a "
                             "re-plan); `bundle verify` without `--public-key`: consistent, but a person must compare"
                             " the key's fingerprint",
    ExitCode.PREFLIGHT_BLOCKED: "stopped by a preflight gate before any removal",
    ExitCode.CAME_BACK: "`watch` only: something came back after the exit (an agent or device listed again, a usage "
                        "count above zero, SIEM records since the exit ended), each named on its own line with the "
                        "runbook step that removes it (0 means everything is still stopped)",
    ExitCode.PLAN_HAS_CHANGES: "`plan --detailed-exitcode` only: the plan has removals to make by API (with that "
                               "flag, 0 means there is nothing to remove)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C); an apply says which run to resume",
}


class OffboardError(Exception):
    exit_code: ExitCode = ExitCode.FAILED


class BadInput(OffboardError):
    """Config, credentials, plan file or arguments are wrong; nothing was done."""

    exit_code = ExitCode.BAD_INPUT


class ClaimRefused(BadInput):
    """Another run holds the exit's claim in its PSA ticket, or the claim could not be read or written:
    nothing was written to a vendor (the run folder records why)."""


class ClaimLapsed(OffboardError):
    """This run's claim of the exit in its PSA ticket lapsed (taken over, or expired unrenewed): it sends
    no more vendor writes; the run stops, resumable."""


class VendorError(OffboardError):
    """A vendor call failed for good (after retries, or with a non-retryable status)."""

    def __init__(self, vendor: str, call: str, message: str, status: int | None = None) -> None:
        self.vendor = vendor
        self.call = call
        self.status = status
        super().__init__(f"{vendor}: {call} failed: {message}")


class VendorAuthError(VendorError):
    """The vendor refused the credentials (401/403): the user must fix them."""

    exit_code = ExitCode.BAD_INPUT


class AmbiguousWrite(VendorError):
    """A write was sent but its reply was lost: it may or may not have landed.

    The caller must re-read the object before deciding anything; resending blindly
    could act twice.
    """


class VendorRefused(VendorError):
    """The vendor refused the request in the form it documents for a refusal (a validation envelope,
    whatever its status code): nothing was done, and sending it again would be refused again. Recorded
    as refused, never resent and never taken for a transient fault."""


class VendorReplyError(VendorError):
    """The vendor answered with something we cannot read (wrong envelope, missing fields)."""

    exit_code = ExitCode.BAD_INPUT


class VendorReplyRefused(VendorError):
    """The vendor's reply is past a limit offboard keeps on what it reads (its size, its nesting,
    a listing that pages without end): the vendor answering nonsense, refused before it costs
    memory or time. Exit 1, like a vendor that stays down: nothing on our side needs fixing, and
    a run stopped by it resumes once the vendor answers sense again."""


def _near_name(name: str, folder: Path, *, dirs: bool) -> str | None:
    try:
        names = [p.name for p in itertools.islice(folder.iterdir(), 2000) if p.is_dir() == dirs]
    except OSError:
        return None
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    return close[0] if close else None


def near_path(path: Path) -> Path | None:
    """An existing file whose path is one slip from ``path`` (a typo in its name, or in its folder's)."""
    folder = path.parent
    if folder.is_dir():
        name = _near_name(path.name, folder, dirs=False)
        return folder / name if name else None
    other = _near_name(folder.name, folder.parent, dirs=True) if folder.parent.is_dir() else None
    if other is not None and (folder.parent / other / path.name).is_file():
        return folder.parent / other / path.name
    return None


def read_input(path: Path, what: str, missing: str = "") -> bytes:
    """A file the user named (config, plan, log, key): its bytes, or one line saying what is wrong."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        near = near_path(path)
        fix = f"did you mean {near}?" if near is not None else missing
        raise BadInput(f"{what} {path} does not exist" + (f"; {fix}" if fix else "")) from None
    except OSError as exc:
        raise BadInput(f"cannot read {what} {path}: {exc.strerror}") from None


class RunInterrupted(OffboardError):
    """The operator stopped a run; it is resumable."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.config: Path | None = None  # the exit's config file, for the exact resume command
        super().__init__(f"interrupted: everything done so far is in the audit log; "
                         f"resume with `{hints.resume(run_id)}`")


class GateRefused(OffboardError):
    """A gate checked before the first write (credentials that cannot make the planned writes, a
    signing key that cannot be read, a runs folder that cannot be written) stopped apply before
    its run folder existed: nothing was done."""

    exit_code = ExitCode.PREFLIGHT_BLOCKED


class RunStopped(OffboardError):
    """A run that had started stopped on an error: the error, and the run to resume once it is fixed."""

    def __init__(self, run_id: str, cause: BaseException, config: Path | None = None) -> None:
        self.run_id = run_id
        self.cause = cause
        self.config = config  # the exit's config file, for the exact resume command
        self.exit_code = cause.exit_code if isinstance(cause, OffboardError) else ExitCode.FAILED
        super().__init__(str(cause))
