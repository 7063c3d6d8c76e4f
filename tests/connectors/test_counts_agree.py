"""One count of a run, whichever command prints it: apply, confirm, resume, status and the report
say the same numbers at every moment of a demo-like exit, and those numbers are the audit log's."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from offboard import engine
from offboard.batch import run as batch_run
from offboard.cli.render import plan_summary
from offboard.lifecycle import fold
from offboard.plan import read_plan
from offboard.proof.audit import read_records
from tests.connectors.demo_run import DemoRun, demo_world, play

GATE = "blumira.notify.sent"


def from_the_log(run_path: Path) -> Counter[str]:
    """Counted here from the raw log, independently of the engine's tally."""
    plan = read_plan(run_path / "plan.json")
    last = fold(list(read_records(run_path / "audit.jsonl"))).last
    gate_open = last.get(GATE, {}).get("event") in ("manual.pending", "manual.rejected")
    n: Counter[str] = Counter()
    for a in plan.actions():
        ev = last[a.id]["event"] if a.id in last else None
        if ev in ("manual.pending", "manual.rejected"):
            n["for a person"] += 1
        elif ev == "manual.confirmed":
            n["confirmed"] += 1
        elif ev == "action.succeeded" and a.operation.startswith("ticket."):
            n["noted"] += 1  # the exit's PSA ticket told: no evidence
        elif ev == "action.succeeded" and not a.destructive:
            files = last[a.id]["detail"]["files"]
            n["drafted" if files and all(f.get("draft_for") for f in files) else "exported"] += 1
        elif ev == "action.succeeded":
            n["removed"] += 1
        elif ev is None and gate_open and a.vendor == "blumira" and (a.kind == "manual" or a.destructive):
            n["wait"] += 1
        elif ev is None:
            n["not run"] += 1
    return n


def said(sentence: str) -> dict[str, int]:
    """The numbers of the one summary line, by what they count."""
    words = {"removed by API": "removed", "evidence export(s)": "exported", "document(s) drafted": "drafted",
             "ticket note(s)": "noted",
             "manual item(s) confirmed": "confirmed",
             "manual item(s) waiting for a person": "for a person", "action(s) wait for": "wait",
             "action(s) not run yet": "not run"}
    out = {}
    for phrase, key in words.items():
        m = re.search(r"(\d+) " + re.escape(phrase), sentence)
        out[key] = int(m.group(1)) if m else 0
    return out


def report_glance(run_path: Path) -> list[int]:
    """The report's "at a glance" columns, summed over the vendors."""
    section = (run_path / "report.md").read_text().split("## At a glance", 1)[1].split("\n\n", 2)[1]
    rows = [[int(c) for c in line.strip("|").split("|")[1:]] for line in section.splitlines()[2:]]
    return [sum(col) for col in zip(*rows, strict=True)]


def report_waiting(run_path: Path) -> int:
    m = re.search(r"(\d+) manual step\(s\) still waiting for a person", (run_path / "report.md").read_text())
    return int(m.group(1)) if m else 0


def test_apply_confirm_resume_status_and_the_report_count_the_same(tmp_path: Path) -> None:
    moments: list[str] = []

    def compare(demo: DemoRun, verb: str, outcome: Any) -> None:
        run = outcome.run
        truth = from_the_log(run.path)
        status = engine.run_tally(run.run_id, demo.cfg)
        printed = said(outcome.summary())
        assert printed == said(status.sentence()), verb  # the command and `status` right after it
        assert {k: v for k, v in printed.items() if v} == {k: v for k, v in truth.items() if v}, (verb, truth)
        assert report_waiting(run.path) == truth["for a person"], verb
        removed, already, by_hand, for_person, later, _, exported, _ = report_glance(run.path)
        assert (removed + already, by_hand, for_person, later, exported) == (
            truth["removed"], truth["confirmed"], truth["for a person"], truth["wait"] + truth["not run"],
            truth["exported"]), verb
        _, rows = engine.status(run.run_id, demo.cfg)
        assert sum(r.state == "manual-pending" for r in rows) == truth["for a person"], verb
        assert sum(r.state == "waiting" for r in rows) == truth["wait"], verb
        if verb in ("apply", "resume"):
            assert len(outcome.pending) == truth["for a person"], verb
            assert outcome.counts["confirmed"] == truth["confirmed"], verb  # earlier confirmations count too
        else:
            assert len(outcome.remaining) == truth["for a person"], verb
            assert len(outcome.to_resume) == truth["not run"], verb
        moments.append(f"{verb}: {truth}")

    demo = demo_world(tmp_path)
    play(demo, between=compare)
    first = demo.results[0]
    # The cases: what apply says waits for the notice is what the confirmation hands to resume ...
    waiting = said(first.summary())["wait"]
    assert waiting > 1 and f"{waiting} action(s) wait for {GATE}" in first.message
    # ... and the resume right after confirmations counts them.
    assert len(demo.results) > 1 and demo.results[1].counts["confirmed"] > 0
    assert engine.run_tally(first.run.run_id, demo.cfg).complete, moments  # and the exit ends complete
    assert [m.split(":")[0] for m in moments].count("resume") == 1


def test_the_plan_counts_its_reads_as_the_run_does(tmp_path: Path) -> None:
    """Issue 22: `plan` said "17 evidence exports" where the run said 16 exports and 1 document
    drafted. The plan's summary and the finished run's count say the same words and numbers."""
    demo = demo_world(tmp_path)
    play(demo)
    run = demo.results[0].run
    plan = read_plan(run.path / "plan.json")
    planned = plan_summary(plan)[0]
    done = engine.run_tally(run.run_id, demo.cfg).sentence()
    assert "document(s) drafted" in planned and said(planned)["drafted"] == 1
    for kind in ("exported", "drafted", "noted"):
        assert said(planned)[kind] == said(done)[kind], (planned, done)
    removals = int(re.search(r"(\d+) removal\(s\) by API", planned).group(1))  # type: ignore[union-attr]
    assert removals == said(done)["removed"] and said(planned)["exported"] == report_glance(run.path)[6]


def test_the_batch_plan_counts_an_exits_evidence_exports_as_its_run_does(tmp_path: Path) -> None:
    """`batch plan` said one evidence export more than the exit's run, for every exit (its drafted
    document counted as an export): review at 120x40."""
    demo = demo_world(tmp_path)
    play(demo)
    run = demo.results[0].run
    estimate = batch_run.estimate(read_plan(run.path / "plan.json"), demo.cfg, {})
    assert estimate.exports == said(engine.run_tally(run.run_id, demo.cfg).sentence())["exported"]


def test_a_removal_held_behind_a_gate_is_said_beside_the_removed_count(tmp_path: Path) -> None:
    """Issue 22's review: the demo's first apply said "removed 42" where the plan and status said 43
    (the 43rd, Blumira's webhook, waits for "notify Blumira first"). The difference is said, from the
    one tally, until it is gone."""
    demo = demo_world(tmp_path)
    play(demo)
    first, last = demo.results[0], demo.results[-1]
    planned = int(re.search(r"(\d+) removal\(s\) by API",  # type: ignore[union-attr]
                            plan_summary(read_plan(first.run.path / "plan.json"))[0]).group(1))
    assert first.tally is not None and len(first.tally.removals) == planned
    held = planned - said(first.summary())["removed"]
    assert held == 1 and first.summary().startswith(
        f"Run {first.run.run_id}: {planned - held} removed by API of {planned} planned (0 already gone; "
        f"{held} held until a person confirms {GATE}), ")
    done = engine.run_tally(last.run.run_id, demo.cfg).sentence()
    assert done.startswith(f"{planned} removed by API (0 already gone), ") and "planned" not in done
