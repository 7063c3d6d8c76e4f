"""A vendor migration: several customers of one Huntress account and one Blumira MSP account exited
as one batch through `offboard batch`, killed mid-way with SIGKILL, resumed, and every exit
ends verified, each with its own whole audit log, and no write sent twice."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from offboard import batch as batches
from offboard import connectors, engine
from offboard.connectors.sandboxing import Logged, serve
from offboard.errors import BadInput
from offboard.proof.audit import verify_file
from offboard_blumira.sandbox import (
    API_PREFIX,
    CUSTOMER_ACCOUNT,
    KEEP_USER,
    NEIGHBOUR_ACCOUNT,
    TOKEN_PATH,
    BlumiraSandbox,
    keep_user_of,
)
from offboard_huntress.sandbox import CUSTOMER_ORG, NEIGHBOUR_ORG, HuntressSandbox
from tests.e2e.test_account_budget import windows_over_the_limit
from tests.e2e.test_cli_over_http import CANARY_KEY, CANARY_SECRET, SCALE, offboard_exe
from tests.e2e.test_two_vendors import BLU_ID, BLU_SECRET
from tests.polling import until

pytestmark = pytest.mark.e2e

SECOND_ACCOUNT = "5d0c9a7e-2b3f-4f61-a8c2-custom000044"
MODELS = {n: c.settings_model for n, c in connectors.installed().items()}
CREDS = {"huntress": {"api_key": SecretStr(CANARY_KEY), "api_secret": SecretStr(CANARY_SECRET)},
         "blumira": {"client_id": SecretStr(BLU_ID), "client_secret": SecretStr(BLU_SECRET)}}


@dataclass
class Migration:
    huntress: HuntressSandbox
    blumira: BlumiraSandbox
    urls: dict[str, str]
    dir: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OFFBOARD_") or k == "OFFBOARD_LOCK_DIR"}
        env.update(OFFBOARD_HUNTRESS_API_KEY=CANARY_KEY, OFFBOARD_HUNTRESS_API_SECRET=CANARY_SECRET,
                   OFFBOARD_BLUMIRA_CLIENT_ID=BLU_ID, OFFBOARD_BLUMIRA_CLIENT_SECRET=BLU_SECRET,
                   PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring", COLUMNS="200")
        return env

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*offboard_exe(), *args], cwd=self.dir, env=self.env(), capture_output=True, text=True,
                              timeout=180, check=False)


@pytest.fixture
def migration(tmp_path: Path) -> Iterator[Migration]:
    h = HuntressSandbox(time_scale=SCALE, customer_agents=24, more_customers={44: 30, 45: 8},
                        extra_credentials={CANARY_KEY: CANARY_SECRET})
    b = BlumiraSandbox(time_scale=SCALE, extra_clients={BLU_ID: BLU_SECRET}, more_accounts={SECOND_ACCOUNT: 3})
    with serve(h.app) as hurl, serve(b.app) as burl:
        (tmp_path / "template.toml").write_text(
            '[customer]\nname = "(each row names it)"\nend_of_service = 2026-12-31\n\n'
            '[signing]\nkey_file = "msp.key"\n\n'
            f'[huntress]\norganization_id = 1\nbase_url = "{hurl}"\nrate_window_seconds = {60 * SCALE}\n\n'
            f'[blumira]\naccount_id = "(each row)"\nbase_url = "{burl}{API_PREFIX}"\ntoken_url = "{burl}{TOKEN_PATH}"\n'
            f'rate_window_seconds = {SCALE}\nmsp_sender = "NOC <noc@msp.example>"\n')
        (tmp_path / "customers.csv").write_text(  # each customer keeps its own administrator
            "customer,approved_by,ticket,huntress.organization_id,blumira.account_id,blumira.keep_users\n"
            f'Acme Dental,J. Doe,PSA-1,{CUSTOMER_ORG},{CUSTOMER_ACCOUNT},"[""{KEEP_USER}""]"\n'
            f'Customer 44,J. Doe,PSA-2,44,{SECOND_ACCOUNT},"[""{keep_user_of(SECOND_ACCOUNT)}""]"\n'
            "Customer 45,J. Doe,PSA-3,45,,\n")
        yield Migration(h, b, {"huntress": hurl, "blumira": burl}, tmp_path)


def writes(log: list[Logged]) -> Counter[str]:
    return Counter(f"{r.method} {r.path}" for r in log
                   if r.method not in ("GET", "HEAD") and r.path != TOKEN_PATH and not r.path.startswith("/_sandbox/"))


def test_a_batch_killed_mid_way_resumes_and_every_exit_ends_verified(migration: Migration) -> None:
    m = migration
    assert m.run("keys", "init", "--key-file", "msp.key").returncode == 0  # every run of the batch is signed
    planned = m.run("batch", "plan", "customers.csv", "--template", "template.toml", "-o", "batch.plan.json")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "Batch plan: 3 customer(s)" in planned.stdout and "Wall time at the ceiling" in planned.stdout
    assert writes(m.huntress.requests) == Counter() and writes(m.blumira.requests) == Counter()
    assert (m.dir / "batch" / "customer-45" / "config.toml").exists()

    first = subprocess.Popen([*offboard_exe(), "batch", "apply", "batch.plan.json", "--override-preflight", "lab"],
                             cwd=m.dir, env=m.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    until(lambda: len(m.huntress.deletes()) >= 20 or first.poll() is not None,
          what="batch apply's twentieth DELETE (or its end)", tries=12000)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert 20 <= len(m.huntress.deletes()) < 24 + 30 + 8  # killed mid-way
    killed = m.run("batch", "status")
    assert killed.returncode == 1 and "interrupted" in killed.stdout, killed.stdout + killed.stderr

    resumed = m.run("batch", "apply", "--resume", "batch.plan.json", "--override-preflight", "lab")
    assert resumed.returncode == 3, resumed.stdout + resumed.stderr
    assert all(m.huntress.agents_of(org) == [] for org in (CUSTOMER_ORG, 44, 45))
    assert writes(m.blumira.requests) == Counter()  # notify Blumira first: no change before that is confirmed
    # the short id `offboard confirm` takes (one item of the batch ends so) is taken here too
    notified = m.run("batch", "confirm", "notify.sent", "--by", "J. Doe", "--note", "sent, ticket 4711")
    assert notified.returncode == 0 and notified.stdout.count("confirmed blumira.notify.sent") == 2, notified.stderr
    held = m.run("batch", "apply", "--resume", "batch.plan.json")
    assert held.returncode == 3, held.stdout + held.stderr
    assert "wh-1" not in m.blumira.webhooks  # Acme's own webhook, deleted once the notification was confirmed

    # a word several items end with: each is suggested, with the command that lists them, which runs as printed
    typo = m.run("batch", "confirm", "remove", "--by", "J. Doe", "--note", "x")
    assert typo.returncode == 2 and "did you mean blumira." in typo.stderr and ".remove or blumira." in typo.stderr
    listing = typo.stderr.split("`")[1]
    assert listing == "offboard batch status --pending batch.plan.json", typo.stderr
    listed = m.run(*shlex.split(listing)[1:])
    assert listed.returncode == 0, listed.stderr
    waiting = dict(line.split(" ") for line in listed.stdout.splitlines())
    assert "acme-dental" in waiting["huntress.itdr.unmap-tenant"].split(",") and "blumira.users.remove" in waiting

    # the people at the portals, then their confirmations, recorded in each exit's log
    for item in ("itdr.unmap-tenant", "siem.disconnect-sources", "sat.close-campaigns"):
        httpx.post(f"{m.urls['huntress']}/_sandbox/portal/{item}", params={"org": CUSTOMER_ORG})
    for account in (CUSTOMER_ACCOUNT, SECOND_ACCOUNT):
        for item in ("agents.remove-devices", "agents.remove-keys", "users.remove"):
            httpx.post(f"{m.urls['blumira']}/_sandbox/portal/{item}", params={"account": account})
    b = batches.open_batch(m.dir / "batch.plan.json", MODELS)
    waiting = m.run("batch", "status", "batch.plan.json")  # only people can move it: their items, by id
    assert "Next: offboard batch status --pending batch.plan.json" in waiting.stdout, waiting.stdout
    for e in b.exits:
        cfg = b.configs[e.slug]
        state = batches.exit_state(cfg, e.plan)
        assert state.run is not None and state.state == "waiting for a person", (e.slug, state)
        with engine.open_sessions(cfg, creds=CREDS) as sessions:
            for item in state.pending:
                done = engine.confirm(state.run.run_id, item, "J. Doe", "done, see the ticket", cfg, sessions)
                assert done.accepted, (e.slug, item, done.check)

    status = m.run("batch", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.count("verified") >= 3 and "3 verified" in status.stdout
    for e in b.exits:
        run = batches.exit_state(b.configs[e.slug], e.plan).run
        assert run is not None and verify_file(run.audit_path).ok
        records = [json.loads(line) for line in run.audit_path.read_text().splitlines()]
        assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
        assert records[-1]["event"] == "run.closed" or any(r["event"] == "run.closed" for r in records)
    # every write reached its vendor once, the SIGKILL and three resumes notwithstanding
    for log in (m.huntress.requests, m.blumira.requests):
        assert [w for w, n in writes(log).items() if n > 1] == []
    assert len(m.huntress.agents_of(NEIGHBOUR_ORG)) == 12 and m.blumira.of(m.blumira.devices, NEIGHBOUR_ACCOUNT)
    assert [r for r in m.huntress.requests if r.status == 429] == []
    assert windows_over_the_limit(m.huntress.requests, m.huntress.rate_limit, m.huntress.window()) == []

    bundled = m.run("batch", "bundle", "-o", "bundles")
    assert bundled.returncode == 0, bundled.stdout + bundled.stderr
    made = sorted((m.dir / "bundles").glob("*.tar.gz"))
    assert [p.name.removesuffix(".tar.gz").rsplit("-", 2)[0] for p in made] == ["acme-dental", "customer-44",
                                                                                 "customer-45"]
    checked = m.run("bundle", "verify", str(made[0]), "--public-key", "msp.pub")
    assert checked.returncode == 0 and "the run ended in it" in checked.stdout, checked.stdout + checked.stderr
    # re-read after their close: recorded in their logs, and said, with the command that bundles them again
    again = m.run("batch", "verify")
    assert again.returncode == 0, again.stdout + again.stderr
    said = " ".join(again.stderr.split())
    assert "3 exit(s) were closed (acme-dental, customer-44, customer-45)" in said, said
    printed = said.split("make them again: ")[1].rstrip(".")
    assert printed == "offboard batch bundle batch.plan.json"
    rebundled = m.run(*shlex.split(printed)[1:])
    assert rebundled.returncode == 0, rebundled.stdout + rebundled.stderr


def test_ctrl_c_stops_each_exit_after_its_action_and_the_batch_resumes(migration: Migration) -> None:
    m = migration
    assert m.run("keys", "init", "--key-file", "msp.key").returncode == 0
    assert m.run("batch", "plan", "customers.csv", "--template", "template.toml", "-o", "batch.plan.json",
                 "--parallel", "3").returncode == 0
    first = subprocess.Popen([*offboard_exe(), "batch", "apply", "batch.plan.json", "--override-preflight", "lab"],
                             cwd=m.dir, env=m.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    until(lambda: len(m.huntress.deletes()) >= 10 or first.poll() is not None,
          what="batch apply's tenth DELETE (or its end)", tries=12000)
    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    assert "with the `Next:` line above" in " ".join(err.split()) and "Traceback" not in err  # the resume once
    # where each exit stopped stays on the screen (the live table leaves it): the batch's status table
    assert "interrupted" in out and all(slug in out for slug in ("acme-dental", "customer-44", "customer-45")), out
    # and what to run next, as at a batch's end: the resume, with the override this run was given
    assert "Next: offboard batch apply --resume batch.plan.json --override-preflight lab" in out.splitlines(), out
    b = batches.open_batch(m.dir / "batch.plan.json", MODELS)
    interrupted = []
    for e in b.exits:
        state = batches.exit_state(b.configs[e.slug], e.plan)
        if state.run is not None and state.state == "interrupted":
            events = [json.loads(line)["event"] for line in state.run.audit_path.read_text().splitlines()]
            assert events[-1] == "run.interrupted" or "run.interrupted" in events
            interrupted.append(e.slug)
    assert interrupted  # recorded in their own logs, not just killed
    # Resumed, an exit's row starts at what its log holds done, not at 0/N (issue 22): the board as
    # each exit begins (a stand-in opener stops each there; the real resume follows).
    board = batches.board_of(b)
    begun: dict[str, tuple[int, int]] = {}
    begin = board.progress

    def watching(slug: str, stop: threading.Event, say: Callable[[str], None]) -> engine.Progress:
        row = next(r for r in board.snapshot() if r.slug == slug)
        begun[slug] = (row.done, row.total)
        return begin(slug, stop, say)

    def not_here(_cfg: object) -> AbstractContextManager[engine.Sessions]:
        raise BadInput("stand-in: resumed below")

    board.progress = watching  # type: ignore[method-assign]
    batches.apply_batch(b, resume=True, overrides=engine.Overrides("lab"), opener=not_here, board=board)
    for slug in interrupted:
        e = next(e for e in b.exits if e.slug == slug)
        done = sum(batches.exit_state(b.configs[slug], e.plan).done_of.values())
        assert begun[slug] == (done, len(e.plan.actions())), (slug, begun)
    assert any(done for done, _ in begun.values())
    for row in board.snapshot():  # every exit with a run, resumed now or only waiting for a person, keeps its count
        e = next(e for e in b.exits if e.slug == row.slug)
        st = batches.exit_state(b.configs[row.slug], e.plan)
        assert st.run is None or row.done == sum(st.done_of.values()), (row.slug, st.state, row.done)
    resumed = m.run("batch", "apply", "--resume", "batch.plan.json", "--override-preflight", "lab")
    assert resumed.returncode == 3, resumed.stdout + resumed.stderr
    assert all(m.huntress.agents_of(org) == [] for org in (CUSTOMER_ORG, 44, 45))
    assert [w for w, n in writes(m.huntress.requests).items() if n > 1] == []


def test_ctrl_c_resume_as_printed_carries_the_override_to_the_exits_not_yet_started(tmp_path: Path) -> None:
    """Issue 22's re-check: a batch started with --override-preflight and Ctrl-C'd printed a resume without
    it, so the gated exit that run had not started stopped at its gate (exit 4) when resumed as printed."""
    h = HuntressSandbox(time_scale=SCALE, customer_agents=40, more_customers={44: 30},
                        extra_credentials={CANARY_KEY: CANARY_SECRET})
    b = BlumiraSandbox(time_scale=SCALE, extra_clients={BLU_ID: BLU_SECRET})
    with serve(h.app) as hurl, serve(b.app) as burl:
        m = Migration(h, b, {"huntress": hurl, "blumira": burl}, tmp_path)
        (tmp_path / "template.toml").write_text(
            '[customer]\nname = "(each row names it)"\nend_of_service = 2026-12-31\n\n'
            f'[huntress]\norganization_id = 1\nbase_url = "{hurl}"\nrate_window_seconds = {60 * SCALE}\n\n'
            f'[blumira]\naccount_id = "(each row)"\nbase_url = "{burl}{API_PREFIX}"\ntoken_url = "{burl}{TOKEN_PATH}"\n'
            f'rate_window_seconds = {SCALE}\nmsp_sender = "NOC <noc@msp.example>"\n')
        (tmp_path / "customers.csv").write_text(  # smallest first: Customer 44, then Acme Dental (its gates)
            "customer,approved_by,ticket,huntress.organization_id,blumira.account_id,blumira.keep_users\n"
            f'Acme Dental,J. Doe,PSA-1,{CUSTOMER_ORG},{CUSTOMER_ACCOUNT},"[""{KEEP_USER}""]"\n'
            "Customer 44,J. Doe,PSA-2,44,,\n")
        assert m.run("batch", "plan", "customers.csv", "--template", "template.toml", "-o", "b.plan.json"
                     ).returncode == 0
        first = subprocess.Popen([*offboard_exe(), "batch", "apply", "b.plan.json", "--parallel", "1",
                                  "--override-preflight", "incident 12 closed by phone"],
                                 cwd=m.dir, env=m.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        until(lambda: len(h.deletes()) >= 3 or first.poll() is not None, what="the third DELETE", tries=12000)
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=60)
        assert first.returncode == 130, err
        assert h.agents_of(CUSTOMER_ORG) and len(h.agents_of(CUSTOMER_ORG)) == 40  # Acme Dental never started
        printed = "offboard batch apply --resume b.plan.json --override-preflight 'incident 12 closed by phone'"
        assert f"Next: {printed}" in out.splitlines(), out  # the operator's decision, in plain sight
        # said once: the error's paragraph points at it (review9: the resume was printed twice)
        assert "continue (with the overrides this run was given" in " ".join(err.split()), err
        assert "with the `Next:` line above" in " ".join(err.split()) and "offboard batch apply" not in err, err
        resumed = m.run(*shlex.split(printed)[1:])  # as printed
        assert resumed.returncode == 3, resumed.stdout + resumed.stderr  # was 4: stopped by its gate
        assert h.agents_of(CUSTOMER_ORG) == [] and h.agents_of(44) == []
        acme = next((tmp_path / "b" / "acme-dental" / "runs").glob("*/audit.jsonl"))
        overridden = [r for r in map(json.loads, acme.read_text().splitlines()) if r["event"] == "preflight.overridden"]
        assert len(overridden) == 1 and "incident 12 closed by phone" in json.dumps(overridden[0])
