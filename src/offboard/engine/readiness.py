"""The gates an apply checks before its run folder exists: whatever would stop a run at its first
write, or leave it unsigned against the operator's word, is found before anything is written.

On this machine: the MSP's signing key (configured but unreadable, or required and absent) and
the runs folder (cannot be written). At the vendors: each connector's preflight findings that no
override can pass (e.g. credentials that cannot make the planned writes). `plan` shows them as
blocking; `apply` refuses with exit 4 and one line.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from offboard.config import ExitConfig
from offboard.engine.runfolder import signer_for
from offboard.errors import BadInput, GateRefused
from offboard.plan import Finding
from offboard.proof.signing import ExposedKeyFile, Signer

HERE = "offboard"  # the findings' "vendor" column: this machine, not a vendor
UNSIGNED = ("warning: this run will not be signed: there is no MSP signing key, so its audit log cannot prove "
            "it is the MSP's record and `offboard bundle` will refuse it; make one with `offboard keys init` "
            "(apply --require-signature refuses an unsigned run)")


@dataclass(frozen=True)
class Readiness:
    gates: tuple[Finding, ...]  # blocking, not overridable
    signer: Signer | None


def _gate(kind: str, detail: str) -> Finding:
    return Finding(vendor=HERE, kind=kind, count=1, detail=detail, blocking=True, overridable=False)


def check_machine(cfg: ExitConfig, *, require_signature: bool = False) -> Readiness:
    """This machine's gates (no vendor is called): the signing key and the runs folder."""
    gates: list[Finding] = []
    signer: Signer | None = None
    try:
        signer = signer_for(cfg)
    except ExposedKeyFile:
        raise  # bad input on this machine, refused as it is (exit 2), not a gate to override
    except BadInput as exc:
        gates.append(_gate("signing_key", f"{exc}; a run could not be signed"))
    else:
        if signer is None and require_signature:
            gates.append(_gate("signing_key", "--require-signature, and there is no MSP signing key: make one with "
                                              "`offboard keys init` (or `offboard keys init --key-file PATH` and "
                                              "[signing] key_file in the config)"))
    problem = unwritable(cfg.runs_dir)
    if problem is not None:
        gates.append(_gate("runs_folder", f"{problem}; set [run] runs_dir in {cfg.path} to a folder you may write"))
    return Readiness(tuple(gates), signer)


def unwritable(folder: Path) -> str | None:
    """Why no run folder could be made under ``folder``, or None. A folder that exists is probed
    with a file created and removed (the only answer that holds for root, ACLs and read-only
    mounts); one that does not is judged by its nearest existing parent, which is not changed."""
    existing = folder
    while not existing.exists():
        if existing == existing.parent:
            return f"runs folder {folder} cannot be made: no parent of it exists"
        existing = existing.parent
    if not existing.is_dir():
        what = "is not a folder" if existing == folder else f"cannot be made: {existing} is not a folder"
        return f"runs folder {folder} {what}"
    try:
        fd, probe = tempfile.mkstemp(prefix=".offboard-probe-", dir=existing)
    except OSError as exc:
        where = "" if existing == folder else f" (nor {existing}, where it would be made)"
        return f"runs folder {folder} cannot be written{where}: {exc.strerror or exc}"
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return None


def hard_gates(findings: Iterable[Finding]) -> list[Finding]:
    """The blocking findings no override passes."""
    return [f for f in findings if f.blocking and not f.overridable]


def gates_stop(findings: Iterable[Finding], preflight: str | None) -> bool:
    """Whether these findings stop a run: a gate no override passes, or any gate without
    --override-preflight (``preflight``: its reason)."""
    gates = [f for f in findings if f.blocking]
    return bool(hard_gates(gates)) or bool(gates and not preflight)


def refuse(gates: Iterable[Finding], *, before: str = "before the run started") -> None:
    """Exit 4 in one line when any gate blocks: nothing was done (for a new run: no folder made)."""
    blocking = hard_gates(gates)
    if blocking:
        raise GateRefused(f"stopped {before}, nothing was done: "
                          + "; ".join(f"{f.vendor}: {f.detail}" for f in blocking))
