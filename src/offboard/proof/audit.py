"""The audit log: JSON Lines, one event per line, SHA-256 hash-chained, fsynced where it matters.

Each line is compact JSON whose last field, ``hash``, is the SHA-256 of exactly the bytes
before it (the line up to ``,"hash":``, closed with ``}``), which include ``prev_hash``: so
changing any byte of a line (even one that parses the same: a key written twice, other
spacing, another escape), or removing, inserting or reordering a line, breaks the chain at
that line. Lines are split on ``\\n`` only: JSON escapes every control character, so a vendor
string with U+2028 or U+0085 stays inside its line. The log is also the run's source of truth
on resume: which actions started, which finished.

Built as a structlog processor pipeline: run fields -> timestamp -> schema ->
redaction -> hash chain (which renders the sealed line), written by a logger that flushes every line and
fsyncs the ones a resume depends on (``DURABLE``): above all ``action.started``, which
is on disk before its write is sent, so a crash can never hide a write that may have
landed. The other lines reach the disk with the next fsync; one lost to a power cut is
re-derived on resume (the action is re-read), and a torn tail is repaired and recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import structlog

from offboard.errors import BadInput, read_input
from offboard.rundir import open_append
from offboard.wire.redact import REDACTOR

GENESIS = "0" * 64
FIELDS = ("ts", "run_id", "seq", "event", "vendor", "step", "action_id", "target", "http",
          "outcome", "detail", "prev_hash")
Outcome = str  # "success" | "failure" | "unknown" (Elastic Common Schema event.outcome)


_SEAL = re.compile(rb',"hash":"([0-9a-f]{64})"\}\Z')


def seal(record: Mapping[str, Any]) -> str:
    """The log line for ``record`` (every field but ``hash``, in order): its compact JSON with the
    SHA-256 of exactly those bytes appended as the last field. The one place the chain is made."""
    body = json.dumps({k: v for k, v in record.items() if k != "hash"}, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    return f'{body[:-1]},"hash":"{digest}"}}'


def _sealed(line: bytes, record: Mapping[str, Any]) -> bool:
    """The line ends with its hash, and the hash is over exactly the bytes before it."""
    match = _SEAL.search(line)
    return (match is not None and match.group(1).decode() == record.get("hash")
            and hashlib.sha256(line[:match.start()] + b"}").hexdigest() == record["hash"])


class DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:  # two readers could each see another value: never ambiguous evidence
            raise DuplicateKey(f"the key {key!r} appears twice")
        out[key] = value
    return out


def loads_strict(data: bytes | str) -> Any:
    """JSON as offboard writes it: UTF-8, no object with the same key twice. Raises ValueError."""
    return json.loads(data, object_pairs_hook=_no_duplicates)


# Lines fsynced before anything else happens: a write about to be sent, a person's word, the
# operator's decisions, and the run's start and end (the signed head quotes the last).
DURABLE = frozenset({"action.started", "manual.confirmed", "manual.rejected", "guard.confirmed",
                     "preflight.overridden", "evidence.overridden", "scope_guard.mode", "run.started", "run.resumed",
                     "run.finished", "run.closed", "run.interrupted", "verify.finished", "watch.finished",
                     "audit.repaired",
                     "signatures.repaired"})


class _FsyncWriter:
    """structlog's final logger: one line, flushed; fsynced when the event is durable."""

    def __init__(self, fh: TextIO) -> None:
        self._fh = fh
        self.sync_next = True

    def msg(self, line: str) -> None:
        self._fh.write(line + "\n")
        self._fh.flush()
        if self.sync_next:
            os.fsync(self._fh.fileno())

    def sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())


class _Chain:
    """Stateful processor: numbers the event and links it to the previous one."""

    def __init__(self, seq: int, last_hash: str) -> None:
        self.seq = seq
        self.last_hash = last_hash
        self.last_record: dict[str, Any] = {}

    def __call__(self, _logger: Any, _name: str, ev: MutableMapping[str, Any]) -> str:
        self.seq += 1
        record = {k: ev.get(k) for k in FIELDS}
        record["seq"] = self.seq
        record["prev_hash"] = self.last_hash
        line = seal(record)
        # What a reader of the file sees, not the Python values before JSON (a tuple is a list there).
        self.last_record = json.loads(line)
        self.last_hash = self.last_record["hash"]
        return line


def _schema(_logger: Any, _name: str, ev: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    unknown = set(ev) - set(FIELDS)
    if unknown:  # a programming error, not user input: fail loudly in tests
        raise ValueError(f"audit event has unknown fields {sorted(unknown)}")
    return ev


def _redact(_logger: Any, _name: str, ev: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return {k: REDACTOR.value(v) for k, v in ev.items()}


class AuditLog:
    """Append-only writer for one run's log; reopening continues the chain."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id
        path.parent.mkdir(parents=True, exist_ok=True)
        repaired = repair_torn_tail(path)
        result = verify_file(path) if path.exists() and path.stat().st_size else None
        if result is not None and not result.ok:
            raise BadInput(f"audit log {path} is broken at line {result.bad_line} ({result.reason}); "
                           "refusing to append to it: keep it as evidence and start a new run")
        self.records: list[dict[str, Any]] = list(read_records(path)) if result else []
        last = self.records[-1] if self.records else None
        self._chain = _Chain(last["seq"] if last else 0, last["hash"] if last else GENESIS)
        self._lock = threading.Lock()
        self._unwritable: BaseException | None = None  # a line that failed to be written: none may follow
        self._fh = open_append(path)  # 0600, never through a link
        self._writer = _FsyncWriter(self._fh)
        self._log = structlog.wrap_logger(
            self._writer,
            wrapper_class=structlog.BoundLogger,
            processors=[
                lambda _l, _n, ev: {**ev, "run_id": self.run_id},
                structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
                _schema,
                _redact,
                self._chain,
            ],
        ).bind()  # the bound logger itself: the lazy proxy built one anew for every line (a fifth of its cost)
        if repaired:
            self.emit("audit.repaired", outcome="success",
                      detail=f"a torn last line of {repaired} bytes (a crash mid-write) was removed "
                             "before resuming; every complete line is intact")

    @property
    def last_hash(self) -> str:
        return self._chain.last_hash

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        with self._lock:  # vendors run in threads: one line at a time, in chain order
            if self._unwritable is not None:
                # A line failed to be written (the disk, a crash mid-write): the chain already counts it,
                # so nothing after it may be written; every lane's next line stops it, as this one did.
                raise self._unwritable
            self._writer.sync_next = event in DURABLE
            try:
                self._log.msg(event, **fields)
            except BaseException as exc:
                self._unwritable = exc
                raise
            record = self._chain.last_record
            self.records.append(record)
        return record

    def sync(self) -> None:
        """Everything written so far is on disk (before the head is signed or quoted)."""
        with self._lock:
            self._writer.sync()

    def close(self) -> None:
        if not self._fh.closed:
            self._writer.sync()
        self._fh.close()


def repair_torn_tail(path: Path) -> int:
    """Drop a partial last line left by a crash mid-write (of this log, or of the signed heads
    beside it); returns the bytes removed, for the caller to record."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with path.open("r+b") as fh:
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    return len(data) - keep


def split_lines(raw: bytes) -> tuple[list[bytes], bool]:
    """The complete lines of a JSON Lines file, split on ``\\n`` only, and whether a torn
    (unterminated) last line followed them."""
    lines = raw.split(b"\n")
    torn = lines.pop() != b""
    return lines, torn


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    lines, _torn = split_lines(path.read_bytes())
    for line in lines:
        if line.strip():
            yield json.loads(line)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    lines: int
    bad_line: int | None = None
    reason: str = ""
    last_hash: str = GENESIS
    records: tuple[dict[str, Any], ...] = ()  # every line, when ok


EVENT_FIELDS = frozenset({"seq", "event", "prev_hash", "hash"})


def not_an_audit_log(raw: bytes) -> str | None:
    """Why these bytes are no audit log at all, so that a chain verdict on them would mean nothing
    (an empty file, a config, a plan), or None. Bytes with any line that is an audit event, or that
    end in a line torn while one was written, are a log, however broken: its verdict names the line."""
    if not raw.strip():
        return "it is empty (an audit log holds at least its run's first event)"
    lines, torn = split_lines(raw)
    for line in lines:
        if not line.lstrip().startswith(b"{"):
            continue
        try:
            record = loads_strict(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.keys() >= EVENT_FIELDS:
            return None
    if torn and raw.rsplit(b"\n", 1)[-1].startswith(b'{"'):
        return None
    return ("none of its lines is an audit event (an audit log is JSON Lines: one object per line, each with "
            "seq, event, prev_hash and hash)")


def verify_file(path: Path) -> VerifyResult:
    """Recompute the chain; name the first line that does not hold."""
    return verify_bytes(read_input(path, "audit log"))


def verify_bytes(raw: bytes) -> VerifyResult:
    """Recompute the chain of a whole log's bytes; name the first line that does not hold."""
    lines, torn = split_lines(raw)  # a complete log ends with a newline
    prev = GENESIS
    records: list[dict[str, Any]] = []
    for n, line in enumerate(lines, start=1):
        try:
            record = loads_strict(line)
        except DuplicateKey as exc:
            return VerifyResult(False, len(lines), n, f"{exc} (the line was edited)")
        except ValueError:  # JSON and UTF-8 errors both
            return VerifyResult(False, len(lines), n, "not valid JSON (torn or edited)")
        if not isinstance(record, dict) or "hash" not in record:
            return VerifyResult(False, len(lines), n, "not an audit event")
        if record.get("prev_hash") != prev:
            return VerifyResult(False, len(lines), n, "prev_hash does not match the line before it "
                                "(a line was removed, inserted or reordered)")
        if record.get("seq") != n:
            return VerifyResult(False, len(lines), n, f"seq is {record.get('seq')!r}, expected {n}")
        if not _sealed(line, record):
            return VerifyResult(False, len(lines), n, "content does not match its hash (the line was changed)")
        prev = record["hash"]
        records.append(record)
    if torn:
        n = len(lines) + 1
        return VerifyResult(False, n, n, "last line is incomplete (a torn write)")
    return VerifyResult(True, len(lines), None, "", prev, tuple(records))
