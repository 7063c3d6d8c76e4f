"""Ctrl-C before a run is opened (a resume waiting for the rate limit to name the exit for its
lock): typer turns it into a silent exit 130; offboard says what happened."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from offboard.connectors.sandboxing import serve
from offboard_huntress.sandbox import DEMO_KEY, DEMO_SECRET, HuntressSandbox
from tests.conftest import write_config

SCALE = 0.05  # a window of 3 s: the resume's first call waits long enough to be interrupted
OFFBOARD = [sys.executable, "-c", "from offboard.cli.app import run; run()"]


def test_ctrl_c_while_a_resume_waits_to_open_its_run_says_nothing_was_changed(tmp_path: Path) -> None:
    sandbox = HuntressSandbox(time_scale=SCALE)
    env = {**os.environ, "OFFBOARD_HUNTRESS_API_KEY": DEMO_KEY, "OFFBOARD_HUNTRESS_API_SECRET": DEMO_SECRET}
    with serve(sandbox.app) as url:
        config = write_config(tmp_path, url, window=60 * SCALE)

        def offboard(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*OFFBOARD, *args, "-c", str(config)], env=env, cwd=tmp_path, capture_output=True,
                                  text=True, timeout=300)

        assert offboard("plan", "-o", "exit.plan.json").returncode == 0
        assert offboard("apply", "exit.plan.json", "--unattended", "--override-preflight", "lab").returncode == 3
        (run,) = [p.name for p in (tmp_path / "runs").iterdir()]
        for _ in range(sandbox.rate_limit):  # another tool fills the account's window
            sandbox.admit()
        resume = subprocess.Popen([*OFFBOARD, "apply", "--resume", run, "-c", str(config), "--unattended"],
                                  env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert resume.stdout is not None
        seen = []
        for line in resume.stdout:
            seen.append(line)
            if "waiting" in line:
                resume.send_signal(signal.SIGINT)
                break
        rest, _ = resume.communicate(timeout=60)
    said = "".join(seen) + rest
    assert resume.returncode == 130, said
    assert "interrupted before any change was made" in said and "run the same command again" in said, said
