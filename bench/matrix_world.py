"""What one fault-matrix run happens in, and what is counted after it.

A world: both sandboxes served over real HTTP on 127.0.0.1, a work folder holding the config,
the plans, the runs folder and offboard's machine-wide state (``XDG_CACHE_HOME``: locks and
rate-limit budgets), canary credentials, and every output offboard produced — each
subprocess's stdout and stderr, and for what runs in this process, what it printed, logged
(every logger, DEBUG up) or warned.

Counted from the sandboxes' request logs and the world's files: writes that reached a vendor's
handler twice, writes for anything offboard's own plan does not hold, planned removals not
done, audit chains that do not verify, and credentials found anywhere.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import logging
import os
import subprocess
import sys
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from offboard import connectors, engine
from offboard.config import ExitConfig, load_config
from offboard.connectors.sandboxing import Fault, Logged, SandboxBase, portal, serve
from offboard.errors import ExitCode, VendorError
from offboard.lifecycle import fold_actions
from offboard.plan import Plan, read_plan
from offboard.proof.audit import read_records, verify_file
from offboard.rundir import LOCK_DIR_ENV
from offboard_blumira import unknowns
from offboard_blumira.sandbox import API_PREFIX, CUSTOMER_ACCOUNT, KEEP_USER, TOKEN_PATH, BlumiraSandbox
from offboard_huntress.models import ISOLATED
from offboard_huntress.sandbox import ACCOUNT, CUSTOMER_ORG, HuntressSandbox

SCALE = 0.02  # Huntress's 60 s window lasts 1.2 s; Blumira's 1 s, 20 ms
H_KEY, H_SECRET = "hk_matrix_canary_key_3f9c", "hs_matrix_canary_secret_5e2a"
B_ID, B_SECRET = "blumira-matrix-canary-id-81b0", "blu_matrix_canary_secret_77d1"
# Every form a credential travels in: the key and secret, the Basic header's value, the
# client id and secret, and (per world) every OAuth token the Blumira sandbox issued.
CREDENTIAL_FORMS = {
    "Huntress API key": H_KEY,
    "Huntress API secret": H_SECRET,
    "Huntress Basic header": base64.b64encode(f"{H_KEY}:{H_SECRET}".encode()).decode(),
    "Blumira client id": B_ID,
    "Blumira client secret": B_SECRET,
    "Blumira client Basic form": base64.b64encode(f"{B_ID}:{B_SECRET}".encode()).decode(),
}
CREDENTIAL_ENV = ("OFFBOARD_HUNTRESS_API_KEY", "OFFBOARD_HUNTRESS_API_SECRET", "OFFBOARD_BLUMIRA_CLIENT_ID",
                  "OFFBOARD_BLUMIRA_CLIENT_SECRET")
# The reseller's account paths: the connector uses them when account_id is set, which also
# plans the subscription PATCH (auto_renew off), so every kind of Huntress write is sent.
HA = f"/v1/accounts/{ACCOUNT['id']}"
SUBSCRIPTION = 5001
DEVICES = f"{API_PREFIX}/msp/accounts/{CUSTOMER_ACCOUNT}/agents/devices/"
WEBHOOKS = f"{API_PREFIX}/msp/webhooks/"
LAB = engine.Overrides(preflight="fault matrix: the sandbox's isolated host is part of the exercise")
SCAN_CAP = 64 * 2**20  # a compressed file is searched in full up to this size unpacked


def config_text(hurl: str, burl: str, *, customer: str = "Acme Dental", runs_dir: str = "runs",
                signing: str = "") -> str:
    return (f'[customer]\nname = "{customer}"\nend_of_service = 2026-12-31\n\n'
            + (f'[signing]\nkey_file = "{signing}"\n\n' if signing else "")
            + f'[run]\nruns_dir = "{runs_dir}"\n\n'
            f'[huntress]\norganization_id = {CUSTOMER_ORG}\naccount_id = {ACCOUNT["id"]}\n'
            f'stop_renewing_subscriptions = [{SUBSCRIPTION}]\nbase_url = "{hurl}"\n'
            f'rate_window_seconds = {60 * SCALE}\n\n'
            f'[blumira]\naccount_id = "{CUSTOMER_ACCOUNT}"\nbase_url = "{burl}{API_PREFIX}"\n'
            f'token_url = "{burl}{TOKEN_PATH}"\nrate_window_seconds = {SCALE}\nkeep_users = ["{KEEP_USER}"]\n')


# The body field of Blumira's uninstall dispatch is unknown (offboard_blumira.unknowns): the product
# sends no dispatch until a maintainer settles it. The matrix settles it on both sides, as the
# connector's tests do, so that the dispatch path (an asynchronous write) is under fault too.
DISPATCH_FIELD = "settled_by_the_fault_matrix"
# `offboard` itself, with that one name settled first.
LAUNCH = ("import sys; from offboard_blumira import unknowns; unknowns.DISPATCH_ACTION_FIELD = sys.argv.pop(1); "
          "sys.argv[0] = 'offboard'; from offboard.cli.app import run; run()")


def offboard_command() -> list[str]:
    return [sys.executable, "-c", LAUNCH, DISPATCH_FIELD]


@dataclass
class World:
    """One pair of sandboxes, a work folder and a config; every output kept for the scan."""

    path: Path
    h: HuntressSandbox
    b: BlumiraSandbox
    hurl: str
    burl: str
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (where, text)
    outage: list[Fault] = field(default_factory=list)  # faults that keep a vendor down until it is back

    def vendor_back(self) -> None:
        """The outage ends; the other faults (each a bounded storm) stay until spent."""
        for sandbox in (self.h, self.b):
            sandbox.faults[:] = [f for f in sandbox.faults if f not in self.outage]

    @property
    def config(self) -> Path:
        return self.path / "config.toml"

    @property
    def plan_file(self) -> Path:
        return self.path / "exit.plan.json"

    def plan(self, config: Path | None = None, out: Path | None = None) -> Plan:
        out = out or self.plan_file
        code, said = self.offboard("plan", "-o", str(out), config=config)
        if code not in (ExitCode.OK, ExitCode.PLAN_HAS_CHANGES) or not out.exists():
            raise RuntimeError(f"offboard plan exited {code}: {said.strip()[-500:]}")
        return read_plan(out)

    def write_config(self, directory: Path | None = None, **kwargs: Any) -> Path:
        directory = directory or self.path
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "config.toml"
        path.write_text(config_text(self.hurl, self.burl, **kwargs))
        return path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OFFBOARD_")}
        env.update(zip(CREDENTIAL_ENV, (H_KEY, H_SECRET, B_ID, B_SECRET), strict=True))
        env[LOCK_DIR_ENV] = str(self.path / "locks")  # this world's sandbox exits, not the machine's
        env.update(PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring", XDG_CACHE_HOME=str(self.cache))
        return env

    @property
    def cache(self) -> Path:
        return self.path / "cache"

    def offboard(self, *args: str, config: Path | None = None) -> tuple[int, str]:
        """The CLI in this process (no interpreter start-up), as the subprocesses see it: the
        credentials in the environment, no keyring, this world's cache; what it says is kept."""
        import keyring.backends.null
        import keyring.core

        from offboard.cli.app import main

        saved = {k: os.environ.get(k) for k in CREDENTIAL_ENV}
        previous = getattr(keyring.core, "_keyring_backend", None)
        keyring.core.set_keyring(keyring.backends.null.Keyring())  # type: ignore[no-untyped-call]
        os.environ.update(zip(CREDENTIAL_ENV, (H_KEY, H_SECRET, B_ID, B_SECRET), strict=True))
        try:
            with self.captured(f"offboard {args[0]}"):
                code = main([*args, "-c", str(config or self.config)])
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            if previous is not None:
                keyring.core.set_keyring(previous)
        return code, self.outputs[-1][1]

    def popen(self, *args: str, config: Path | None = None,
              environ: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """``environ``: more variables (e.g. another XDG_CACHE_HOME, as another user's shell has)."""
        return subprocess.Popen([*offboard_command(), *args, "-c", str(config or self.config)],
                                env={**self.env(), **(environ or {})},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=self.path)

    def collect(self, proc: subprocess.Popen[str], what: str) -> int:
        out, err = proc.communicate(timeout=300)
        self.outputs.append((f"offboard {what} (stdout, stderr)", out + err))
        return int(proc.returncode)

    def load(self, config: Path | None = None) -> ExitConfig:
        return load_config(config or self.config, {n: c.settings_model for n, c in connectors.installed().items()})

    @staticmethod
    def creds() -> dict[str, dict[str, SecretStr]]:
        return {"huntress": {"api_key": SecretStr(H_KEY), "api_secret": SecretStr(H_SECRET)},
                "blumira": {"client_id": SecretStr(B_ID), "client_secret": SecretStr(B_SECRET)}}

    @contextlib.contextmanager
    def captured(self, what: str) -> Iterator[None]:
        """Run offboard in this process with everything it could say kept for the scan: stdout and
        stderr (rich consoles resolve them when they print), every logger from DEBUG up, warnings."""
        buffer = io.StringIO()
        handler = logging.StreamHandler(buffer)
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        root = logging.getLogger()
        level = root.level
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        logging.captureWarnings(True)
        cache = os.environ.get("XDG_CACHE_HOME")
        os.environ["XDG_CACHE_HOME"] = str(self.cache)
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
                warnings.simplefilter("always")
                yield
        finally:
            if cache is None:
                os.environ.pop("XDG_CACHE_HOME", None)
            else:
                os.environ["XDG_CACHE_HOME"] = cache
            logging.captureWarnings(False)
            root.removeHandler(handler)
            root.setLevel(level)
            self.outputs.append((f"{what} in process (stdout, stderr, logging, warnings)", buffer.getvalue()))

    def run_folders(self) -> list[Path]:
        return sorted(p for p in self.path.rglob("runs/*") if p.is_dir() and (p / "audit.jsonl").exists())


@contextlib.contextmanager
def world(path: Path, agents: int) -> Iterator[World]:
    h = HuntressSandbox(time_scale=SCALE, customer_agents=agents, extra_credentials={H_KEY: H_SECRET})
    # Blumira's catalog answers these credentials and offers an uninstall, and the dispatch's field
    # is settled: its exits dispatch one uninstall per device (asynchronous writes).
    b = BlumiraSandbox(time_scale=SCALE, extra_clients={B_ID: B_SECRET}, offers_uninstall=True, catalog_status=200,
                       dispatch_action_field=DISPATCH_FIELD)
    path.mkdir(parents=True, exist_ok=True)
    settled = unknowns.DISPATCH_ACTION_FIELD
    unknowns.DISPATCH_ACTION_FIELD = DISPATCH_FIELD
    locks = os.environ.get(LOCK_DIR_ENV)
    os.environ[LOCK_DIR_ENV] = str(path / "locks")  # offboard in this process too (exit_in_process)
    try:
        with serve(h.app) as hurl, serve(b.app) as burl:
            w = World(path, h, b, hurl, burl)
            w.write_config()
            yield w
    finally:
        unknowns.DISPATCH_ACTION_FIELD = settled
        if locks is None:
            os.environ.pop(LOCK_DIR_ENV, None)
        else:
            os.environ[LOCK_DIR_ENV] = locks


# -- counting -------------------------------------------------------------------------------


@dataclass
class Row:
    """One scenario's counts over its runs. ``None``: not measured by this scenario."""

    scenario: str
    runs: int = 0
    resumes: int = 0
    faults: int = 0
    sent_twice: int = 0
    lost: int | None = None
    outside: int = 0
    chains_broken: int = 0
    secrets_leaked: int = 0
    forged_accepted: int | None = None
    notes: list[str] = field(default_factory=list)
    acted: Counter[str] = field(default_factory=Counter)  # writes carried out whose reply a fault replaced, by kind
    acted_landed: int = 0  # of those, whose effect is there at the end
    kinds: Counter[str] = field(default_factory=Counter)  # kills, by the kind of write in flight
    to_person: int = 0  # writes left `unknown` (never resent) that the technician did in the portal
    tokens: int = 0  # OAuth tokens the Blumira sandbox issued (each searched for)
    searched: int = 0  # characters of files and outputs searched for credentials

    COUNTED = ("runs", "resumes", "faults", "sent_twice", "lost", "outside", "chains_broken", "secrets_leaked",
               "forged_accepted", "acted_landed", "to_person", "tokens", "searched")

    def add(self, other: Row) -> None:
        for name in self.COUNTED:
            mine, theirs = getattr(self, name), getattr(other, name)
            setattr(self, name, None if mine is None and theirs is None else (mine or 0) + (theirs or 0))
        self.notes += other.notes
        self.acted.update(other.acted)
        self.kinds.update(other.kinds)


def exit_in_process(w: World, plan: Plan, row: Row,
                    transports: Callable[[], Mapping[str, httpx.BaseTransport] | None] = lambda: None,
                    on_error: Callable[[BaseException], None] = lambda e: None) -> int:
    """Apply in this process; then, as a technician would, resume until it is done: once the vendor
    is back (faults cleared), and once the notification Blumira asks for first is confirmed."""
    cfg = w.load()
    with w.captured("apply"):
        try:
            with engine.open_sessions(cfg, transports=transports(), creds=w.creds()) as sessions:
                result = engine.apply(plan, cfg, sessions, overrides=LAB)
        except VendorError as exc:  # down before the run began: nothing was done, so it is applied again
            on_error(exc)
            w.vendor_back()
            row.resumes += 1
            with engine.open_sessions(cfg, transports=transports(), creds=w.creds()) as sessions:
                result = engine.apply(plan, cfg, sessions, overrides=LAB)
        code, run_id = result.exit_code, result.run.run_id
        for _ in range(6):
            gates = unconfirmed_gates(result.run.audit_path)
            if code != ExitCode.FAILED and not gates:
                break
            if code == ExitCode.FAILED:
                w.vendor_back()
                to_person(w, result.run.path, row)
            row.resumes += 1
            with engine.open_sessions(cfg, transports=transports(), creds=w.creds()) as sessions:
                for item in gates:  # the technician sent the notification the vendor asks for first
                    engine.confirm(run_id, item, "fault matrix", "sent", cfg, sessions)
                code = engine.resume(run_id, cfg, sessions, overrides=LAB).exit_code
    return int(code)


def to_person(w: World, run: Path, row: Row) -> None:
    """The technician, for each write offboard left `unknown` (a dispatch the re-read cannot settle:
    a 5xx in front of the vendor looks the same as an agent that has not uninstalled yet; it is never
    resent): does it in the portal, so the resume's re-read settles it."""
    plan = read_plan(run / "plan.json")
    state = fold_actions(list(read_records(run / "audit.jsonl")))
    for action in plan.api_actions():
        if state.get(action.id) == "action.unknown":
            base = w.hurl if action.vendor == "huntress" else w.burl
            row.to_person += int(portal(base, action))


def finish(w: World, run: Path, config: Path, row: Row, code: int) -> int:
    """Resume a run with the CLI until it is done (``code``: how its last apply ended), confirming
    the notification Blumira asks for first."""
    for _ in range(4):
        gates = unconfirmed_gates(run / "audit.jsonl")
        for item in gates:
            w.offboard("confirm", item, "--by", "fault matrix", "--note", "sent", "--run", run.name, config=config)
        if code != ExitCode.FAILED and not gates:
            break
        if code == ExitCode.FAILED:
            to_person(w, run, row)
        row.resumes += 1
        code, _ = w.offboard("apply", "--resume", run.name, "--override-preflight", "fault matrix", config=config)
    return code


def measure(w: World, plan: Plan, row: Row, *, count_lost: bool = True) -> None:
    """Everything counted from one world, once offboard is done with it."""
    row.sent_twice += sent_twice(w)
    row.outside += outside(w, plan)
    row.chains_broken += chains_broken(w)
    if count_lost:
        row.lost = (row.lost or 0) + lost(w, plan)
    for vendor, r in acted_then_failed(w):
        row.acted[kind_of(vendor, r)] += 1
        row.acted_landed += int(landed(w, vendor, r))
    found, where, searched = secrets_found(w)
    row.secrets_leaked += found
    row.notes += [f"credential found: {place}" for place in where]
    row.tokens += len(w.b.issued)
    row.searched += searched


def route_writes(sandbox: SandboxBase) -> list[Logged]:
    """Writes the vendor's handler received (a fault, refused auth or a 429 before it does not count)."""
    return [r for r in sandbox.requests if r.method not in ("GET", "HEAD") and not r.gated
            and not r.path.startswith(SandboxBase.CONTROL) and r.path != TOKEN_PATH]


def sent_twice(w: World) -> int:
    reached = Counter((r.method, r.path) for s in (w.h, w.b) for r in route_writes(s))
    return sum(n - 1 for n in reached.values() if n > 1)


def planned_writes(plan: Plan) -> set[tuple[str, str]]:
    out = set()
    for a in plan.api_actions():
        if a.destructive:
            method, path = a.call.split()[:2]
            out.add((method, (API_PREFIX + path) if a.vendor == "blumira" else path))
    return out


def outside(w: World, plan: Plan) -> int:
    """Writes that reached a vendor for anything offboard's own plan does not hold."""
    allowed = planned_writes(plan)
    return sum(1 for s in (w.h, w.b) for r in route_writes(s) if (r.method, r.path) not in allowed)


def chains_broken(w: World) -> int:
    return sum(0 if verify_file(run / "audit.jsonl").ok else 1 for run in w.run_folders())


def lost(w: World, plan: Plan) -> int:
    """Planned removals whose last word, in any run of this world, is not success."""
    last = {r.get("action_id"): r["event"] for run in w.run_folders() for r in read_records(run / "audit.jsonl")
            if r.get("action_id") and r["event"].startswith("action.")}
    return sum(1 for a in plan.api_actions() if a.destructive and last.get(a.id) != "action.succeeded")


def unconfirmed_gates(audit: Path) -> list[str]:
    """Items that hold a vendor back until a person confirms them (e.g. notify Blumira first)."""
    records = list(read_records(audit))
    confirmed = {r.get("action_id") for r in records if r["event"] == "manual.confirmed"}
    return list(dict.fromkeys(r["action_id"] for r in records
                              if r["event"] == "vendor.held" and r["action_id"] not in confirmed))


def acted_then_failed(w: World) -> list[tuple[str, Logged]]:
    """Writes the vendor carried out whose reply was then replaced by a fault (or cut)."""
    return [(vendor, r) for vendor, s in (("huntress", w.h), ("blumira", w.b)) for r in route_writes(s)
            if r.acted is not None and r.acted < 400 and r.status != r.acted]


def landed(w: World, vendor: str, r: Logged) -> bool:
    """Whether the write's effect is there now (the object gone, the field changed)."""
    parts = r.path.rstrip("/").split("/")
    if vendor == "blumira":
        if r.path.startswith(WEBHOOKS):
            return parts[-1] not in w.b.webhooks
        return parts[-2] not in w.b.devices  # .../devices/{id}/actions: the uninstall removes the device
    if parts[-1] == "isolation":
        agent = w.h.agents.get(int(parts[-2]))
        return agent is None or agent["firewall_status"] not in ISOLATED
    oid = int(parts[-1])
    if r.method == "PATCH" and "subscriptions" in parts:
        return w.h.subscriptions[oid]["auto_renew"] is False
    if r.method == "PATCH":
        return not w.h.orgs[oid]["report_recipients"]
    store = {"agents": w.h.agents, "memberships": w.h.memberships, "unwanted_access_rules": w.h.rules}[parts[-2]]
    return oid not in store


WRITE_KINDS = ("isolation", "actions", "agents", "memberships", "unwanted_access_rules", "organizations",
               "subscriptions", "webhooks")


def kind_of(vendor: str, r: Logged) -> str:
    """e.g. 'huntress DELETE agents', 'blumira POST actions' (a dispatch)."""
    return f"{vendor} {r.method} {next((p for p in reversed(r.path.split('/')) if p in WRITE_KINDS), r.path)}"


def _texts(w: World) -> Iterator[tuple[str, str]]:
    yield from w.outputs
    for p in sorted(w.path.rglob("*")):
        if not p.is_file() or p.is_symlink():
            continue
        data = p.read_bytes()
        if p.name.endswith(".gz"):  # a bundle: what it holds, not its compressed bytes
            with contextlib.suppress(OSError, EOFError, zlib.error):
                data = gzip.GzipFile(fileobj=io.BytesIO(data)).read(SCAN_CAP)
        yield str(p.relative_to(w.path)), data.decode("utf-8", errors="replace")


def secrets_found(w: World) -> tuple[int, list[str], int]:
    """(credential forms found, where each was found — named, never shown, bytes searched)."""
    forms = dict(CREDENTIAL_FORMS)
    forms.update({f"Blumira token #{n}": t for n, t in enumerate(w.b.issued, 1)})
    found: list[str] = []
    searched = 0
    for where, text in _texts(w):
        searched += len(text)
        found += [f"{name} in {where}" for name, value in forms.items() if value in text]
    return len(found), found, searched
