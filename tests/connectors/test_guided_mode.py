"""Guided mode: the run waits at each manual item, re-reads the vendor, and records the person's word."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from offboard import engine
from offboard.connectors import Check
from offboard.connectors.sandboxing import serve
from offboard.engine import GuideAnswer
from offboard.errors import ExitCode
from offboard.plan import Action
from offboard.proof.audit import read_records, verify_file
from offboard_huntress.sandbox import CUSTOMER_ORG, HuntressSandbox
from tests.conftest import Harness, write_config

LAB = engine.Overrides(preflight="lab")


class ScriptedGuide:
    """A technician who answers from a script and does the portal work in the sandbox when asked."""

    by = "J. Doe"

    def __init__(self, sandbox: HuntressSandbox, answers: dict[str, list[str]]) -> None:
        self.sandbox = sandbox
        self.answers = answers
        self.asked: list[tuple[str, str | None]] = []

    def ask(self, action: Action, refused: Check | None) -> GuideAnswer:
        self.asked.append((action.operation, refused.detail if refused else None))
        if sum(op == action.operation for op, _ in self.asked) > 5:
            pytest.fail(f"{action.operation} refused again and again: {refused.detail if refused else ''}")
        script = self.answers.get(action.operation, ["done"])
        answer = script.pop(0) if len(script) > 1 else script[0]
        if answer == "portal-then-done":  # does the portal step, then says done
            org = self.sandbox.orgs[CUSTOMER_ORG]
            org.pop("identity_provider_tenant_id", None)
            org["logs_sources_count"] = 0
            org["sat_learner_count"] = 0  # learners deactivated, as the SAT item asks
            self.sandbox.identities = [i for i in self.sandbox.identities if i["organization"]["id"] != CUSTOMER_ORG]
            answer = "done"
        if answer in ("skip", "stop"):
            return GuideAnswer(done=False, stop=answer == "stop")
        return GuideAnswer(done=True, note=f"{action.operation} done, ticket PSA-1")


def test_guided_run_confirms_every_item_and_refuses_a_claim_the_vendor_contradicts(harness: Harness) -> None:
    guide = ScriptedGuide(harness.sandbox, {"itdr.unmap-tenant": ["done", "portal-then-done"],
                                            "siem.disconnect-sources": ["portal-then-done"],
                                            "sat.close-campaigns": ["portal-then-done"]})
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        result = engine.apply(plan, harness.cfg, s, overrides=LAB, guide=guide)
    assert result.exit_code == ExitCode.OK and result.pending == []
    itdr = [refused for op, refused in guide.asked if op == "itdr.unmap-tenant"]
    assert itdr[0] is None and "tenant-acme-m365" in (itdr[1] or "")  # shown why it was refused
    events = list(read_records(result.run.audit_path))
    kinds = Counter(e["event"] for e in events)
    assert kinds["manual.confirmed"] == 13 and kinds["manual.rejected"] == 1
    confirmed = [e for e in events if e["event"] == "manual.confirmed"]
    assert {e["detail"]["mode"] for e in confirmed} == {"guided"} and {e["detail"]["by"] for e in confirmed} == {
        "J. Doe"}
    itdr_ok = next(e for e in confirmed if e["action_id"] == "huntress.itdr.unmap-tenant")
    assert itdr_ok["detail"]["verified_by_api"] is True
    assert verify_file(result.run.audit_path).ok
    assert "Nothing left" in (result.run.path / "manual-checklist.md").read_text()


def test_skip_leaves_an_item_pending_and_stop_leaves_guided_mode(harness: Harness) -> None:
    guide = ScriptedGuide(harness.sandbox, {"evidence.billing-detail-report": ["skip"],
                                            "itdr.unmap-tenant": ["stop"]})
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
        result = engine.apply(plan, harness.cfg, s, overrides=LAB, guide=guide)
    assert result.exit_code == ExitCode.MANUAL_PENDING
    asked = [op for op, _ in guide.asked]
    assert asked[-1] == "itdr.unmap-tenant"  # nothing asked after "stop"
    pending = [a.operation for a in result.pending]
    assert "evidence.billing-detail-report" in pending and "itdr.unmap-tenant" in pending
    assert "closure.send-note" in pending and "scope.record-in-psa" not in pending


def test_apply_guided_through_the_cli(tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox = HuntressSandbox(time_scale=0.005)
    # The technician already did the portal work for ITDR, SIEM and SAT, so every "done" is borne out.
    sandbox.orgs[CUSTOMER_ORG].update(logs_sources_count=0, sat_learner_count=0)
    sandbox.orgs[CUSTOMER_ORG].pop("identity_provider_tenant_id")
    sandbox.identities = [i for i in sandbox.identities if i["organization"]["id"] != CUSTOMER_ORG]
    prompts: list[str] = []

    def prompt(text: str, **kwargs: Any) -> str:
        prompts.append(text)
        return "done" if text.startswith("done / skip") else "see ticket PSA-1"

    monkeypatch.setattr("rich.prompt.Prompt.ask", prompt)
    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_KEY", "hk_sandbox_demo_key")
    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_SECRET", "hs_sandbox_demo_secret_not_real")
    with serve(sandbox.app) as url:
        config = write_config(tmp_path, url)
        assert cli("plan", "-c", str(config), "-o", str(tmp_path / "p.json")).code == 0
        result = cli("apply", str(tmp_path / "p.json"), "-c", str(config), "--override-preflight", "lab",
                     "--guided", "--by", "Jane Tech")
    assert result.code == 0, result.out + result.err
    shown = " ".join(result.out.split())
    assert "Manual item huntress.itdr.unmap-tenant" in shown and "13 manual item(s) confirmed" in shown
    assert sum(p.startswith("done / skip") for p in prompts) == 13
    assert any("who approved the Microsoft 365 consent removal" in p for p in prompts)
    runs = sorted((tmp_path / "runs").iterdir())
    events = list(read_records(runs[-1] / "audit.jsonl"))
    confirmed = [e for e in events if e["event"] == "manual.confirmed"]
    assert len(confirmed) == 13
    assert all(e["detail"]["by"] == "Jane Tech" and e["detail"]["mode"] == "guided" for e in confirmed)


def test_without_a_terminal_apply_is_unattended(tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox = HuntressSandbox(time_scale=0.005)
    monkeypatch.setattr("rich.prompt.Prompt.ask", lambda *a, **k: pytest.fail("prompted without a terminal"))
    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_KEY", "hk_sandbox_demo_key")
    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_SECRET", "hs_sandbox_demo_secret_not_real")
    with serve(sandbox.app) as url:
        config = write_config(tmp_path, url)
        cli("plan", "-c", str(config), "-o", str(tmp_path / "p.json"))
        result = cli("apply", str(tmp_path / "p.json"), "-c", str(config), "--override-preflight", "lab")
    assert result.code == 3 and "manual-checklist.md" in result.err


class _Terminal:
    """This process's stdin or stdout as it stands at each call, but a terminal."""

    def __init__(self, name: str) -> None:
        self._name = name

    def isatty(self) -> bool:
        return True

    def __getattr__(self, attr: str) -> Any:
        return getattr(getattr(sys, self._name), attr)


class _SysOnATerminal:
    stdin, stdout = _Terminal("stdin"), _Terminal("stdout")

    def __getattr__(self, attr: str) -> Any:
        return getattr(sys, attr)


def test_a_run_begun_unattended_resumes_unattended_on_a_terminal(tmp_path: Path, cli: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The resume command an unattended run prints runs as it was: on a terminal it does not turn into a
    prompt at each manual item (review at 120x40: it sat at one, the progress hidden, for minutes)."""
    sandbox = HuntressSandbox(time_scale=0.005)
    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_KEY", "hk_sandbox_demo_key")
    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_SECRET", "hs_sandbox_demo_secret_not_real")
    monkeypatch.setattr("offboard.cli.app.sys", _SysOnATerminal())
    with serve(sandbox.app) as url:
        config = write_config(tmp_path, url)
        assert cli("plan", "-c", str(config), "-o", str(tmp_path / "p.json")).code == 0
        first = cli("apply", str(tmp_path / "p.json"), "-c", str(config), "--override-preflight", "lab",
                    "--unattended")
        assert first.code == 3, first.out + first.err
        run_id = sorted((tmp_path / "runs").iterdir())[-1].name
        monkeypatch.setattr("rich.prompt.Prompt.ask", lambda *a, **k: pytest.fail("a prompt on resume"))
        resumed = cli("apply", "--resume", run_id, "-c", str(config), "--override-preflight", "lab")
    assert resumed.code == 3, resumed.out + resumed.err
    started = next(e for e in read_records(tmp_path / "runs" / run_id / "audit.jsonl") if e["event"] == "run.started")
    assert started["detail"]["guided"] is False
