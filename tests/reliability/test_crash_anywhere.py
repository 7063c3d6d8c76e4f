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
from tests.conftest import FAST, Harness, load, write_config

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
