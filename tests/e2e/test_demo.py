"""`offboard demo`, as the README tells a new user to run it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from offboard.audit import verify_file
from tests.e2e.test_cli_over_http import offboard_exe

pytestmark = pytest.mark.e2e


def test_demo_plans_applies_verifies_and_leaves_a_verifiable_audit_log(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFBOARD_")}
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    result = subprocess.run([*offboard_exe(), "demo"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=180, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for heading in ("1. plan", "2. apply", "3. status and verification", "4. audit"):
        assert heading in out
    assert "42 removal(s) by API" in out and "removed 42 object(s) by API, failed 0" in out
    assert out.count("  confirmed huntress.") == 13 and "manual-pending" not in out
    assert "12 object" not in out  # the neighbour's agents never appear as candidates
    assert "Removing" in result.stderr and "64/64" in result.stderr  # the progress bar
    runs = list((tmp_path / "offboard-demo" / "runs").iterdir())
    assert len(runs) == 1
    assert verify_file(runs[0] / "audit.jsonl").ok
    report = runs[0] / "report.md"
    assert report.exists()
    assert f"Report:    {report.relative_to(tmp_path)}" in out.splitlines()
