"""`batch status` and `batch apply` at the points issue 22's re-check found them wrong (120x40 review of
docs/batch.md's rehearsal): a batch not started exited 3 ("waiting for a person") with `Removed 0/0`; a
gate-stopped exit had no next step; a changed config (a sandbox restarted on new ports) hid every
exit's state behind a single-exit `offboard plan` hint."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from offboard_huntress.sandbox import READ_ONLY_KEY, READ_ONLY_SECRET
from tests.connectors.test_batch_next import PLAN, batch, nexts

__all__ = ["batch"]  # the fixture, shared with test_batch_next

REPLAN = f"offboard batch plan customers.csv --template FILE -o {PLAN}"


def rows(out: str) -> dict[str, list[str]]:
    """The status table's cells by short name (Customer, Name, State, Removed, Run, Detail)."""
    cells = [[c.strip() for c in line.strip("│ ").split(" │ ")] for line in out.splitlines() if line.startswith("│")]
    return {r[0]: r for r in cells if r[0]}


def planned_removals(plan: Path) -> dict[str, int]:
    data = json.loads(plan.read_text())
    return {e["slug"]: e["estimate"]["removals"] for e in data["exits"]}


def test_a_batch_not_started_is_unfinished_work_and_shows_its_removals(cli: Any, batch: Path) -> None:
    assert cli("batch", "plan", "customers.csv", "--template", "template.toml", "-o", str(PLAN)).code == 0
    status = cli("batch", "status", str(PLAN))
    # docs/exit-codes.md, docs/batch.md: 1 one failed or is unfinished; 3 is only for a person's items
    assert status.code == 1, status.out + status.err
    assert nexts(status.out) == [f"offboard batch apply {PLAN}"]
    removals = planned_removals(batch / PLAN)
    assert all(n > 0 for n in removals.values())
    shown = rows(status.out)
    assert {slug: (r[2], r[3]) for slug, r in shown.items()} == {
        slug: ("not started", f"0/{n}") for slug, n in removals.items()}  # was 0/0


def test_a_gate_stopped_exit_is_told_the_override_resume_and_it_runs_as_printed(cli: Any, batch: Path) -> None:
    assert cli("batch", "plan", "customers.csv", "--template", "template.toml", "-o", str(PLAN)).code == 0
    applied = cli("batch", "apply", str(PLAN))  # no override: Acme Dental's open incident stops it
    assert applied.code == 4, applied.out + applied.err
    gated = f"offboard batch apply --resume {PLAN} --override-preflight REASON"
    pending = f"offboard batch status --pending {PLAN}"
    assert nexts(applied.out) == [gated, pending]  # was only the pending line: the gated exit had no next step
    status = cli("batch", "status", str(PLAN))
    assert status.code == 4 and nexts(status.out) == [gated, pending], status.out + status.err
    assert rows(status.out)["acme-dental-a-long-name"][2] == "stopped by a gate"
    # As printed, the person's reason in place of the placeholder: the gated exit runs, audited with it.
    argv = [("incident 12 closed by phone" if w == "REASON" else w) for w in shlex.split(gated)]
    resumed = cli(*argv[1:])
    assert resumed.code == 3, resumed.out + resumed.err
    assert rows(resumed.out)["acme-dental-a-long-name"][2] == "waiting for a person"
    logs = list((batch / "batch" / "acme-dental-a-long-name" / "runs").glob("*/audit.jsonl"))
    overridden = [json.loads(line) for log in logs for line in log.read_text().splitlines()
                  if json.loads(line)["event"] == "preflight.overridden"]
    assert len(overridden) == 1 and "incident 12 closed by phone" in json.dumps(overridden[0])
    assert nexts(resumed.out) == [pending]


def test_status_after_the_configs_changed_shows_the_runs_and_names_the_batch_replan(cli: Any, batch: Path) -> None:
    assert cli("batch", "plan", "customers.csv", "--template", "template.toml", "-o", str(PLAN)).code == 0
    assert cli("batch", "apply", str(PLAN), "--override-preflight", "lab").code == 3
    before = rows(cli("batch", "status", str(PLAN)).out)
    # A sandbox restarted on new ports rewrites each exit's config: the same service at another address.
    configs = sorted((batch / "batch").glob("*/config.toml"))
    for cfg in configs:
        cfg.write_text(cfg.read_text().replace("127.0.0.1", "localhost"))
    status = cli("batch", "status", str(PLAN))
    assert status.code == 2, status.out + status.err
    # read-only: each exit's state as its run's log holds it, as before the change
    assert {s: r[2:5] for s, r in rows(status.out).items()} == {s: r[2:5] for s, r in before.items()}
    assert all(r[2] == "waiting for a person" for r in before.values())
    err = status.err.splitlines()
    for slug in ("acme-dental-a-long-name", "customer-44"):
        assert any(line.startswith(f"{slug}: plan ") and "does not fit this config" in line and "localhost" in line
                   for line in err), status.err
    assert "offboard plan -o FILE" not in status.err  # the single-exit command does not make a batch plan
    assert nexts(status.out) == [REPLAN]
    # The commands that run the exits refuse it, one line naming the batch's own re-plan.
    resumed = cli("batch", "apply", "--resume", str(PLAN))
    assert resumed.code == 2 and f"`{REPLAN}`" in resumed.err and "offboard plan -o" not in resumed.err, resumed.err
    assert "Traceback" not in resumed.err and len(resumed.err.strip().splitlines()) == 1
    # As printed, with the template in place of the placeholder, it makes a new batch plan.
    made = cli(*shlex.split(REPLAN.replace("FILE", "template.toml"))[1:])
    assert made.code == 0, made.out + made.err
    assert cli("batch", "status", str(PLAN)).code != 2


def test_a_gate_no_override_passes_is_never_offered_an_override(cli: Any, batch: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # The account's default key is read-only: every exit's writes would answer 403, whatever the override.
    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_KEY", READ_ONLY_KEY)
    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_SECRET", READ_ONLY_SECRET)
    planned = cli("batch", "plan", "customers.csv", "--template", "template.toml", "-o", str(PLAN))
    assert planned.code == 0, planned.out + planned.err
    said = " ".join(planned.out.split())
    assert "--override-preflight" not in said.split("Saved to")[-1], said
    assert "no override passes" in said and "plan the batch again" in said, said
    assert "offboard batch apply" not in said.split("Saved to")[-1]  # it would refuse them all: none is offered
    for flags in ((), ("--override-preflight", "incident closed")):  # as printed, and as a person might try
        applied = cli("batch", "apply", str(PLAN), *flags)
        assert applied.code == 4, applied.out + applied.err  # a gate stopped them (was 1: "unfinished")
        assert "customer-44: stopped before the run by a gate no override passes" in " ".join(applied.err.split())
        # The next step is a new plan once the key is fixed, not the same apply (it stops them again)
        assert nexts(applied.out) == [REPLAN], applied.out
    assert all("--override-preflight" not in printed for printed in nexts(cli("batch", "status", str(PLAN)).out))
