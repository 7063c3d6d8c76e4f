"""What offboard writes is the user's alone, whatever the umask: run folders 0700; the audit log,
signed heads, state, plan copy, reports, evidence, checklist and documents 0600 (the machine's exit
locks excepted: 0666 in a 1777 folder). Temp files are created exclusively and never through a
symbolic link."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from offboard import rundir
from offboard.errors import BadInput
from offboard.proof.audit import AuditLog
from tests.e2e.test_cli_over_http import offboard_exe


def modes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): oct(stat.S_IMODE(p.lstat().st_mode)) for p in [root, *root.rglob("*")]}


@pytest.mark.e2e
@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_a_whole_run_is_private_to_the_user_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFBOARD_") or k == "OFFBOARD_LOCK_DIR"}
    env.update(PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring", XDG_CACHE_HOME=str(tmp_path / "cache"),
               OFFBOARD_LOCK_DIR=str(tmp_path / "machine-locks"))
    result = subprocess.run([*offboard_exe(), "demo"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=180, check=False, umask=umask)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = modes(tmp_path / "offboard-demo" / "runs")
    (run,) = [p for p in (tmp_path / "offboard-demo" / "runs").iterdir()]
    inside = {n: m for n, m in runs.items() if n.startswith(run.name + "/")}
    for name in ("audit.jsonl", "signatures.jsonl", "state.json", "plan.json", "report.md", "report.html",
                 "manual-checklist.md", "closure-note.md", "evidence/manifest.json", "evidence/huntress/agents.json",
                 "evidence/blumira/blumira-exit-request.eml", "documents/blumira/blumira-exit-complete.eml"):
        assert inside.get(f"{run.name}/{name}") == "0o600", (name, inside)
    assert runs[run.name] == "0o700" and runs["."] == "0o700"
    assert {m for n, m in inside.items() if (run / n.split("/", 1)[1]).is_dir()} == {"0o700"}
    assert {m for n, m in inside.items() if (run / n.split("/", 1)[1]).is_file()} == {"0o600"}
    # The exit locks are the machine's: a sticky folder every user may create in, files every user may
    # open to lock (they hold only the holder's name); one per vendor.
    locks = modes(tmp_path / "machine-locks")
    assert locks.pop(".") == "0o1777" and len(locks) == 2 and set(locks.values()) == {"0o666"}
    saved = tmp_path / "offboard-demo" / "exit.plan.json"
    assert oct(stat.S_IMODE(saved.stat().st_mode)) == "0o600"


def test_a_symlink_planted_as_a_run_log_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"")
    run = tmp_path / "run"
    run.mkdir()
    (run / "audit.jsonl").symlink_to(victim)
    with pytest.raises(BadInput, match=r"audit\.jsonl is a symbolic link"):
        AuditLog(run / "audit.jsonl", "20261124T000000000Z-abcdef")
    assert victim.read_bytes() == b""


def test_a_temp_name_taken_by_a_planted_symlink_is_never_written_through(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    target = tmp_path / "run" / "report.md"
    target.parent.mkdir()
    names = iter(["planted", "fresh"])
    monkeypatch.setattr(rundir.secrets, "token_hex", lambda _n: next(names))
    (target.parent / ".report.md.planted.tmp").symlink_to(victim)
    rundir.atomic_write_text(target, "the report")
    assert victim.read_text() == "keep"
    assert target.read_text() == "the report" and oct(stat.S_IMODE(target.stat().st_mode)) == "0o600"
    assert (target.parent / ".report.md.planted.tmp").is_symlink()  # left as found, not followed
