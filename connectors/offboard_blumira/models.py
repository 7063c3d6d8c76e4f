"""Blumira reply objects, parsed leniently (vendor-notes §1.5, §2.4).

No spec file could be obtained, so every model keeps unknown fields (they go into the
evidence as sent) and tolerates missing optional ones. Single objects come with or
without the ``data`` wrapper; some lists are bare arrays. A reply that breaks even this
contract is one clear line naming the endpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidatorFunctionWrapHandler, WrapValidator

from offboard.errors import VendorReplyError
from offboard.wire.replies import M, parse_reply

from . import unknowns

VENDOR = "Blumira"
# The portal's role is "Administrator" (vendor-notes §2.4, KB-MSPUSERS); no other spelling is
# guessed, so a role the notes do not name never counts toward keeping an administrator.
ADMIN_ROLES = frozenset({"administrator"})


def _or(fallback: Callable[[Any], Any]) -> WrapValidator:
    """No public source says which fields may be null or how they are typed, so a field the
    connector only reports on never fails a reply: an unreadable value reads as ``fallback``
    (the raw object still goes into the evidence as sent)."""
    def wrap(v: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(v)
        except ValidationError:
            return fallback(v)
    return WrapValidator(wrap)


Id = Annotated[str, Field(min_length=1)]  # the object's id: without it there is nothing to name or re-read
Text = Annotated[str, _or(lambda _v: "")]
OptText = Annotated[str | None, _or(lambda _v: None)]
OptInt = Annotated[int | None, _or(lambda _v: None)]
OptBool = Annotated[bool | None, _or(lambda _v: None)]
# An org_id that cannot be read is not absent: it is kept (as its repr) so ownership sees it
# names something, and the owner becomes unknown rather than proven (see ownership.py).
OrgRef = Annotated[str | None, _or(lambda v: repr(v)[:80])]


class _Reply(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, coerce_numbers_to_str=True)


class Account(_Reply):
    account_id: Id
    name: Text = ""
    license: OptText = None
    open_findings: OptInt = None
    agent_count_used: OptInt = None
    agent_count_available: OptInt = None
    user_count: OptInt = None


class Device(_Reply):
    device_id: Id
    hostname: Text = ""
    plat: Text = ""
    org_id: OrgRef = None
    key_id: OptText = None
    is_isolated: OptBool = None
    alive: OptText = None


class AgentKey(_Reply):
    key_id: Id
    description: Text = ""
    agent_count: OptInt = None
    org_id: OrgRef = None


class Role(_Reply):
    role_id: OptInt = None
    role_name: Text = ""


def _roles(v: Any) -> list[Role]:
    """The readable roles of an unreadable list (a role that cannot be read grants nothing)."""
    if not isinstance(v, list):
        return []
    out = []
    for r in v:
        try:
            out.append(Role.model_validate(r))
        except ValidationError:
            continue
    return out


class User(_Reply):
    id: Id
    email: Text = ""
    first_name: Text = ""
    last_name: Text = ""
    org_roles: Annotated[list[Role], _or(_roles)] = []

    @property
    def is_admin(self) -> bool:
        return any(r.role_name.strip().lower() in ADMIN_ROLES for r in self.org_roles)

    def describe(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        roles = ", ".join(r.role_name for r in self.org_roles if r.role_name) or "no role"
        return f"{name + ' ' if name else ''}<{self.email or self.id}> ({roles})"


class Webhook(_Reply):
    """Field names are not published (unknowns.WEBHOOK_FIELDS): only ``id`` is relied on (the
    path's ``{id}``); the account scoping fields are looked for, never assumed."""

    id: Id
    name: Text = ""
    url: Text = ""

    def accounts(self) -> list[str] | None:
        """The sub-accounts this endpoint is explicitly limited to, from every looked-for field
        at once (two fields that disagree widen the set: the endpoint is then not the customer's
        alone); None when it names none (then it serves the whole MSP)."""
        extra = self.model_extra or {}
        found: set[str] = set()
        for key in unknowns.WEBHOOK_ACCOUNT_LIST_FIELDS:
            v = extra.get(key)
            if isinstance(v, list):
                found |= {_account_ref(x) for x in v}
        for key in unknowns.WEBHOOK_ACCOUNT_FIELDS:
            v = extra.get(key)
            if v is not None and v != "":
                found.add(_account_ref(v))
        return sorted(found) if found else None


def _account_ref(v: Any) -> str:
    """An account named in a webhook field, as text; anything unreadable stays distinct (its
    repr), so it can never pass for the customer's account."""
    if isinstance(v, dict):
        v = v.get("account_id", v.get("id", v))
    return str(v) if isinstance(v, str | int) and not isinstance(v, bool) else repr(v)


def parse(model: type[M], data: Any, call: str) -> M:
    return parse_reply(VENDOR, model, data, call)


def unwrap(body: Any, call: str) -> dict[str, Any]:
    """A single object, with or without the ``{"status", "data": {…}}`` envelope."""
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        data: dict[str, Any] = body["data"]
        return data
    if isinstance(body, dict) and "data" not in body:
        return body
    raise VendorReplyError(VENDOR, call, "reply is not an object (wrong envelope)")


def items(body: Any, call: str) -> list[dict[str, Any]]:
    """A list page: the envelope's ``data`` list, or a bare array."""
    data = body.get("data") if isinstance(body, dict) else body
    if not isinstance(data, list) or not all(isinstance(i, dict) for i in data):
        raise VendorReplyError(VENDOR, call, "reply has no list of objects (wrong envelope)")
    return data
