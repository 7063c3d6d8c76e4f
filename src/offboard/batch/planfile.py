"""The batch plan file (`offboard batch plan -o batch.plan.json`): every exit's own plan, sealed as
a single exit's is, with what each will cost at its vendors' accounts, and the batch sealed whole.

Like a single plan it is a proposal: `offboard batch apply` plans each exit again from its config
and the live vendor, and refuses an exit whose plan differs, as `offboard apply` does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from offboard.errors import BadInput, read_input
from offboard.plan import Plan, checksum_of, read_sealed
from offboard.rundir import atomic_write_text

BATCH_FORMAT = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VendorLoad(_Model):
    """One exit's calls at one vendor account, estimated from its plan and its discovery."""

    vendor: str
    account: str  # the account whose rate limit the calls draw on
    calls: int
    limit: int = 0  # calls per window (0: the connector does not say)
    window_seconds: float = 0.0


class Estimate(_Model):
    removals: int  # API actions that change something at a vendor
    exports: int  # evidence exports (reads kept as files)
    manual: int  # items a person does
    gates: int  # manual items that hold their vendor's changes until confirmed
    loads: tuple[VendorLoad, ...] = ()

    @property
    def calls(self) -> int:
        return sum(v.calls for v in self.loads)

    @property
    def seconds_at_ceiling(self) -> float:
        """Alone at its accounts' limits: its vendors run at once, the slowest sets the time."""
        return max((minimum_seconds(v.calls, v.limit, v.window_seconds) for v in self.loads), default=0.0)

    @property
    def seconds_of_ceiling(self) -> float:
        """Its share of its busiest account's time at the ceiling: its calls at the limit's pace
        (the accounts' wall times are made of these; a first window's burst is not counted)."""
        return max((v.calls / v.limit * v.window_seconds for v in self.loads if v.limit > 0), default=0.0)


class BatchExit(_Model):
    slug: str
    customer: str
    config: str  # the exit's config file, relative to the batch plan's folder
    plan: Plan
    estimate: Estimate


class AccountLoad(_Model):
    """Every exit's calls at one vendor account: the batch's wall time at that account's ceiling."""

    vendor: str
    account: str
    exits: int
    calls: int
    limit: int
    window_seconds: float

    @property
    def seconds_at_ceiling(self) -> float:
        return minimum_seconds(self.calls, self.limit, self.window_seconds)


def share_of_account_time(exit_: BatchExit, accounts: tuple[AccountLoad, ...]) -> float:
    """An exit's part of its busiest account's wall time at the ceiling (its calls' share of that
    account's): the exits of one account add up to the account's own figure."""
    shares = [0.0]
    for load in exit_.estimate.loads:
        account = next((a for a in accounts if (a.vendor, a.account) == (load.vendor, load.account)), None)
        if account is not None and account.calls:
            shares.append(load.calls / account.calls * account.seconds_at_ceiling)
    return max(shares)


class BatchPlan(_Model):
    format: int = BATCH_FORMAT
    kind: Literal["offboard-batch-plan"] = "offboard-batch-plan"
    batch_id: str
    created_at: str
    source: str  # what the exits were read from, as given
    exits: tuple[BatchExit, ...]
    accounts: tuple[AccountLoad, ...] = ()
    checksum: str = ""

    def compute_checksum(self) -> str:
        return checksum_of(self)

    def sealed(self) -> BatchPlan:
        return self.model_copy(update={"checksum": self.compute_checksum()})

    @property
    def seconds_at_ceiling(self) -> float:
        """The accounts are drawn on at once: the busiest sets the batch's time."""
        return max((a.seconds_at_ceiling for a in self.accounts), default=0.0)

    def exit(self, slug: str) -> BatchExit | None:
        return next((e for e in self.exits if e.slug == slug), None)


def minimum_seconds(calls: int, limit: int, window: float) -> float:
    """The least time ``calls`` take at a limit of ``limit`` per ``window``: the first window's
    worth at once, then ``limit`` per window."""
    if limit <= 0 or window <= 0:
        return 0.0
    return max(0, calls - limit) / limit * window


def write_batch_plan(plan: BatchPlan, path: Path) -> None:
    atomic_write_text(path, plan.sealed().model_dump_json(indent=1) + "\n")


def read_batch_plan(path: Path) -> BatchPlan:
    fix = f"make one with `offboard batch plan LISTING -o {path}`"
    raw = read_input(path, "batch plan", fix)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadInput(f"batch plan {path} is not valid JSON (it may be truncated); {fix}") from None
    if isinstance(data, dict) and data.get("kind") != "offboard-batch-plan":
        raise BadInput(f"{path} is not a batch plan (a single exit's plan goes to `offboard apply`); {fix}")
    if isinstance(data, dict) and data.get("format") != BATCH_FORMAT:
        raise BadInput(f"batch plan {path} has format {data.get('format')!r}; this offboard reads format "
                       f"{BATCH_FORMAT}: {fix}")
    plan = read_sealed(BatchPlan, data, f"batch plan {path}", fix)
    for e in plan.exits:
        if e.plan.checksum != e.plan.compute_checksum():
            raise BadInput(f"batch plan {path}: the plan of {e.customer!r} was changed after it was written; {fix}")
    return plan
