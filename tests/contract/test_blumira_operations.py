"""Contract: every request the Blumira connector makes is one of the 59 operations the vendor
notes rebuilt from Blumira's own spec (no spec file could be obtained: vendor-specs/SOURCES.md),
and none is a write the notes do not list. The notes are found as tests/specs.py says (beside
the vendor specs)."""

from __future__ import annotations

import re
from functools import cache

import pytest

from offboard import engine
from offboard_blumira.sandbox import API_PREFIX, TOKEN_PATH
from tests.conftest import BlumiraHarness, past_the_notification
from tests.connectors import blumira_notes as notes
from tests.connectors.blumira_unknowns import settle_dispatch
from tests.specs import needs_notes

NOTES = notes.notes_path()
pytestmark = needs_notes(notes.NOTES)
ROW = re.compile(r"^\| \d+ \| (GET|POST|PUT|DELETE) \| `([^`]+)` \|", re.MULTILINE)


@cache
def operations() -> list[tuple[str, re.Pattern[str]]]:
    ops = [(m, re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$")) for m, p in ROW.findall(NOTES.read_text())]
    assert len(ops) >= 50, "the notes' endpoint tables changed shape"
    return ops


def known(method: str, path: str) -> bool:
    return any(m == method and pattern.match(path) for m, pattern in operations())


def test_every_request_of_a_full_exit_is_an_operation_the_notes_list(
        blumira: BlumiraHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    settle_dispatch(monkeypatch, blumira.sandbox)  # exercise the dispatch path too
    with blumira.sessions() as s:
        plan = engine.make_plan(blumira.cfg, s)
        past_the_notification(blumira.cfg, plan, s)
    calls = {(r.method, r.path.removeprefix(API_PREFIX)) for r in blumira.sandbox.requests
             if r.path.startswith(API_PREFIX)}
    assert len(calls) > 10
    assert any(m == "POST" and p.endswith("/actions") for m, p in calls)
    unknown = sorted(c for c in calls if not known(*c))
    assert unknown == []
    tokens = [r for r in blumira.sandbox.requests if r.path == TOKEN_PATH]
    assert tokens and all(r.method == "POST" for r in tokens)


def test_the_notes_table_is_read_as_expected() -> None:
    assert known("DELETE", "/msp/webhooks/abc")
    assert known("GET", "/msp/accounts/abc/agents/devices")
    assert not known("DELETE", "/msp/accounts/abc/agents/devices/d1")  # no device delete exists
    assert not known("DELETE", "/msp/accounts/abc/users/u1")
