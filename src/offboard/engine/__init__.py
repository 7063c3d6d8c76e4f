"""The engine: plan, apply (and resume), verify and confirm an exit, in each connector's order.

Each verb is its own module; this package's surface is what the CLI, the demo and tests call.
"""

from offboard.engine.apply import apply, resume
from offboard.engine.confirm import ConfirmResult, StatusRow, confirm, latest_run_id, run_tally, status
from offboard.engine.guided import record_confirmation
from offboard.engine.planner import end_of_service_warning, make_plan
from offboard.engine.readiness import Readiness, check_machine, gates_stop, hard_gates, refuse
from offboard.engine.runfolder import (
    began_guided,
    exit_lock,
    reopen,
    run_ended,
    signer_for,
    write_documents,
    write_state,
)
from offboard.engine.sessions import Sessions, open_sessions
from offboard.engine.ticket import Ticket, record_scope
from offboard.engine.types import Guide, GuideAnswer, Limit, NoProgress, Overrides, Progress, RunResult
from offboard.engine.verify import emit_check, verify_recorded, verify_run
from offboard.engine.watch import WatchResult, answering, watch_run, watch_summary

__all__ = [
    "ConfirmResult", "Guide", "GuideAnswer", "Limit", "NoProgress", "Overrides", "Progress", "Readiness", "RunResult",
    "Sessions", "StatusRow", "Ticket", "WatchResult", "answering", "apply", "began_guided", "check_machine", "confirm",
    "emit_check", "end_of_service_warning", "exit_lock", "gates_stop", "hard_gates",
    "latest_run_id", "make_plan", "open_sessions", "record_confirmation", "record_scope", "refuse",
    "reopen", "resume", "run_ended", "run_tally", "signer_for", "status",
    "verify_recorded", "verify_run", "watch_run", "watch_summary", "write_documents", "write_state",
]
