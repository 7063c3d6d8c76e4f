"""A run's folder: its plan copy, audit log, state file and report; atomic writes; a lock.

The state file is a summary for people and for ``--resume``; what each action
did is decided from the audit log (see ``lifecycle.fold``), so a crash
between the two never loses or doubles an event.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from offboard.errors import BadInput

RUN_ID_RE = re.compile(r"^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{6}$")


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file + fsync + rename, so readers see the old or new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def new_run_id() -> str:
    """UTC time to the millisecond, so run folders list in the order they ran."""
    now = datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


class RunDir:
    def __init__(self, runs_dir: Path, run_id: str) -> None:
        self.run_id = run_id
        self.path = runs_dir / run_id

    @classmethod
    def create(cls, runs_dir: Path) -> RunDir:
        run = cls(runs_dir, new_run_id())
        run.path.mkdir(parents=True, exist_ok=False)
        # A state from the first moment: a run that dies before its first audit line can be resumed.
        run.write_state({"run_id": run.run_id, "status": "created", "audit_lines": 0})
        return run

    @classmethod
    def existing(cls, runs_dir: Path, run_id: str) -> RunDir:
        if not RUN_ID_RE.match(run_id):
            raise BadInput(f"{run_id!r} is not a run id (like 20261123T101500123Z-a1b2c3); "
                           f"see the folders in {runs_dir}")
        run = cls(runs_dir, run_id)
        if not run.state_path.exists():
            raise BadInput(f"no run {run_id} in {runs_dir}; `offboard status --all` lists the runs, and "
                           "[run] runs_dir in the config says where they are")
        return run

    @property
    def plan_path(self) -> Path:
        return self.path / "plan.json"

    @property
    def audit_path(self) -> Path:
        return self.path / "audit.jsonl"

    @property
    def state_path(self) -> Path:
        return self.path / "state.json"

    @property
    def report_path(self) -> Path:
        return self.path / "report.md"

    def write_state(self, state: dict[str, Any]) -> None:
        atomic_write_text(self.state_path, json.dumps(state, indent=2, sort_keys=True) + "\n")

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One process at a time per run; a lock left by a dead process is taken over."""
        with file_lock(self.path / "lock", f"run {self.run_id}"):
            yield


@contextlib.contextmanager
def file_lock(lock_path: Path, what: str) -> Iterator[None]:
    """An exclusive lock file naming its holder (host and pid); a dead holder's lock is taken
    over, a live or unknown one is refused with one clear line."""
    me = f"{socket.gethostname()} {os.getpid()}"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = lock_path.read_text(encoding="utf-8", errors="replace").strip()
            if _lock_is_stale(holder):
                lock_path.unlink(missing_ok=True)
                continue
            raise BadInput(f"{what} is already being worked on by {holder or 'another process'}; "
                           f"wait for it, or remove {lock_path} if that process is gone") from None
        with os.fdopen(fd, "w") as fh:
            fh.write(me)
        break
    else:
        raise BadInput(f"cannot take the lock {lock_path}; remove it if no offboard process is running")
    try:
        yield
    finally:
        lock_path.unlink(missing_ok=True)


def _lock_is_stale(holder: str) -> bool:
    host, _, pid = holder.partition(" ")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's lock: we cannot tell, so respect it
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
