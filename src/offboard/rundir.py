"""A run's folder: its plan copy, audit log, state file and report; private atomic writes; OS locks.

The state file is a summary for people and for ``--resume``; what each action
did is decided from the audit log (see ``lifecycle.fold``), so a crash
between the two never loses or doubles an event.

Everything offboard writes here is the user's alone, whatever the umask: folders 0700,
files 0600 (a run folder holds every object name and export of a customer's exit).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TextIO

import filelock

from offboard.errors import BadInput

RUN_ID_RE = re.compile(r"^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{6}$")
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents, each 0700 whatever the umask. Folders that exist
    are left as they are: a runs folder the user made (and maybe shares) is theirs to set."""
    missing: list[Path] = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            continue  # made a moment ago by another process of ours
        os.chmod(d, PRIVATE_DIR)  # mkdir's mode is filtered by the umask; chmod's is not


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[IO[bytes]]:
    """A file written whole or not at all, private to the user (0600).

    The bytes go to a temp file beside ``path`` — a fresh random name, created exclusively
    (``O_EXCL``) and never through a symbolic link (``O_NOFOLLOW``), so nothing planted in the
    folder can redirect the write — then fsync, then a rename over ``path`` (a rename replaces a
    link at ``path`` itself, never what it points to). Readers see the old file or the new one.
    Every writer of run files (and of bundles) goes through here.
    """
    make_private_dirs(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC | _BINARY
    fd, tmp = -1, path
    for _ in range(16):  # a clash of 64 random bits means something is squatting the names
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, flags, PRIVATE_FILE)
            break
        except FileExistsError:
            continue
    if fd < 0:
        raise BadInput(f"cannot write {path}: every temporary name beside it is taken; "
                       f"check who else writes in {path.parent}")
    try:
        os.fchmod(fd, PRIVATE_FILE)  # an odd umask (e.g. 0277) would otherwise leave it read-only
        with os.fdopen(fd, "wb") as fh:
            yield fh
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


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a private temp file + fsync + rename (see ``atomic_writer``)."""
    with atomic_writer(path) as fh:
        fh.write(data)


def open_append(path: Path) -> TextIO:
    """An append-only log of a run (audit, signed heads), private to the user: created 0600, an
    older one made 0600, never opened through a symbolic link."""
    make_private_dirs(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _CLOEXEC | _BINARY, PRIVATE_FILE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BadInput(f"{path} is a symbolic link; offboard appends only to its own file: "
                           "keep the run folder as offboard wrote it") from None
        raise
    try:
        with contextlib.suppress(PermissionError):  # not ours to change (another account's file)
            os.fchmod(fd, PRIVATE_FILE)
        return os.fdopen(fd, "a", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def check_output_path(path: Path, what: str, example: str, *, make_parents: bool = False) -> Path:
    """A file the user asked offboard to write (``-o``, ``--key-file``), checked before any work:
    a directory, a missing or non-directory parent, something that is not a regular file, or a
    folder offboard cannot create files in is bad input, one line naming the path and the fix.
    ``make_parents``: the writer creates missing folders (a key's private folder), so the nearest
    existing one is checked instead. The check creates and removes one exclusive probe file, so
    it leaves nothing behind."""
    if path.is_dir():
        raise BadInput(f"{path} is a directory; name the {what} file to write, e.g. {path / example}")
    if path.exists() and not path.is_file():
        raise BadInput(f"{path} is not a regular file; name a file to write the {what} to")
    parent = path.parent
    while make_parents and not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise BadInput(f"cannot write the {what} to {path}: {parent} is not an existing directory (it is a file); "
                       "choose another path")
    if not parent.is_dir():
        raise BadInput(f"cannot write the {what} to {path}: {parent} is not an existing directory; "
                       f"create it first (mkdir -p {parent}), or choose another path")
    probe = parent / f".{path.name}.{secrets.token_hex(8)}.probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, PRIVATE_FILE)
    except OSError as exc:
        raise BadInput(f"cannot write the {what} to {path}: no file can be created in {parent} "
                       f"({exc.strerror or exc}); choose a path you can write") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return path


@contextlib.contextmanager
def writing_output(path: Path, what: str) -> Iterator[None]:
    """Writes to a file the user named: a failure the check could not foresee (the disk filled,
    the folder changed meanwhile) is still one line naming the path, not an internal error.
    The writers inside remove their own temp files."""
    try:
        yield
    except OSError as exc:
        raise BadInput(f"cannot write the {what} to {path}: {exc.strerror or exc}; choose a path you can "
                       "write") from None


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
        make_private_dirs(runs_dir)
        run.path.mkdir(mode=PRIVATE_DIR)
        os.chmod(run.path, PRIVATE_DIR)
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
            runs = sorted(p.parent.name for p in runs_dir.glob("*/state.json")) if runs_dir.is_dir() else []
            known = f"its latest runs: {', '.join(runs[-3:])}" if runs else "it holds no run"
            raise BadInput(f"no run {run_id} in {runs_dir} ({known}); [run] runs_dir in the config says where "
                           "the runs are")
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
        """One process at a time per run (an OS lock: it ends with its process)."""
        with file_lock(self.path / "lock", f"run {self.run_id}"):
            yield


LOCK_DIR_ENV = "OFFBOARD_LOCK_DIR"
# Exit locks are the machine's, not a user's: every user, cron job and shell finds them in one folder,
# whatever its XDG_CACHE_HOME or HOME. /var/tmp (not /tmp): the same folder for every login on the
# machine, kept across reboots (harmless: a lock ends with its process), and made world-writable
# with the sticky bit (1777, as /tmp is) so each user may create lock files and none may delete
# another's. A service run with a private /var/tmp (systemd PrivateTmp) or in a container sees its
# own: point OFFBOARD_LOCK_DIR of every environment at one shared folder there.
SHARED_LOCK_DIR = Path("/var/tmp/offboard-locks")
SHARED_DIR_MODE = 0o1777
SHARED_FILE_MODE = 0o666  # every user opens it to lock it; it holds only its holder's name


def shared_lock_dir() -> Path:
    configured = os.environ.get(LOCK_DIR_ENV, "")
    if configured:
        return Path(configured)
    if os.name != "posix":
        import tempfile
        return Path(tempfile.gettempdir()) / "offboard-locks"
    return SHARED_LOCK_DIR


def _shared_dir() -> Path:
    """The shared lock folder, made 1777 the first time; never followed through a symbolic link."""
    path = shared_lock_dir()
    try:
        path.mkdir(mode=SHARED_DIR_MODE, parents=True)
        os.chmod(path, SHARED_DIR_MODE)  # mkdir's mode is filtered by the umask
    except FileExistsError:
        pass
    except OSError as exc:
        raise BadInput(f"cannot create the exit lock folder {path}: {exc.strerror or exc}; set {LOCK_DIR_ENV} to a "
                       "folder every user and job of this machine can write") from None
    if path.is_symlink() or not path.is_dir():
        raise BadInput(f"{path} is not a folder (or is a symbolic link); offboard keeps its exit locks there: "
                       f"remove it, or set {LOCK_DIR_ENV} to a folder every user and job of this machine can write")
    return path


def identity_lock(identity: str, note: str) -> contextlib.AbstractContextManager[None]:
    """The machine-wide lock of one exit, named by what its vendor says it is (``identity``, e.g.
    "<vendor> account 7001 organization 42"), never by a config's spelling or a user's folders;
    a hash names the file, so the lock folder lists no customer."""
    digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
    path = _shared_dir() / f"exit-{digest}.lock"
    if os.name != "posix":
        return file_lock(path, identity, note=note)
    return _shared_flock(path, identity, note)


@contextlib.contextmanager
def _shared_flock(path: Path, what: str, note: str) -> Iterator[None]:
    """``flock`` on a file every user may open (0666) in the shared sticky folder: opened without
    following a link and without truncating (a file planted there by another user is never a way
    to write elsewhere), held until the block ends or the process dies."""
    import fcntl

    me = f"offboard pid {os.getpid()} on {socket.gethostname()}" + (f" ({note})" if note else "")
    me += f", since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, SHARED_FILE_MODE)
    except OSError as exc:
        raise BadInput(f"cannot lock {what}: {path}: {exc.strerror or exc}; set {LOCK_DIR_ENV} to a folder every "
                       "user and job of this machine can write") from None
    try:
        with contextlib.suppress(PermissionError):
            os.fchmod(fd, SHARED_FILE_MODE)  # the creator's umask must not lock other users out
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BadInput(f"{what} is already being worked on by {_holder(path)}; wait for it to finish "
                           "(its lock ends the moment that process ends)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, me.encode("utf-8", "replace"), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # a waiter reading it from now on names no one
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextlib.contextmanager
def file_lock(lock_path: Path, what: str, *, note: str = "") -> Iterator[None]:
    """An OS lock (``flock``) on ``lock_path``, held until the block ends or the process dies,
    whichever is first: a killed holder's lock is free at once, so no lock is ever "stale" and
    nothing has to be taken over (a takeover is where two processes can both win). A held lock is
    refused with one line naming its holder, which the holder writes into the file."""
    make_private_dirs(lock_path.parent)
    me = f"offboard pid {os.getpid()} on {socket.gethostname()}" + (f" ({note})" if note else "")
    me += f", since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"
    held: list[int] = []

    def name_holder(fd: int) -> None:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, me.encode("utf-8", "replace"))
        held.append(fd)

    # fallback_to_soft=False: on a filesystem without flock, refuse rather than fall back to a
    # lock file that outlives a killed holder.
    lock = filelock.FileLock(str(lock_path), mode=PRIVATE_FILE, blocking=False, fallback_to_soft=False,
                             on_acquired=name_holder)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise BadInput(f"{what} is already being worked on by {_holder(lock_path)}; wait for it to finish "
                       "(its lock ends the moment that process ends)") from None
    except OSError as exc:
        raise BadInput(f"cannot lock {what}: {lock_path}: {exc.strerror or exc}; offboard needs a folder "
                       "it can write with OS file locks (set XDG_CACHE_HOME to one)") from None
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if held:
                os.ftruncate(held[0], 0)  # a waiter reading it from now on names no one
        lock.release()


def _holder(lock_path: Path) -> str:
    """Who the lock file says holds it. A holder names itself a moment after it takes the lock,
    and the file may be changing or gone while read: never an error, at worst no name."""
    for _ in range(20):
        try:
            fd = os.open(lock_path, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW | _CLOEXEC)
            try:
                raw = os.read(fd, 512)
            finally:
                os.close(fd)
        except OSError:
            raw = b""
        text = "".join(c if c.isprintable() else " " for c in raw.decode("utf-8", "replace")).strip()
        if text:
            return text
        time.sleep(0.025)  # taken a moment ago: its holder is writing its name
    return "another offboard process"
