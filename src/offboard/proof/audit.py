"""The audit log: JSON Lines, one event per line, SHA-256 hash-chained, fsynced where it matters.

Each line's ``hash`` is the SHA-256 of the canonical JSON of the line without
``hash`` (which includes ``prev_hash``), so changing, removing, inserting or
reordering any line breaks the chain at that line. The log is also the run's
source of truth on resume: which actions started, which finished.

Built as a structlog processor pipeline: run fields -> timestamp -> schema ->
redaction -> hash chain -> render, written by a logger that flushes every line and
fsyncs the ones a resume depends on (``DURABLE``): above all ``action.started``, which
is on disk before its write is sent, so a crash can never hide a write that may have
landed. The other lines reach the disk with the next fsync; one lost to a power cut is
re-derived on resume (the action is re-read), and a torn tail is repaired and recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import structlog

from offboard.errors import BadInput, read_input
from offboard.plan import canonical_json
from offboard.rundir import open_append
from offboard.wire.redact import REDACTOR

GENESIS = "0" * 64
FIELDS = ("ts", "run_id", "seq", "event", "vendor", "step", "action_id", "target", "http",
          "outcome", "detail", "prev_hash")
Outcome = str  # "success" | "failure" | "unknown" (Elastic Common Schema event.outcome)


def line_hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


# Lines fsynced before anything else happens: a write about to be sent, a person's word, the
# operator's decisions, and the run's start and end (the signed head quotes the last).
DURABLE = frozenset({"action.started", "manual.confirmed", "manual.rejected", "guard.confirmed",
                     "preflight.overridden", "evidence.overridden", "run.started", "run.resumed", "run.finished",
                     "run.closed", "run.interrupted", "verify.finished", "audit.repaired"})


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

    def __call__(self, _logger: Any, _name: str, ev: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        self.seq += 1
        record = {k: ev.get(k) for k in FIELDS}
        record["seq"] = self.seq
        record["prev_hash"] = self.last_hash
        digest = line_hash(record)
        record["hash"] = digest
        self.last_hash = digest
        self.last_record = record
        return record


def _schema(_logger: Any, _name: str, ev: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    unknown = set(ev) - set(FIELDS)
    if unknown:  # a programming error, not user input: fail loudly in tests
        raise ValueError(f"audit event has unknown fields {sorted(unknown)}")
    return ev


def _redact(_logger: Any, _name: str, ev: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return {k: REDACTOR.value(v) for k, v in ev.items()}


def _render(_logger: Any, _name: str, ev: MutableMapping[str, Any]) -> str:
    return json.dumps(ev, separators=(",", ":"), ensure_ascii=False)


class AuditLog:
    """Append-only writer for one run's log; reopening continues the chain."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id
        path.parent.mkdir(parents=True, exist_ok=True)
        repaired = _repair_torn_tail(path)
        result = verify_file(path) if path.exists() and path.stat().st_size else None
        if result is not None and not result.ok:
            raise BadInput(f"audit log {path} is broken at line {result.bad_line} ({result.reason}); "
                           "refusing to append to it: keep it as evidence and start a new run")
        self.records: list[dict[str, Any]] = list(read_records(path)) if result else []
        last = self.records[-1] if self.records else None
        self._chain = _Chain(last["seq"] if last else 0, last["hash"] if last else GENESIS)
        self._lock = threading.Lock()
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
                _render,
            ],
        )
        if repaired:
            self.emit("audit.repaired", outcome="success",
                      detail=f"a torn last line of {repaired} bytes (a crash mid-write) was removed "
                             "before resuming; every complete line is intact")

    @property
    def last_hash(self) -> str:
        return self._chain.last_hash

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        with self._lock:  # vendors run in threads: one line at a time, in chain order
            self._writer.sync_next = event in DURABLE
            self._log.msg(event, **fields)
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


def _repair_torn_tail(path: Path) -> int:
    """Drop a partial last line left by a crash mid-write; returns bytes removed."""
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


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    lines: int
    bad_line: int | None = None
    reason: str = ""
    last_hash: str = GENESIS


def verify_file(path: Path) -> VerifyResult:
    """Recompute the chain; name the first line that does not hold."""
    raw = read_input(path, "audit log")
    lines = raw.split(b"\n")
    torn = lines.pop() != b""  # a complete log ends with a newline
    prev = GENESIS
    for n, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return VerifyResult(False, len(lines), n, "not valid JSON (torn or edited)")
        if not isinstance(record, dict) or "hash" not in record:
            return VerifyResult(False, len(lines), n, "not an audit event")
        if record.get("prev_hash") != prev:
            return VerifyResult(False, len(lines), n, "prev_hash does not match the line before it "
                                "(a line was removed, inserted or reordered)")
        if record.get("seq") != n:
            return VerifyResult(False, len(lines), n, f"seq is {record.get('seq')!r}, expected {n}")
        if line_hash(record) != record["hash"]:
            return VerifyResult(False, len(lines), n, "content does not match its hash (the line was changed)")
        prev = record["hash"]
    if torn:
        n = len(lines) + 1
        return VerifyResult(False, n, n, "last line is incomplete (a torn write)")
    return VerifyResult(True, len(lines), None, "", prev)
