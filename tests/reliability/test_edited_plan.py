"""A plan file is a proposal, never an authority: an edited and re-checksummed plan, or an edited
run folder, never makes offboard write outside the exit or skip a guard (issue 14, finding 1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from offboard.connectors.sandboxing import serve
from offboard.plan import Plan
from offboard_huntress.sandbox import CUSTOMER_ORG, DEMO_KEY, DEMO_SECRET, NEIGHBOUR_ORG, HuntressSandbox
from tests.conftest import write_config

SCALE = 0.002


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[HuntressSandbox, Path]]:
    sandbox = HuntressSandbox(time_scale=SCALE)
    with serve(sandbox.app) as url:
        monkeypatch.setenv("OFFBOARD_HUNTRESS_API_KEY", DEMO_KEY)
        monkeypatch.setenv("OFFBOARD_HUNTRESS_API_SECRET", DEMO_SECRET)
        monkeypatch.chdir(tmp_path)
        yield sandbox, write_config(tmp_path, url, window=60 * SCALE)


def reseal(path: Path, edit: Any) -> None:
    """What an attacker with the file does: edit it, then recompute its checksum."""
    data = json.loads(path.read_text())
    edit(data)
    data["checksum"] = Plan.model_validate({**data, "checksum": ""}).compute_checksum()
    path.write_text(json.dumps(data, indent=2))


def huntress_steps(data: dict[str, Any]) -> list[dict[str, Any]]:
    return next(v for v in data["vendors"] if v["vendor"] == "huntress")["steps"]


def first_uninstall(data: dict[str, Any]) -> dict[str, Any]:
    return next(a for s in huntress_steps(data) for a in s["actions"] if a["operation"] == "uninstall_agent")


def writes(sandbox: HuntressSandbox) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in sandbox.requests if r.method != "GET"]


def plan_file(cli: Any, config: Path) -> Path:
    out = cli("plan", "-c", str(config), "-o", "exit.plan.json", "--detailed-exitcode")
    assert out.code == 10, out.err
    return Path("exit.plan.json")


def refused(cli: Any, config: Path, sandbox: HuntressSandbox, *extra: str) -> str:
    result = cli("apply", "-c", str(config), "exit.plan.json", "--unattended", *extra)
    assert result.code == 2, result.out + result.err
    assert writes(sandbox) == []
    assert not (config.parent / "runs").exists() or not any((config.parent / "runs").glob("2*")), \
        "a refused plan leaves no run behind"
    assert "Traceback" not in result.err
    return result.err


def test_an_added_action_for_the_neighbours_agent_is_refused_and_nothing_is_sent(
        cli: Any, served: tuple[HuntressSandbox, Path]) -> None:
    sandbox, config = served
    path = plan_file(cli, config)
    victim = sandbox.agents_of(NEIGHBOUR_ORG)[0]["id"]

    def add(data: dict[str, Any]) -> None:
        action = dict(first_uninstall(data))
        action.update(id=f"huntress.uninstall_agent.{victim}", owner=f"organization:{NEIGHBOUR_ORG}",
                      call=f"DELETE /v1/agents/{victim}",
                      target={"type": "agent", "id": str(victim), "name": "GLOBEX-WS-01"})
        next(s for s in huntress_steps(data) if action in s["actions"] or
             any(a["operation"] == "uninstall_agent" for a in s["actions"]))["actions"].append(action)

    reseal(path, add)
    err = refused(cli, config, sandbox)
    assert f"huntress.uninstall_agent.{victim}" in err
    assert "would not plan now" in err
    assert victim in sandbox.agents


def test_a_removal_marked_as_a_read_is_refused(cli: Any, served: tuple[HuntressSandbox, Path]) -> None:
    sandbox, config = served
    path = plan_file(cli, config)
    target = first_uninstall(json.loads(path.read_text()))

    def as_read(data: dict[str, Any]) -> None:
        first_uninstall(data)["destructive"] = False

    reseal(path, as_read)
    err = refused(cli, config, sandbox)
    assert target["id"] in err and "destructive False (offboard plans True)" in err
    assert len(sandbox.agents_of(CUSTOMER_ORG)) > 0 and int(target["target"]["id"]) in sandbox.agents


def test_an_added_organization_deletion_without_a_guard_is_refused(
        cli: Any, served: tuple[HuntressSandbox, Path]) -> None:
    sandbox, config = served
    path = plan_file(cli, config)

    def add_deletion(data: dict[str, Any]) -> None:
        huntress_steps(data).append({
            "id": "huntress.delete_organization", "vendor": "huntress", "title": "Delete the organization",
            "phase": "closure", "why": "", "stops_updating": [], "actions": [{
                "id": f"huntress.delete_organization.{CUSTOMER_ORG}", "vendor": "huntress",
                "step": "huntress.delete_organization", "kind": "api", "operation": "delete_organization",
                "target": {"type": "organization", "id": str(CUSTOMER_ORG), "name": "Acme Dental"},
                "summary": "delete the organization", "call": f"DELETE /v1/organizations/{CUSTOMER_ORG}",
                "owner": f"organization:{CUSTOMER_ORG}", "manual": None, "destructive": True, "confirm": None}]})

    reseal(path, add_deletion)
    err = refused(cli, config, sandbox)
    assert f"huntress.delete_organization.{CUSTOMER_ORG}" in err
    assert CUSTOMER_ORG in sandbox.orgs


def test_a_guard_removed_from_the_plan_file_is_refused(cli: Any, served: tuple[HuntressSandbox, Path]) -> None:
    sandbox, config = served
    config.write_text(config.read_text() + "delete_organization = true\n")
    path = plan_file(cli, config)

    def unguard(data: dict[str, Any]) -> None:
        for step in huntress_steps(data):
            for a in step["actions"]:
                a["confirm"] = None

    reseal(path, unguard)
    err = refused(cli, config, sandbox)
    assert "confirm None (offboard plans 'Acme Dental')" in err


def test_reordered_steps_are_refused(cli: Any, served: tuple[HuntressSandbox, Path]) -> None:
    sandbox, config = served
    path = plan_file(cli, config)
    reseal(path, lambda data: huntress_steps(data).reverse())
    err = refused(cli, config, sandbox)
    assert "steps" in err and "differ from what offboard plans now" in err


def test_an_unedited_plan_still_applies(cli: Any, served: tuple[HuntressSandbox, Path]) -> None:
    sandbox, config = served
    plan_file(cli, config)
    result = cli("apply", "-c", str(config), "exit.plan.json", "--unattended", "--override-preflight", "drill")
    assert result.code == 3, result.out + result.err
    assert sandbox.agents_of(CUSTOMER_ORG) == []
    assert sandbox.agents_of(NEIGHBOUR_ORG)


def stopped_run(harness: Any) -> Any:
    """A run that stopped before its removals (Huntress down), to be resumed."""
    from offboard import engine
    from offboard_huntress.sandbox import Fault

    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        harness.sandbox.faults += [Fault(method="DELETE", path_prefix="/v1/agents/", status=503, times=10**6),
                                   Fault(method="GET", path_prefix="/v1/agents/", status=503, times=10**6)]
        result = engine.apply(plan, harness.cfg, s, overrides=engine.Overrides(preflight="lab"))
    harness.sandbox.faults.clear()
    return result


def test_a_run_folder_plan_edited_to_reach_the_neighbour_is_refused_on_resume(harness: Any) -> None:
    from offboard import engine
    from offboard.errors import BadInput

    result = stopped_run(harness)
    victim = harness.sandbox.agents_of(NEIGHBOUR_ORG)[0]["id"]

    def retarget(data: dict[str, Any]) -> None:
        action = first_uninstall(data)
        action.update(owner=f"organization:{NEIGHBOUR_ORG}", call=f"DELETE /v1/agents/{victim}",
                      target={"type": "agent", "id": str(victim), "name": "GLOBEX-WS-01"})

    reseal(result.run.plan_path, retarget)
    before = len(writes(harness.sandbox))
    with harness.sessions() as s, pytest.raises(BadInput, match=r"run .*plan.json action huntress\.uninstall_agent"):
        engine.resume(result.run.run_id, harness.cfg, s)
    assert writes(harness.sandbox)[before:] == []
    assert victim in harness.sandbox.agents


def test_an_action_added_to_a_run_folder_plan_is_never_written(harness: Any) -> None:
    from offboard import engine
    from offboard.errors import ExitCode

    result = stopped_run(harness)
    victim = harness.sandbox.agents_of(NEIGHBOUR_ORG)[0]["id"]

    def add(data: dict[str, Any]) -> None:
        action = dict(first_uninstall(data))
        action.update(id=f"huntress.uninstall_agent.{victim}", owner=f"organization:{NEIGHBOUR_ORG}",
                      call=f"DELETE /v1/agents/{victim}",
                      target={"type": "agent", "id": str(victim), "name": "GLOBEX-WS-01"})
        next(s for s in huntress_steps(data) if any(a["operation"] == "uninstall_agent" for a in s["actions"])
             )["actions"].append(action)

    reseal(result.run.plan_path, add)
    with harness.sessions() as s:
        resumed = engine.resume(result.run.run_id, harness.cfg, s)
    assert victim in harness.sandbox.agents
    assert f"/v1/agents/{victim}" not in [p for _, p in writes(harness.sandbox)]
    assert resumed.exit_code == ExitCode.FAILED  # what was not touched is not proven stopped
    assert harness.sandbox.agents_of(CUSTOMER_ORG) == []


def test_with_a_signing_key_the_saved_plan_is_signed_and_apply_says_so(
        cli: Any, served: tuple[HuntressSandbox, Path]) -> None:
    from offboard.proof import signing

    sandbox, config = served
    signing.write_key_file(signing.generate(), config.parent / "msp.pem")
    config.write_text(config.read_text().replace('[run]\n', '[signing]\nkey_file = "msp.pem"\n\n[run]\n'))
    out = cli("plan", "-c", str(config), "-o", "exit.plan.json")
    assert out.code == 0 and "signed (exit.plan.json.sig)" in out.out
    fingerprint = signing.load_signer(config.parent / "msp.pem").fingerprint  # type: ignore[union-attr]

    # Any edit, checksum recomputed, fails the signature before a single call.
    reseal(Path("exit.plan.json"), lambda data: data.update(approved_by="someone else"))
    err = refused(cli, config, sandbox)
    assert "plan signature" in err and "does not verify" in err

    cli("plan", "-c", str(config), "-o", "exit.plan.json")
    applied = cli("apply", "-c", str(config), "exit.plan.json", "--unattended", "--override-preflight", "drill")
    assert applied.code == 3, applied.err
    assert f"signed with this MSP's key {fingerprint}" in applied.err


def test_without_a_key_apply_says_the_plan_is_not_signed(cli: Any, served: tuple[HuntressSandbox, Path]) -> None:
    _, config = served
    plan_file(cli, config)
    applied = cli("apply", "-c", str(config), "exit.plan.json", "--unattended", "--override-preflight", "drill")
    assert "The plan file is not signed" in applied.err


def test_a_gate_removed_from_a_run_folder_plan_is_refused_on_resume(blumira: Any) -> None:
    from offboard import engine
    from offboard.errors import BadInput

    with blumira.sessions() as s:
        held = engine.apply(engine.make_plan(blumira.cfg, s), blumira.cfg, s)

    def ungate(data: dict[str, Any]) -> None:
        for v in data["vendors"]:
            for step in v["steps"]:
                for a in step["actions"]:
                    a["gate"] = False

    reseal(held.run.plan_path, ungate)
    with blumira.sessions() as s, pytest.raises(BadInput, match=r"blumira\.notify\.sent differs .*gate False"):
        engine.resume(held.run.run_id, blumira.cfg, s)
    assert [r for r in blumira.sandbox.requests if r.method == "DELETE"] == []


def test_a_plan_lacking_an_action_offboard_plans_now_is_refused_naming_it(
        cli: Any, served: tuple[HuntressSandbox, Path]) -> None:
    sandbox, config = served
    path = plan_file(cli, config)
    dropped = first_uninstall(json.loads(path.read_text()))["id"]

    def drop(data: dict[str, Any]) -> None:
        for step in huntress_steps(data):
            step["actions"] = [a for a in step["actions"] if a["id"] != dropped]

    reseal(path, drop)
    err = refused(cli, config, sandbox)
    assert f"lacks 1 action(s) offboard plans now (first: {dropped})" in err


def test_a_plan_hiding_an_object_it_leaves_untouched_is_refused(
        cli: Any, served: tuple[HuntressSandbox, Path]) -> None:
    # The plan's list of what is left alone is what the operator reviews and the report repeats:
    # an edit that hides (or adds) one is an edited plan, however sound its actions.
    sandbox, config = served
    path = plan_file(cli, config)
    skipped = next(v for v in json.loads(path.read_text())["vendors"] if v["vendor"] == "huntress")["skipped"]
    assert skipped, "the sandbox lists an object the exit leaves untouched"

    def hide(data: dict[str, Any]) -> None:
        next(v for v in data["vendors"] if v["vendor"] == "huntress")["skipped"] = []

    reseal(path, hide)
    err = refused(cli, config, sandbox)
    assert "Huntress steps (their order, or what they leave untouched) differ" in err


def with_a_vendor_the_config_does_not_exit(data: dict[str, Any]) -> None:
    twin = json.loads(json.dumps(next(v for v in data["vendors"] if v["vendor"] == "huntress")))
    twin["vendor"] = "blumira"
    for step in twin["steps"]:
        step["vendor"] = "blumira"
        for action in step["actions"]:
            action["vendor"] = "blumira"
    data["vendors"].append(twin)


def test_a_plan_for_a_vendor_the_config_does_not_exit_is_refused_naming_both(
        cli: Any, served: tuple[HuntressSandbox, Path]) -> None:
    sandbox, config = served
    reseal(plan_file(cli, config), with_a_vendor_the_config_does_not_exit)
    err = refused(cli, config, sandbox)
    assert "covers vendors ['blumira', 'huntress'], but this config exits ['huntress']" in err


def test_a_run_folder_plan_given_another_vendor_is_refused_on_resume(harness: Any) -> None:
    from offboard import engine
    from offboard.errors import BadInput

    result = stopped_run(harness)
    reseal(result.run.plan_path, with_a_vendor_the_config_does_not_exit)
    before = len(writes(harness.sandbox))
    refusal = r"plan\.json covers vendors \['blumira', 'huntress'\], but this config exits \['huntress'\]"
    with harness.sessions() as s, pytest.raises(BadInput, match=refusal):
        engine.resume(result.run.run_id, harness.cfg, s)
    assert writes(harness.sandbox)[before:] == []
