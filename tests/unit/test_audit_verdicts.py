"""Each verdict of the audit chain whole (its ok flag, line count, bad line, reason, head), the line
format the chain is made of, what is and is not an audit log, and reopening a log (proof/audit.py)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from offboard.errors import BadInput
from offboard.proof import audit
from offboard.proof.audit import GENESIS, AuditLog, VerifyResult, not_an_audit_log, seal, verify_bytes


def a_log(tmp_path: Path, events: int = 3) -> Path:
    log = AuditLog(tmp_path / "audit.jsonl", "run-1")
    for n in range(events):
        log.emit("action.succeeded", vendor="v", action_id=f"v.a.{n}", outcome="success", detail={"n": n})
    log.close()
    return tmp_path / "audit.jsonl"


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def join(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def test_a_line_is_its_compact_json_with_the_hash_of_exactly_those_bytes_last() -> None:
    body = '{"seq":1,"detail":"café","prev_hash":"' + GENESIS + '"}'
    digest = hashlib.sha256(body.encode()).hexdigest()
    sealed = seal({"seq": 1, "detail": "café", "prev_hash": GENESIS, "hash": "old"})
    assert sealed == body[:-1] + f',"hash":"{digest}"}}'


def test_an_intact_log_verifies_with_its_head_and_records(tmp_path: Path) -> None:
    path = a_log(tmp_path)
    records = tuple(json.loads(line) for line in lines_of(path))
    assert verify_bytes(path.read_bytes()) == VerifyResult(True, 3, None, "", records[-1]["hash"], records)
    assert audit.verify_file(path) == verify_bytes(path.read_bytes())
    assert verify_bytes(b"") == VerifyResult(True, 0, None, "", GENESIS, ())


def resealed(line: bytes, **change: object) -> bytes:
    return seal({**json.loads(line), **change}).encode()


@pytest.mark.parametrize("edit, bad_line, reason", [
    (lambda ls: ls.__setitem__(1, ls[1][:-1] + b',"seq":2}'), 2, "the key 'seq' appears twice (the line was edited)"),
    (lambda ls: ls.__setitem__(1, ls[1][:20]), 2, "not valid JSON (torn or edited)"),
    (lambda ls: ls.__setitem__(1, b"\xff" + ls[1]), 2, "not valid JSON (torn or edited)"),
    (lambda ls: ls.__setitem__(1, b"[1, 2]"), 2, "not an audit event"),
    (lambda ls: ls.__setitem__(1, b'{"seq": 2}'), 2, "not an audit event"),
    (lambda ls: ls.pop(1), 2, "prev_hash does not match the line before it (a line was removed, inserted or "
                              "reordered)"),
    (lambda ls: ls.__setitem__(0, resealed(ls[0], seq=5)), 1, "seq is 5, expected 1"),
    (lambda ls: ls.__setitem__(2, ls[2].replace(b'"n":2', b'"n":9')), 3,
     "content does not match its hash (the line was changed)"),
    (lambda ls: ls.__setitem__(2, ls[2].replace(b',"hash"', b' ,"hash"')), 3,
     "content does not match its hash (the line was changed)"),
])
def test_each_broken_line_is_named_with_its_reason(tmp_path: Path, edit: object, bad_line: int, reason: str) -> None:
    lines = lines_of(a_log(tmp_path))
    edit(lines)  # type: ignore[operator]
    assert verify_bytes(join(lines)) == VerifyResult(False, len(lines), bad_line, reason)


def test_a_torn_last_line_is_named_after_the_complete_ones(tmp_path: Path) -> None:
    raw = a_log(tmp_path).read_bytes()
    assert verify_bytes(raw + b'{"ts":"2026') == VerifyResult(False, 4, 4, "last line is incomplete (a torn write)")


def test_a_line_whose_hash_field_is_not_last_is_not_sealed(tmp_path: Path) -> None:
    lines = lines_of(a_log(tmp_path, 1))
    record = json.loads(lines[0])
    moved = json.dumps({"hash": record["hash"], **{k: v for k, v in record.items() if k != "hash"}},
                       separators=(",", ":")).encode()
    assert verify_bytes(join([moved])).reason == "content does not match its hash (the line was changed)"


@pytest.mark.parametrize("raw, why", [
    (b"", "it is empty (an audit log holds at least its run's first event)"),
    (b" \n\n", "it is empty (an audit log holds at least its run's first event)"),
    (b'[customer]\nname = "Acme"\n', "none"),
    (b'{"plan_id": "p-1", "vendors": []}\n', "none"),
    (b'{"seq": 1, "event": "x", "prev_hash": "0"}\n', "none"),  # no hash: not an event
    (b'{"seq": 1, "seq": 1, "event": "x", "prev_hash": "0", "hash": "h"}\n', "none"),
    (b'[1]\n{not json\n', "none"),
    (b'{"seq"', "none"),  # a torn fragment alone that is not a line's start
])
def test_bytes_that_are_no_audit_log_say_why(raw: bytes, why: str) -> None:
    expected = why if why != "none" else ("none of its lines is an audit event (an audit log is JSON Lines: one object "
                                          "per line, each with seq, event, prev_hash and hash)")
    if raw == b'{"seq"':
        assert not_an_audit_log(raw) is None  # torn while an event was written: a log, however broken
        return
    assert not_an_audit_log(raw) == expected


def test_a_log_however_broken_is_a_log(tmp_path: Path) -> None:
    raw = a_log(tmp_path).read_bytes()
    assert not_an_audit_log(raw) is None
    assert not_an_audit_log(b"garbage\n" + raw.split(b"\n")[1] + b"\n") is None
    assert not_an_audit_log(b'  {"seq":1,"event":"x","prev_hash":"0","hash":"h"}\n') is None
    assert not_an_audit_log(b'garbage\n{"ts":"2026') is None


def test_reopening_a_log_continues_its_chain(tmp_path: Path) -> None:
    path = a_log(tmp_path)
    log = AuditLog(path, "run-1")
    assert len(log.records) == 3 and log.last_hash == json.loads(lines_of(path)[-1])["hash"]
    log.emit("run.finished", outcome="success")
    log.close()
    log.close()  # closing twice is harmless
    result = verify_bytes(path.read_bytes())
    assert result.ok and result.lines == 4 and result.records[-1]["seq"] == 4


def test_a_torn_tail_is_removed_and_recorded_before_the_chain_goes_on(tmp_path: Path) -> None:
    path = a_log(tmp_path)
    torn = b'{"ts":"2026-11-23T10:00:00Z","run_id":"ru'
    with path.open("ab") as fh:
        fh.write(torn)
    log = AuditLog(path, "run-1")
    log.close()
    last = json.loads(lines_of(path)[-1])
    assert (last["event"], last["seq"], last["outcome"]) == ("audit.repaired", 4, "success")
    assert len(torn) == 41
    assert last["detail"] == ("a torn last line of 41 bytes (a crash mid-write) was removed before resuming; "
                              "every complete line is intact")
    assert verify_bytes(path.read_bytes()).ok


def test_a_broken_log_is_never_appended_to(tmp_path: Path) -> None:
    path = a_log(tmp_path)
    lines = lines_of(path)
    lines[1] = lines[1].replace(b'"n":1', b'"n":7')
    path.write_bytes(join(lines))
    with pytest.raises(BadInput) as caught:
        AuditLog(path, "run-1")
    assert str(caught.value) == (f"audit log {path} is broken at line 2 (content does not match its hash (the line "
                                 "was changed)); refusing to append to it: keep it as evidence and start a new run")
    assert path.read_bytes() == join(lines)


def test_a_new_log_starts_at_the_genesis_hash_in_a_new_folder(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "deep" / "run" / "audit.jsonl", "run-7")
    assert log.records == [] and log.last_hash == GENESIS
    record = log.emit("run.started", outcome="success")
    log.close()
    assert (record["seq"], record["prev_hash"], record["run_id"]) == (1, GENESIS, "run-7")
    assert list(record) == [*audit.FIELDS[:2], "seq", *audit.FIELDS[3:], "hash"]


def test_an_event_with_a_field_the_schema_does_not_know_is_a_programming_error(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", "run-1")
    try:
        with pytest.raises(ValueError, match=r"^audit event has unknown fields \['colour', 'size'\]$"):
            log.emit("x", size=1, colour="red")
    finally:
        log.close()


def test_a_missing_log_is_one_line() -> None:
    with pytest.raises(BadInput, match=r"^audit log /nowhere/audit\.jsonl does not exist$"):
        audit.verify_file(Path("/nowhere/audit.jsonl"))


def test_durable_events_are_fsynced_before_the_call_returns_and_others_are_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", "run-1")
    synced: list[int] = []
    monkeypatch.setattr(audit.os, "fsync", synced.append)
    log.emit("action.planned", outcome="unknown")
    assert synced == []  # a plain line: flushed, not fsynced
    log.emit("action.started", outcome="unknown")  # a write is about to be sent: on disk first
    assert len(synced) == 1
    log.emit("manual.pending", outcome="unknown")
    assert len(synced) == 1
    log.close()
    assert len(synced) == 2 and log.path == tmp_path / "audit.jsonl"
    assert [r["event"] for r in log.records] == ["action.planned", "action.started", "manual.pending"]
    assert all(isinstance(r, dict) and r["hash"] for r in log.records)


def test_every_line_carries_a_utc_iso_timestamp(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", "run-1")
    record = log.emit("run.started", outcome="success")
    log.close()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", record["ts"])


def test_a_torn_fragment_after_lines_that_are_no_events_still_makes_a_log() -> None:
    assert not_an_audit_log(b"garbage\nmore garbage\n{\"ts\": \"2026") is None
    assert not_an_audit_log(b"garbage\n{\"ts\" \"2026\nx") is not None  # the torn part is "x": not an event's start
    assert not_an_audit_log(b"garbage x\n{\"ts\"") is None
