"""The audit chain detects any change, removal, insertion or reordering, and survives a torn write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from offboard.errors import BadInput
from offboard.proof.audit import AuditLog, read_records, verify_file
from offboard.wire.redact import REDACTOR


def write_log(path: Path, n: int = 5) -> None:
    log = AuditLog(path, "run-1")
    for i in range(n):
        log.emit("action.succeeded", vendor="v", step="s", action_id=f"a{i}",
                 target={"type": "agent", "id": str(i), "name": f"host{i}"}, outcome="success", detail="ok")
    log.close()


def test_a_fresh_log_verifies_and_every_line_has_the_design_fields(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path)
    result = verify_file(path)
    assert result.ok and result.lines == 5
    first = next(read_records(path))
    assert set(first) == {"ts", "run_id", "seq", "event", "vendor", "step", "action_id", "target", "http",
                          "outcome", "detail", "prev_hash", "hash"}
    assert first["prev_hash"] == "0" * 64 and first["seq"] == 1 and first["ts"].endswith("Z")


def test_one_changed_byte_is_named_by_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path)
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"host2", b"host9")
    path.write_bytes(b"\n".join(lines))
    result = verify_file(path)
    assert not result.ok and result.bad_line == 3
    assert "changed" in result.reason


@pytest.mark.parametrize(("edit", "bad_line"), [
    (lambda ls: ls[:1] + ls[2:], 2),  # removed
    (lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], 2),  # reordered
    (lambda ls: [ls[0], ls[0], *ls[1:]], 2),  # inserted (a duplicate)
])
def test_removed_reordered_or_inserted_lines_break_the_chain(tmp_path: Path, edit, bad_line: int) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "audit.jsonl"
    write_log(path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")
    result = verify_file(path)
    assert not result.ok and result.bad_line == bad_line


def test_a_torn_last_line_is_reported_then_repaired_on_reopen_and_the_repair_is_audited(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    with path.open("a") as fh:
        fh.write('{"ts":"2026-11-23T10:00:00Z","run_id":"run-1","se')  # a crash mid-write
    assert verify_file(path).bad_line == 4
    log = AuditLog(path, "run-1")
    log.emit("run.resumed", outcome="success")
    log.close()
    result = verify_file(path)
    assert result.ok and result.lines == 5
    events = [r["event"] for r in read_records(path)]
    assert events[-2:] == ["audit.repaired", "run.resumed"]


def test_appending_to_a_tampered_log_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    path.write_text(path.read_text().replace("host1", "hostX"))
    with pytest.raises(BadInput, match="broken at line 2"):
        AuditLog(path, "run-1")


def test_known_secrets_and_sensitive_keys_never_reach_the_log(tmp_path: Path) -> None:
    REDACTOR.register("hs_canary_secret_123")
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, "run-1")
    log.emit("action.failed", outcome="failure",
             detail={"message": "server echoed hs_canary_secret_123", "Authorization": "Basic abc"})
    log.close()
    text = path.read_text()
    assert "hs_canary_secret_123" not in text and "Basic abc" not in text
    assert json.loads(text)["detail"]["Authorization"] == "[REDACTED]"
    assert verify_file(path).ok


def test_after_a_line_that_could_not_be_written_no_line_is_written_and_the_log_stays_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails (the disk full, an I/O error) already counts in the chain: a line after it,
    from the same lane or another vendor's, would link to a line that is not there. Each is refused."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, "run-1")
    log.emit("run.started", outcome="success", detail="ok")
    real = type(log._writer).msg
    failing = {"n": 1}

    def msg(self: object, line: str) -> None:
        if failing["n"]:
            failing["n"] -= 1
            raise OSError(28, "No space left on device")
        real(self, line)  # type: ignore[arg-type]

    monkeypatch.setattr(type(log._writer), "msg", msg)
    with pytest.raises(OSError, match="No space"):
        log.emit("action.started", vendor="v", step="s", action_id="a1", outcome="unknown", detail="x")
    with pytest.raises(OSError, match="No space"):  # the disk has room again: still refused
        log.emit("action.started", vendor="w", step="s", action_id="b1", outcome="unknown", detail="y")
    log.close()
    assert [r["event"] for r in read_records(path)] == ["run.started"]
    assert verify_file(path).ok
