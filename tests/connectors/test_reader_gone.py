"""`offboard apply … | head -5`: the reader leaves after five lines; the run must not die half-way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from offboard.connectors.sandboxing import serve
from offboard.proof.audit import read_records
from offboard_huntress.sandbox import CUSTOMER_ORG, DEMO_KEY, DEMO_SECRET, HuntressSandbox
from tests.conftest import write_config

SCALE = 0.002
OFFBOARD = [sys.executable, "-c", "from offboard.cli.app import run; run()"]


def test_an_apply_whose_reader_leaves_finishes_its_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox = HuntressSandbox(time_scale=SCALE)
    env = {**os.environ, "OFFBOARD_HUNTRESS_API_KEY": DEMO_KEY, "OFFBOARD_HUNTRESS_API_SECRET": DEMO_SECRET}
    with serve(sandbox.app) as url:
        config = write_config(tmp_path, url, window=60 * SCALE)
        made = subprocess.run([*OFFBOARD, "plan", "-c", str(config), "-o", str(tmp_path / "exit.plan.json")],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert made.returncode == 0, made.stderr
        run = subprocess.Popen([*OFFBOARD, "apply", str(tmp_path / "exit.plan.json"), "-c", str(config),
                                "--unattended", "--override-preflight", "lab"],
                               env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert run.stdout is not None
        first = run.stdout.readline()  # as `| head -1`: one line read, then the pipe is closed
        run.stdout.close()
        code = run.wait(timeout=300)
    assert first.strip()
    assert code == 3  # the run's own verdict (manual items remain), not a failure from the closed pipe
    assert sandbox.agents_of(CUSTOMER_ORG) == []  # every removal was made
    (folder,) = (tmp_path / "runs").iterdir()
    records = list(read_records(folder / "audit.jsonl"))
    assert records[-1]["event"] == "run.finished"
    assert not [r for r in records if r["event"] == "action.failed"]
