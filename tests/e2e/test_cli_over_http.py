"""End to end: the `offboard` entry point in a subprocess, the sandbox under uvicorn on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from offboard.connectors.sandboxing import serve
from offboard_huntress.sandbox import CUSTOMER_ORG, NEIGHBOUR_ORG, Fault, HuntressSandbox
from tests.conftest import write_config
from tests.polling import until

pytestmark = pytest.mark.e2e

CANARY_KEY = "hk_canary_key_e2e_51c3"
CANARY_SECRET = "hs_canary_secret_e2e_9f8d27"
SCALE = 0.02  # a 60 s window lasts 1.2 s: the limiter really paces this run


def offboard_exe() -> list[str]:
    script = Path(sys.executable).parent / "offboard"
    if script.exists():
        return [str(script)]
    found = shutil.which("offboard")
    assert found, "the offboard console script is not installed (pip install -e .)"
    return [found]


@dataclass
class Env:
    sandbox: HuntressSandbox
    url: str
    dir: Path
    config: Path

    def run(self, *args: str, secret: str = CANARY_SECRET,
            environ: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``environ``: more variables (e.g. another XDG_CACHE_HOME, as another user's shell has)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OFFBOARD_") or k == "OFFBOARD_LOCK_DIR"}
        env.update(OFFBOARD_HUNTRESS_API_KEY=CANARY_KEY, OFFBOARD_HUNTRESS_API_SECRET=secret,
                   PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring", COLUMNS="160", **(environ or {}))
        return subprocess.run([*offboard_exe(), *args], cwd=self.dir, env=env, capture_output=True,
                              text=True, timeout=120, check=False)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OFFBOARD_") or k == "OFFBOARD_LOCK_DIR"}
        env.update(OFFBOARD_HUNTRESS_API_KEY=CANARY_KEY, OFFBOARD_HUNTRESS_API_SECRET=CANARY_SECRET,
                   PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")
        return subprocess.Popen([*offboard_exe(), *args], cwd=self.dir, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def run_dirs(self) -> list[Path]:
        runs = self.dir / "runs"
        return sorted(runs.iterdir()) if runs.exists() else []


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    sandbox = HuntressSandbox(time_scale=SCALE, extra_credentials={CANARY_KEY: CANARY_SECRET})
    with serve(sandbox.app) as url:
        yield Env(sandbox, url, tmp_path, write_config(tmp_path, url, window=60 * SCALE))


def test_the_whole_runbook_through_the_cli_plan_apply_confirm_status_verify_audit(env: Env) -> None:
    neighbour = {a["id"] for a in env.sandbox.agents_of(NEIGHBOUR_ORG)}
    neighbour_members = env.sandbox.memberships_of(NEIGHBOUR_ORG)

    dry = env.run("plan", "--detailed-exitcode")
    assert dry.returncode == 10, dry.stderr
    assert "42 removal(s) by API, 9 evidence export(s), 13 manual item(s)" in dry.stdout
    assert "Nothing has been changed" in dry.stdout
    assert {r.method for r in env.sandbox.requests} == {"GET"}

    saved = env.run("plan", "-o", "exit.plan.json")
    assert saved.returncode == 0 and (env.dir / "exit.plan.json").exists()
    manual_ids = [a["id"] for v in json.loads((env.dir / "exit.plan.json").read_text())["vendors"]
                  for s in v["steps"] for a in s["actions"] if a["kind"] == "manual"]
    assert len(manual_ids) == 13

    blocked = env.run("apply", "exit.plan.json")
    assert blocked.returncode == 4, blocked.stderr
    assert "isolated" in blocked.stdout and env.sandbox.writes() == []

    applied = env.run("apply", "exit.plan.json", "--override-preflight", "incident 503 handled by phone")
    assert applied.returncode == 3, applied.stdout + applied.stderr
    assert "42 removed" in applied.stdout and "9 evidence export(s)" in applied.stdout
    assert "manual item(s) waiting for a person" in applied.stderr
    assert env.sandbox.agents_of(CUSTOMER_ORG) == []
    assert {a["id"] for a in env.sandbox.agents_of(NEIGHBOUR_ORG)} == neighbour
    assert env.sandbox.memberships_of(NEIGHBOUR_ORG) == neighbour_members
    assert len(env.sandbox.memberships_of(None)) == 2  # account-level memberships are never touched
    assert [r.status for r in env.sandbox.requests if r.status == 429] == []  # the limiter kept under 60/window
    run = env.run_dirs()[-1]

    pending = env.run("status")
    assert pending.returncode == 3 and "manual-pending" in pending.stdout

    refused = env.run("confirm", "huntress.itdr.unmap-tenant", "--by", "J. Doe", "--note", "CTO approved")
    assert refused.returncode == 1 and "not confirmed" in refused.stderr

    for item in ("itdr.unmap-tenant", "siem.disconnect-sources", "sat.close-campaigns"):
        httpx.post(f"{env.url}/_sandbox/portal/{item}")  # the person at the portal
    for n, item in enumerate(manual_ids, start=1):
        done = env.run("confirm", item, "--by", "J. Doe", "--note", f"done, see ticket PSA-1 ({n})")
        assert done.returncode == 0, done.stdout + done.stderr

    status = env.run("status", "--run", run.name)
    assert status.returncode == 0, status.stdout
    assert "manual-pending" not in status.stdout and "confirmed" in status.stdout

    verified = env.run("verify")
    assert verified.returncode == 0 and "Service stopped" in verified.stdout
    by_run = env.run("verify", "--run", run.name)
    assert by_run.returncode == 0, by_run.stdout
    audit = env.run("audit", "verify", str(run / "audit.jsonl"))
    assert audit.returncode == 0 and "chain intact" in audit.stdout
    events = [json.loads(line) for line in (run / "audit.jsonl").read_text().splitlines()]
    names = [e["event"] for e in events]
    assert names.count("manual.confirmed") == 13 and names.count("manual.rejected") == 1
    assert "run.closed" in names and names[-1] == "verify.finished"
    confirmed = next(e for e in events if e["event"] == "manual.confirmed"
                     and e["action_id"] == "huntress.itdr.unmap-tenant")
    assert confirmed["detail"]["by"] == "J. Doe" and confirmed["detail"]["verified_by_api"] is True
    note = (run / "closure-note.md").read_text()
    assert "What we kept for you" in note and "incident reports, all statuses, with remediations" in note

    again = env.run("plan", "--detailed-exitcode")
    assert again.returncode == 0 and "0 removal(s)" in again.stdout


def test_verify_says_not_stopped_while_agents_remain(env: Env) -> None:
    result = env.run("verify")
    assert result.returncode == 1
    assert "Service NOT stopped" in result.stdout and "agents_count=36" in result.stdout


def test_kill_9_during_apply_then_resume_removes_each_agent_exactly_once(env: Env) -> None:
    assert env.run("plan", "-o", "exit.plan.json", "--detailed-exitcode").returncode == 10
    # Slow every DELETE so the kill lands mid-run, possibly with a DELETE in flight.
    env.sandbox.faults.append(Fault(method="DELETE", path_prefix="/v1/agents/", status=None, delay=0.05,
                                    times=10**6))
    proc = env.popen("apply", "exit.plan.json", "--override-preflight", "lab")
    until(lambda: len(env.sandbox.deletes()) >= 7 or proc.poll() is not None,
          what="apply's seventh DELETE (or its end)")
    assert proc.poll() is None, "apply finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    time.sleep(0.2)  # let a DELETE in flight land at the vendor, as it would for real
    env.sandbox.faults.clear()
    landed_before = len(env.sandbox.deletes())
    assert 7 <= landed_before < 36

    run = env.run_dirs()[-1]
    resumed = env.run("apply", "--resume", run.name)
    assert resumed.returncode == 3, resumed.stdout + resumed.stderr
    landed = Counter(r.path for r in env.sandbox.requests if r.method == "DELETE" and r.status in (202, 204))
    assert len([p for p in landed if re.fullmatch(r"/v1/agents/\d+", p)]) == 36
    assert set(landed.values()) == {1}
    assert env.sandbox.agents_of(CUSTOMER_ORG) == []
    check = env.run("audit", "verify", str(run / "audit.jsonl"))
    assert check.returncode == 0, check.stderr
    records = [json.loads(line) for line in (run / "audit.jsonl").read_text().splitlines()]
    done = Counter(r["action_id"] for r in records if r["event"] == "action.succeeded")
    assert len(done) == 51 and set(done.values()) == {1}


def test_a_changed_byte_in_the_audit_log_is_named_by_line(env: Env) -> None:
    env.run("plan", "-o", "exit.plan.json")
    assert env.run("apply", "exit.plan.json", "--override-preflight", "lab").returncode == 3
    log = env.run_dirs()[-1] / "audit.jsonl"
    lines = log.read_bytes().split(b"\n")
    lines[9] = lines[9].replace(b'"seq":10', b'"seq":11', 1) if b'"seq":10' in lines[9] else lines[9][:-2] + b" }"
    log.write_bytes(b"\n".join(lines))
    result = env.run("audit", "verify", str(log))
    assert result.returncode == 1
    assert "chain BROKEN at line 10" in result.stderr


BASIC = base64.b64encode(f"{CANARY_KEY}:{CANARY_SECRET}".encode()).decode()


class EchoingSandbox(HuntressSandbox):
    """A vendor whose error bodies echo the credentials the request carried (a debug field, the
    request's headers): the secret comes back in a reply offboard writes into its log, its report
    and its messages, so only the redactor stands between it and every output."""

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Any:
        if message.startswith("injected fault"):
            message += f" (request: Authorization: Basic {BASIC}; api_secret={CANARY_SECRET})"
        return super().error(status, message, headers)


def test_the_api_secret_appears_in_no_output_of_a_run_even_when_the_vendor_echoes_it(tmp_path: Path) -> None:
    sandbox = EchoingSandbox(time_scale=SCALE, extra_credentials={CANARY_KEY: CANARY_SECRET})
    with serve(sandbox.app) as url:
        env = Env(sandbox, url, tmp_path, write_config(tmp_path, url, window=60 * SCALE))
        outputs = [env.run("plan"), env.run("plan", "-o", "exit.plan.json")]
        sandbox.faults.append(Fault(method="DELETE", path_prefix="/v1/agents/", status=400))
        outputs += [env.run("apply", "exit.plan.json", "--override-preflight", "lab"), env.run("verify"),
                    env.run("verify", "--run", env.run_dirs()[-1].name),
                    env.run("plan", secret="hs_wrong_secret_value_123")]  # a refused key: the error path too
    assert outputs[2].returncode == 1, outputs[2].stderr  # the removal the vendor refused failed the run
    assert outputs[-1].returncode == 2 and "refused" in outputs[-1].stderr
    audit = (env.run_dirs()[-1] / "audit.jsonl").read_text()
    echoed = [line for line in audit.splitlines() if "injected fault" in line]
    assert echoed and all("[REDACTED]" in line for line in echoed)  # the echo reached the log, masked
    texts = [o.stdout + o.stderr for o in outputs]
    texts += [p.read_text(errors="replace") for p in env.dir.rglob("*") if p.is_file()]
    assert len(texts) > 8  # config, plan, audit, state, report, plan copy … were all read
    for text in texts:
        assert CANARY_SECRET not in text
        assert BASIC not in text
        assert "hs_wrong_secret_value_123" not in text
