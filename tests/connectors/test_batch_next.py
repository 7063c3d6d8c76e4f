"""What a technician reads at the end of `batch apply` and in `batch status` (issue 22's review at
120x40): the two gave different next steps when every exit waited for a person, and `batch status`
named each exit by its full name where `--customer` and the live table take its short name."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from offboard.batch.status import (
    DONE,
    FAILED,
    INTERRUPTED,
    NOT_STARTED,
    RUNNING,
    WAITING,
    ExitState,
    next_steps,
)
from offboard.connectors.sandboxing import serve
from offboard_blumira.sandbox import (
    API_PREFIX,
    CUSTOMER_ACCOUNT,
    DEMO_CLIENT_ID,
    KEEP_USER,
    TOKEN_PATH,
    BlumiraSandbox,
    keep_user_of,
)
from offboard_blumira.sandbox import DEMO_SECRET as BLU_SECRET
from offboard_huntress.sandbox import CUSTOMER_ORG, DEMO_KEY, DEMO_SECRET, HuntressSandbox

SCALE = 0.002
SECOND = "5d0c9a7e-2b3f-4f61-a8c2-custom000044"
PLAN = Path("batch.plan.json")


@pytest.fixture
def batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Two customers of one Huntress account and one Blumira MSP account, as a listing and a template."""
    h = HuntressSandbox(time_scale=SCALE, customer_agents=3, more_customers={44: 2})
    b = BlumiraSandbox(time_scale=SCALE, more_accounts={SECOND: 2})
    for var, value in (("OFFBOARD_HUNTRESS_API_KEY", DEMO_KEY), ("OFFBOARD_HUNTRESS_API_SECRET", DEMO_SECRET),
                       ("OFFBOARD_BLUMIRA_CLIENT_ID", DEMO_CLIENT_ID), ("OFFBOARD_BLUMIRA_CLIENT_SECRET", BLU_SECRET)):
        monkeypatch.setenv(var, value)
    monkeypatch.chdir(tmp_path)
    with serve(h.app) as hurl, serve(b.app) as burl:
        (tmp_path / "template.toml").write_text(
            '[customer]\nname = "(each row names it)"\nend_of_service = 2026-12-31\n\n'
            f'[huntress]\norganization_id = 1\nbase_url = "{hurl}"\nrate_window_seconds = {60 * SCALE}\n\n'
            f'[blumira]\naccount_id = "(each row)"\nbase_url = "{burl}{API_PREFIX}"\ntoken_url = "{burl}{TOKEN_PATH}"\n'
            f'rate_window_seconds = {SCALE}\nmsp_sender = "NOC <noc@msp.example>"\n')
        (tmp_path / "customers.csv").write_text(
            "customer,approved_by,ticket,huntress.organization_id,blumira.account_id,blumira.keep_users\n"
            f'Acme Dental (a long name),J. Doe,PSA-1,{CUSTOMER_ORG},{CUSTOMER_ACCOUNT},"[""{KEEP_USER}""]"\n'
            f'Customer 44,J. Doe,PSA-2,44,{SECOND},"[""{keep_user_of(SECOND)}""]"\n')
        yield tmp_path


def nexts(out: str) -> list[str]:
    return [line.removeprefix("Next: ") for line in out.splitlines() if line.startswith("Next: ")]


def test_batch_apply_ends_with_the_next_steps_batch_status_gives(cli: Any, batch: Path) -> None:
    assert cli("batch", "plan", "customers.csv", "--template", "template.toml", "-o", str(PLAN)).code == 0
    applied = cli("batch", "apply", str(PLAN), "--override-preflight", "lab")
    assert applied.code == 3, applied.out + applied.err
    status = cli("batch", "status", str(PLAN))
    assert status.code == 3
    assert "2 waiting for a person" in status.out.splitlines(), status.out  # its caption at the line's start
    # Every exit waits for a person (Blumira's "notify first" and the manual items): the same one step.
    assert nexts(applied.out) == nexts(status.out) == [f"offboard batch status --pending {PLAN}"]
    assert applied.out.rstrip().splitlines()[-1] == f"Next: offboard batch status --pending {PLAN}"
    assert "batch apply --resume" not in applied.out + applied.err  # the old line named both, unlike status

    confirmed = cli("batch", "confirm", "blumira.notify.sent", "--plan", str(PLAN), "--by", "J. Doe", "--note", "sent")
    assert confirmed.code == 0, confirmed.out + confirmed.err
    released = cli("batch", "status", str(PLAN))
    assert nexts(released.out) == [f"offboard batch apply --resume {PLAN}"]  # Blumira's changes now run
    command = nexts(released.out)[0]
    resumed = cli(*shlex.split(command)[1:])  # as printed
    assert resumed.code == 3, resumed.out + resumed.err
    assert nexts(resumed.out) == nexts(cli("batch", "status", str(PLAN)).out) == [
        f"offboard batch status --pending {PLAN}"]
    # Blumira support's confirmation before its removals are done: refused in every exit as the single
    # `confirm` refuses it (exit 2, bad input: nothing recorded), not "some failed" (exit 1)
    early = cli("batch", "confirm", "blumira.support.confirmation", "--plan", str(PLAN), "--by", "J. Doe",
                "--note", "ticket 4711")
    assert early.code == 2, early.out + early.err
    assert early.err.count("comes after Blumira's removals") == 2 and "confirmed" not in early.out, early.err
    assert "blumira.support.confirmation" in cli("batch", "status", "--pending", str(PLAN)).out


def short_names(table: str) -> list[tuple[str, str]]:
    """A batch table's (Customer, Name) cells, the rows' first two columns."""
    rows = [line.strip("│ ").split(" │ ") for line in table.splitlines() if line.startswith("│")]
    header = next(line for line in table.splitlines() if "Customer" in line)
    assert header.index("Customer") < header.index("Name")
    return [(r[0].strip(), r[1].strip()) for r in rows if r[0].strip()]


def test_batch_status_names_each_exit_by_the_short_name_customer_takes(cli: Any, batch: Path) -> None:
    made = cli("batch", "plan", "customers.csv", "--template", "template.toml", "-o", str(PLAN))
    assert made.code == 0
    # every batch table names an exit as status does: its short name first, then its name
    assert short_names(made.out.split("Vendor accounts")[0])[:2] == [
        ("acme-dental-a-long-name", "Acme Dental (a long name)"), ("customer-44", "Customer 44")]
    assert cli("batch", "apply", str(PLAN), "--override-preflight", "lab").code == 3
    status = cli("batch", "status", str(PLAN))
    rows = [line.strip("│ ").split(" │ ") for line in status.out.splitlines() if line.startswith("│")]
    header = next(line for line in status.out.splitlines() if "Customer" in line)
    assert header.index("Customer") < header.index("Name") < header.index("State")
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [("acme-dental-a-long-name", "Acme Dental (a long name)"),
                                                            ("customer-44", "Customer 44")]
    # What the technician reads is what they type: the first column, given to --customer, is taken.
    shown = rows[1][0].strip()
    one = cli("batch", "confirm", "blumira.notify.sent", "--plan", str(PLAN), "--by", "J. Doe", "--note", "sent",
              "--customer", shown)
    assert one.code == 0 and "customer-44: confirmed blumira.notify.sent" in one.out, one.out + one.err


def state(name: str, command: str = "") -> ExitState:
    return ExitState(name, next_command=command)


def test_one_rule_orders_the_next_steps_machine_work_first() -> None:
    resume, pending, verify = (f"offboard batch apply --resume {PLAN}", f"offboard batch status --pending {PLAN}",
                               f"offboard batch verify {PLAN}")
    assert next_steps({"a": state(NOT_STARTED, resume), "b": state(NOT_STARTED, resume)}, PLAN) == [
        f"offboard batch apply {PLAN}"]  # nothing started: applied, not resumed
    assert next_steps({"a": state(DONE, verify), "b": state(WAITING, pending), "c": state(INTERRUPTED, resume),
                       "d": state(FAILED, resume), "e": state(RUNNING)}, PLAN) == [resume, pending, verify]
    assert next_steps({"a": state(DONE), "b": state(DONE)}, PLAN) == []
