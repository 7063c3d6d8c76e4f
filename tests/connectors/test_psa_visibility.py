"""Issue 26: what offboard posts to the exit's ticket is internal to the MSP, by each PSA's documented
meaning — never a value the customer or its co-managing IT staff reads; a tenant without an
internal-only value is refused at `plan`, naming the values found and the config key."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest

from offboard import engine
from offboard.errors import BadInput
from offboard_autotask import sandbox as at
from offboard_halopsa import sandbox as halo
from tests.conftest import FAST
from tests.connectors.psa_harness import AT, CW, HALO, PsaExit
from tests.connectors.test_psa_ticket import whole_exit

ISSUE_TENANT = ((1, "All Autotask Users", True), (4, "Internal & Co-Managed", True), (7, "Internal Only", True),
                (2, "Internal Only", False))  # 2 retired


def posts(x: PsaExit, path: str) -> list[Any]:
    return [json.loads(r.body) for r in x.sandbox.requests
            if r.method == "POST" and r.path.startswith(path) and not r.gated]


def autotask(tmp_path: Path, publish: tuple[tuple[int, str, bool], ...], extra: str = "") -> PsaExit:
    return PsaExit(AT, tmp_path, extra=extra, sandbox=at.AutotaskSandbox(time_scale=FAST, publish=publish))


def plan_line(x: PsaExit) -> str | None:
    with x.sessions() as s:
        engine.make_plan(x.cfg, s)
        assert s.ticket is not None
        return s.ticket.visibility_line


def test_autotask_internal_only_is_chosen_never_co_managed_or_all_users_and_plan_names_it(tmp_path: Path) -> None:
    x = autotask(tmp_path, ISSUE_TENANT)
    assert plan_line(x) == ('Autotask ticket 4711: internal notes as publish 7 "Internal Only", files as publish 7 '
                            '"Internal Only" (internal to the MSP by its label: never co-managed or all-users, which '
                            'people at the customer read; the picklists are the tenant\'s (TicketNotes and '
                            'TicketAttachments entityInformation/fields))')
    whole_exit(x)
    notes, files = posts(x, AT.note_writes), posts(x, AT.file_writes)
    assert len(notes) >= 6 and files
    assert {n["publish"] for n in notes} == {7} and {f["publish"] for f in files} == {7}


def test_autotask_common_tenant_internal_project_team_is_internal(tmp_path: Path) -> None:
    # 2 = "Internal Project Team": only the MSP's own resources on the team read it (no contact, no
    # co-managing user); with no "Internal Only" on the picklist it is the internal value.
    x = autotask(tmp_path, at.COMMON_PUBLISH)
    assert 'publish 2 "Internal Project Team"' in str(plan_line(x))
    whole_exit(x)
    assert {n["publish"] for n in posts(x, AT.note_writes)} == {2}


def test_autotask_tenant_without_internal_only_value_is_refused_at_plan(tmp_path: Path) -> None:
    x = autotask(tmp_path, ((1, "All Autotask Users", True), (4, "Internal & Co-Managed", True),
                            (7, "Internal Only", False)))
    with x.sessions() as s, pytest.raises(BadInput) as refused:
        engine.make_plan(x.cfg, s)
    line = str(refused.value)
    assert "\n" not in line and "psa.publish_internal" in line
    assert '1 "All Autotask Users", 4 "Internal & Co-Managed", 7 "Internal Only" (retired)' in line
    assert not posts(x, AT.note_writes) and not posts(x, AT.file_writes)
    # Vendor reads never started: the refusal comes before discovery.
    assert not [r for r in x.huntress.requests if not r.gated]


def test_autotask_configured_value_is_used_unless_people_outside_the_msp_read_it(tmp_path: Path) -> None:
    x = autotask(tmp_path, ISSUE_TENANT, extra="publish_internal = 4\n")
    with x.sessions() as s, pytest.raises(BadInput, match=r'publish_internal = 4 is "Internal & Co-Managed"'):
        engine.make_plan(x.cfg, s)
    x = autotask(tmp_path / "b", ((1, "All Autotask Users", True), (9, "Nur intern", True)),
                 extra="publish_internal = 9\nattachment_publish_internal = 9\n")
    (tmp_path / "b").mkdir(exist_ok=True)
    assert 'publish 9 "Nur intern"' in str(plan_line(x))
    whole_exit(x)
    assert {n["publish"] for n in posts(x, AT.note_writes)} == {9}


def test_autotask_apply_posts_nothing_without_an_internal_value(tmp_path: Path) -> None:
    x = autotask(tmp_path, at.COMMON_PUBLISH)
    cfg = x.cfg
    with x.sessions() as s:
        plan = engine.make_plan(cfg, s)
        x.sandbox.publish = ((1, "All Autotask Users", True), (4, "Internal & Co-Managed", True))
        s.ticket.session._picks = None  # type: ignore[union-attr]  # a new session (apply) reads the tenant again
        result = engine.apply(plan, cfg, s, overrides=engine.Overrides(preflight="test"))
    assert not posts(x, AT.note_writes)
    reasons = [r["detail"]["reason"] for r in engine_records(result) if r["event"] == "ticket.failed"]
    assert reasons and all("no single internal-only value" in r for r in reasons)


def engine_records(result: engine.RunResult) -> list[dict[str, Any]]:
    from offboard.proof.audit import read_records

    return list(read_records(result.run.path / "audit.jsonl"))


def test_connectwise_notes_are_internal_analysis_without_notifications_and_documents_private(tmp_path: Path) -> None:
    x = PsaExit(CW, tmp_path)
    assert "internalAnalysisFlag true (Internal Analysis)" in str(plan_line(x))
    whole_exit(x)
    notes = posts(x, CW.note_writes)
    assert len(notes) >= 6
    for n in notes:
        assert (n["internalAnalysisFlag"], n["detailDescriptionFlag"], n["resolutionFlag"],
                n["processNotifications"]) == (True, False, False, False)
    docs = x.sandbox.ticket_documents()
    assert docs and all(d["publicFlag"] is False for d in docs)


def test_halopsa_notes_use_an_action_type_hidden_from_the_end_user(tmp_path: Path) -> None:
    x = PsaExit(HALO, tmp_path)
    assert 'action type 7 "Internal Note" with hiddenfromuser true' in str(plan_line(x))
    whole_exit(x)
    actions = [a for body in posts(x, HALO.note_writes) for a in body]
    assert len(actions) >= 6 and all(a["hiddenfromuser"] is True and a["sendemail"] is False for a in actions)
    assert all(a["showforusers"] is False for body in posts(x, HALO.file_writes) for a in body)


def test_halopsa_action_type_shown_to_the_user_is_refused_at_plan(tmp_path: Path) -> None:
    x = PsaExit(HALO, tmp_path, extra="outcome_id = 1\n",
                sandbox=halo.HaloSandbox(time_scale=FAST))
    with x.sessions() as s, pytest.raises(BadInput) as refused:
        engine.make_plan(x.cfg, s)
    line = str(refused.value)
    assert 'psa.outcome_id = 1 is the HaloPSA action type "Logged"' in line and '7 "Internal Note"' in line
    assert not posts(x, HALO.note_writes)


@pytest.fixture
def served_autotask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from offboard.connectors.sandboxing import serve
    from offboard_huntress.sandbox import HuntressSandbox
    from tests.conftest import DEMO_KEY, DEMO_SECRET, write_config

    def start(publish: tuple[tuple[int, str, bool], ...]) -> Any:
        huntress = HuntressSandbox(time_scale=FAST, customer_agents=2, neighbour_agents=1)
        tenant = at.AutotaskSandbox(time_scale=FAST, publish=publish)
        stack = contextlib.ExitStack()
        hurl, aurl = stack.enter_context(serve(huntress.app)), stack.enter_context(serve(tenant.app))
        for var, value in {"OFFBOARD_HUNTRESS_API_KEY": DEMO_KEY, "OFFBOARD_HUNTRESS_API_SECRET": DEMO_SECRET,
                           **{f"OFFBOARD_PSA_{k.upper()}": v for k, v in AT.creds.items()}}.items():
            monkeypatch.setenv(var, value)
        monkeypatch.chdir(tmp_path)
        config = write_config(tmp_path, hurl, extra='products = ["edr"]\n')
        config.write_text(config.read_text() + "\n" + AT.section(aurl))
        return stack, config, tenant

    return start


def test_plan_through_the_cli_states_the_visibility_or_refuses_in_one_line(cli: Any, served_autotask: Any) -> None:
    stack, config, tenant = served_autotask(ISSUE_TENANT)
    with stack:
        ok = cli("plan", "-c", str(config), "-o", "exit.plan.json")
        assert ok.code == 0, ok.err
        assert 'internal notes as publish 7 "Internal Only", files as publish 7 "Internal Only"' in ok.out
        as_json = cli("plan", "-c", str(config), "--json")
        assert as_json.code == 0, as_json.err
        assert 'publish 7 "Internal Only"' in json.loads(as_json.out)["ticket_visibility"]
        tenant.publish = ((1, "All Autotask Users", True), (4, "Internal & Co-Managed", True))
        Path("exit.plan.json").unlink()
        refused = cli("plan", "-c", str(config), "-o", "exit.plan.json")
    assert refused.code == 2 and not Path("exit.plan.json").exists()
    lines = [line for line in refused.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "psa.publish_internal" in lines[0] and '4 "Internal & Co-Managed"' in lines[0]
    assert "Traceback" not in refused.err


def test_halopsa_action_types_the_agent_may_not_read_leave_each_actions_own_flag(tmp_path: Path) -> None:
    from offboard.connectors.sandboxing import Fault

    x = PsaExit(HALO, tmp_path)
    x.sandbox.faults.append(Fault(method="GET", path_prefix="/api/Outcome", status=403, times=10**6))
    assert "action type 7 (not readable by the API agent) with hiddenfromuser true" in str(plan_line(x))
    whole_exit(x)
    actions = [a for body in posts(x, HALO.note_writes) for a in body]
    assert len(actions) >= 6 and all(a["hiddenfromuser"] is True for a in actions)
