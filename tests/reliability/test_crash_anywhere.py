"""Crash anywhere: a seeded run is stopped dead at every audit write in turn — between two
lines (an action boundary) and half-way through a line (a torn write) — then resumed. Every
resume finishes the exit with each write sent exactly once, the audit chain whole (the torn
line repaired and recorded, never silently dropped) and the state file never corrupt."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from offboard import engine
from offboard.errors import ExitCode
from offboard.proof import audit as audit_module
from offboard.proof.audit import read_records, verify_file
from offboard_huntress.sandbox import CUSTOMER_ORG, HuntressSandbox
from tests.conftest import FAST, NOTIFY, BlumiraHarness, Harness, load, write_config
from tests.connectors.blumira_unknowns import settle_dispatch

LAB = engine.Overrides(preflight="lab")


class Crash(BaseException):
    """kill -9 stands in: nothing catches it (it is not an Exception)."""


def small(tmp_path: Path) -> Harness:
    sandbox = HuntressSandbox(time_scale=FAST, customer_agents=3, neighbour_agents=2)
    return Harness(sandbox, load(write_config(tmp_path)))


def crash_at(monkeypatch: pytest.MonkeyPatch, line: int, torn: bool) -> None:
    real = audit_module._FsyncWriter.msg
    count = {"n": 0}

    def msg(self: audit_module._FsyncWriter, text: str) -> None:
        count["n"] += 1
        if count["n"] == line:
            if torn:
                self._fh.write(text[: len(text) // 2])
                self._fh.flush()
            raise Crash
        real(self, text)

    monkeypatch.setattr(audit_module._FsyncWriter, "msg", msg)


def lines_of_a_whole_run(tmp_path: Path) -> int:
    h = small(tmp_path / "probe")
    with h.sessions() as s:
        result = engine.apply(engine.make_plan(h.cfg, s), h.cfg, s, overrides=LAB)
    return len(list(read_records(result.run.audit_path)))


def test_a_crash_at_every_audit_write_then_resume_acts_exactly_once(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "probe").mkdir()
    total = lines_of_a_whole_run(tmp_path)
    assert total > 40
    points = 0
    for line in range(1, total + 1):
        for torn in (False, True):
            where = tmp_path / f"crash-{line}-{int(torn)}"
            where.mkdir()
            h = small(where)
            with h.sessions() as s:
                plan = engine.make_plan(h.cfg, s)
                with monkeypatch.context() as m:
                    crash_at(m, line, torn)
                    with pytest.raises(Crash):
                        engine.apply(plan, h.cfg, s, overrides=LAB)
            runs = [p for p in h.cfg.runs_dir.iterdir() if p.is_dir()]
            assert len(runs) == 1
            with h.sessions() as s:
                result = engine.resume(runs[0].name, h.cfg, s, overrides=LAB)
            assert result.exit_code == ExitCode.MANUAL_PENDING, (line, torn, result.message)
            sent = Counter(r.path for r in h.sandbox.requests if r.method in ("DELETE", "PATCH"))
            assert set(sent.values()) == {1}, (line, torn, sent)  # no write sent twice
            assert h.sandbox.agents_of(CUSTOMER_ORG) == [] and len(h.sandbox.agents_of(43)) == 2
            check = verify_file(result.run.audit_path)
            assert check.ok, (line, torn, check.reason)
            events = [r["event"] for r in read_records(result.run.audit_path)]
            if torn:
                assert "audit.repaired" in events, (line, events[:3])  # the torn line is recorded, not hidden
            json.loads((result.run.path / "state.json").read_text())
            points += 1
    assert points == 2 * total


def crash_when(monkeypatch: pytest.MonkeyPatch, event: str, operation: str) -> None:
    """Stop dead as the audit line ``event`` of an action of ``operation`` is about to be written."""
    real = audit_module._FsyncWriter.msg

    def msg(self: audit_module._FsyncWriter, text: str) -> None:
        record = json.loads(text)
        if record["event"] == event and f".{operation}." in (record.get("action_id") or ""):
            raise Crash
        real(self, text)

    monkeypatch.setattr(audit_module._FsyncWriter, "msg", msg)


def test_a_write_started_before_a_crash_is_re_read_on_resume_not_resent_while_its_object_is_still_listed(
        blumira: BlumiraHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    # Blumira's uninstall is asynchronous: the device stays listed after the dispatch landed, so
    # the fresh listing on resume still shows it under the customer and the scope guard would let
    # a second dispatch through. Only the log's `action.started` (a write that may have landed)
    # sends the resume to the re-read, which cannot settle it: `unknown`, never resent.
    settle_dispatch(monkeypatch, blumira.sandbox)
    sb = blumira.sandbox
    sb.uninstall_is_slow = True
    cfg = blumira.cfg
    with blumira.sessions(cfg) as s:
        plan = engine.make_plan(cfg, s)
        first = engine.apply(plan, cfg, s)
        engine.confirm(first.run.run_id, NOTIFY, "J. Doe", "sent 2026-11-24 09:00 UTC", cfg, s)
        with monkeypatch.context() as m:
            crash_when(m, "action.succeeded", "uninstall_device")  # the 202 arrived, the line never did
            with pytest.raises(Crash):
                engine.resume(first.run.run_id, cfg, s)
    dispatches = [r.path for r in sb.requests if r.method == "POST" and r.path.endswith("/actions")]
    assert len(dispatches) == 1
    device_id = dispatches[0].split("/")[-2]
    assert device_id in {d["device_id"] for d in sb.devices.values()}  # still listed under the customer

    with blumira.sessions(cfg) as s:
        again = engine.resume(first.run.run_id, cfg, s)
    assert [r.path for r in sb.requests if r.method == "POST" and r.path.endswith("/actions")].count(
        dispatches[0]) == 1  # never sent twice
    last = [r for r in read_records(again.run.audit_path)
            if r.get("action_id") == f"blumira.uninstall_device.{device_id}" and r["event"].startswith("action.")][-1]
    assert last["event"] == "action.unknown" and last["detail"]["note"] == "not resent"
    assert last["detail"]["settled_by"] == "re-read"
