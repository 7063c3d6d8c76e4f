"""Exit codes by convention (issue 15, friction 3): `plan` exits 0 when it succeeds, so
`offboard plan -o x.json && offboard apply x.json` applies and `set -e` scripts go on;
`--detailed-exitcode` answers "are there changes?" as Terraform's flag does (0 / 10);
`confirm` exits 0 once its confirmation is recorded; `status` keeps 3 while work is pending."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from offboard.connectors.sandboxing import serve
from offboard.errors import EXIT_CODE_MEANINGS
from offboard_huntress.sandbox import DEMO_KEY, DEMO_SECRET, HuntressSandbox
from tests.conftest import write_config

SCALE = 0.002


@pytest.fixture
def sandbox() -> HuntressSandbox:
    return HuntressSandbox(time_scale=SCALE)


@pytest.fixture
def config(sandbox: HuntressSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with serve(sandbox.app) as url:
        monkeypatch.setenv("OFFBOARD_HUNTRESS_API_KEY", DEMO_KEY)
        monkeypatch.setenv("OFFBOARD_HUNTRESS_API_SECRET", DEMO_SECRET)
        monkeypatch.chdir(tmp_path)
        yield write_config(tmp_path, url, window=60 * SCALE)


def unverified_manual_item(plan_file: Path) -> str:
    """A manual item no API can check: its confirmation is recorded with the note alone."""
    actions = [a for v in json.loads(plan_file.read_text())["vendors"] for s in v["steps"] for a in s["actions"]]
    return next(a["id"] for a in actions if a["kind"] == "manual" and not a["manual"]["verify_hint"])


def test_plan_succeeds_with_0_and_detailed_exitcode_says_whether_there_are_changes(cli: Any, config: Path) -> None:
    made = cli("plan", "-c", str(config), "-o", "exit.plan.json")
    assert made.code == 0, made.err  # the old code exited 10 here: `plan -o x && apply x` never applied
    assert "removal(s) by API" in made.out and Path("exit.plan.json").exists()
    assert cli("plan", "-c", str(config), "--detailed-exitcode").code == 10

    applied = cli("apply", "exit.plan.json", "-c", str(config), "--override-preflight", "lab", "--unattended")
    assert applied.code == 3, applied.out + applied.err
    after = cli("plan", "-c", str(config), "--detailed-exitcode")
    assert after.code == 0 and "0 removal(s) by API" in after.out
    assert cli("plan", "-c", str(config)).code == 0


def test_confirm_exits_0_once_recorded_and_lists_what_remains_while_status_keeps_3(cli: Any, config: Path) -> None:
    assert cli("plan", "-c", str(config), "-o", "exit.plan.json").code == 0
    applied = cli("apply", "exit.plan.json", "-c", str(config), "--override-preflight", "lab", "--unattended")
    assert applied.code == 3
    assert cli("status", "-c", str(config)).code == 3

    item = unverified_manual_item(Path("exit.plan.json"))
    done = cli("confirm", item, "--by", "J. Doe", "--note", "done, ticket PSA-1", "-c", str(config))
    assert done.code == 0, done.out + done.err  # the old code exited 3 after every successful confirmation
    said = " ".join(done.out.split())
    assert f"Confirmed {item} by J. Doe" in said
    # What changed and how many remain; the list itself is `status --pending`'s (issue 22: no reprinted table).
    assert "manual item(s) of this run remain" in said and "Manual items (no API)" not in said
    listing = f"offboard status --pending --run {done.out.split(' in run ')[1].split('.')[0]} -c {config}"
    assert listing in said
    pending = cli("status", "--pending", "-c", str(config))
    assert pending.code == 0 and item not in pending.out.split()
    assert said.count("remain") == 1 and f"{len(pending.out.split())} manual item(s) of this run remain" in said
    assert cli("status", "-c", str(config)).code == 3  # pending work is status's to report

    again = cli("confirm", item, "--by", "J. Doe", "--note", "twice", "-c", str(config))
    assert again.code == 2 and "already confirmed" in again.err


def test_help_ends_with_the_one_table_of_exit_codes(cli: Any) -> None:
    shown = " ".join(cli("--help").out.split())
    assert "Exit codes:" in shown
    for code, meaning in EXIT_CODE_MEANINGS.items():
        assert f"{int(code)} {' '.join(meaning.split())}" in shown


def test_the_docs_table_of_exit_codes_is_the_one_help_prints() -> None:
    page = (Path(__file__).parents[2] / "docs" / "exit-codes.md").read_text()
    rows = [line for line in page.splitlines() if line.startswith("| ") and not line.startswith("| code")]
    assert rows == [f"| {int(code)} | {meaning} |" for code, meaning in EXIT_CODE_MEANINGS.items()]


def test_the_checklist_files_confirm_command_runs_as_printed_from_another_folder(
        cli: Any, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The file is read later, from wherever the technician is: it names the config by its absolute path.
    assert cli("plan", "-c", str(config), "-o", "exit.plan.json").code == 0
    rel = Path(config.name)  # the run is made with a relative -c, as a technician types it
    assert cli("apply", "exit.plan.json", "-c", str(rel), "--override-preflight", "lab", "--unattended").code == 3
    checklist = next((tmp_path / "runs").glob("*/manual-checklist.md")).read_text()
    line = next(ln.strip() for ln in checklist.splitlines() if ln.strip().startswith("offboard confirm ITEM"))
    assert f"-c {config.resolve()}" in line
    item = unverified_manual_item(tmp_path / "exit.plan.json")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    argv = shlex.split(line.replace("ITEM", item, 1))[1:]  # without the program's name
    done = cli(*argv)
    assert done.code == 0, done.out + done.err


def test_status_of_a_run_stopped_half_way_exits_1_and_prints_the_command_that_continues_it(
        cli: Any, config: Path, sandbox: HuntressSandbox) -> None:
    from offboard_huntress.sandbox import Fault

    assert cli("plan", "-c", str(config), "-o", "exit.plan.json").code == 0
    sandbox.faults += [Fault(method="DELETE", path_prefix="/v1/agents/", status=503, times=10**6),
                       Fault(method="GET", path_prefix="/v1/agents/", status=503, times=10**6)]
    stopped = cli("apply", "exit.plan.json", "-c", str(config), "--override-preflight", "lab", "--unattended")
    assert stopped.code == 1, stopped.out + stopped.err
    run = cli("status", "--last-run", "-c", str(config)).out.strip()
    for args in (("status",), ("-q", "status")):  # the warning is shown with -q too
        status = cli(*args, "-c", str(config))
        assert status.code == 1
        warned = " ".join(status.err.split())
        resume = f"offboard apply --resume {run} -c {config}"
        assert f"run {run} stopped before its end; continue it with: {resume}" in warned
    sandbox.faults.clear()
    assert cli("apply", "--resume", run, "-c", str(config), "--unattended").code == 3  # the printed command runs
    finished = cli("status", "-c", str(config))
    assert finished.code == 3 and "stopped before its end" not in finished.err
