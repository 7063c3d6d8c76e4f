"""Many customers at once: plan, apply, resume, verify, confirm and bundle a batch of exits.

Above the engine: each exit is run by the engine exactly as a single exit is, with its own run
folder and proof; the batch adds the listing of customers, one reviewable plan of them all, the
order they run in, and where each stands. The vendor accounts' shared rate budgets live in the
wire (``offboard.wire.ratelimit``), so two batches, or a batch and a single `offboard apply`,
share them too.
"""

from offboard.batch.planfile import BatchPlan, read_batch_plan, share_of_account_time, write_batch_plan
from offboard.batch.progress import Board, ExitRow, LaneRow
from offboard.batch.run import (
    PARALLEL,
    Batch,
    BatchInterrupted,
    ExitChecks,
    ExitOutcome,
    ExitWatch,
    apply_batch,
    batch_exit_code,
    board_of,
    bundle_batch,
    confirm_batch,
    gate_names,
    open_batch,
    override_args,
    plan_batch,
    refused_by_gates,
    states_of,
    verify_batch,
    watch_batch,
)
from offboard.batch.source import ExitSpec, load_source
from offboard.batch.status import ExitState, exit_state, next_steps, resume_command

__all__ = [
    "PARALLEL", "Batch", "BatchInterrupted", "BatchPlan", "Board", "ExitChecks", "ExitOutcome", "ExitRow",
    "ExitSpec", "ExitState", "ExitWatch", "LaneRow",
    "apply_batch", "batch_exit_code", "board_of", "bundle_batch", "confirm_batch", "exit_state", "gate_names",
    "load_source", "next_steps", "open_batch", "override_args", "plan_batch", "read_batch_plan", "refused_by_gates",
    "resume_command", "share_of_account_time", "states_of", "verify_batch", "watch_batch", "write_batch_plan",
]
