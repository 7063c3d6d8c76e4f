"""Contract: the Huntress connector reads what the vendor really sends.

For every definition the connector parses, the spec's own example object and objects generated
from the spec's schema (hypothesis-jsonschema) go through discovery, preflight, planning and
verification: nothing crashes, and each object's owner is either the one its fields name or
``unknown``. An object whose owner cannot be established is never a write's target, and is
never counted as gone: verification names it and does not pass.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from pydantic import SecretStr

from offboard.connectors import Check
from offboard.plan import Inventory, InventoryItem, VendorPlan
from offboard_huntress import connector
from offboard_huntress.session import HuntressSession
from offboard_huntress.settings import HuntressSettings
from offboard_huntress.steps import UNKNOWN_OWNER
from tests import huntress_spec
from tests.specs import needs_spec

pytestmark = needs_spec(huntress_spec.SPEC)

ORG = 42
OURS = f"organization:{ORG}"
PROPERTY = settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
LISTS = {"agents": "Agent", "memberships": "Membership", "unwanted_access_rules": "UnwantedAccessRule",
         "incident_reports": "IncidentReport", "escalations": "Escalation", "platform_actions": "PlatformAction",
         "identities": "Identity"}


class FakeHuntress:
    """Answers with the objects it is given, in the spec's envelopes, whatever the filters
    (as a vendor listing more than it should would)."""

    def __init__(self, actor: dict[str, Any], org: dict[str, Any] | None, lists: dict[str, list[dict[str, Any]]]):
        self.actor, self.org, self.lists = actor, org, lists
        self.writes: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method != "GET":
            self.writes.append(f"{request.method} {path}")
            return httpx.Response(404)
        if path == "/v1/actor":
            return httpx.Response(200, json=self.actor)
        if path == f"/v1/organizations/{ORG}":
            return httpx.Response(200, json={"organization": self.org}) if self.org is not None else httpx.Response(404)
        key = path.removeprefix("/v1/")
        if key in self.lists:
            return httpx.Response(200, json={key: self.lists[key], "pagination": {}})
        return httpx.Response(404)


@contextmanager
def session(fake: FakeHuntress, **extra: Any) -> Iterator[HuntressSession]:
    s = HuntressSettings(organization_id=ORG, base_url="http://127.0.0.1:9", rate_window_seconds=0.001, **extra)
    opened = connector.open(s, {"api_key": SecretStr("hk_test"), "api_secret": SecretStr("hs_test")},
                            transport=httpx.MockTransport(fake))
    try:
        yield opened
    finally:
        opened.close()


# -- who owns what, read independently from the raw object ------------------------------------------


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def owner_named(kind: str, raw: dict[str, Any]) -> str:
    """The owner an object's own fields name, or unknown."""
    if kind == "agent":
        org = _int(raw.get("organization_id"))
        return UNKNOWN_OWNER if org is None else f"organization:{org}"
    if kind == "membership":
        for scope in ("organization", "account"):
            holder = raw.get(scope)
            if isinstance(holder, dict) and _int(holder.get("id")) is not None:
                return f"{scope}:{holder['id']}"
        return UNKNOWN_OWNER
    if kind == "unwanted_access_rule":
        applied = raw.get("applied_to")
        if isinstance(applied, dict) and _int(applied.get("id")) is not None:
            scope = str(applied.get("type", "")).strip().lower()
            if scope in ("organization", "account", "identity"):
                return f"{scope}:{applied['id']}"
        return UNKNOWN_OWNER
    raise AssertionError(kind)


RAW_LIST = {"agent": "agents", "membership": "memberships", "unwanted_access_rule": "unwanted_access_rules"}


def by_id(kind: str, fake: FakeHuntress) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for raw in fake.lists[RAW_LIST[kind]]:
        out.setdefault(str(raw.get("id")), []).append(raw)
    return out


def assert_owners_are_named_or_unknown(inventory: Inventory, fake: FakeHuntress) -> None:
    for item in inventory.items:
        if item.target.type not in RAW_LIST:
            continue
        raws = by_id(item.target.type, fake).get(item.target.id, [])
        named = {owner_named(item.target.type, raw) for raw in raws}
        if item.owner != UNKNOWN_OWNER:
            assert named == {item.owner}, (item, raws)  # correct, and unambiguous


def assert_unknowns_fail_verification(inventory: Inventory, checks: list[Check]) -> None:
    unknown = [i for i in inventory.items if i.owner == UNKNOWN_OWNER and i.target.type in RAW_LIST]
    for item in unknown:
        naming = [c for c in checks if item.target.name in c.detail and not c.passed]
        assert naming, f"{item.target.type} {item.target.name!r} (owner unknown) is not named by a failed check"


def writes_planned(session: HuntressSession, inventory: Inventory) -> list[InventoryItem]:
    parts = session.plan(inventory)
    targets = {(a.target.type, a.target.id) for s in parts.steps for a in s.actions if a.kind == "api"
               and a.destructive}
    return [i for i in inventory.items if (i.target.type, i.target.id) in targets]


# -- the spec's example objects -------------------------------------------------------------------


def example_fake(**changes: Any) -> FakeHuntress:
    ex = huntress_spec.example
    org = {**ex("OrganizationWithActualProductUsages"), "id": ORG}
    lists = {key: [ex(name)] for key, name in LISTS.items()}
    for key, change in changes.items():
        lists[key] = [{**lists[key][0], **change}]
    return FakeHuntress(ex("Actor"), org, lists)


def test_the_specs_example_objects_go_through_discovery_and_verification() -> None:
    fake = example_fake()
    with session(fake) as s:
        inventory = s.discover()
        findings = s.preflight(inventory)
        planned = writes_planned(s, inventory)
        checks = s.verify(None, inventory)
    owners = {i.target.type: i.owner for i in inventory.items}
    # The examples belong to organization 7 (agent), organization 5678 (membership: it names
    # account 1234 too), and organization 1234 (rule, "type": "Organization"): none is the
    # customer's, none is a target. The organization's ITDR tenant mapping is its own.
    assert huntress_spec.example("Agent")["organization_id"] == 7
    assert owners == {"organization": OURS, "agent": "organization:7", "membership": "organization:5678",
                      "unwanted_access_rule": "organization:1234", "itdr_tenant": OURS}
    assert [i for i in planned if i.target.type in RAW_LIST] == []
    assert_owners_are_named_or_unknown(inventory, fake)
    assert {f.kind for f in findings} >= {"open_incident_reports", "open_escalations"}
    agents = next(c for c in checks if c.name == "no agent listed for the organization")
    assert agents.passed and "laptop01" in agents.detail  # listed, another organization's: named, not counted


def test_the_example_objects_made_the_customers_are_planned_and_not_counted_as_gone_while_listed() -> None:
    applied = {"type": "Organization", "id": ORG, "name": "Acme"}
    fake = example_fake(agents={"organization_id": ORG}, memberships={"organization": {"id": ORG, "name": "Acme"}},
                        unwanted_access_rules={"applied_to": applied})
    with session(fake) as s:
        inventory = s.discover()
        planned = writes_planned(s, inventory)
        parts = s.plan(inventory)
        vendor_plan = VendorPlan(vendor="huntress", display_name="Huntress", scope=inventory.scope,
                                 account=inventory.account, inventory_fingerprint=inventory.fingerprint(),
                                 steps=parts.steps, skipped=parts.skipped)
        checks = s.verify(vendor_plan, inventory)  # as if nothing had been removed
    assert sorted(i.target.type for i in planned) == ["agent", "membership", "organization",
                                                      "unwanted_access_rule"]
    removal_checks = [c for c in checks if c.action_id and c.target is not None
                      and c.target.type in RAW_LIST]
    assert removal_checks and not any(c.passed for c in removal_checks)


# -- objects generated from the spec's schemas --------------------------------------------------------


def generated(name: str) -> st.SearchStrategy[dict[str, Any]]:
    return from_schema(huntress_spec.definition_schema(name, closed=True))


def ours_sometimes(kind: str, objects: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Generated objects, some made to name the customer's organization (a random id almost never does)."""
    def make_ours(raw: dict[str, Any], case: str) -> dict[str, Any]:
        raw = copy.deepcopy(raw)
        if kind == "agent":
            raw["organization_id"] = ORG
        elif kind == "membership":
            raw["organization"] = {**(raw.get("organization") or {}), "id": ORG}
        else:
            raw["applied_to"] = {**(raw.get("applied_to") or {}), "type": case, "id": ORG}
        return raw

    cases = st.sampled_from(["Organization", "organization", "ORGANIZATION", "Identity", "Account", "Tenant"])
    return st.one_of(objects, st.builds(make_ours, objects, cases))


def org_replies() -> st.SearchStrategy[dict[str, Any] | None]:
    return generated("OrganizationWithActualProductUsages").flatmap(
        lambda o: st.sampled_from([{**o, "id": ORG}, {k: v for k, v in o.items() if k != "id"}, o]))


@PROPERTY
@given(actor=generated("Actor"), org=org_replies(),
       agents=st.lists(ours_sometimes("agent", generated("Agent")), max_size=4),
       memberships=st.lists(ours_sometimes("membership", generated("Membership")), max_size=3),
       rules=st.lists(ours_sometimes("rule", generated("UnwantedAccessRule")), max_size=3),
       incidents=st.lists(generated("IncidentReport"), max_size=2),
       escalations=st.lists(generated("Escalation"), max_size=2),
       actions=st.lists(generated("PlatformAction"), max_size=2))
def test_any_spec_shaped_reply_is_read_with_its_owner_named_or_unknown(
        actor: dict[str, Any], org: dict[str, Any], agents: list[dict[str, Any]], memberships: list[dict[str, Any]],
        rules: list[dict[str, Any]], incidents: list[dict[str, Any]], escalations: list[dict[str, Any]],
        actions: list[dict[str, Any]]) -> None:
    fake = FakeHuntress(actor, org, {"agents": agents, "memberships": memberships, "unwanted_access_rules": rules,
                                     "incident_reports": incidents, "escalations": escalations,
                                     "platform_actions": actions, "identities": []})
    with session(fake) as s:
        inventory = s.discover()
        s.preflight(inventory)
        planned = writes_planned(s, inventory)
        checks = s.verify(None, inventory)
    assert_owners_are_named_or_unknown(inventory, fake)
    for item in planned:  # a write is planned only for what is surely the customer's
        assert item.owner == OURS
        if item.target.type in RAW_LIST:
            assert {owner_named(item.target.type, r) for r in by_id(item.target.type, fake)[item.target.id]} == {
                OURS}
    assert_unknowns_fail_verification(inventory, checks)
    assert fake.writes == []


@pytest.mark.parametrize("name", ["Agent", "Membership", "UnwantedAccessRule", "IncidentReport", "Escalation",
                                  "PlatformAction", "SummaryReport", "Subscription", "Actor",
                                  "OrganizationWithActualProductUsages"])
def test_every_parsed_definitions_example_parses(name: str) -> None:
    from offboard_huntress import models

    model = {"OrganizationWithActualProductUsages": models.Organization, "IncidentReport":
             models.IncidentWithRemediations}.get(name) or getattr(models, name)
    models.parse(model, huntress_spec.example(name), f"the spec's {name} example")


def _discovered_and_re_taken(fake: FakeHuntress) -> tuple[object, object]:
    """What discovery's inventory says each object's owner is, and what the --trust-listing re-take
    (``owners()``) says, from the same replies (or the error each one stopped with)."""
    out: list[object] = []
    for read in (lambda s: s.discover().owners, lambda s: s.owners()):
        with session(fake) as s:
            try:
                out.append(read(s))
            except Exception as exc:  # the same refusal, either way
                out.append((type(exc), str(exc)))
    return out[0], out[1]


@PROPERTY
@given(actor=generated("Actor"), org=org_replies(),
       agents=st.lists(ours_sometimes("agent", generated("Agent")), max_size=4),
       # an agent listed again: under another organization, none, one of the wrong type, or its own
       twins=st.lists(st.tuples(st.integers(0, 3), st.one_of(st.none(), st.just(ORG), st.integers(), st.text())),
                      max_size=3),
       memberships=st.lists(ours_sometimes("membership", generated("Membership")), max_size=3),
       rules=st.lists(ours_sometimes("rule", generated("UnwantedAccessRule")), max_size=3))
def test_the_listing_re_taken_under_trust_listing_names_the_owners_discovery_names(
        actor: dict[str, Any], org: dict[str, Any], agents: list[dict[str, Any]],
        twins: list[tuple[int, Any]], memberships: list[dict[str, Any]], rules: list[dict[str, Any]]) -> None:
    agents += [{**agents[i], "organization_id": owner} for i, owner in twins if i < len(agents)]
    fake = FakeHuntress(actor, org, {"agents": agents, "memberships": memberships, "unwanted_access_rules": rules,
                                     "incident_reports": [], "escalations": [], "platform_actions": [],
                                     "identities": []})
    discovered, re_taken = _discovered_and_re_taken(fake)
    assert re_taken == discovered


def test_an_agent_listed_twice_under_two_owners_or_without_an_id_is_nobodys_in_the_re_taken_listing() -> None:
    actor = {"user": {"id": 1, "email": "tech@msp.example"}}
    agents = [{"id": 7, "organization_id": ORG}, {"id": 7, "organization_id": ORG + 1},  # moved while listed
              {"id": 8, "organization_id": ORG}, {"id": 8, "organization_id": ORG},  # listed twice, same owner
              {"organization_id": ORG, "hostname": "no-id"}, {"id": 9, "organization_id": None},
              {"id": 10, "organization_id": ORG}]
    fake = FakeHuntress(actor, {"id": ORG, "name": "Acme"}, {
        "agents": agents, "memberships": [], "unwanted_access_rules": [], "incident_reports": [], "escalations": [],
        "platform_actions": [], "identities": []})
    discovered, re_taken = _discovered_and_re_taken(fake)
    assert re_taken == discovered
    assert isinstance(re_taken, dict)
    assert {k: v for k, v in re_taken.items() if k[0] == "agent"} == {
        ("agent", "7"): UNKNOWN_OWNER, ("agent", "8"): OURS, ("agent", "?5"): UNKNOWN_OWNER,
        ("agent", "9"): UNKNOWN_OWNER, ("agent", "10"): OURS}
    assert re_taken[("organization", str(ORG))] == OURS
