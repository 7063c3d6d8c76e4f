"""The fault matrix (bench/fault_matrix.py), one seeded run per row, in CI: every fault and
attack is really injected (5xx replies come after the vendor carried the write out; a kill
strikes during every kind of write), and nothing is sent twice, lost, written outside the
exit, broken, leaked or forged. The kill rows run as one scenario here, a kill during each
kind of write in turn, resumed after each."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import httpx
import pytest
from bench.fault_matrix import EVERY_WRITE, MUST_BE_ZERO, SCENARIOS, Scenario, run_matrix, table
from bench.matrix_kills import AFTER, BEFORE
from bench.matrix_world import B_ID, B_SECRET, CREDENTIAL_FORMS, H_KEY, Row, secrets_found, world

from offboard_blumira.sandbox import TOKEN_PATH

pytestmark = pytest.mark.e2e

EVERY_KIND_OF_WRITE_ACTED = {"huntress DELETE agents", "huntress DELETE memberships", "huntress DELETE "
                             "unwanted_access_rules", "huntress PATCH organizations", "huntress PATCH subscriptions",
                             "blumira DELETE webhooks", "blumira POST actions"}


def test_every_fault_and_attack_is_ridden_out_with_nothing_twice_lost_outside_broken_leaked_or_forged() -> None:
    kills = Scenario("kill -9 during every kind of write, resumed after each", kill=EVERY_WRITE)
    rows = run_matrix(runs=1, agents=6, seed=7, scenarios=[*(s for s in SCENARIOS if not s.kill), kills])
    report = table(rows)
    by = {r.scenario: r for r in rows}
    for row in rows:
        assert row.faults > 0, f"{row.scenario}: no fault was injected\n{report}"
        assert not row.notes, f"{row.scenario}: {row.notes}\n{report}"
        for column in MUST_BE_ZERO:
            assert getattr(row, column) in (0, None), f"{row.scenario}: {column}\n{report}"
        assert row.tokens > 0 and row.searched > 0, f"{row.scenario}: nothing was searched for credentials"
    assert all(r.lost == 0 for r in rows if not r.scenario.startswith("edited plan")), report
    acted = by["5xx or a cut connection after the vendor acted"]
    # Each kind of write was carried out by the vendor while offboard got a 5xx or a cut connection,
    # its effect is there at the end, and (sent twice: 0) it was never sent again.
    assert set(acted.acted) >= EVERY_KIND_OF_WRITE_ACTED, acted.acted
    assert acted.acted_landed == sum(acted.acted.values())
    assert all(by[kills.name].kinds[p.label] == 1 for p in EVERY_WRITE), by[kills.name].kinds
    assert by[kills.name].kinds[BEFORE] and by[kills.name].kinds[AFTER]  # the write landed after the kill, and before
    assert by[kills.name].resumes >= len(EVERY_WRITE)
    assert by["vendor down, resumed later"].resumes >= 1
    # A dispatch refused in front of the vendor cannot be told from one whose agent has not acted yet:
    # never resent (sent twice: 0), left to the technician, who did it in the portal (lost: 0).
    assert by["500/502/503 before the vendor acted"].to_person >= 1
    assert by["edited plan, re-checksummed (3 edits)"].faults == 3
    two = by["two processes on one exit (two runs folders; two configs; two spellings of one account; two cache "
             "folders)"]
    assert two.faults == 4, two.kinds
    assert by["an agent moved to the neighbour mid-run"].kinds["moved owner"] == 1
    assert by["a listing naming a neighbour's agent as the customer's"].kinds["lying listing"] == 1
    forged = by["forged bundles (6 crafted)"]
    assert forged.faults == 6 and forged.forged_accepted == 0


def test_the_credential_search_finds_every_form_in_files_bundles_outputs_and_logs(tmp_path: Path) -> None:
    """The search itself can fail: each credential form, planted where offboard could leak it, is found."""
    with world(tmp_path / "w", agents=2) as w:
        token = httpx.post(w.burl + TOKEN_PATH, json={"grant_type": "client_credentials", "audience": "public-api",
                                                      "client_id": B_ID, "client_secret": B_SECRET}).json()
        assert token["access_token"] in w.b.issued
        (w.path / "runs" / "r").mkdir(parents=True)
        (w.path / "runs" / "r" / "audit.jsonl").write_text(f"key {H_KEY}\n")
        (w.path / "bundle.tar.gz").write_bytes(gzip.compress(f"token {token['access_token']}".encode()))
        with w.captured("apply"):
            logging.getLogger("probe").debug("Authorization: Basic %s", CREDENTIAL_FORMS["Huntress Basic header"])
            print(B_SECRET)
        w.outputs.append(("offboard plan (stdout, stderr)", f"client {B_ID}"))
        found, where, searched = secrets_found(w)
    assert found == 5 and searched > 0, where
    assert sorted(where) == sorted([
        "Huntress API key in runs/r/audit.jsonl", "Blumira token #1 in bundle.tar.gz",
        "Huntress Basic header in apply in process (stdout, stderr, logging, warnings)",
        "Blumira client secret in apply in process (stdout, stderr, logging, warnings)",
        "Blumira client id in offboard plan (stdout, stderr)"])


def test_a_row_counts_nothing_it_did_not_measure() -> None:
    total = Row("t")
    total.add(Row("a", lost=None, forged_accepted=None))
    total.add(Row("b", lost=2, forged_accepted=None))
    assert (total.lost, total.forged_accepted) == (2, None)
    assert "| t | 0 | 0 | 0 | 0 | 2 | 0 | 0 | 0 | - |" in table([total])
