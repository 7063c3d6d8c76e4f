"""One customer, two vendors: one config, one plan, one apply, through the `offboard` CLI in a
subprocess, with both sandboxes under uvicorn on 127.0.0.1 and canary credentials."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from offboard.connectors.sandboxing import serve
from offboard_blumira.sandbox import CUSTOMER_ACCOUNT, KEEP_USER, NEIGHBOUR_ACCOUNT, BlumiraSandbox
from offboard_huntress.sandbox import CUSTOMER_ORG, NEIGHBOUR_ORG, HuntressSandbox
from tests.conftest import blumira_section, write_config
from tests.e2e.test_cli_over_http import CANARY_KEY, CANARY_SECRET, SCALE, offboard_exe

pytestmark = pytest.mark.e2e

BLU_ID = "blumira-canary-client-0d2f"
BLU_SECRET = "blu_canary_client_secret_83be11"


@dataclass
class Both:
    huntress: HuntressSandbox
    blumira: BlumiraSandbox
    urls: dict[str, str]
    dir: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OFFBOARD_") or k == "OFFBOARD_LOCK_DIR"}
        env.update(OFFBOARD_HUNTRESS_API_KEY=CANARY_KEY, OFFBOARD_HUNTRESS_API_SECRET=CANARY_SECRET,
                   OFFBOARD_BLUMIRA_CLIENT_ID=BLU_ID, OFFBOARD_BLUMIRA_CLIENT_SECRET=BLU_SECRET,
                   PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring", COLUMNS="200")
        return subprocess.run([*offboard_exe(), *args], cwd=self.dir, env=env, capture_output=True, text=True,
                              timeout=180, check=False)


@pytest.fixture
def both(tmp_path: Path) -> Iterator[Both]:
    h = HuntressSandbox(time_scale=SCALE, extra_credentials={CANARY_KEY: CANARY_SECRET})
    b = BlumiraSandbox(time_scale=SCALE, extra_clients={BLU_ID: BLU_SECRET})
    with serve(h.app) as hurl, serve(b.app) as burl:
        write_config(tmp_path, hurl, window=60 * SCALE, blumira=blumira_section(burl, window=SCALE))
        yield Both(h, b, {"huntress": hurl, "blumira": burl}, tmp_path)


def test_one_plan_and_one_apply_exit_the_customer_from_huntress_and_blumira(both: Both) -> None:
    dry = both.run("plan", "-o", "exit.plan.json", "--detailed-exitcode")
    assert dry.returncode == 10, dry.stdout + dry.stderr
    assert ("43 removal(s) by API, 16 evidence export(s), 1 document(s) drafted for a person to send, 21 manual "
            "item(s)") in dry.stdout
    assert {r.method for r in both.huntress.requests} == {"GET"}
    assert {r.method for r in both.blumira.requests} == {"GET", "POST"}  # the only POST mints the token
    assert [r.path for r in both.blumira.requests if r.method == "POST"] == ["/oauth/token"]
    plan = json.loads((both.dir / "exit.plan.json").read_text())
    assert [v["vendor"] for v in plan["vendors"]] == ["blumira", "huntress"]
    manual_ids = [a["id"] for v in plan["vendors"] for s in v["steps"] for a in s["actions"] if a["kind"] == "manual"]

    applied = both.run("apply", "exit.plan.json", "--override-preflight", "lab exercise")
    assert applied.returncode == 3, applied.stdout + applied.stderr
    assert "manual item(s) waiting for a person" in applied.stderr
    assert both.huntress.agents_of(CUSTOMER_ORG) == [] and len(both.huntress.agents_of(NEIGHBOUR_ORG)) == 12
    # Blumira: notify first — its evidence is exported, then nothing changes until the email is confirmed
    assert "wh-1" in both.blumira.webhooks and [r for r in both.blumira.requests if r.method == "DELETE"] == []
    run = sorted((both.dir / "runs").iterdir())[-1]
    assert (run / "evidence" / "blumira" / "findings.json").exists()
    checklist = (run / "manual-checklist.md").read_text()
    assert "blumira.notify.sent" in checklist and "huntress.itdr.unmap-tenant" in checklist
    assert "blumira.agents.remove-devices" not in checklist
    notified = both.run("confirm", "blumira.notify.sent", "--by", "J. Doe", "--note", "sent 09:00, ticket 4711")
    assert f"offboard apply --resume {run.name}" in notified.stdout, notified.stdout + notified.stderr
    resumed = both.run("apply", "--resume", run.name)
    assert resumed.returncode == 3, resumed.stdout + resumed.stderr
    assert set(both.blumira.webhooks) == {"wh-2", "wh-3"}
    assert all(NEIGHBOUR_ACCOUNT not in r.path for r in both.blumira.requests)
    checklist = (run / "manual-checklist.md").read_text()
    assert "blumira.agents.remove-devices" in checklist and "huntress.itdr.unmap-tenant" in checklist
    manual_ids.remove("blumira.notify.sent")

    # the people at both portals
    for item in ("itdr.unmap-tenant", "siem.disconnect-sources", "sat.close-campaigns"):
        httpx.post(f"{both.urls['huntress']}/_sandbox/portal/{item}")
    early = both.run("confirm", "blumira.users.remove", "--by", "J. Doe", "--note", "removed")
    assert early.returncode == 1 and "frontdesk@acme.example" in early.stderr  # the user list disagrees
    for item in ("agents.remove-devices", "agents.remove-keys", "users.remove"):
        httpx.post(f"{both.urls['blumira']}/_sandbox/portal/{item}")
    for n, item in enumerate(manual_ids, start=1):
        done = both.run("confirm", item, "--by", "J. Doe", "--note", f"done, PSA-4711 ({n})")
        assert done.returncode == 0, item + done.stdout + done.stderr

    status = both.run("status")
    assert status.returncode == 0 and "manual-pending" not in status.stdout
    assert both.run("audit", "verify", str(run / "audit.jsonl")).returncode == 0
    verified = both.run("verify")
    assert verified.returncode == 0, verified.stdout
    assert "no agent device listed" in verified.stdout and "only the users to keep remain" in verified.stdout
    assert [u["email"] for u in both.blumira.of(both.blumira.users, CUSTOMER_ACCOUNT)] == [KEEP_USER]
    records = [json.loads(line) for line in (run / "audit.jsonl").read_text().splitlines()]
    confirmed = [r for r in records if r["event"] == "manual.confirmed"]
    assert {r["vendor"] for r in confirmed} == {"huntress", "blumira"} and len(confirmed) == len(manual_ids) + 1

    # neither vendor's secret nor any Blumira token reached any output or file
    texts = [p.read_text(errors="replace") for p in both.dir.rglob("*") if p.is_file()]
    texts += [o.stdout + o.stderr for o in (dry, applied, notified, resumed, early, status, verified)]
    assert both.blumira.issued
    for text in texts:
        for secret in (CANARY_SECRET, BLU_SECRET, *both.blumira.issued):
            assert secret not in text


def test_a_plan_applied_again_after_portal_work_names_that_work_before_the_runs_own_removals(both: Both) -> None:
    """Review at 120x40: after users were removed in Blumira's portal and Huntress's ITDR tenant was
    unmapped, applying the plan again said Blumira had "13 new" objects and named, for Huntress, agents
    the run itself had removed. The plan records each listing; the refusal names the portal work."""
    assert both.run("plan", "-o", "exit.plan.json").returncode == 0
    applied = both.run("apply", "exit.plan.json", "--override-preflight", "lab exercise")
    assert applied.returncode == 3, applied.stdout + applied.stderr
    run = sorted((both.dir / "runs").iterdir())[-1]
    for uid in ("u-2", "u-3", "u-4"):  # a person removes the customer's users in Blumira's portal
        del both.blumira.users[uid]
    del both.huntress.orgs[CUSTOMER_ORG]["identity_provider_tenant_id"]  # and unmaps the ITDR tenant
    seen = len(both.huntress.requests), len(both.blumira.requests)

    again = both.run("apply", "exit.plan.json", "--override-preflight", "lab exercise")
    assert again.returncode == 2, again.stdout + again.stderr
    said = " ".join(again.stderr.split())
    assert (f"was applied already (run {run.name}), and Blumira has changed since: 3 no longer listed: Ben Test "
            "<frontdesk@acme.example> (monitor), Cy Test <tech@sandbox-msp.example> (responder), Dee Test "
            "<former-it@acme.example> (administrator); and Huntress has changed since: 1 no longer listed: ITDR "
            "tenant mapping tenant-acme-m365; 40 of the plan's removals gone already: ") in said, said
    assert f"and 37 more; continue that run with `offboard apply --resume {run.name}`" in said, said
    assert " new" not in said.split("; continue")[0], said  # nothing the run did not see before is "new"
    sent = [*both.huntress.requests[seen[0]:], *both.blumira.requests[seen[1]:]]
    assert sent and [r.path for r in sent if r.method != "GET" and r.path != "/oauth/token"] == []  # no write
