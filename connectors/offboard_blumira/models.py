"""Blumira reply objects, parsed leniently (vendor-notes §1.5, §2.4).

No spec file could be obtained, so every model keeps unknown fields (they go into the
evidence as sent) and tolerates missing optional ones. Single objects come with or
without the ``data`` wrapper; some lists are bare arrays. A reply that breaks even this
contract is one clear line naming the endpoint.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

from offboard.errors import VendorReplyError
from offboard.wire.replies import M, parse_reply

from . import unknowns

VENDOR = "Blumira"
ADMIN_ROLES = frozenset({"administrator", "admin"})


def _blank(v: Any) -> Any:
    return "" if v is None else v


def _empty(v: Any) -> Any:
    return [] if v is None else v


# A null where the notes show a string (or a list) reads as empty: no public source says
# which fields may be null, so none is trusted not to be.
Text = Annotated[str, BeforeValidator(_blank)]


class _Reply(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, coerce_numbers_to_str=True)


class Account(_Reply):
    account_id: str
    name: Text = ""
    license: str | None = None
    open_findings: int | None = None
    agent_count_used: int | None = None
    agent_count_available: int | None = None
    user_count: int | None = None


class Device(_Reply):
    device_id: str
    hostname: Text = ""
    plat: Text = ""
    org_id: str | None = None
    key_id: str | None = None
    is_isolated: bool | None = None
    alive: str | None = None


class AgentKey(_Reply):
    key_id: str
    description: Text = ""
    agent_count: int | None = None
    org_id: str | None = None


class Role(_Reply):
    role_id: int | None = None
    role_name: Text = ""


class User(_Reply):
    id: str
    email: Text = ""
    first_name: Text = ""
    last_name: Text = ""
    org_roles: Annotated[list[Role], BeforeValidator(_empty)] = []

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

    id: str
    name: Text = ""
    url: Text = ""

    def accounts(self) -> list[str] | None:
        """The sub-accounts this endpoint is explicitly limited to; None when it names none
        (then it serves the whole MSP and is never the customer's alone)."""
        extra = self.model_extra or {}
        for key in unknowns.WEBHOOK_ACCOUNT_LIST_FIELDS:
            v = extra.get(key)
            if isinstance(v, list) and v:
                return [str(x.get("account_id") or x.get("id")) if isinstance(x, dict) else str(x) for x in v]
        for key in unknowns.WEBHOOK_ACCOUNT_FIELDS:
            v = extra.get(key)
            if isinstance(v, str | int) and str(v):
                return [str(v)]
        return None


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
