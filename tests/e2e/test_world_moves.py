"""The world moves during an exit (issue 20, findings 1 and 2), through the `offboard` CLI against the
Huntress sandbox over real HTTP: an agent moved to the neighbour's organization mid-run, and a listing
that disagrees with the agent's own record, are never written; `--trust-listing` trades that read for
a listing of bounded age."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from offboard.connectors.sandboxing import serve
from offboard_huntress.sandbox import CUSTOMER_ORG, NEIGHBOUR_ORG, Fault, HuntressSandbox
from tests.conftest import write_config
from tests.e2e.test_cli_over_http import CANARY_KEY, CANARY_SECRET, SCALE, Env
from tests.huntress_spec import REPLIES

pytestmark = pytest.mark.e2e
OVERRIDE = ("--override-preflight", "incident 503 handled by phone")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    sandbox = HuntressSandbox(time_scale=SCALE, customer_agents=6, neighbour_agents=3,
                              extra_credentials={CANARY_KEY: CANARY_SECRET})
    with serve(sandbox.app) as url:
        yield Env(sandbox, url, tmp_path, write_config(tmp_path, url, window=60 * SCALE))


def planned(env: Env) -> dict[str, Any]:
    saved = env.run("plan", "-o", "exit.plan.json")
    assert saved.returncode == 0, saved.stdout + saved.stderr
    return dict(json.loads((env.dir / "exit.plan.json").read_text()))


def uninstalls(plan: dict[str, Any]) -> list[int]:
    return [int(a["target"]["id"]) for v in plan["vendors"] for s in v["steps"] for a in s["actions"]
            if a["operation"] == "uninstall_agent"]


def audit(env: Env) -> list[dict[str, Any]]:
    run = env.run_dirs()[-1]
    return [json.loads(line) for line in (run / "audit.jsonl").read_text().splitlines()]


def deleted(env: Env, agent: int) -> list[str]:
    return [r.path for r in env.sandbox.requests if r.method == "DELETE" and r.path == f"/v1/agents/{agent}"]


def test_an_agent_moved_to_the_neighbour_mid_run_is_not_deleted_and_the_run_does_not_succeed(env: Env) -> None:
    plan = planned(env)
    victim = uninstalls(plan)[-1]  # the last uninstall: the move lands well before the run reaches it
    env.sandbox.moves[victim] = (NEIGHBOUR_ORG, 2)  # after the run's second write, in the portal

    applied = env.run("apply", "exit.plan.json", *OVERRIDE)

    assert applied.returncode == 1, applied.stdout + applied.stderr
    assert deleted(env, victim) == []
    assert env.sandbox.agents[victim]["organization_id"] == NEIGHBOUR_ORG
    assert "1 left alone by the scope guard" in applied.stdout
    skipped = [e for e in audit(env) if e["event"] == "action.skipped"]
    assert [e["action_id"] for e in skipped] == [f"huntress.uninstall_agent.{victim}"]
    assert skipped[0]["detail"]["owner_planned"] == f"organization:{CUSTOMER_ORG}"
    assert skipped[0]["detail"]["owner_now"] == f"organization:{NEIGHBOUR_ORG}"
    assert skipped[0]["http"]["path"] == f"/v1/agents/{victim}"
    assert env.sandbox.agents_of(CUSTOMER_ORG) == []  # every other agent went


def test_a_listing_that_names_a_neighbours_agent_as_ours_is_not_believed(env: Env) -> None:
    stray = env.sandbox.agents_of(NEIGHBOUR_ORG)[0]["id"]
    env.sandbox.listed_as[stray] = CUSTOMER_ORG  # the organization's listing says ours; GET /v1/agents/{id}: 43
    plan = planned(env)
    assert stray in uninstalls(plan)  # the plan believed the listing...

    applied = env.run("apply", "exit.plan.json", *OVERRIDE)

    assert applied.returncode == 1, applied.stdout + applied.stderr
    assert deleted(env, stray) == []  # ...the write did not: the agent's own record wins
    assert env.sandbox.agents[stray]["organization_id"] == NEIGHBOUR_ORG
    skipped = next(e for e in audit(env) if e["event"] == "action.skipped")
    assert skipped["action_id"] == f"huntress.uninstall_agent.{stray}"
    assert skipped["detail"]["owner_listed"] == f"organization:{CUSTOMER_ORG}"
    assert skipped["detail"]["owner_now"] == f"organization:{NEIGHBOUR_ORG}"
    report = (env.run_dirs()[-1] / "report.md").read_text()
    assert "| Service proven stopped | not yet proven |" in report
    host = env.sandbox.agents[stray]["hostname"]
    assert any(line.startswith(f"| {host} |") and "Not touched" in line and "own record wins" in line
               for line in report.splitlines()), report


def test_an_owner_given_as_text_is_never_believed(env: Env) -> None:
    stray = env.sandbox.agents_of(NEIGHBOUR_ORG)[0]["id"]
    env.sandbox.listed_as[stray] = str(CUSTOMER_ORG)  # "42": not the integer the spec types

    plan = planned(env)
    assert stray not in uninstalls(plan)  # an owner nothing proves: never planned for a write
    applied = env.run("apply", "exit.plan.json", *OVERRIDE)

    assert deleted(env, stray) == []
    assert applied.returncode == 1, applied.stdout  # it is listed under the customer: not stopped
    problems = REPLIES.take()  # the sandbox was told to break the spec: that is this test's point
    assert problems and all("organization_id" in p for p in problems), problems


def test_trust_listing_reads_no_agent_alone_and_is_recorded_with_its_window(env: Env) -> None:
    plan = planned(env)
    before = len(env.sandbox.requests)

    applied = env.run("apply", "exit.plan.json", *OVERRIDE, "--trust-listing")

    assert applied.returncode == 3, applied.stdout + applied.stderr
    calls = [(r.method, r.path) for r in env.sandbox.requests[before:]]
    agent_reads = [p for m, p in calls if m == "GET" and p.startswith("/v1/agents/")]
    assert [p for m, p in calls if m == "DELETE" and p.startswith("/v1/agents/")
            and not p.endswith("/isolation")] == [f"/v1/agents/{a}" for a in uninstalls(plan)]
    assert agent_reads == []  # the listing stood in for the reads of each agent
    mode = [e for e in audit(env) if e["event"] == "scope_guard.mode"]
    assert [m["detail"]["mode"] for m in mode] == ["listing"] and mode[0]["detail"]["max_age_s"] == 300.0


def test_by_default_each_delete_follows_a_read_of_the_same_agent(env: Env) -> None:
    plan = planned(env)
    before = len(env.sandbox.requests)

    applied = env.run("apply", "exit.plan.json", *OVERRIDE)

    assert applied.returncode == 3, applied.stdout + applied.stderr
    calls = [(r.method, r.path) for r in env.sandbox.requests[before:]]
    for agent in uninstalls(plan):
        n = calls.index(("DELETE", f"/v1/agents/{agent}"))
        assert calls[n - 1] == ("GET", f"/v1/agents/{agent}")
    mode = [e for e in audit(env) if e["event"] == "scope_guard.mode"]
    assert [m["detail"]["mode"] for m in mode] == ["object"]


def deleting(env: Env) -> Path:
    """The same exit, deleting the whole organization at the end."""
    (env.dir / "whole").mkdir()
    config = write_config(env.dir / "whole", env.url, window=60 * SCALE, extra="delete_organization = true\n")
    assert env.run("plan", "-o", "whole.plan.json", "-c", str(config)).returncode == 0
    return config


def org_check(run: Path) -> dict[str, Any]:
    events = [json.loads(line) for line in (run / "audit.jsonl").read_text().splitlines()]
    return [e for e in events if e["event"].startswith("verify.") and e["detail"].get("check") ==
            "organization is deleted"][-1]


def test_a_404_on_the_organization_is_deleted_only_where_this_exits_own_deletion_was_acknowledged(env: Env) -> None:
    config = deleting(env)
    applied = env.run("apply", "whole.plan.json", "-c", str(config), "--confirm", "Acme Dental", *OVERRIDE)
    assert applied.returncode == 3, applied.stdout + applied.stderr
    run = sorted((env.dir / "whole" / "runs").iterdir())[-1]
    assert org_check(run)["event"] == "verify.passed"  # its own DELETE answered 202, in its audit log

    # Without the run that deleted it, a 404 proves nothing: Huntress says it may mean "no permission".
    alone = env.run("verify", "-c", str(config))
    assert alone.returncode == 1, alone.stdout
    assert "doesn't" in alone.stdout and "exist" in alone.stdout and "permissions" in alone.stdout
    by_run = env.run("verify", "-c", str(config), "--run", run.name)
    assert org_check(run)["event"] == "verify.passed", by_run.stdout


def test_a_deletion_whose_reply_was_lost_is_not_counted_as_proven_by_the_404_after_it(env: Env) -> None:
    config = deleting(env)
    env.sandbox.faults.append(Fault(method="DELETE", path_prefix=f"/v1/organizations/{CUSTOMER_ORG}", status=None,
                                    acted=True, drop=True))
    applied = env.run("apply", "whole.plan.json", "-c", str(config), "--confirm", "Acme Dental", *OVERRIDE)
    assert CUSTOMER_ORG not in env.sandbox.orgs  # it did land: the client just never heard
    assert applied.returncode == 1, applied.stdout + applied.stderr
    run = sorted((env.dir / "whole" / "runs").iterdir())[-1]
    check = org_check(run)
    assert check["event"] == "verify.failed" and "no accepted deletion of it by this exit" in check["detail"]["result"]
