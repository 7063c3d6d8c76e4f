"""The plan: what will be done, in which order, to which named objects.

A plan file holds no secret. It carries a checksum of its own content so a
plan edited by hand (or truncated) is refused instead of half-executed, and an
inventory fingerprint per vendor so apply can refuse a stale plan.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from offboard.errors import BadInput, read_input

PLAN_FORMAT = 1
Phase = Literal["scope", "evidence", "removal", "closure"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy that recomputes what its class derives once (``cached_property``): pydantic's copy
        carries the original's computed values, so a copy with other items kept its owners."""
        copy = super().model_copy(update=update, deep=deep)
        for name in _derived(type(self)):
            copy.__dict__.pop(name, None)
        return copy


@cache
def _derived(cls: type) -> list[str]:
    return [name for klass in cls.__mro__ for name, v in vars(klass).items() if isinstance(v, cached_property)]


class Target(_Model):
    type: str
    id: str
    name: str = ""


class Manual(_Model):
    """A step with no API: where to click, what done looks like."""

    portal_path: str
    done_when: str
    verify_hint: str = ""  # what the API re-read checks when the item is confirmed, if anything
    record: str = ""  # what the confirmer must write in --note (e.g. who approved a consent removal)


class Removal(_Model):
    """What an action removes, in the customer's words, for the closure note: "36 EDR agents
    uninstalled". The connector words it (the core names no product); ``count`` is how many objects
    the action covers (a manual item may cover several), None when only the person doing it knows."""

    one: str  # e.g. "EDR agent"
    many: str  # e.g. "EDR agents"
    verb: str  # past participle: "uninstalled", "removed", "deleted"
    count: int | None = 1

    def phrase(self, n: int | None) -> str:
        if n is None:
            return f"{self.many[:1].upper()}{self.many[1:]} {self.verb}"
        return f"{n} {self.one if n == 1 else self.many} {self.verb}"


class Action(_Model):
    id: str  # stable within the plan: "<vendor>.<step>.<target id>"
    vendor: str
    step: str
    kind: Literal["api", "manual"]
    operation: str  # connector-defined, e.g. "uninstall_agent"
    target: Target
    summary: str  # one line a person can read
    call: str = ""  # e.g. "DELETE /v1/agents/17" — shown in the plan table
    owner: str = ""  # the scope this object must belong to when it is touched
    manual: Manual | None = None
    destructive: bool = True  # False for reads (evidence export): no scope guard, safe to repeat
    confirm: str | None = None  # the name an operator must type (--confirm) before this runs
    # A manual item the vendor's process puts before every change: until a person confirms it,
    # no later write or manual item of its vendor runs (reads and evidence exports still do).
    gate: bool = False
    # What it removes, for the customer (the closure note); None: it removes nothing (an export, a notice,
    # a confirmation, a billing handoff), so it is never listed as a removal. Left out of the file when
    # None, so a plan written before this field existed keeps its checksum.
    removes: Removal | None = Field(default=None, exclude_if=lambda v: v is None)


def manual_item(vendor: str, item: str, name: str, summary: str, portal_path: str, done_when: str, *, step: str,
                verify: str = "", record: str = "", gate: bool = False, removes: Removal | None = None) -> Action:
    """A step with no API, as an action of the plan: ``<vendor>.<item>``."""
    return Action(id=f"{vendor}.{item}", vendor=vendor, step=step, kind="manual", operation=item,
                  target=Target(type="manual", id=item, name=name), summary=summary,
                  manual=Manual(portal_path=portal_path, done_when=done_when, verify_hint=verify, record=record),
                  gate=gate, removes=removes)


class Step(_Model):
    id: str
    vendor: str
    title: str
    phase: Phase = "removal"
    why: str = ""
    actions: tuple[Action, ...] = ()
    stops_updating: tuple[str, ...] = ()  # for the closure note: what the customer no longer gets


class Finding(_Model):
    """A preflight observation; ``blocking`` ones stop apply unless overridden. One that is not
    ``overridable`` (e.g. credentials that cannot make the planned writes: every write would fail)
    stops it before the run folder exists, whatever the operator passes."""

    vendor: str
    kind: str
    count: int
    detail: str
    blocking: bool
    overridable: bool = True


class Skipped(_Model):
    """An object discovery saw but the plan will not touch, and why."""

    vendor: str
    target: Target
    reason: str


class InventoryItem(_Model):
    target: Target
    owner: str  # the scope the vendor says it belongs to
    attrs: dict[str, Any] = Field(default_factory=dict)


# One object a vendor's listing held: (type, id, owner, name).
Listed = tuple[str, str, str, str]


def fingerprint_of(listed: Iterable[Listed]) -> str:
    """What a stale plan is told by: the objects listed and whose each is (names may change freely)."""
    keys = sorted(f"{kind}:{id_}:{owner}" for kind, id_, owner, _ in listed)
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


class Inventory(_Model):
    vendor: str
    scope: str  # e.g. "organization 42" — what the exit owns
    account: str  # who the credentials are, for the header
    snapshot: dict[str, Any] = Field(default_factory=dict)  # billing-relevant counts
    items: tuple[InventoryItem, ...] = ()

    def listed(self) -> tuple[Listed, ...]:
        return self._listed

    def fingerprint(self) -> str:
        return self._fingerprint

    # Each once: apply's stale-plan check and its re-plan each ask, of 10,000 agents.
    @cached_property
    def _listed(self) -> tuple[Listed, ...]:
        return tuple((i.target.type, i.target.id, i.owner, i.target.name) for i in self.items)

    @cached_property
    def _fingerprint(self) -> str:
        return fingerprint_of(self._listed)

    @cached_property
    def owners(self) -> dict[tuple[str, str], str]:
        """Each listed object's owner by (type, id). Built once: an exit of 10,000 agents looks up
        every target before its write."""
        return {(i.target.type, i.target.id): i.owner for i in self.items}

    def owner_of(self, target: Target) -> str | None:
        return self.owners.get((target.type, target.id))


class VendorPlan(_Model):
    vendor: str
    display_name: str
    scope: str
    account: str
    inventory_fingerprint: str
    # Every object the listing held when the plan was made: a stale plan's refusal names what changed
    # since, object by object (a person's work in a portal as much as a run's own removals). None in a
    # plan written before it was recorded (left out of the file then, so such a plan keeps its checksum).
    listed: tuple[Listed, ...] | None = Field(default=None, exclude_if=lambda v: v is None)
    snapshot: dict[str, Any] = Field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    steps: tuple[Step, ...] = ()


class Plan(_Model):
    format: int = PLAN_FORMAT
    plan_id: str
    created_at: str
    customer: str
    end_of_service: str | None = None
    approved_by: str = ""
    ticket: str = ""
    monitoring_after_exit: str = ""
    config_fingerprint: str  # which exit definition this plan was made for
    exit_definition: dict[str, Any] = Field(default_factory=dict)  # what the fingerprint digests, to name changes
    vendors: tuple[VendorPlan, ...]
    checksum: str = ""

    def actions(self) -> list[Action]:
        return [a for v in self.vendors for s in v.steps for a in s.actions]

    def api_actions(self) -> list[Action]:
        return [a for a in self.actions() if a.kind == "api"]

    def steps(self) -> list[Step]:
        return [s for v in self.vendors for s in v.steps]

    def gates(self) -> list[Finding]:
        """Its vendors' blocking findings: what stops `apply` (unless passed, where they can be)."""
        return [f for v in self.vendors for f in v.findings if f.blocking]

    def step_of(self) -> dict[str, Step]:
        return {a.id: s for s in self.steps() for a in s.actions}

    def action(self, action_id: str) -> Action | None:
        return next((a for a in self.actions() if a.id == action_id), None)

    def vendor(self, name: str) -> VendorPlan:
        for v in self.vendors:
            if v.vendor == name:
                return v
        raise BadInput(f"plan has no section for vendor {name!r}")

    def compute_checksum(self) -> str:
        return checksum_of(self)

    def sealed(self) -> Plan:
        return self.model_copy(update={"checksum": self.compute_checksum()})


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_plan(plan: Plan, path: Path) -> None:
    from offboard.rundir import atomic_write_text

    # A plan with a checksum was sealed when made, or checked against it when read (``read_plan``),
    # and cannot have changed since (frozen): a 10,000-agent plan is not hashed again to be written.
    atomic_write_text(path, (plan if plan.checksum else plan.sealed()).model_dump_json(indent=2) + "\n")


def read_plan(path: Path) -> Plan:
    try:
        raw = read_input(path, "plan file", f"make one with `offboard plan -o {path}`").decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"plan file {path} is not UTF-8 text (it was damaged or is not a plan); make a new one "
                       "with `offboard plan -o`") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadInput(
            f"plan file {path} is not valid JSON (line {exc.lineno}: {exc.msg}); "
            "it may be truncated: make a new one with `offboard plan -o`"
        ) from None
    if isinstance(data, dict) and data.get("format") not in (None, PLAN_FORMAT):
        raise BadInput(f"plan file {path} has format {data.get('format')!r}; this offboard reads "
                       f"format {PLAN_FORMAT}: make a new plan with `offboard plan -o`")
    return read_sealed(Plan, data, f"plan file {path}", "make a new one with `offboard plan -o`")


M = TypeVar("M", bound=BaseModel)


def checksum_of(model: BaseModel) -> str:
    """The seal of a file offboard writes (a plan, a batch plan): a hash of all but its checksum."""
    body = model.model_dump(mode="json", exclude={"checksum"})
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def read_sealed(model: type[M], data: Any, what: str, fix: str) -> M:
    """A sealed file's JSON as its model: one line naming where it is malformed, or that it was
    edited after it was written (its checksum no longer matches)."""
    try:
        obj = model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top)"
        raise BadInput(f"{what} is malformed at {where}: {err['msg']}; {fix}") from None
    if getattr(obj, "checksum", None) != checksum_of(obj):
        raise BadInput(f"{what} was changed after it was written (checksum mismatch); {fix} instead of editing it")
    return obj
