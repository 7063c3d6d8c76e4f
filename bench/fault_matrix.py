"""Fault matrix: whole two-vendor exits (Huntress + Blumira) against the sandboxes over real
HTTP on 127.0.0.1, each under one kind of fault, resumed until done, then counted.

    .venv/bin/python -m bench.fault_matrix [--runs N] [--agents N] [--seed S]

Faults come from the sandboxes' injection (429 storms with and without Retry-After, 5xx
bursts, slow replies, a vendor that stays down) and from a chaos transport at offboard's
httpx seam (replies lost after the request was sent — read timeouts and connection resets —
and connections refused before it was). The kill scenario runs `offboard apply` as a
process and kills it with SIGKILL at a seeded point, then resumes it.

Counted, per scenario: runs, resumes, faults injected, writes that reached a vendor more than
once for the same object (must be 0), planned removals not done at the end (must be 0),
audit chains broken (must be 0), and canary secrets found in any output or file (must be 0).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from offboard import connectors, engine
from offboard.config import load_config
from offboard.connectors.sandboxing import Fault, SandboxBase, serve
from offboard.errors import ExitCode, VendorError
from offboard.plan import read_plan
from offboard.proof.audit import read_records, verify_file
from offboard_blumira.sandbox import API_PREFIX, CUSTOMER_ACCOUNT, KEEP_USER, TOKEN_PATH, BlumiraSandbox
from offboard_huntress.sandbox import HuntressSandbox

SCALE = 0.02  # Huntress's 60 s window lasts 1.2 s; Blumira's 1 s, 20 ms
H_KEY, H_SECRET = "hk_matrix_canary_key", "hs_matrix_canary_secret_5e2a"
B_ID, B_SECRET = "blumira-matrix-canary", "blu_matrix_canary_secret_77d1"
CANARIES = (H_SECRET, B_SECRET)
LAB = engine.Overrides(preflight="fault matrix: the sandbox's isolated host is part of the exercise")
MUST_BE_ZERO = ("sent_twice", "lost", "chains_broken", "secrets_leaked")


class ChaosTransport(httpx.BaseTransport):
    """At offboard's transport seam: refuse some connections before sending (safe to resend),
    and lose some replies after the vendor got the request (a read timeout, a reset)."""

    def __init__(self, rng: random.Random, before: float, after: float) -> None:
        self.inner = httpx.HTTPTransport()
        self.rng = rng
        self.before = before
        self.after = after
        self.injected = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.rng.random() < self.before:
            self.injected += 1
            raise httpx.ConnectError("chaos: connection refused", request=request)
        response = self.inner.handle_request(request)
        if self.rng.random() < self.after:
            response.read()
            response.close()
            self.injected += 1
            if self.rng.random() < 0.5:
                raise httpx.ReadTimeout("chaos: the reply never came", request=request)
            raise httpx.RemoteProtocolError("chaos: connection reset by peer", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


@dataclass
class Scenario:
    name: str
    huntress: Callable[[random.Random], list[Fault]] = lambda _r: []
    blumira: Callable[[random.Random], list[Fault]] = lambda _r: []
    chaos: tuple[float, float] | None = None  # (before, after) probabilities per request
    down_after: int | None = None  # both vendors answer 503 to everything after this many requests
    kill: bool = False
    retry_after: bool = True


def _storm(method: str, prefix: str, status: int, rng: random.Random, retry_after: str | None = None,
           times: int = 4) -> Fault:
    return Fault(method=method, path_prefix=prefix, status=status, times=times, retry_after=retry_after,
                 after=rng.randint(0, 12))


SCENARIOS = [
    Scenario("429 storm with Retry-After",
             huntress=lambda r: [_storm("GET", "/v1/", 429, r, "0.05"), _storm("DELETE", "/v1/agents/", 429, r,
                                                                               "0.05")],
             blumira=lambda r: [_storm("GET", API_PREFIX, 429, r, "0.02")]),
    Scenario("429 storm without Retry-After",
             huntress=lambda r: [_storm("GET", "/v1/", 429, r), _storm("DELETE", "/v1/agents/", 429, r)],
             blumira=lambda r: [_storm("GET", API_PREFIX, 429, r)], retry_after=False),
    Scenario("500/502/503 bursts",
             huntress=lambda r: [_storm("GET", "/v1/", r.choice([500, 502, 503]), r, times=3),
                                 _storm("DELETE", "/v1/agents/", r.choice([500, 502, 503]), r, times=3),
                                 _storm("DELETE", "/v1/memberships/", 502, r, times=1)],
             blumira=lambda r: [_storm("GET", API_PREFIX, 503, r, times=3),
                                _storm("DELETE", f"{API_PREFIX}/msp/webhooks/", 502, r, times=1)]),
    Scenario("slow replies",
             huntress=lambda r: [Fault(path_prefix="/v1/", status=None, delay=0.02, times=40, after=r.randint(0, 9))],
             blumira=lambda r: [Fault(path_prefix=API_PREFIX, status=None, delay=0.02, times=20)]),
    Scenario("replies lost (read timeouts, resets)", chaos=(0.0, 0.06)),
    Scenario("connections refused and reset", chaos=(0.05, 0.03)),
    Scenario("vendor down, resumed later", down_after=60),
    Scenario("kill -9 mid-run, resumed", kill=True),
]


@dataclass
class Row:
    scenario: str
    runs: int = 0
    resumes: int = 0
    faults: int = 0
    sent_twice: int = 0
    lost: int = 0
    chains_broken: int = 0
    secrets_leaked: int = 0
    notes: list[str] = field(default_factory=list)


def _config(directory: Path, hurl: str, burl: str) -> Path:
    path = directory / "config.toml"
    path.write_text(
        '[customer]\nname = "Acme Dental"\nend_of_service = 2026-12-31\n\n[run]\nruns_dir = "runs"\n\n'
        f'[huntress]\norganization_id = 42\nbase_url = "{hurl}"\nrate_window_seconds = {60 * SCALE}\n\n'
        f'[blumira]\naccount_id = "{CUSTOMER_ACCOUNT}"\nbase_url = "{burl}{API_PREFIX}"\n'
        f'token_url = "{burl}{TOKEN_PATH}"\nrate_window_seconds = {SCALE}\nkeep_users = ["{KEEP_USER}"]\n')
    return path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFBOARD_")}
    env.update(OFFBOARD_HUNTRESS_API_KEY=H_KEY, OFFBOARD_HUNTRESS_API_SECRET=H_SECRET,
               OFFBOARD_BLUMIRA_CLIENT_ID=B_ID, OFFBOARD_BLUMIRA_CLIENT_SECRET=B_SECRET,
               PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")
    return env


def _offboard() -> list[str]:
    script = Path(sys.executable).parent / "offboard"
    return [str(script)] if script.exists() else [sys.executable, "-m", "offboard.cli.app"]


@contextmanager
def _sandboxes(agents: int) -> Iterator[tuple[HuntressSandbox, BlumiraSandbox, str, str]]:
    h = HuntressSandbox(time_scale=SCALE, customer_agents=agents, extra_credentials={H_KEY: H_SECRET})
    b = BlumiraSandbox(time_scale=SCALE, extra_clients={B_ID: B_SECRET})
    with serve(h.app) as hurl, serve(b.app) as burl:
        yield h, b, hurl, burl


def _sent_twice(sandbox: SandboxBase) -> int:
    """Writes that reached the vendor's route more than once for the same object."""
    reached = Counter(r.path for r in sandbox.requests if r.method in ("DELETE", "PATCH", "POST")
                      and not r.gated and not r.path.startswith(SandboxBase.CONTROL) and r.path != TOKEN_PATH)
    return sum(n - 1 for n in reached.values() if n > 1)


def run_once(sc: Scenario, seed: int, agents: int, workdir: Path) -> Row:
    rng = random.Random(seed)
    row = Row(sc.name, runs=1)
    outputs: list[str] = []
    with _sandboxes(agents) as (h, b, hurl, burl):
        h.send_retry_after = b.send_retry_after = sc.retry_after
        h.faults += sc.huntress(rng)
        b.faults += sc.blumira(rng)
        if sc.down_after is not None:
            after = sc.down_after + rng.randint(0, 40)
            h.faults.append(Fault(path_prefix="/v1/", status=503, times=10**6, after=after))
            b.faults.append(Fault(path_prefix=API_PREFIX, status=503, times=10**6, after=after // 2))
        injected = [(f, f.times) for f in (*h.faults, *b.faults)]
        config = _config(workdir, hurl, burl)
        cfg = load_config(config, {n: c.settings_model for n, c in connectors.installed().items()})
        creds = {"huntress": {"api_key": SecretStr(H_KEY), "api_secret": SecretStr(H_SECRET)},
                 "blumira": {"client_id": SecretStr(B_ID), "client_secret": SecretStr(B_SECRET)}}
        planned = subprocess.run([*_offboard(), "plan", "-c", str(config), "-o", str(workdir / "exit.plan.json"),
                                  "--detailed-exitcode"],
                                 env=_env(), capture_output=True, text=True, timeout=300, check=False)
        outputs.append(planned.stdout + planned.stderr)
        if planned.returncode != ExitCode.PLAN_HAS_CHANGES:
            raise RuntimeError(f"{sc.name}: plan exited {planned.returncode}: {planned.stderr.strip()}")
        plan = read_plan(workdir / "exit.plan.json")
        if sc.kill:
            code = _killed_then_resumed(workdir, config, h, rng, row, outputs)
        else:
            code = _in_process(sc, cfg, plan, creds, rng, row, h, b)
        row.faults += sum(before - f.times for f, before in injected)
        if code not in (ExitCode.OK, ExitCode.MANUAL_PENDING):
            row.notes.append(f"ended with exit {code}")
        row.sent_twice = _sent_twice(h) + _sent_twice(b)
        runs = sorted(p for p in (workdir / "runs").iterdir() if p.is_dir())
        for run in runs:
            check = verify_file(run / "audit.jsonl")
            row.chains_broken += 0 if check.ok else 1
        last = {r.get("action_id"): r["event"] for run in runs for r in read_records(run / "audit.jsonl")
                if r.get("action_id") and r["event"].startswith("action.")}
        row.lost = sum(1 for a in plan.api_actions() if a.destructive and last.get(a.id) != "action.succeeded")
        texts = outputs + [p.read_text(errors="replace") for p in workdir.rglob("*") if p.is_file()]
        row.secrets_leaked = sum(1 for t in texts for c in CANARIES if c in t)
    return row


def _in_process(sc: Scenario, cfg: Any, plan: Any, creds: Any, rng: random.Random, row: Row,
                h: HuntressSandbox, b: BlumiraSandbox) -> int:
    chaos: list[ChaosTransport] = []

    def transports() -> dict[str, httpx.BaseTransport] | None:
        if sc.chaos is None:
            return None
        made = {n: ChaosTransport(random.Random(rng.random()), *sc.chaos) for n in ("huntress", "blumira")}
        chaos.extend(made.values())
        return dict(made)

    try:
        with engine.open_sessions(cfg, transports=transports(), creds=creds) as sessions:
            result = engine.apply(plan, cfg, sessions, overrides=LAB)
    except VendorError:  # down before the run began: nothing was done, so it is applied again
        h.faults.clear()
        b.faults.clear()
        row.resumes += 1
        with engine.open_sessions(cfg, transports=transports(), creds=creds) as sessions:
            result = engine.apply(plan, cfg, sessions, overrides=LAB)
    code, run_id = result.exit_code, result.run.run_id
    for _ in range(6):
        gates = _unconfirmed_gates(result.run.audit_path)
        if code != ExitCode.FAILED and not gates:
            break
        h.faults.clear()  # the vendor is back
        b.faults.clear()
        row.resumes += 1
        with engine.open_sessions(cfg, transports=transports(), creds=creds) as sessions:
            for item in gates:  # the technician sent the notification the vendor asks for first
                engine.confirm(run_id, item, "fault matrix", "sent", cfg, sessions)
            code = engine.resume(run_id, cfg, sessions, overrides=LAB).exit_code
    row.faults += sum(c.injected for c in chaos)
    return int(code)


def _killed_then_resumed(workdir: Path, config: Path, h: HuntressSandbox, rng: random.Random, row: Row,
                         outputs: list[str]) -> int:
    h.faults.append(Fault(method="DELETE", path_prefix="/v1/", status=None, delay=0.02, times=10**6))
    proc = subprocess.Popen([*_offboard(), "apply", str(workdir / "exit.plan.json"), "-c", str(config),
                             "--override-preflight", "fault matrix"], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    target = rng.randint(1, max(2, len([a for a in h.agents_of(42)]) - 1))
    deadline = time.monotonic() + 120
    while len(h.deletes()) < target and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        row.faults += 1
    out, err = proc.communicate(timeout=30)
    outputs.append(out + err)
    time.sleep(0.1)
    h.faults.clear()
    run = sorted(p for p in (workdir / "runs").iterdir() if p.is_dir())[-1]
    row.resumes += 1
    resumed = subprocess.run([*_offboard(), "apply", "--resume", run.name, "-c", str(config),
                              "--override-preflight", "fault matrix"], env=_env(), capture_output=True, text=True,
                             timeout=300, check=False)
    outputs.append(resumed.stdout + resumed.stderr)
    gates = _unconfirmed_gates(run / "audit.jsonl")
    for item in gates:
        confirmed = subprocess.run([*_offboard(), "confirm", item, "--by", "fault matrix", "--note", "sent",
                                    "--run", run.name, "-c", str(config)], env=_env(), capture_output=True,
                                   text=True, timeout=300, check=False)
        outputs.append(confirmed.stdout + confirmed.stderr)
    if gates:
        row.resumes += 1
        resumed = subprocess.run([*_offboard(), "apply", "--resume", run.name, "-c", str(config),
                                  "--override-preflight", "fault matrix"], env=_env(), capture_output=True,
                                 text=True, timeout=300, check=False)
        outputs.append(resumed.stdout + resumed.stderr)
    return resumed.returncode


def _unconfirmed_gates(audit: Path) -> list[str]:
    """Items that hold a vendor back until a person confirms them (e.g. notify Blumira first)."""
    records = list(read_records(audit))
    confirmed = {r.get("action_id") for r in records if r["event"] == "manual.confirmed"}
    return list(dict.fromkeys(r["action_id"] for r in records
                              if r["event"] == "vendor.held" and r["action_id"] not in confirmed))


def run_matrix(runs: int, agents: int, seed: int, scenarios: list[Scenario] | None = None) -> list[Row]:
    rows = []
    for n, sc in enumerate(scenarios or SCENARIOS):
        total = Row(sc.name)
        for i in range(runs):
            workdir = Path(tempfile.mkdtemp(prefix="offboard-matrix-"))
            try:
                one = run_once(sc, seed * 1000 + n * 100 + i, agents, workdir)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            for f in ("runs", "resumes", "faults", "sent_twice", "lost", "chains_broken", "secrets_leaked"):
                setattr(total, f, getattr(total, f) + getattr(one, f))
            total.notes += one.notes
        rows.append(total)
    return rows


def table(rows: list[Row]) -> str:
    head = ("| fault | runs | resumes | faults injected | acted twice | lost | chains broken | secrets leaked |\n"
            "|---|---|---|---|---|---|---|---|")
    body = [f"| {r.scenario} | {r.runs} | {r.resumes} | {r.faults} | {r.sent_twice} | {r.lost} | "
            f"{r.chains_broken} | {r.secrets_leaked} |" for r in rows]
    total = Row("**all**")
    for r in rows:
        for f in ("runs", "resumes", "faults", "sent_twice", "lost", "chains_broken", "secrets_leaked"):
            setattr(total, f, getattr(total, f) + getattr(r, f))
    body.append(f"| **all** | {total.runs} | {total.resumes} | {total.faults} | {total.sent_twice} | {total.lost} | "
                f"{total.chains_broken} | {total.secrets_leaked} |")
    return "\n".join([head, *body])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per fault (default 3)")
    parser.add_argument("--agents", type=int, default=36, help="the customer's Huntress agents (default 36)")
    parser.add_argument("--seed", type=int, default=1, help="seed for fault placement (default 1)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    rows = run_matrix(args.runs, args.agents, args.seed)
    print(table(rows))
    print(f"\n{sum(r.runs for r in rows)} runs in {time.monotonic() - started:.0f} s "
          f"(seed {args.seed}, {args.agents} agents, sandbox clock x{1 / SCALE:.0f})")
    for r in rows:
        for note in r.notes:
            print(f"note: {r.scenario}: {note}")
    bad = [r for r in rows if any(getattr(r, f) for f in MUST_BE_ZERO)]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
