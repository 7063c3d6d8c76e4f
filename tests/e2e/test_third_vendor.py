"""A third vendor, outside this codebase's packages (issue 24): examples/offboard-example-vendor is
installed next to offboard into a fresh virtual environment (no system site-packages: a missing
dependency fails here), and docs/writing-a-connector.md's commands run AS WRITTEN against its
sandbox, served by `offboard sandbox serve` from that environment: plan, apply, confirm, verify and
audit verify through the CLI, with nothing in src/offboard naming the vendor."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_rehearsal import commands, stop, wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "writing-a-connector.md"


def sh_block(marker: str) -> str:
    match = re.search(rf"<!-- {marker} -->\s*```sh\n(.*?)\n```", PAGE.read_text(), re.DOTALL)
    assert match, f"no ```sh block under <!-- {marker} --> in {PAGE.name}"
    return match.group(1)


def shell(home: Path) -> dict[str, str]:
    """A technician's shell with no offboard on PATH until the page's venv is activated, no offboard
    settings, a home (and pip cache) of its own; pip's own configuration (where its wheels are) kept."""
    ours = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OFFBOARD_", "PYTHON_KEYRING", "VIRTUAL_ENV")) and k not in ("XDG_CACHE_HOME", "HOME")}
    path = [p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p and p != ours]
    env.update(PATH=os.pathsep.join(path), HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), COLUMNS="160")
    return env


def run_block(marker: str, cwd: Path, env: dict[str, str], status: Path, timeout: float
              ) -> tuple[list[tuple[str, int]], list[tuple[str, int]], subprocess.CompletedProcess[str]]:
    """Every command of a block in one shell, as a person types them; each one's exit code."""
    steps = commands(sh_block(marker))
    script = "".join(f"{command}\necho \"{n} $?\" >> {status}\n" for n, (command, _) in enumerate(steps))
    done = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    codes = dict(line.split() for line in status.read_text().splitlines())
    return [(c, int(codes.get(str(n), -1))) for n, (c, _) in enumerate(steps)], steps, done


def test_the_example_vendor_installs_beside_offboard_and_exits_through_the_cli(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "offboard").symlink_to(ROOT)  # the page's "folder holding your clone of offboard"
    env = shell(tmp_path / "home")

    got, want, installed = run_block("example-install", work, env, tmp_path / "install.status", timeout=600)
    assert got == want, installed.stdout[-4000:] + installed.stderr[-4000:]
    assert re.search(r"connectors: [a-z, ]*\bexample\b", installed.stdout), installed.stdout  # its entry point
    assert "include-system-site-packages = false" in (work / "example-venv" / "pyvenv.cfg").read_text()

    (serve_command, _), = commands(sh_block("example-serve"))
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        serve = subprocess.Popen(["bash", "-c", f". example-venv/bin/activate && exec {serve_command}"], cwd=work,
                                 env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(work / "example" / "sandbox.env", serve, log)
        sandbox_env = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1)
                           for line in (work / "example" / "sandbox.env").read_text().splitlines()
                           if line.startswith("export "))
        url, token = sandbox_env["SANDBOX_EXAMPLE_URL"], sandbox_env["OFFBOARD_EXAMPLE_API_TOKEN"]
        got, want, done = run_block("example-steps", work, env, tmp_path / "steps.status", timeout=300)
        assert got == want, done.stdout[-4000:] + done.stderr[-4000:]
        assert "3 removal(s) by API, 1 evidence export(s), 1 manual item(s)" in done.stdout
        assert "Service stopped" in done.stdout and "chain intact" in done.stdout

        # At the vendor: the customer's three devices retired, each by one DELETE; the neighbour's untouched.
        sent = httpx.get(f"{url}/_sandbox/log", timeout=10).json()
        deletes = [(r["method"], r["path"], r["status"]) for r in sent
                   if r["method"] != "GET" and not r["path"].startswith("/_sandbox/")]
        assert deletes == [("DELETE", f"/v1/devices/dev-{n}", 204) for n in (101, 102, 103)]
        auth = {"Authorization": f"Bearer {token}"}
        left = {c: httpx.get(f"{url}/v1/devices", params={"customer_id": c}, headers=auth, timeout=10).json()
                for c in ("cust-acme", "cust-globex")}
        assert left["cust-acme"]["devices"] == [] and len(left["cust-globex"]["devices"]) == 2
    finally:
        code = stop(serve)
    assert code == 0, log.read_text()

    run, = (work / "example" / "runs").iterdir()
    events = [json.loads(line)["event"] for line in (run / "audit.jsonl").read_text().splitlines()]
    assert events.count("action.succeeded") == 4 and "manual.confirmed" in events and "run.closed" in events
    assert json.loads((run / "evidence" / "example" / "devices.json").read_text())[0]["customer_id"] == "cust-acme"
    written = [p.read_text(errors="replace") for p in (work / "example").rglob("*") if p.is_file()
               and p.name != "sandbox.env"]
    assert written and not [t for t in written if token in t]  # the API token reaches no file of the run
