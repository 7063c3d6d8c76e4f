"""One vendor account, one rate budget: two `offboard apply` of two customers of one Huntress
account, started side by side as separate processes, never exceed the account's limit together.
The sandbox counts arrivals in its sliding window, as Huntress does; its log is the judge."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from offboard.connectors.sandboxing import Logged, serve
from offboard_huntress.sandbox import CUSTOMER_ORG, HuntressSandbox
from tests.conftest import write_config
from tests.e2e.test_cli_over_http import CANARY_KEY, CANARY_SECRET, SCALE, offboard_exe

pytestmark = pytest.mark.e2e

OTHER_ORG = 44


def windows_over_the_limit(log: list[Logged], limit: int, window: float) -> list[float]:
    """Each moment at which more than ``limit`` counted calls arrived within one window."""
    arrivals = sorted(r.arrived for r in log if r.arrived)
    return [arrivals[i] for i in range(limit, len(arrivals)) if arrivals[i] - arrivals[i - limit] < window]


def test_two_offboard_processes_on_two_customers_of_one_account_share_its_limit(tmp_path: Path) -> None:
    sandbox = HuntressSandbox(time_scale=SCALE, customer_agents=60, more_customers={OTHER_ORG: 60},
                              extra_credentials={CANARY_KEY: CANARY_SECRET})
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFBOARD_") or k == "OFFBOARD_LOCK_DIR"}
    env.update(OFFBOARD_HUNTRESS_API_KEY=CANARY_KEY, OFFBOARD_HUNTRESS_API_SECRET=CANARY_SECRET,
               PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")
    with serve(sandbox.app) as url:
        folders = []
        for name, org in (("acme", CUSTOMER_ORG), ("other", OTHER_ORG)):
            folder = tmp_path / name
            folder.mkdir()
            config = write_config(folder, url, window=60 * SCALE)
            config.write_text(config.read_text().replace("organization_id = 42", f"organization_id = {org}")
                              .replace('name = "Acme Dental"', f'name = "{name}"'))
            planned = subprocess.run([*offboard_exe(), "plan", "-o", "exit.plan.json"], cwd=folder, env=env,
                                     capture_output=True, text=True, timeout=120, check=False)
            assert planned.returncode == 0, planned.stdout + planned.stderr
            folders.append(folder)
        started = len(sandbox.requests)
        procs = [subprocess.Popen([*offboard_exe(), "apply", "exit.plan.json", "--unattended",
                                   "--override-preflight", "lab"], cwd=f, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for f in folders]
        outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [3, 3], outs
    assert sandbox.agents_of(CUSTOMER_ORG) == [] and sandbox.agents_of(OTHER_ORG) == []
    during = sandbox.requests[started:]
    deletes = [r for r in during if r.method == "DELETE" and r.path.startswith("/v1/agents/")]
    assert len(deletes) >= 120  # both exits ran at once: each has 60 agents to remove
    assert [r for r in during if r.status == 429] == []
    assert windows_over_the_limit(during, sandbox.rate_limit, sandbox.window()) == []
