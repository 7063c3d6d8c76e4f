"""Running a batch: every exit is an ordinary exit (its own run folder, audit log, report and
bundle); the batch plans them, runs them side by side, resumes the unfinished ones, and reads
where each stands.

Fair share: the exits run at once, up to ``parallel`` at a time, smallest first, and each vendor
account's budget serves their calls first come, first served, so a 5-agent customer is done in
its first minutes whatever else the batch holds. An exit that waits for a person (a manual item,
or a gate such as a notification the vendor asks for first) finishes its run with the items on
its checklist and frees its place: it never holds back another exit.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TypeVar

from offboard import engine, hints
from offboard.batch.planfile import AccountLoad, BatchExit, BatchPlan, Estimate, VendorLoad, read_batch_plan
from offboard.batch.progress import Board, Load, Planned
from offboard.batch.source import ExitSpec
from offboard.batch.status import (
    FAILED,
    GATED,
    INTERRUPTED,
    NOT_STARTED,
    RUNNING,
    WAITING,
    ExitState,
    exit_state,
    resume_command,
)
from offboard.config import ExitConfig, SectionSettings, load_config
from offboard.connectors import Check
from offboard.engine.confirm import full_item_id, nearest_ids
from offboard.engine.guards import plan_misfit
from offboard.engine.scope_guard import calls_of
from offboard.errors import BadInput, ExitCode, OffboardError, RunInterrupted
from offboard.lifecycle import AWAITING_PERSON, TERMINAL, counted_as, fold_actions
from offboard.plan import Action, Finding, Plan, now_iso
from offboard.proof import bundle as bundles
from offboard.proof.audit import read_records
from offboard.rundir import RunDir, make_private_dirs
from offboard.wire import waits

Opener = Callable[[ExitConfig], AbstractContextManager[engine.Sessions]]
Report = Callable[[str, str], None]  # (exit's slug, one line about it)
T = TypeVar("T")
PARALLEL = 8


@dataclass
class Batch:
    """A batch plan, read and checked, with each exit's config."""

    path: Path
    plan: BatchPlan
    configs: dict[str, ExitConfig]
    # An exit's slug -> why its plan no longer fits its config (a sandbox restarted on new ports, an edit):
    # only a read-only command opens a batch with some (``open_batch(changed_ok=True)``).
    changed: dict[str, str] = field(default_factory=dict)

    @property
    def exits(self) -> tuple[BatchExit, ...]:
        return self.plan.exits

    @property
    def replan(self) -> str:
        """The command that plans this batch again from its source (its exits' configs as they are now)."""
        return replan_command(self.plan.source, self.path)


def replan_command(source: str, plan: Path) -> str:
    """`offboard batch plan SOURCE -o PLAN`: the source as the plan recorded it (a CSV listing also takes
    its template, which the plan does not record: FILE, the placeholder the person fills in)."""
    template = ["--template", "FILE"] if source.lower().endswith(".csv") else []
    return hints.command("batch", "plan", source, *template, "-o", plan)


def open_batch(path: Path, models: Mapping[str, type[SectionSettings]], *, changed_ok: bool = False) -> Batch:
    """Read a batch plan and each exit's config. An exit whose config no longer fits its plan is refused
    (every exit's run re-plans from its config), unless ``changed_ok``: a read-only command still reads its
    runs, found by the plan's id in the config's runs folder, and names it."""
    plan = read_batch_plan(path)
    configs: dict[str, ExitConfig] = {}
    changed: dict[str, str] = {}
    for e in plan.exits:
        try:
            cfg = load_config(path.parent / e.config, models)
        except BadInput as exc:
            raise BadInput(f"batch plan {path}, customer {e.customer!r}: {exc}") from None
        if misfit := plan_misfit(e.plan, cfg):
            if not changed_ok:
                raise BadInput(f"batch plan {path}, customer {e.slug!r}: {misfit}; make a new batch plan from the "
                               f"exits' configs with `{replan_command(plan.source, path)}` and review it")
            changed[e.slug] = misfit
        configs[e.slug] = cfg
    return Batch(path, plan, configs, changed)


def _default_opener(cfg: ExitConfig) -> AbstractContextManager[engine.Sessions]:
    return engine.open_sessions(cfg)


def _pooled(items: list[T], work: Callable[[T], None], parallel: int, stop: threading.Event) -> None:
    """Run ``work`` on each item, ``parallel`` at a time, in order. Ctrl-C: no new item starts,
    the running ones stop after the action they are on (``stop``), then it is raised."""
    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="exit") as pool:
        futures: list[Future[None]] = [pool.submit(work, item) for item in items]
        try:
            for f in as_completed(futures):
                f.result()
        except KeyboardInterrupt:
            stop.set()
            waits.request_stop()  # a lane sleeping through the account's budget wakes now, its call not sent
            for f in futures:
                f.cancel()
            raise
        finally:
            if stop.is_set():
                # Each running exit records its stop in its own log. An exit whose lanes stopped clears
                # the wire's stop as it ends: asked again until every exit has stopped.
                while not all(f.done() for f in futures):
                    waits.request_stop()
                    wait(futures, timeout=waits.SLICE)
                waits.clear_stop()


# -- plan ---------------------------------------------------------------------------------


def estimate(plan: Plan, cfg: ExitConfig, discovery_calls: Mapping[str, int]) -> Estimate:
    """What an exit will cost at each vendor account: its re-plan at apply (one discovery), its
    exports and removals, the scope guard's read of each object before its write (the default;
    `--trust-listing` needs fewer), and the verification's discovery."""
    actions = plan.actions()
    loads = []
    for vendor, settings in sorted(cfg.vendors.items()):
        d = discovery_calls.get(vendor, 0)
        limit, window = settings.rate_limit() or (0, 0.0)
        loads.append(VendorLoad(vendor=vendor, account=_account(vendor, settings), limit=limit, window_seconds=window,
                                calls=2 * d + calls_of(a for a in actions if a.vendor == vendor)))
    return Estimate(removals=sum(1 for a in actions if a.kind == "api" and a.destructive),
                    exports=sum(1 for a in actions if counted_as(a) == "exported"),  # the run's own words
                    manual=sum(1 for a in actions if a.kind == "manual"),
                    gates=sum(1 for a in actions if a.gate), loads=tuple(loads))


def _account(vendor: str, settings: SectionSettings) -> str:
    named = ", ".join(f"{v}" for _, v in sorted(settings.account_identity().items()))
    return f"{vendor} {named}".strip()


def plan_batch(specs: list[ExitSpec], base: Path, source: str, *, opener: Opener = _default_opener,
               parallel: int = PARALLEL, report: Report | None = None) -> BatchPlan:
    """Plan every exit (read-only): one sealed plan each, with its estimate; the batch sealed whole.
    One exit that cannot be planned stops the batch plan, naming each customer and why."""
    exits: dict[str, BatchExit] = {}
    errors: dict[str, str] = {}
    named: dict[str, dict[str, str]] = {}  # each exit's vendors, as each vendor names the exit

    def one(spec: ExitSpec) -> None:
        try:
            with opener(spec.cfg) as sessions:
                # Before discovery, which reuses the organization's record this reads.
                named[spec.slug] = {name: s.exit_identity() for name, s in sessions.by_vendor.items()}
                plan = engine.make_plan(spec.cfg, sessions)
                calls = {name: s.calls_made for name, s in sessions.by_vendor.items()}
        except OffboardError as exc:
            errors[spec.slug] = f"{spec.cfg.customer.name}: {exc}"
            return
        exits[spec.slug] = BatchExit(slug=spec.slug, customer=spec.cfg.customer.name,
                                     config=Path(os.path.relpath(spec.cfg.path, base)).as_posix(), plan=plan,
                                     estimate=estimate(plan, spec.cfg, calls))
        if report is not None:
            report(spec.slug, f"planned: {len(plan.api_actions())} API action(s), "
                              f"{sum(1 for a in plan.actions() if a.kind == 'manual')} manual item(s)")

    _pooled(specs, one, parallel, threading.Event())
    if errors:
        first = next(iter(errors.values()))
        more = f" (and {len(errors) - 1} more customer(s): {', '.join(sorted(errors)[1:6])})" if len(errors) > 1 else ""
        raise BadInput(f"batch not planned: {first}{more}")
    _refuse_one_account_twice(specs, named)
    ordered = tuple(exits[s.slug] for s in specs)
    return BatchPlan(batch_id=str(uuid.uuid4()), created_at=now_iso(), source=source, exits=ordered,
                     accounts=_accounts(ordered)).sealed()


def _refuse_one_account_twice(specs: list[ExitSpec], named: Mapping[str, Mapping[str, str]]) -> None:
    """Two exits naming one vendor organization or sub-account, as the vendor itself names it (the configs
    may spell its API differently: 127.0.0.1 and localhost, a trailing dot, a default port), would exit it
    twice: refused, naming both (the configs' own spelling is compared when they are read)."""
    owner: dict[tuple[str, str], ExitSpec] = {}
    for spec in specs:
        for vendor, identity in sorted(named.get(spec.slug, {}).items()):
            other = owner.setdefault((vendor, identity), spec)
            if other is not spec:
                raise BadInput(f"customers {other.cfg.customer.name!r} ({other.cfg.path.name}) and "
                               f"{spec.cfg.customer.name!r} ({spec.cfg.path.name}) name the same {vendor} account, as "
                               f"{vendor} itself names it ({identity}), though their configs spell it differently; "
                               "each exit's account must be its own: fix one of the configs")


def _accounts(exits: tuple[BatchExit, ...]) -> tuple[AccountLoad, ...]:
    by: dict[tuple[str, str], list[VendorLoad]] = {}
    for e in exits:
        for load in e.estimate.loads:
            by.setdefault((load.vendor, load.account), []).append(load)
    return tuple(AccountLoad(vendor=v, account=a, exits=len(loads), calls=sum(x.calls for x in loads),
                             limit=min(x.limit for x in loads), window_seconds=max(x.window_seconds for x in loads))
                 for (v, a), loads in sorted(by.items()))


# -- apply and resume -------------------------------------------------------------------------


@dataclass
class ExitOutcome:
    slug: str
    customer: str
    did: str  # "applied", "resumed", or why nothing was done
    code: int | None  # the exit's run's exit code (None: nothing was run)
    run_id: str | None
    message: str = ""
    gates: str = ""  # the gates that stopped it, short (its message says each in full)


def board_of(batch: Batch, parallel: int = PARALLEL, overrides: engine.Overrides | None = None) -> Board:
    """The board a batch's apply reports to (each exit's progress, for a live table). An exit whose
    gates ``overrides`` do not pass stops at them after its re-read: only that is counted of it (a
    row's ETA counted its whole plan, then fell by a minute as the gate stopped it)."""
    def planned(e: BatchExit) -> Planned:
        runs = not engine.gates_stop(e.plan.gates(), overrides.preflight if overrides else None)
        return Planned(e.slug, e.customer, e.estimate.seconds_of_ceiling,
                       {vp.display_name: sum(len(s.actions) for s in vp.steps) for vp in e.plan.vendors},
                       loads=_loads_of(e, lambda _a: runs, verifies=runs))

    return Board([planned(e) for e in batch.exits], parallel=parallel)


def _loads_of(e: BatchExit, runs: Callable[[Action], bool], *, verifies: bool = True) -> dict[str, Load]:
    """Its calls at each rate-limited account (by the vendor's display name) for the actions ``runs``
    keeps, and its vendors' discoveries: the re-plan at apply and, unless it stops before its actions
    (``verifies``), the verification."""
    names = {vp.vendor: vp.display_name for vp in e.plan.vendors}
    out = {}
    for v in e.estimate.loads:
        if v.limit <= 0:
            continue
        mine = [a for a in e.plan.actions() if a.vendor == v.vendor]
        discovery = (v.calls - calls_of(mine)) // 2
        calls = discovery * (2 if verifies else 1) + calls_of(a for a in mine if runs(a))
        out[names.get(v.vendor, v.vendor)] = Load(v.account, calls, v.limit, v.window_seconds, discovery)
    return out


def _seconds_of(loads: Mapping[str, Load]) -> float:
    """Its share of its busiest account's time at the ceiling (as ``Estimate.seconds_of_ceiling``)."""
    return max((load.calls * load.per_call for load in loads.values()), default=0.0)


def _left_of(e: BatchExit, run: RunDir) -> dict[str, Load]:
    """A resumed exit's calls at each account: its re-plan's and its verification's reads, and what its
    log has not done (a resume runs that and nothing else: an item waiting for a person only waits
    again, a removal behind a gate still open stays held)."""
    states = fold_actions(list(read_records(run.audit_path))) if run.audit_path.exists() else {}
    gated = {a.vendor for a in e.plan.actions() if a.gate and states.get(a.id) in AWAITING_PERSON}
    return _loads_of(e, lambda a: states.get(a.id) not in (*TERMINAL, *AWAITING_PERSON)
                     and not (a.vendor in gated and a.destructive))


def gate_names(findings: list[Finding]) -> str:
    """The blocking gates, short, by vendor ("<vendor> open incident, isolated host")."""
    by: dict[str, list[str]] = {}
    for f in findings:
        if f.blocking and f.kind.replace("_", " ") not in by.setdefault(f.vendor, []):
            by[f.vendor].append(f.kind.replace("_", " "))
    return "; ".join(f"{vendor} {', '.join(kinds)}" for vendor, kinds in by.items() if kinds)


def _what_to_do(state: ExitState, overrides: engine.Overrides) -> str | None:
    """"apply", "resume", or None (and why, in the state) when a run would do nothing now."""
    if state.state == NOT_STARTED:
        return "apply"
    if state.state == RUNNING:
        return None
    if state.state == GATED:
        return "apply" if overrides.preflight else None  # nothing was removed: the plan applies afresh
    if state.state == WAITING:
        return "resume" if state.resumable else None
    return "resume" if state.state in (INTERRUPTED, FAILED) else None


def apply_batch(batch: Batch, *, resume: bool, overrides: engine.Overrides, opener: Opener = _default_opener,
                parallel: int = PARALLEL, report: Report | None = None,
                board: Board | None = None) -> list[ExitOutcome]:
    """Apply every exit not started; with ``resume``, also continue every unfinished one. Each exit
    is applied or resumed exactly as `offboard apply` / `apply --resume` would (re-planned from its
    config and the live vendor first); one exit's failure or wait never stops another. Where each
    stands is told to ``board`` as it goes (and each runbook step it begins to ``report``)."""
    board = board or board_of(batch, parallel, overrides)
    states = {e.slug: exit_state(batch.configs[e.slug], e.plan, batch.path) for e in batch.exits}
    started = [s for s, st in states.items() if st.state != NOT_STARTED]
    if started and not resume:
        again = resume_command(batch.path, override_args(overrides))
        raise BadInput(f"this batch has started ({len(started)} exit(s) have a run, e.g. {started[0]}); continue "
                       f"it (with the overrides given here) with `{again}`")
    outcomes: dict[str, ExitOutcome] = {}
    work: list[tuple[BatchExit, str]] = []
    for e in batch.exits:
        st = states[e.slug]
        todo = _what_to_do(st, overrides)
        run_id = st.run.run_id if st.run else None
        if st.run is not None:  # a run's row starts at what its log holds done, not at 0, run now or not
            left = _left_of(e, st.run)
            board.resumed(e.slug, {vp.display_name: st.done_of.get(vp.vendor, 0) for vp in e.plan.vendors},
                          estimate=_seconds_of(left), loads=left)
        if todo is None:
            why = {RUNNING: "running in another process", WAITING: f"waiting for a person: {st.detail}",
                   GATED: "stopped by a preflight gate: resume with --override-preflight \"REASON\" once checked"
                   }.get(st.state, st.state)
            outcomes[e.slug] = ExitOutcome(e.slug, e.customer, why, None, run_id)
            board.ended(e.slug, {WAITING: 3, GATED: 4}.get(st.state),
                        st.detail if st.state in (WAITING, GATED) else why)
        else:
            work.append((e, todo))
    work.sort(key=lambda w: (w[0].estimate.calls, w[0].slug))  # smallest first
    board.queue([e.slug for e, _ in work])
    stop = threading.Event()
    lock = threading.Lock()

    def one(item: tuple[BatchExit, str]) -> None:
        e, todo = item
        cfg = batch.configs[e.slug]
        st = states[e.slug]
        if report is not None:
            report(e.slug, "starting" if todo == "apply" else f"resuming run {st.run.run_id if st.run else '?'}")
        run_id = st.run.run_id if st.run else None
        progress = board.progress(e.slug, stop, (lambda text: report(e.slug, text)) if report is not None
                                  else lambda _t: None)
        try:
            with opener(cfg) as sessions:
                if todo == "apply":
                    result = engine.apply(e.plan, cfg, sessions, overrides=overrides, progress=progress)
                else:
                    assert run_id is not None
                    result = engine.resume(run_id, cfg, sessions, overrides=overrides, progress=progress)
            # A gate's stop names the gates (the open incident, the isolated host), not just "a gate".
            gates = "; ".join(f"{f.vendor}: {f.detail}" for f in result.blocking if f.blocking)
            said = "; ".join(part for part in (gates, result.message) if part)
            out = ExitOutcome(e.slug, e.customer, "applied" if todo == "apply" else "resumed", int(result.exit_code),
                              result.run.run_id, said, gate_names(result.blocking))
        except RunInterrupted as exc:
            out = ExitOutcome(e.slug, e.customer, "interrupted", int(ExitCode.INTERRUPTED), exc.run_id,
                              "stopped after the action it was on")
        except OffboardError as exc:
            found = exit_state(cfg, e.plan).run
            out = ExitOutcome(e.slug, e.customer, todo, int(exc.exit_code), found.run_id if found else run_id, str(exc))
        except Exception as exc:  # a bug in one exit must not take the others down
            out = ExitOutcome(e.slug, e.customer, todo, int(ExitCode.FAILED), run_id,
                              f"internal error: {type(exc).__name__}: {exc}")
        with lock:
            outcomes[e.slug] = out
        board.ended(e.slug, out.code, out.gates or out.message)
        if report is not None:
            report(e.slug, _said(out))

    try:
        _pooled(work, one, parallel, stop)
    except KeyboardInterrupt:
        raise BatchInterrupted(batch.path, overrides) from None
    return [outcomes[e.slug] for e in batch.exits]


def _said(out: ExitOutcome) -> str:
    what = {0: "done", 1: "failed", 2: "refused", 3: "waiting for a person", 4: "stopped by a preflight gate",
            130: "interrupted"}.get(out.code if out.code is not None else -1, f"exit {out.code}")
    return f"{what}" + (f" (run {out.run_id})" if out.run_id else "") + (f": {out.message}" if out.message else "")


def override_args(overrides: engine.Overrides) -> list[str]:
    """The operator's decisions of a `batch apply`, as its flags: the resume it prints carries them, so an
    exit that run had not yet started is passed as the operator decided (each audited in that exit's log,
    with its reason), in plain sight on the command the operator runs, never from a file."""
    args: list[str] = []
    if overrides.preflight:
        args += ["--override-preflight", overrides.preflight]
    if overrides.evidence:
        args += ["--override-evidence", overrides.evidence]
    if overrides.yes_guarded:
        args.append("--yes-delete-organization")
    if overrides.trust_listing:
        args.append("--trust-listing")
    return args


class BatchInterrupted(OffboardError):
    exit_code = ExitCode.INTERRUPTED

    def __init__(self, path: Path, overrides: engine.Overrides | None = None, *, told: bool = False) -> None:
        """``told``: the resume was printed already (the `Next:` lines above): said once, not twice."""
        given = override_args(overrides) if overrides is not None else []
        carried = (" (with the overrides this run was given, each audited again with its reason in every exit it "
                   "passes; leave one out to have it checked again)" if given else "")
        how = "the `Next:` line above" if told else f"`{resume_command(path, given)}`"
        super().__init__(f"interrupted: each exit stopped after the action it was on, recorded in its own audit "
                         f"log; continue{carried} with {how}")


def refused_by_gates(outcomes: list[ExitOutcome]) -> list[str]:
    """The exits a gate no override passes stopped before their run began (nothing was done, no run
    folder): applying or resuming the same plan stops them again; they need the gate fixed and a new plan."""
    return [o.slug for o in outcomes if o.code == ExitCode.PREFLIGHT_BLOCKED and o.run_id is None]


def batch_exit_code(outcomes: list[ExitOutcome], states: Mapping[str, ExitState]) -> ExitCode:
    """The batch's code from where its exits stand now: 1 when one failed or is unfinished (interrupted,
    running, never started: work a machine still has to do), 4 when a gate stopped one, 3 while one waits
    for a person, 0 when all are done."""
    codes = {o.code for o in outcomes if o.code is not None}
    refused = refused_by_gates(outcomes)  # never started because a gate stopped them: gated, not unfinished
    names = {s.state for slug, s in states.items() if slug not in refused} | ({GATED} if refused else set())
    if ExitCode.INTERRUPTED in codes:
        return ExitCode.INTERRUPTED
    if codes & {ExitCode.FAILED, ExitCode.BAD_INPUT} or names & {FAILED, INTERRUPTED, RUNNING, NOT_STARTED}:
        return ExitCode.FAILED
    if GATED in names:
        return ExitCode.PREFLIGHT_BLOCKED
    if WAITING in names:
        return ExitCode.MANUAL_PENDING
    return ExitCode.OK


def states_of(batch: Batch) -> dict[str, ExitState]:
    return {e.slug: exit_state(batch.configs[e.slug], e.plan, batch.path) for e in batch.exits}


# -- verify, confirm, bundle ----------------------------------------------------------------------


@dataclass
class ExitChecks:
    slug: str
    checks: list[Check]
    error: str = ""
    after_close: bool = False  # recorded in a closed run's log: its bundles made before now lack them

    @property
    def stopped(self) -> bool:
        return not self.error and all(c.passed for c in self.checks)


def verify_batch(batch: Batch, *, opener: Opener = _default_opener, parallel: int = PARALLEL) -> list[ExitChecks]:
    """Re-read every exit's vendors; for an exit with a run, add the re-reads to its audit log."""
    found: dict[str, ExitChecks] = {}

    def one(e: BatchExit) -> None:
        cfg = batch.configs[e.slug]
        run = exit_state(cfg, e.plan).run
        closed = run is not None and engine.run_ended(run.run_id, cfg).ended
        try:
            with opener(cfg) as sessions:
                checks = (engine.verify_recorded(run.run_id, cfg, sessions) if run is not None
                          else engine.verify_run(None, sessions))
            found[e.slug] = ExitChecks(e.slug, checks, after_close=closed)
        except OffboardError as exc:
            found[e.slug] = ExitChecks(e.slug, [], str(exc))

    _pooled(list(batch.exits), one, parallel, threading.Event())
    return [found[e.slug] for e in batch.exits]


@dataclass
class ExitWatch:
    slug: str
    result: engine.WatchResult | None
    error: str = ""


def watch_batch(batch: Batch, *, until: date | None = None, opener: Opener = _default_opener,
                parallel: int = PARALLEL) -> list[ExitWatch]:
    """`offboard watch --once` of every exit that has a run, side by side; the calls draw on each
    vendor account's one budget, as every offboard process's do."""
    found: dict[str, ExitWatch] = {}

    def one(e: BatchExit) -> None:
        cfg = batch.configs[e.slug]
        run = exit_state(cfg, e.plan).run
        if run is None:
            found[e.slug] = ExitWatch(e.slug, None, "no run yet: apply the batch first")
            return
        try:
            with opener(cfg) as sessions:
                found[e.slug] = ExitWatch(e.slug, engine.watch_run(run.run_id, cfg, sessions, until=until))
        except OffboardError as exc:
            found[e.slug] = ExitWatch(e.slug, None, str(exc))

    _pooled(list(batch.exits), one, parallel, threading.Event())
    return [found[e.slug] for e in batch.exits]


def confirm_batch(batch: Batch, item: str, by: str, note: str, *, only: list[str] | None = None,
                  opener: Opener = _default_opener) -> list[tuple[str, engine.ConfirmResult | OffboardError]]:
    """Record a manual item as done in every exit (or those named) where it waits for a person;
    each is re-read at its vendor first, as `offboard confirm` does (an exit that refuses it: its error)."""
    unknown = sorted(set(only or []) - {e.slug for e in batch.exits})
    if unknown:
        raise BadInput(f"no customer {unknown[0]!r} in this batch; its customers: "
                       + ", ".join(e.slug for e in batch.exits))
    # The short id `offboard confirm` takes (`notify.sent`) is taken here too, when one item of the batch ends so.
    item = full_item_id(item, {a.id for e in batch.exits for a in e.plan.actions() if a.manual is not None}) or item
    done: list[tuple[str, engine.ConfirmResult | OffboardError]] = []
    waiting: set[str] = set()
    for e in batch.exits:
        if only and e.slug not in only:
            continue
        cfg = batch.configs[e.slug]
        st = exit_state(cfg, e.plan)
        waiting.update(st.pending)
        if st.run is None or item not in st.pending:
            continue
        try:
            with opener(cfg) as sessions:
                done.append((e.slug, engine.confirm(st.run.run_id, item, by, note, cfg, sessions)))
        except OffboardError as exc:
            done.append((e.slug, exc))
    if not done:
        listing = hints.command("batch", "status", "--pending", batch.path)
        near = nearest_ids(item, sorted(waiting))
        guess = f"did you mean {near}? " if near else ""
        where = f"in none of the exits named ({', '.join(only)})" if only else "in no exit of this batch"
        raise BadInput(f"{item!r} waits for a person {where}; {guess}`{listing}` lists what does")
    return done


def bundle_batch(batch: Batch, out_dir: Path) -> list[tuple[str, Path | str]]:
    """One signed bundle per exit that has a run, named after the customer and the run."""
    made: list[tuple[str, Path | str]] = []
    make_private_dirs(out_dir)
    for e in batch.exits:
        cfg = batch.configs[e.slug]
        run = exit_state(cfg, e.plan).run
        if run is None:
            made.append((e.slug, "not started: nothing to bundle"))
            continue
        signer = engine.signer_for(cfg)
        if signer is None:
            made.append((e.slug, "no signing key: make one with `offboard keys init`"))
            continue
        dest = out_dir / f"{e.slug}-{run.run_id}.tar.gz"
        try:
            bundles.create(run, signer, dest)
            made.append((e.slug, dest))
        except OffboardError as exc:
            made.append((e.slug, str(exc)))
    return made
