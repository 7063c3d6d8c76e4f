"""The checks a saved plan must pass before a run starts, and the preflight gate's decisions.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from offboard import hints
from offboard.config import ExitConfig
from offboard.engine.types import Overrides
from offboard.errors import BadInput
from offboard.plan import Action, Inventory, Plan, VendorPlan
from offboard.text import one_line

GATES_DECIDED = frozenset({"preflight.cleared", "preflight.overridden"})  # a run's gates were passed


GATES_STOPPED = "stopped by preflight gates before any removal"


def _new_plan(cfg: ExitConfig) -> str:
    return hints.command("plan", "-o", "FILE", config=cfg.path)


def plan_misfit(plan: Plan, cfg: ExitConfig) -> str:
    """Why ``plan`` does not fit ``cfg`` ('' when it does), without the command that mends it: a single
    exit is planned again with `offboard plan`, a batch's exit with `offboard batch plan`."""
    if plan.config_fingerprint == cfg.fingerprint():
        return ""
    changed = definition_changes(plan.exit_definition, cfg.definition())
    what = (f"{cfg.path} has changed since the plan was made: {changed}" if changed else
            f"it was made for a different exit definition (customer {plan.customer!r}) than {cfg.path}")
    return f"plan {plan.plan_id} does not fit this config: {what}"


def check_plan_fits(plan: Plan, cfg: ExitConfig) -> None:
    if misfit := plan_misfit(plan, cfg):
        raise BadInput(f"{misfit}; make a new plan from this config with `{_new_plan(cfg)}` and review it")


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def definition_changes(saved: Mapping[str, Any], now: Mapping[str, Any], shown: int = 3) -> str:
    """Which settings of the exit definition differ ('' when the plan recorded none to compare):
    `<vendor>.base_url` is now 'http://…:4322' (the plan's: 'http://…:4321')."""
    if not saved:
        return ""
    a, b = _flat(saved), _flat(now)
    diffs = [f"{k.removeprefix('vendors.')} is now {b.get(k)!r} (the plan's: {a.get(k)!r})"
             for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
    more = f" and {len(diffs) - shown} more" if len(diffs) > shown else ""
    return "; ".join(diffs[:shown]) + more


def check_not_stale(plan: Plan, live: Mapping[str, Inventory], cfg: ExitConfig | None = None,
                    earlier_runs: Sequence[str] = (), last_closed: bool = False) -> None:
    """``earlier_runs``: the runs already made from this plan, if any; the refusal then says the change
    may be those runs' own work and how to continue them (the refusal is the same either way). Every
    vendor that changed is named, with what changed at it; a vendor changed by something other than
    the plan's own removals first."""
    stale = [(vp, inventory_changes(vp, live[vp.vendor])) for vp in plan.vendors
             # a vendor this config does not exit: check_matches_replan refuses the plan, naming it
             if vp.vendor in live and live[vp.vendor].fingerprint() != vp.inventory_fingerprint]
    if not stale:
        return
    stale.sort(key=lambda vc: not vc[1].unexpected)
    redo = _new_plan(cfg) if cfg is not None else "offboard plan -o FILE"
    if earlier_runs:
        last = earlier_runs[-1]
        what = "; and ".join(f"{vp.display_name} has changed since{': ' + changed.said if changed.said else ''}"
                             for vp, changed in stale)
        more = f" and {len(earlier_runs) - 1} more" if len(earlier_runs) > 1 else ""
        if last_closed:  # nothing to continue: a resume of a closed run is refused
            raise BadInput(f"plan {plan.plan_id} was applied already (run {last}{more}, closed: every action done and "
                           f"every item confirmed), and {what}; to exit what is listed now, make a new plan with "
                           f"`{redo}` and review it")
        raise BadInput(
            f"plan {plan.plan_id} was applied already (run {last}{more}), and {what}; continue that "
            f"run with "
            f"`{hints.resume(last, cfg.path if cfg is not None else None)}`, or make a new plan with "
            f"`{redo}` and review it"
        )
    what = "; and ".join(f"{vp.display_name} inventory for {vp.scope} changed"
                         f"{f' since the plan was made ({plan.created_at})' if n == 0 else ''}"
                         f"{': ' + changed.said if changed.said else ''}" for n, (vp, changed) in enumerate(stale))
    raise BadInput(f"plan is stale: {what}; make a new plan with `{redo}` and review it")


@dataclass(frozen=True)
class Changes:
    said: str  # what changed, for the refusal ('' when nothing can be named)
    unexpected: bool  # anything but the plan's own removals gone


def inventory_changes(vp: VendorPlan, inv: Inventory, shown: int = 3) -> Changes:
    """The objects behind a stale plan, against the listing the plan recorded: listed under another
    owner, listed now but not then, no longer listed; and, last, the plan's own removals already
    gone (a run's work, or a person's in the portal). A plan that recorded no listing (written
    before it was) is compared with its actions' and skipped objects instead."""
    if vp.listed is None:
        return _changes_from_actions(vp, inv, shown)
    then = {(kind, id_): (owner, name) for kind, id_, owner, name in vp.listed}
    now = {(i.target.type, i.target.id): i for i in inv.items}
    # what the plan removes, by API or by a person's hand (an export or a notice removes nothing)
    removed = {(a.target.type, a.target.id) for s in vp.steps for a in s.actions if a.destructive}
    moved = [f"{i.target.name} (now {i.owner})" for k, i in now.items() if k in then and then[k][0] != i.owner]
    new = [i.target.name for k, i in now.items() if k not in then]
    outside = {(s.target.type, s.target.id) for s in vp.skipped}  # the plan left them alone: never offboard's doing
    gone = [f"{name} (outside the exit, not touched)" if k in outside else name
            for k, (_, name) in then.items() if k not in now and k not in removed]
    done = [name for k, (_, name) in then.items() if k not in now and k in removed]
    return Changes(_said((("with another owner", moved), ("new", new), ("no longer listed", gone),
                          ("of the plan's removals gone already", done)), shown),
                   unexpected=bool(moved or new or gone))


def _said(groups: Sequence[tuple[str, list[str]]], shown: int) -> str:
    def some(label: str, names: list[str]) -> str:
        more = f" and {len(names) - shown} more" if len(names) > shown else ""
        return f"{len(names)} {label}: {', '.join(names[:shown])}{more}"

    return "; ".join(some(label, names) for label, names in groups if names)


def _changes_from_actions(vp: VendorPlan, inv: Inventory, shown: int) -> Changes:
    """A plan that recorded no listing: every action's object counts (a person's item on a listed
    object as much as a removal by API); an action on something the listing does not hold (a
    notification, a portal setting) is never "no longer listed"."""
    planned = {(a.target.type, a.target.id): a for s in vp.steps for a in s.actions}
    known = {**{(s.target.type, s.target.id): s.target.name for s in vp.skipped},
             **{k: a.target.name for k, a in planned.items()}}
    listed = {(i.target.type, i.target.id): i for i in inv.items}
    kinds = ({t for t, _ in listed} | {s.target.type for s in vp.skipped}
             | {a.target.type for a in planned.values() if a.destructive and a.kind == "api"})
    new = [i.target.name for k, i in listed.items() if k not in known]
    gone = [a.target.name for k, a in planned.items() if k[0] in kinds and k not in listed]
    moved = [f"{i.target.name} (now {i.owner})" for k, i in listed.items()
             if k in planned and planned[k].owner and planned[k].owner != i.owner]
    return Changes(_said((("new", new), ("no longer listed", gone), ("with another owner", moved)), shown),
                   unexpected=True)


def confirm_option(name: str) -> str:
    """The ``--confirm`` a person pastes for a guarded action on ``name``: the name as the screen
    shows it (a vendor's name may hold quotes, line breaks or escapes: ``one_line`` makes them
    visible) and shell-quoted, so it reaches ``check_guards`` as printed, which takes it."""
    return f"--confirm {shlex.quote(one_line(name))}"


def check_guards(plan: Plan, overrides: Overrides) -> None:
    for action in plan.actions():
        if action.confirm is None or overrides.yes_guarded:
            continue
        if overrides.confirm_name is None:
            raise BadInput(f"this plan will {action.summary}; that cannot be undone: pass "
                           f"{confirm_option(action.confirm)} (or --yes-delete-organization when unattended)")
        # The name as the vendor spells it, or as the screen shows it (what the printed option carries).
        if overrides.confirm_name not in (action.confirm, one_line(action.confirm)):
            raise BadInput(f"--confirm {shlex.quote(one_line(overrides.confirm_name))} does not match the name "
                           f"{shlex.quote(one_line(action.confirm))}; type it exactly as the plan shows it: "
                           f"{confirm_option(action.confirm)}")


# What makes an action safe to send: where it points, what it does, whose it must be, whether a
# person must name it first, and whether it holds its vendor back. A plan file that differs from
# the re-plan in any of these was edited, or made by something other than this offboard from this
# config. Words (summaries, portal instructions) may differ harmlessly: they follow the listing.
SAFETY_FIELDS = ("vendor", "step", "kind", "operation", "target", "call", "owner", "destructive", "confirm", "gate")
# A person's item is not a write; while a run goes on its words follow what is left, but it may
# never stop or start holding its vendor back.
MANUAL_FIELDS = ("vendor", "step", "kind", "gate")


def _safety(action: Action, fields: tuple[str, ...]) -> dict[str, object]:
    return action.model_dump(mode="json", include=set(fields))


def _differing(saved: Action, fresh: Action, fields: tuple[str, ...]) -> list[str]:
    """The fields whose values differ (a Target by its fields): compared as they are, not written
    out as JSON first (10,000 actions twice, on every apply)."""
    return [f for f in fields if getattr(saved, f) != getattr(fresh, f)]


def _differs(saved: Action, fresh: Action, fields: tuple[str, ...]) -> str:
    a, b = _safety(saved, fields), _safety(fresh, fields)
    return ", ".join(f"{f} {a[f]!r} (offboard plans {b[f]!r})" for f in _differing(saved, fresh, fields))


def _shape(vp: VendorPlan) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(s.id, s.phase, tuple(a.id for a in s.actions)) for s in vp.steps]


def check_matches_replan(plan: Plan, fresh: tuple[VendorPlan, ...], *, source: str,
                         only: set[str] | None = None) -> set[str]:
    """Refuse a saved plan whose actions are not what the connectors plan now from the config
    and the live vendor (exit 2, naming the action). ``only``: the action ids still to run (a
    resumed run); those the re-plan no longer holds are returned: their objects left the
    listing, so they may be settled by a re-read but never written to."""
    fresh_actions = {a.id: a for v in fresh for s in v.steps for a in s.actions}
    hint = "the file was edited or is not this exit's: make a new plan with `offboard plan -o` and review it"
    if {v.vendor for v in plan.vendors} != {v.vendor for v in fresh}:
        raise BadInput(f"{source} covers vendors {sorted(v.vendor for v in plan.vendors)}, but this config "
                       f"exits {sorted(v.vendor for v in fresh)}; {hint}")
    gone: set[str] = set()
    for action in plan.actions():
        if only is not None and action.id not in only:
            continue
        now = fresh_actions.get(action.id)
        if now is None:
            if only is None:
                raise BadInput(f"{source} holds action {action.id} ({action.summary}), which offboard would "
                               f"not plan now from the config and the live vendor; {hint}")
            if action.kind == "manual" and not action.gate:
                continue  # a person's item, not a write: it may leave the plan once its object is gone
            gone.add(action.id)
            continue
        fields = MANUAL_FIELDS if only is not None and action.kind == "manual" else SAFETY_FIELDS
        if _differing(action, now, fields):
            raise BadInput(f"{source} action {action.id} differs from what offboard plans now: "
                           f"{_differs(action, now, fields)}; {hint}")
    if only is None:
        saved = {a.id for a in plan.actions()}
        missing = [a.id for a in fresh_actions.values() if a.id not in saved]
        if missing:
            raise BadInput(f"{source} lacks {len(missing)} action(s) offboard plans now (first: {missing[0]}); "
                           f"{hint}")
        by_vendor = {v.vendor: v for v in fresh}
        for vp in plan.vendors:
            now_vp = by_vendor[vp.vendor]
            if (_shape(vp) != _shape(now_vp) or vp.scope != now_vp.scope
                    or {k.target.id for k in vp.skipped} != {k.target.id for k in now_vp.skipped}):
                raise BadInput(f"{source}: the {vp.display_name} steps (their order, or what they leave "
                               f"untouched) differ from what offboard plans now; {hint}")
    return gone
