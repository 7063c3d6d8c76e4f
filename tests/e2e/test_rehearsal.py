"""Rehearse an exit (issue 15, friction 1): the docs' "Rehearse an exit" commands, run AS WRITTEN
(read from docs/rehearsal.md between its markers, as .ci/run reads the test command) in a fresh folder,
against `offboard sandbox serve` in its own process; and `offboard demo --keep`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.polling import until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = re.compile(r"#\s*exit (\d+)\b[^\"'`]*$")  # a trailing "# exit N" comment


def sh_block(marker: str) -> str:
    """The first ```sh block after ``<!-- marker -->`` in the rehearsal page."""
    text = (ROOT / "docs" / "rehearsal.md").read_text()
    match = re.search(rf"<!-- {marker} -->\s*```sh\n(.*?)\n```", text, re.DOTALL)
    assert match, f"no ```sh block under <!-- {marker} --> in docs/rehearsal.md"
    return match.group(1)


def commands(block: str) -> list[tuple[str, int]]:
    """Each command of a block (continued lines joined) and the exit code its comment promises (else 0)."""
    joined = block.replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        expected = EXPECTED.search(line)
        out.append((line, int(expected.group(1)) if expected else 0))
    return out


def environment(home: Path) -> dict[str, str]:
    """A technician's shell: the venv's bin on PATH, no offboard settings, a home of its own."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OFFBOARD_", "PYTHON_KEYRING")) and k not in ("XDG_CACHE_HOME", "HOME")}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
               HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), COLUMNS="160")
    return env


def wait_for(path: Path, proc: subprocess.Popen[bytes], log: Path, tries: int = 1200) -> None:
    until(lambda: path.exists() or proc.poll() is not None, what=f"{path} appearing", tries=tries, step=0.1,
          detail=log.read_text)
    assert path.exists(), f"it stopped (exit {proc.returncode}): {log.read_text()}"


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    work = tmp_path / "work"
    work.mkdir()
    yield work


def test_the_readmes_rehearsal_runs_as_written_against_sandbox_serve(folder: Path, tmp_path: Path) -> None:
    env = environment(tmp_path / "home")
    (serve_command, _), = commands(sh_block("rehearse-serve"))
    steps = commands(sh_block("rehearse-steps"))
    assert len(steps) >= 10 and any("bundle verify" in c for c, _ in steps)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        # --fast: the rehearsal page's real clock paces Huntress at 60 calls a minute, minutes per rehearsal.
        serve = subprocess.Popen(["bash", "-c", f"exec {serve_command} --fast"], cwd=folder, env=env,
                                 stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(folder / "rehearsal" / "sandbox.env", serve, log)
        status = tmp_path / "status"
        script = "".join(f"{command}\necho \"{n} $?\" >> {status}\n" for n, (command, _) in enumerate(steps))
        done = subprocess.run(["bash", "-c", script], cwd=folder, env=env, capture_output=True, text=True,
                              timeout=900, check=False)
        codes = dict(line.split() for line in status.read_text().splitlines())
        got = [(command, int(codes.get(str(n), -1))) for n, (command, _) in enumerate(steps)]
        assert got == steps, done.stdout[-4000:] + done.stderr[-4000:]
        assert "rehearsal/acme-exit.tar.gz: verified" in done.stdout  # bundle verify, with the MSP's key
        assert "the run ended in it" in done.stdout
    finally:
        code = stop(serve)
    printed = log.read_text()
    assert code == 0, printed
    assert "Sandboxes stopped." in printed
    assert "export OFFBOARD_HUNTRESS_API_KEY=hk_sandbox_demo_key" in printed
    assert "sandbox-only demo credentials" in printed
    config = (folder / "rehearsal" / "config.toml").read_text()
    assert "organization_id = 42" in config and 'key_file = "signing-key.pem"' in config


def test_the_batch_rehearsal_runs_as_written_against_sandbox_serve(folder: Path, tmp_path: Path) -> None:
    """docs/rehearsal.md's "Rehearse a batch" (issue 22): `sandbox serve --customers 3`, then the
    batch's commands as written."""
    env = environment(tmp_path / "home")
    (serve_command, _), = commands(sh_block("rehearse-batch-serve"))
    steps = commands(sh_block("rehearse-batch-steps"))
    assert any("batch apply" in c for c, _ in steps) and "--customers 3" in serve_command
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        serve = subprocess.Popen(["bash", "-c", f"exec {serve_command} --fast"], cwd=folder, env=env,
                                 stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(folder / "rehearsal-batch" / "sandbox.env", serve, log)
        status = tmp_path / "status"
        script = "".join(f"{command}\necho \"{n} $?\" >> {status}\n" for n, (command, _) in enumerate(steps))
        done = subprocess.run(["bash", "-c", script], cwd=folder, env=env, capture_output=True, text=True,
                              timeout=900, check=False)
        codes = dict(line.split() for line in status.read_text().splitlines())
        got = [(command, int(codes.get(str(n), -1))) for n, (command, _) in enumerate(steps)]
        assert got == steps, done.stdout[-4000:] + done.stderr[-4000:]
        said = done.stdout + done.stderr
        assert "Batch plan: 3 customer(s)" in said and "Blocks apply for 1 exit(s)" in said
        # a log's line per exit per step, timestamped (UTC) as single apply's are
        assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ customer-3: Huntress: 3\. Remove endpoint coverage "
                         r"\(EDR agents\) \(8 to do\)$", said, re.MULTILINE), said[-4000:]
        assert said.count("waiting for a person") >= 3
        # The portal steps for every customer, then each item confirmed in every exit: every exit verified.
        final = done.stdout[done.stdout.rindex("Batch "):]  # the last `batch status` table
        assert "3 verified" in final and "waiting for a person" not in final, final
        # Each customer is an exit of its own: its config, its run, its checklist (notify.sent confirmed).
        pending = subprocess.run(["bash", "-c", ". rehearsal-batch/sandbox.env && offboard status --pending "
                                  "-c rehearsal-batch/exits/customer-3.toml"], cwd=folder, env=env,
                                 capture_output=True, text=True, timeout=120, check=False)
        assert pending.returncode == 0 and "blumira.notify.sent" not in pending.stdout.split(), pending.stdout
    finally:
        code = stop(serve)
    assert code == 0, log.read_text()


def test_sandbox_serve_never_overwrites_a_config_it_did_not_write(folder: Path, tmp_path: Path) -> None:
    (folder / "rehearsal").mkdir()
    mine = folder / "rehearsal" / "config.toml"
    mine.write_text('[customer]\nname = "a real customer"\n')
    refused = subprocess.run(["offboard", "sandbox", "serve"], cwd=folder, env=environment(tmp_path / "home"),
                             capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2 and "never overwritten" in refused.stderr
    assert mine.read_text() == '[customer]\nname = "a real customer"\n'


def test_demo_keep_leaves_its_sandboxes_up_until_ctrl_c(folder: Path, tmp_path: Path) -> None:
    env = environment(tmp_path / "home")
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen(["offboard", "demo", "--keep"], cwd=folder, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        wait_for(folder / "offboard-demo" / "sandbox.env", demo, log, tries=3000)
        # The exited customer is still there to question: the service is stopped at both vendors.
        verified = subprocess.run(["bash", "-c", ". offboard-demo/sandbox.env && "
                                   "offboard verify -c offboard-demo/config.toml"], cwd=folder, env=env,
                                  capture_output=True, text=True, timeout=120, check=False)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "Service stopped" in verified.stdout
    finally:
        code = stop(demo)
    printed = log.read_text()
    assert code == 0, printed
    assert "export OFFBOARD_BLUMIRA_CLIENT_SECRET=blu_sandbox_client_secret_not_real" in printed
