"""Huntress reply objects, as much of them as the exit needs (vendor-notes §3).

Unknown fields are ignored, not rejected: the API grows without notice (§5.5). The spec marks no
field required, so every field here may be absent: an object that does not say its id or its
owner is still read, and its owner is then unknown (never written to, never counted as gone).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

from offboard.wire.replies import M, parse_reply

ISOLATED = frozenset({"Isolated", "Pending Isolation"})


def _owner_id(value: Any) -> int | None:
    """An id that says whose an object is, only as the spec types it (an integer): ``"101"`` or
    ``101.0`` is not silently turned into 101 and believed; the owner is then unknown (never
    written to, counted against "stopped")."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


OwnerId = Annotated[int | None, BeforeValidator(_owner_id)]


class _Reply(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Named(_Reply):
    id: OwnerId = None
    name: str = ""


class ActorUser(_Reply):
    id: int | None = None
    email: str = ""
    name: str = ""


class Actor(_Reply):
    reseller: Named | None = None
    account: Named | None = None
    user: ActorUser | None = None

    def describe(self) -> str:
        if self.user is not None:
            who = f"user key of {self.user.email or self.user.name}"
        elif self.reseller is not None:
            who = "reseller key"
        else:
            who = "account key (read-only: cannot uninstall agents)"
        acct = f"account {self.account.name!r} (id {self.account.id})" if self.account else "no account"
        return f"{who}, {acct}"


class Organization(_Reply):
    id: OwnerId = None
    account_id: OwnerId = None
    name: str = ""
    key: str = ""
    agents_count: int = 0
    incident_reports_count: int = 0
    logs_sources_count: int = 0
    billable_identity_count: int = 0
    sat_learner_count: int = 0
    identity_provider_tenant_id: str | None = None
    report_recipients: list[str] | None = None
    actual_usages: dict[str, Any] | None = None


class Agent(_Reply):
    id: int | None = None
    organization_id: OwnerId = None
    account_id: OwnerId = None
    hostname: str = ""
    platform: str = ""
    os: str = ""
    version: str = ""
    firewall_status: str | None = None
    last_callback_at: str | None = None


class IncidentReport(_Reply):
    id: int | None = None
    organization_id: int | None = None
    status: str = ""
    severity: str = ""
    subject: str = ""


class Escalation(_Reply):
    id: int | None = None
    status: str = ""
    severity: str = ""
    subject: str = ""
    organizations: list[Named] = []


def parse(model: type[M], data: Any, call: str) -> M:
    return parse_reply("Huntress", model, data, call)


class Remediations(_Reply):
    total_count: int = 0
    has_more: bool = False
    items: list[dict[str, Any]] = []


class IncidentWithRemediations(IncidentReport):
    remediations: Remediations | None = None


class MembershipUser(_Reply):
    id: int | None = None
    email: str = ""
    name: str = ""


class Membership(_Reply):
    id: int | None = None
    permissions: str = ""
    account: Named | None = None
    organization: Named | None = None
    user: MembershipUser | None = None


class AppliedTo(_Reply):
    type: str = ""  # the spec's example says "Organization"; the list filter says "organization"
    id: OwnerId = None
    name: str = ""


class UnwantedAccessRule(_Reply):
    id: int | None = None
    applied_to: AppliedTo | None = None
    category: str = ""
    type: str = ""
    country_code: str | None = None
    vpn: str | None = None
    ip_address: str | None = None


class SummaryReport(_Reply):
    id: int | None = None
    organization_id: int | None = None
    type: str = ""
    period: str = ""
    url: str | None = None


class PlatformAction(_Reply):
    id: int | None = None
    status: str = ""
    subject: str = ""


class Subscription(_Reply):
    id: int | None = None
    account: Named | None = None
    product: str = ""
    status: str = ""
    auto_renew: bool | None = None


def _usage(usages: dict[str, Any], product: str, field: str) -> int:
    """A count under actual_usages (an object per product; a list of tenants for itdr/ispm),
    read defensively: the spec types actual_usages as a string, its example as an object."""
    entry = usages.get(product)
    entries = entry if isinstance(entry, list) else [entry]
    total = 0
    for e in entries:
        value = e.get(field) if isinstance(e, dict) else None
        total += value if isinstance(value, int) and not isinstance(value, bool) else 0
    return total


def billed_counts(org: Organization, product: str) -> dict[str, int]:
    """The organization's counts that bill ``product`` (steps.BILLED_ON says which): the billing check
    and the watch after the exit read them the same way."""
    usages = org.actual_usages if isinstance(org.actual_usages, dict) else {}
    if product == "edr":
        return {"agents_count": org.agents_count,
                "billable_agents_count": _usage(usages, "edr", "billable_agents_count")}
    if product == "itdr":
        return {"billable_identity_count": org.billable_identity_count,
                "itdr_billable_identities": _usage(usages, "itdr", "billable_identities_count")}
    if product == "sat":
        return {"sat_learner_count": org.sat_learner_count, "sat_learners": _usage(usages, "sat", "learners_count")}
    return {"logs_sources_count": org.logs_sources_count,
            "siem_billable_log_sources": _usage(usages, "siem", "billable_log_sources_count")}
