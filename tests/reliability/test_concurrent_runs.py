"""Concurrent runs of one exit are refused, not interleaved; a lock left by a dead process is
taken over."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from offboard import engine
from offboard.connectors.sandboxing import serve
from offboard.errors import BadInput, ExitCode
from offboard_huntress.sandbox import Fault, HuntressSandbox
from tests.conftest import Harness, write_config
from tests.e2e.test_cli_over_http import CANARY_KEY, CANARY_SECRET, SCALE, Env

LAB = engine.Overrides(preflight="lab")


def test_a_second_apply_of_the_same_exit_is_refused_while_one_runs(harness: Harness) -> None:
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        # another offboard process (alive: this one) holds the exit
        with engine.exit_lock(harness.cfg), pytest.raises(BadInput) as err:
            engine.apply(plan, harness.cfg, s, overrides=LAB)
    assert "is already being worked on by" in str(err.value) and str(err.value).count("\n") == 0
    assert harness.sandbox.writes() == []  # nothing was sent
    assert not harness.cfg.runs_dir.exists() or not any(p.is_dir() for p in harness.cfg.runs_dir.iterdir())


def test_a_lock_left_by_a_dead_process_is_taken_over(harness: Harness) -> None:
    proc = subprocess.Popen(["true"])  # a process that has exited: its pid names a dead holder
    proc.wait()
    lock = harness.cfg.runs_dir / f".exit-{harness.cfg.fingerprint()[:16]}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(f"{socket.gethostname()} {proc.pid}")
    with harness.sessions() as s:
        result = engine.apply(engine.make_plan(harness.cfg, s), harness.cfg, s, overrides=LAB)
    assert result.exit_code == ExitCode.MANUAL_PENDING and not lock.exists()


@pytest.mark.e2e
def test_two_offboard_apply_processes_on_one_exit_one_is_refused(tmp_path: Path) -> None:
    sandbox = HuntressSandbox(time_scale=SCALE, extra_credentials={CANARY_KEY: CANARY_SECRET})
    sandbox.faults.append(Fault(method="DELETE", path_prefix="/v1/agents/", status=None, delay=0.03, times=10**6))
    with serve(sandbox.app) as url:
        env = Env(sandbox, url, tmp_path, write_config(tmp_path, url, window=60 * SCALE))
        assert env.run("plan", "-o", "exit.plan.json").returncode == 10
        first = env.popen("apply", "exit.plan.json", "--override-preflight", "lab")
        deadline = time.monotonic() + 60
        while not sandbox.deletes() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        second = env.run("apply", "exit.plan.json", "--override-preflight", "lab")
        first.wait(timeout=120)
    assert second.returncode == 2 and "already being worked on" in second.stderr
    assert first.returncode == 3
    deleted = [p for p in sandbox.deletes() if p.startswith("/v1/agents/") and p.count("/") == 3]
    assert len(deleted) == len(set(deleted)) == 36  # each agent removed once, by the first run only
    assert len([p for p in (tmp_path / "runs").iterdir() if p.is_dir()]) == 1
