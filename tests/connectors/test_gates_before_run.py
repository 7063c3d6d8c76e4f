"""Every gate that can be checked before the first write is checked before the run folder exists
(issue 15, friction 2): credentials that cannot make the planned writes, a signing key configured but
unreadable, a runs folder that cannot be written. `plan` shows each as blocking; `apply` refuses with
exit 4 and one line, before any run folder or write. And once a run has started, whatever stops it
on an error, the last line printed names the run and the exact command that continues it."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from offboard.cli import render
from offboard.connectors.sandboxing import serve
from offboard_blumira import sandbox as blu
from offboard_huntress.sandbox import (
    CUSTOMER_ORG,
    DEMO_KEY,
    DEMO_SECRET,
    READ_ONLY_KEY,
    READ_ONLY_SECRET,
    Fault,
    HuntressSandbox,
)
from tests.conftest import FAST, blumira_section, write_config
from tests.e2e.test_cli_over_http import offboard_exe
from tests.polling import until

OVERRIDE = ("--override-preflight", "lab: the sandbox's isolated host")


@dataclass
class Served:
    sandbox: HuntressSandbox
    url: str
    dir: Path
    config: Path

    @property
    def runs(self) -> list[Path]:
        runs = self.dir / "runs"
        return sorted(runs.iterdir()) if runs.exists() else []

    def edit(self, old: str, new: str) -> None:
        text = self.config.read_text()
        assert old in text
        self.config.write_text(text.replace(old, new))

    def run(self, *args: str) -> tuple[int, list[str]]:
        """The CLI in a subprocess, stdout and stderr in one stream as a log would hold them."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OFFBOARD_") or k == "OFFBOARD_LOCK_DIR"}
        env.update(OFFBOARD_HUNTRESS_API_KEY=DEMO_KEY, OFFBOARD_HUNTRESS_API_SECRET=DEMO_SECRET,
                   PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring", COLUMNS="200")
        done = subprocess.run([*offboard_exe(), *args], cwd=self.dir, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=120, check=False)
        return done.returncode, [line for line in done.stdout.splitlines() if line.strip()]


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    sandbox = HuntressSandbox(time_scale=FAST)
    with serve(sandbox.app) as url:
        monkeypatch.setenv("OFFBOARD_HUNTRESS_API_KEY", DEMO_KEY)
        monkeypatch.setenv("OFFBOARD_HUNTRESS_API_SECRET", DEMO_SECRET)
        monkeypatch.chdir(tmp_path)
        monkeypatch.setattr(render.out, "_width", 250)  # table cells unwrapped, so a phrase stays whole
        yield Served(sandbox, url, tmp_path, write_config(tmp_path, url))


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_a_read_only_account_key_blocks_in_the_plan_and_apply_refuses_before_any_run_folder_or_write(
        cli: Any, served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_KEY", READ_ONLY_KEY)
    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_SECRET", READ_ONLY_SECRET)
    planned = cli("plan", "-o", "exit.plan.json")
    assert planned.code == 0, planned.err
    (gate,) = [f for v in json.loads(Path("exit.plan.json").read_text())["vendors"] for f in v["findings"]
               if f["kind"] == "credentials"]
    assert gate["blocking"] is True and gate["overridable"] is False and gate["count"] == 42
    assert "account key" in gate["detail"] and "user-based" in gate["detail"]
    assert "yes, no override" in planned.out

    for extra in ((), OVERRIDE):  # no override passes it: every write would answer 403
        refused = cli("apply", "exit.plan.json", *extra)
        assert refused.code == 4, refused.out + refused.err
        line = one_line(refused.err)
        assert "stopped before the run started, nothing was done" in line
        assert "account key" in line and "DELETE /v1/" in line and "offboard auth set huntress" in line
    assert served.runs == [] and served.sandbox.writes() == []


def test_a_user_key_passes_the_credentials_gate(cli: Any, served: Served) -> None:
    planned = cli("plan", "-o", "exit.plan.json")
    (gate,) = [f for v in json.loads(Path("exit.plan.json").read_text())["vendors"] for f in v["findings"]
               if f["kind"] == "credentials"]
    assert gate["blocking"] is False and "user key of tech@sandbox-msp.example" in gate["detail"], planned.out
    assert cli("apply", "exit.plan.json", *OVERRIDE).code == 3
    assert served.sandbox.agents_of(CUSTOMER_ORG) == []


@pytest.mark.parametrize("signing", ['key_file = "missing-key.pem"', 'key_file = "not-a-key.pem"'])
def test_a_configured_signing_key_that_cannot_be_read_stops_apply_before_any_vendor_call(
        cli: Any, served: Served, signing: str) -> None:
    assert cli("plan", "-o", "exit.plan.json").code == 0
    (served.dir / "not-a-key.pem").write_text("-----BEGIN NOTHING-----\n")
    served.config.write_text(served.config.read_text() + f"\n[signing]\n{signing}\n")
    shown = cli("plan")
    assert "signing key" in shown.out and "yes, no override" in shown.out and "a run could not be signed" in shown.out
    served.sandbox.requests.clear()
    refused = cli("apply", "exit.plan.json", *OVERRIDE)
    assert refused.code == 4, refused.out + refused.err
    line = one_line(refused.err)
    assert "stopped before the run started" in line
    assert ("missing-key.pem does not exist" in line) or ("not-a-key.pem is not an unencrypted PEM" in line)
    assert served.runs == [] and served.sandbox.requests == []  # not one vendor call


@pytest.mark.parametrize("runs_dir", ["config.toml/runs", "a-file"])
def test_a_runs_folder_that_cannot_be_written_stops_apply_before_any_vendor_call(
        cli: Any, served: Served, runs_dir: str) -> None:
    assert cli("plan", "-o", "exit.plan.json").code == 0
    (served.dir / "a-file").write_text("")
    served.edit('runs_dir = "runs"', f'runs_dir = "{runs_dir}"')
    shown = cli("plan")
    assert "runs folder" in shown.out and "yes, no override" in shown.out
    served.sandbox.requests.clear()
    refused = cli("apply", "exit.plan.json", *OVERRIDE)
    assert refused.code == 4, refused.out + refused.err
    line = one_line(refused.err)
    assert f"runs folder {runs_dir}" in line and "[run] runs_dir in config.toml" in line
    assert served.sandbox.requests == []


def test_require_signature_refuses_an_unsigned_run_and_without_it_apply_warns(cli: Any, served: Served) -> None:
    assert cli("plan", "-o", "exit.plan.json").code == 0
    refused = cli("apply", "exit.plan.json", *OVERRIDE, "--require-signature")
    assert refused.code == 4 and "offboard keys init" in one_line(refused.err)
    assert served.runs == [] and served.sandbox.writes() == []
    warned = cli("apply", "exit.plan.json", *OVERRIDE)
    assert warned.code == 3
    assert "this run will not be signed" in warned.err and "offboard keys init" in warned.err
    assert not (served.runs[0] / "signatures.jsonl").exists()
    assert cli("keys", "init", "--key-file", "msp.pem").code == 0
    served.config.write_text(served.config.read_text() + '\n[signing]\nkey_file = "msp.pem"\n')
    bundled = cli("bundle", "--run", served.runs[0].name, "-o", "exit.tar.gz")
    assert bundled.code == 2 and "RUN_ID" not in bundled.err  # the hint names this run
    assert f"offboard verify --run {served.runs[0].name}" in one_line(bundled.err)


# -- once the run started: the last line names it and the exact command that continues it -------------


def last_line_resumes(served: Served, lines: list[str], config: str) -> str:
    (run,) = served.runs
    assert lines[-1].startswith(f"run {run.name} stopped before its end"), lines[-3:]
    command = lines[-1].split("continue it with: ", 1)[1]
    assert command == f"offboard apply --resume {run.name} -c {config}"
    return command


def test_refused_credentials_mid_run_end_with_the_run_and_its_resume_command(served: Served) -> None:
    served.run("plan", "-c", "config.toml", "-o", "exit.plan.json")
    served.sandbox.faults.append(Fault(method="DELETE", path_prefix="/v1/agents/", status=403, times=1, after=3))
    code, lines = served.run("apply", "exit.plan.json", "-c", str(served.config), *OVERRIDE)
    assert code == 2, lines
    assert any("HTTP 403" in line for line in lines[:-1])
    command = last_line_resumes(served, lines, str(served.config))
    code, lines = served.run(*shlex.split(command)[1:])  # the printed command, as printed
    assert code == 3, lines
    assert served.sandbox.agents_of(CUSTOMER_ORG) == []


def test_a_vendor_that_stays_down_mid_run_ends_with_the_run_and_its_resume_command(served: Served) -> None:
    served.run("plan", "-o", "exit.plan.json")
    served.sandbox.faults += [Fault(method="DELETE", path_prefix="/v1/agents/", status=503, times=1, after=2),
                              Fault(method="GET", path_prefix="/v1/agents/", status=503, times=10**6)]
    code, lines = served.run("apply", "exit.plan.json", "-c", "config.toml", *OVERRIDE)
    assert code == 1, lines
    (run,) = served.runs
    assert lines[-1] == (f"run {run.name} stopped before its end; once the cause above is fixed, continue it "
                         f"with: offboard apply --resume {run.name}")  # the default config: no -c needed
    served.sandbox.faults.clear()
    code, lines = served.run("apply", "--resume", run.name)
    assert code == 3, lines


def test_failed_actions_end_with_the_run_and_its_resume_command(served: Served, tmp_path: Path) -> None:
    other = tmp_path / "exit b.toml"
    other.write_text(served.config.read_text())
    served.run("plan", "-c", str(other), "-o", "exit.plan.json")
    served.sandbox.faults.append(Fault(method="DELETE", path_prefix="/v1/memberships/", status=409, times=2))
    code, lines = served.run("apply", "exit.plan.json", "-c", str(other), *OVERRIDE)
    assert code == 1, lines
    command = last_line_resumes(served, lines, shlex.quote(str(other)))
    code, lines = served.run(*shlex.split(command)[1:])
    assert code == 3, lines


@pytest.mark.parametrize(("scope", "read_only"), [("read", True), ("msp:read findings:read", True),
                                                  ("read write", False), (None, None)])
def test_a_blumira_token_scope_that_cannot_write_is_shown_in_the_plan(
        cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scope: str | None, read_only: bool | None) -> None:
    # Blumira refusing a write makes it a manual item (the exit still completes): a read-only
    # scope informs the plan, it does not block it.
    sandbox = blu.BlumiraSandbox(time_scale=FAST, token_scope=scope)
    with serve(sandbox.app) as url:
        monkeypatch.setenv("OFFBOARD_BLUMIRA_CLIENT_ID", blu.DEMO_CLIENT_ID)
        monkeypatch.setenv("OFFBOARD_BLUMIRA_CLIENT_SECRET", blu.DEMO_SECRET)
        config = write_config(tmp_path, huntress=False, blumira=blumira_section(url))
        planned = cli("plan", "-c", str(config), "-o", str(tmp_path / "exit.plan.json"))
    assert planned.code == 0, planned.err
    (gate,) = [f for v in json.loads((tmp_path / "exit.plan.json").read_text())["vendors"] for f in v["findings"]
               if f["kind"] == "credentials"]
    assert gate["blocking"] is False
    if read_only:
        assert gate["count"] == 1 and f"scope ({scope!r}) is read-only" in gate["detail"]
        assert "DELETE /msp/webhooks/wh-1" in gate["detail"] and "manual items" in gate["detail"]
    elif read_only is False:
        assert gate["count"] == 0 and "allows writes" in gate["detail"]
    else:
        assert gate["count"] == 0 and "names no scope" in gate["detail"]


def test_ctrl_c_mid_run_ends_with_the_run_and_its_resume_command(served: Served, tmp_path: Path) -> None:
    other = tmp_path / "acme.toml"
    other.write_text(served.config.read_text())
    served.run("plan", "-c", str(other), "-o", "exit.plan.json")
    served.sandbox.faults.append(Fault(method="DELETE", path_prefix="/v1/agents/", status=None, delay=0.05,
                                       times=10**6))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFBOARD_") or k == "OFFBOARD_LOCK_DIR"}
    env.update(OFFBOARD_HUNTRESS_API_KEY=DEMO_KEY, OFFBOARD_HUNTRESS_API_SECRET=DEMO_SECRET,
               PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")
    proc = subprocess.Popen([*offboard_exe(), "apply", "exit.plan.json", "-c", str(other), *OVERRIDE],
                            cwd=served.dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    until(lambda: len(served.sandbox.deletes()) >= 3 or proc.poll() is not None,
          what="apply's third DELETE (or its end)")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    lines = [line for line in out.splitlines() if line.strip()]
    last_line_resumes(served, lines, str(other))
