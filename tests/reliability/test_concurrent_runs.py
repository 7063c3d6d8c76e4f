"""Concurrent runs of one exit are refused, not interleaved. The exit lock is one OS lock per
vendor account, machine-wide: whichever config file or runs folder a second process uses, and
it ends the moment its holder dies (a killed holder leaves nothing to take over)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from offboard import engine
from offboard.config import ExitConfig
from offboard.connectors.sandboxing import InProcessTransport, serve
from offboard.errors import BadInput, ExitCode
from offboard_huntress.sandbox import DEMO_KEY, DEMO_SECRET, Fault, HuntressSandbox
from tests.conftest import DEMO_CREDS, Harness, load, write_config
from tests.e2e.test_cli_over_http import CANARY_KEY, CANARY_SECRET, SCALE, Env
from tests.polling import until

LAB = engine.Overrides(preflight="lab")
REPO = Path(__file__).resolve().parents[2]

# Another offboard process on this machine: takes the exit lock of a config, says so, and holds
# it until told to let go (a line on stdin) or killed.
HOLDER = """
import sys
from pathlib import Path
from pydantic import SecretStr
from offboard import connectors, engine
from offboard.config import load_config
from offboard.errors import BadInput
cfg = load_config(Path(sys.argv[1]), {n: c.settings_model for n, c in connectors.installed().items()})
creds = {"huntress": {"api_key": SecretStr(sys.argv[2]), "api_secret": SecretStr(sys.argv[3])}}
with engine.open_sessions(cfg, creds=creds) as sessions:
    if len(sys.argv) > 4:  # contenders: start together on "go"
        print("ready", flush=True)
        sys.stdin.readline()
    try:
        with engine.exit_lock(cfg, sessions):
            print("held", flush=True)
            sys.stdin.readline()
    except BadInput as exc:
        print("refused", exc, flush=True)
"""


def holder(config: Path, *, contender: bool = False) -> subprocess.Popen[str]:
    """Another process holding the exit of ``config``, whose base_url must be a served sandbox."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(config), DEMO_KEY, DEMO_SECRET,
                             *(["contend"] if contender else [])],
                            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdin is not None
    if not contender:
        said = proc.stdout.readline()
        assert said == "held\n", said + proc.communicate()[1]
    return proc


def release(proc: subprocess.Popen[str]) -> None:
    proc.communicate("\n", timeout=30)


def other_config(directory: Path, base_url: str, *, customer: str = "Acme Dental", organization: int = 42) -> Path:
    """The same exit (or a neighbour's) defined in another folder, with its own runs folder, on
    ``base_url`` (the served sandbox)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = write_config(directory, base_url)
    text = path.read_text().replace('name = "Acme Dental"', f'name = "{customer}"')
    path.write_text(text.replace("organization_id = 42", f"organization_id = {organization}"))
    return path


@pytest.fixture
def served(harness: Harness) -> Iterator[str]:
    """The harness's sandbox over HTTP too, for other processes: the same vendor, another address."""
    with serve(harness.sandbox.app) as url:
        yield url


def held(cfg: ExitConfig, harness: Harness) -> AbstractContextManager[None]:
    """This process holds ``cfg``'s exit (its sessions in-process, through the harness's sandbox)."""
    stack = contextlib.ExitStack()
    sessions = stack.enter_context(harness.sessions() if cfg is harness.cfg else
                                   engine.open_sessions(cfg, transports={"huntress": InProcessTransport(
                                       harness.sandbox.app)}, creds=DEMO_CREDS))
    stack.enter_context(engine.exit_lock(cfg, sessions))
    return stack


def run_folders(cfg_runs: Path) -> list[Path]:
    return [p for p in cfg_runs.iterdir() if p.is_dir()] if cfg_runs.exists() else []


def test_a_second_apply_of_the_same_exit_is_refused_while_one_runs(harness: Harness) -> None:
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        # another apply in this process holds the exit
        with engine.exit_lock(harness.cfg, s), pytest.raises(BadInput) as err:
            engine.apply(plan, harness.cfg, s, overrides=LAB)
    assert "is already being worked on by" in str(err.value) and str(err.value).count("\n") == 0
    assert harness.sandbox.writes() == []  # nothing was sent
    assert run_folders(harness.cfg.runs_dir) == []


def test_the_same_plan_applied_from_another_runs_folder_and_address_is_refused_before_discovery(
        harness: Harness, tmp_path: Path, served: str) -> None:
    # Same exit, runs in elsewhere/runs, and the API spelled another way: the vendor says it is one exit.
    elsewhere = other_config(tmp_path / "elsewhere", served.replace("127.0.0.1", "localhost"))
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        asked = len(harness.sandbox.requests)
        first = holder(elsewhere)
        asked = len(harness.sandbox.requests)
        try:
            with pytest.raises(BadInput) as err:
                engine.apply(plan, harness.cfg, s, overrides=LAB)
        finally:
            release(first)
    said = str(err.value)
    assert said.count("\n") == 0 and "huntress account 7001 organization 42 is already being worked on" in said
    assert f"already being worked on by offboard pid {first.pid} on " in said
    assert str(tmp_path / "elsewhere" / "runs") in said  # names where the holder keeps its runs
    # refused before discovery: only the vendor's word on which exit this is (the organization's record)
    assert [(r.method, r.path) for r in harness.sandbox.requests[asked:]] == [("GET", "/v1/organizations/42")]
    assert harness.sandbox.writes() == []
    assert run_folders(harness.cfg.runs_dir) == []


def test_two_exits_sharing_one_vendor_account_exclude_each_other(harness: Harness, tmp_path: Path,
                                                                  served: str) -> None:
    # Another customer's config that (by mistake) names the same Huntress organization.
    same_org = load(other_config(tmp_path / "b", served, customer="Acme Dental (old contract)"))
    neighbour = load(other_config(tmp_path / "c", served, customer="Globex Logistics", organization=43))
    first = holder(other_config(tmp_path / "a", served))
    try:
        with pytest.raises(BadInput, match=f"already being worked on by offboard pid {first.pid} "), \
                held(same_org, harness):
            pass
        with held(neighbour, harness):  # another organization is another exit: not held up
            pass
    finally:
        release(first)
    with held(same_org, harness):  # and once the first is done, the second may go
        pass


def test_processes_contending_for_one_exit_exactly_one_holds(tmp_path: Path, served: str) -> None:
    procs = [holder(other_config(tmp_path / f"p{n}", served), contender=True) for n in range(4)]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline() == "ready\n"
        for p in procs:  # all at once
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        said = {p.pid: p.stdout.readline() for p in procs if p.stdout is not None}
    finally:
        for p in procs:
            release(p)
    held = [pid for pid, line in said.items() if line == "held\n"]
    assert len(held) == 1, said
    for pid, line in said.items():
        if pid != held[0]:  # refused in one line naming the holder (or, at its first instant, no one)
            assert line.startswith("refused ") and line.count("\n") == 1, said
            assert f"by offboard pid {held[0]} on " in line or "by another offboard process;" in line, said


@pytest.mark.skipif(not hasattr(os, "waitid"), reason="needs os.waitid to keep a dead process unreaped")
def test_a_holder_killed_with_sigkill_frees_the_exit_at_once(harness: Harness, tmp_path: Path,
                                                              served: str) -> None:
    first = holder(other_config(tmp_path / "first", served))
    with pytest.raises(BadInput, match=rf"already being worked on by .*\b{first.pid}\b"), \
            held(harness.cfg, harness):
        pass
    first.kill()
    # Dead but not yet reaped: its pid still names a process, as a reused pid would. The lock
    # went with the process, not with the pid: nothing stale is left to decide about.
    os.waitid(os.P_PID, first.pid, os.WEXITED | os.WNOWAIT)
    try:
        with harness.sessions() as s:
            result = engine.apply(engine.make_plan(harness.cfg, s), harness.cfg, s, overrides=LAB)
    finally:
        first.wait()
    assert result.exit_code == ExitCode.MANUAL_PENDING
    assert not list(harness.cfg.runs_dir.glob(".exit-*"))  # no lock in the runs folder


@pytest.mark.e2e
@pytest.mark.parametrize("second", ["another runs folder", "the API spelled localhost", "another cache folder"])
def test_two_offboard_apply_processes_on_one_exit_one_is_refused(tmp_path: Path, second: str) -> None:
    sandbox = HuntressSandbox(time_scale=SCALE, extra_credentials={CANARY_KEY: CANARY_SECRET})
    # The first run holds its lock for a while: its second uninstall takes 6 s (the second process
    # starts, whatever the machine's load, while the first is surely still at work).
    sandbox.faults += [Fault(method="DELETE", path_prefix="/v1/agents/", status=None, delay=6.0, times=1, after=1),
                       Fault(method="DELETE", path_prefix="/v1/agents/", status=None, delay=0.03, times=10**6)]
    with serve(sandbox.app) as url:
        env = Env(sandbox, url, tmp_path, write_config(tmp_path, url, window=60 * SCALE))
        (tmp_path / "b").mkdir()
        # runs in b/runs; the same API at another address, or the same config from another user's shell
        spelled = url.replace("127.0.0.1", "localhost") if second == "the API spelled localhost" else url
        second_config = write_config(tmp_path / "b", spelled, window=60 * SCALE)
        environ = {"XDG_CACHE_HOME": str(tmp_path / "other-cache")} if second == "another cache folder" else {}
        assert env.run("plan", "-o", "exit.plan.json", "--detailed-exitcode").returncode == 10
        # The second operator's own plan, from their own config (a plan is tied to its config's wording).
        assert env.run("plan", "-o", "b.plan.json", "--config", str(second_config), environ=environ).returncode == 0
        first = env.popen("apply", "exit.plan.json", "--override-preflight", "lab")
        until(lambda: sandbox.deletes() or first.poll() is not None,
              what="the first apply's first DELETE (or its end)")
        second = env.run("apply", "b.plan.json", "--override-preflight", "lab", "--config", str(second_config),
                         environ=environ)
        first.wait(timeout=120)
    assert second.returncode == 2, second.stdout + second.stderr
    assert second.stderr.strip().count("\n") == 0
    assert f"already being worked on by offboard pid {first.pid} on " in second.stderr
    assert first.returncode == 3
    deleted = [p for p in sandbox.deletes() if p.startswith("/v1/agents/") and p.count("/") == 3]
    assert len(deleted) == len(set(deleted)) == 36  # each agent removed once, by the first run only
    assert len([p for p in (tmp_path / "runs").iterdir() if p.is_dir()]) == 1
    assert not (tmp_path / "b" / "runs").exists() or not any((tmp_path / "b" / "runs").iterdir())


def test_the_exit_locks_are_the_machines_in_a_sticky_folder_never_through_a_link(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from offboard.rundir import SHARED_LOCK_DIR, identity_lock, shared_lock_dir

    monkeypatch.delenv("OFFBOARD_LOCK_DIR")
    assert shared_lock_dir() == SHARED_LOCK_DIR  # whatever HOME or XDG_CACHE_HOME says
    folder = tmp_path / "locks"
    monkeypatch.setenv("OFFBOARD_LOCK_DIR", str(folder))
    with identity_lock("huntress account 7001 organization 42", "test"):
        files = list(folder.iterdir())
        assert (folder.stat().st_mode & 0o7777) == 0o1777  # every user creates, none deletes another's
        assert [f.stat().st_mode & 0o777 for f in files] == [0o666]  # every user can open it to lock it
        assert "42" not in files[0].name  # a hash: the folder lists no customer
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    files[0].unlink()
    files[0].symlink_to(victim)  # planted by another user of the machine
    with pytest.raises(BadInput, match="cannot lock huntress account 7001 organization 42"), \
            identity_lock("huntress account 7001 organization 42", "test"):
        pass
    assert victim.read_text() == "keep me"
