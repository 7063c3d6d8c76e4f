"""The notes' example objects, and variants of them (hypothesis: optional fields missing or null,
fields nobody documented, ints where strings were shown and strings where ints were), go
through a whole Blumira exit: discovery, plan, apply, verification. Nothing crashes; every
object's owner is either proven (listed under the sub-account, nothing in it naming anything
else) or unknown; an unknown owner is never written to and never counted as gone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from offboard import engine
from offboard.config import ExitConfig
from offboard.connectors import Check
from offboard.connectors.sandboxing import InProcessTransport
from offboard.plan import Inventory, Plan
from offboard_blumira import unknowns
from offboard_blumira.sandbox import CUSTOMER_ACCOUNT, KEEP_USER, NEIGHBOUR_ACCOUNT, BlumiraSandbox
from tests.conftest import DEMO_CREDS, FAST, blumira_section, load, past_the_notification, write_config
from tests.connectors import blumira_notes as notes
from tests.connectors.blumira_unknowns import settle_dispatch

EXAMPLES = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                            HealthCheck.too_slow])
OURS = f"account:{CUSTOMER_ACCOUNT}"
MISSING = object()  # the field is left out altogether
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.text(max_size=12))
EXTRA = st.dictionaries(st.from_regex(r"\Ax_[a-z]{1,6}\Z"), SCALARS | st.lists(SCALARS, max_size=2), max_size=3)
ORG_IDS = st.sampled_from([MISSING, None, "", CUSTOMER_ACCOUNT, NEIGHBOUR_ACCOUNT, "org-7f3e0b1c", 4711])


@st.composite
def variant(draw: st.DrawFn, example: dict[str, Any], required: frozenset[str]) -> dict[str, Any]:
    obj = dict(example)
    optional = sorted(set(obj) - required)
    if optional:
        for k in draw(st.sets(st.sampled_from(optional))):
            del obj[k]  # missing
    rest = sorted(set(obj) - required)
    if rest:
        for k in draw(st.sets(st.sampled_from(rest))):
            obj[k] = None  # null
    numbers = sorted(k for k, v in obj.items() if isinstance(v, int) and not isinstance(v, bool))
    if numbers:
        for k in draw(st.sets(st.sampled_from(numbers))):
            obj[k] = str(obj[k])  # "3" where 3 was shown
    obj.update(draw(EXTRA))
    return obj


def with_id(obj: dict[str, Any], field: str, n: int, as_int: bool, prefix: str) -> dict[str, Any]:
    return {**obj, field: 9000 + n if as_int else f"{prefix}-{n}"}  # an int where a string id was shown


def with_org(obj: dict[str, Any], org: Any) -> dict[str, Any]:
    out = {k: v for k, v in obj.items() if k != "org_id"}
    return out if org is MISSING else {**out, "org_id": org}


def expected_owner(obj: dict[str, Any]) -> str:
    org = obj.get("org_id")
    return OURS if org is None or org == "" or str(org) == CUSTOMER_ACCOUNT else "unknown"


def listed(objs: list[tuple[dict[str, Any], Any]], field: str, prefix: str, example: dict[str, Any],
           required: frozenset[str], draw: st.DrawFn) -> list[dict[str, Any]]:
    return [with_org(with_id(draw(variant(example, required)), field, n, as_int, prefix), org)
            for n, (as_int, org) in enumerate(objs)]


@st.composite
def customer(draw: st.DrawFn) -> dict[str, Any]:
    """One sub-account's worth of the notes' objects, varied."""
    ids = st.lists(st.tuples(st.booleans(), ORG_IDS), min_size=1, max_size=3)
    devices = listed(draw(ids), "device_id", "dev", notes.DEVICE, frozenset({"device_id"}), draw)
    keys = listed(draw(ids), "key_id", "key", notes.AGENT_KEY, frozenset({"key_id"}), draw)
    users = []
    for n, (as_int, email) in enumerate(draw(st.lists(st.tuples(
            st.booleans(), st.sampled_from([KEEP_USER, KEEP_USER.upper(), "leaver@example.com", None, MISSING])),
            min_size=1, max_size=3))):
        user = with_id(draw(variant(notes.USER, frozenset({"id"}))), "id", n, as_int, "u")
        user.pop("email", None)
        users.append(user if email is MISSING else {**user, "email": email})
    account = {**draw(variant(notes.ACCOUNT_DETAIL, frozenset({"account_id"}))), "account_id": CUSTOMER_ACCOUNT}
    findings = [with_id(draw(variant(notes.FINDING, frozenset({"finding_id"}))), "finding_id", n, as_int, "f")
                for n, as_int in enumerate(draw(st.lists(st.booleans(), max_size=2)))]
    scope = st.sampled_from([CUSTOMER_ACCOUNT, NEIGHBOUR_ACCOUNT, 17, {"account_id": CUSTOMER_ACCOUNT},
                             {"id": NEIGHBOUR_ACCOUNT}, ""])
    hooks = []
    scoping = st.one_of(  # limited to the customer alone, as the double seeds it, or any mix at all
        st.sampled_from([{"account_ids": [CUSTOMER_ACCOUNT]}, {"org_id": CUSTOMER_ACCOUNT},
                         {"accounts": [{"account_id": CUSTOMER_ACCOUNT}]}]),
        st.dictionaries(st.sampled_from(unknowns.WEBHOOK_ACCOUNT_LIST_FIELDS + unknowns.WEBHOOK_ACCOUNT_FIELDS),
                        st.lists(scope, max_size=2) | scope, max_size=2))
    for n, (fields, as_int) in enumerate(draw(st.lists(st.tuples(scoping, st.booleans()), max_size=3))):
        # Undocumented objects: only the id is known. Scalars for the list fields and lists for
        # the scalar ones are kept too (the vendor may shape them either way).
        hooks.append({"id": 700 + n if as_int else f"wh-x{n}", "name": draw(st.sampled_from(
            ["Acme Dental → PSA", "", "SIEM"])), **fields, **draw(EXTRA)})
    return {"devices": devices, "keys": keys, "users": users, "account": account, "findings": findings,
            "hooks": hooks}


def hook_is_customers_alone(hook: dict[str, Any]) -> bool:
    """The test's own reading: every account the looked-for fields name is the customer's."""
    named: list[Any] = []
    for key in unknowns.WEBHOOK_ACCOUNT_LIST_FIELDS:
        if isinstance(hook.get(key), list):
            named += hook[key]
    for key in unknowns.WEBHOOK_ACCOUNT_FIELDS:
        if key in hook and hook[key] is not None and hook[key] != "":
            named.append(hook[key])
    refs = [n.get("account_id", n.get("id")) if isinstance(n, dict) else n for n in named]
    return bool(refs) and all(r == CUSTOMER_ACCOUNT for r in refs)


def seed(sb: BlumiraSandbox, data: dict[str, Any]) -> None:
    for store in (sb.devices, sb.keys, sb.users, sb.findings):
        for key in [k for k, v in store.items() if v["_account"] == CUSTOMER_ACCOUNT]:
            del store[key]
    for store, objs, field in ((sb.devices, data["devices"], "device_id"), (sb.keys, data["keys"], "key_id"),
                               (sb.users, data["users"], "id"), (sb.findings, data["findings"], "finding_id")):
        for obj in objs:
            sb.put(store, CUSTOMER_ACCOUNT, obj, str(obj[field]))
    sb.accounts[CUSTOMER_ACCOUNT] = data["account"]
    sb.webhooks = {str(h["id"]): h for h in data["hooks"]}


@pytest.fixture
def cfg(tmp_path: Path) -> ExitConfig:
    return load(write_config(tmp_path, huntress=False, blumira=blumira_section()))


def exit_once(sb: BlumiraSandbox, cfg: ExitConfig) -> tuple[Plan, Inventory, engine.RunResult, dict[str, Check]]:
    with engine.open_sessions(cfg, transports={"blumira": InProcessTransport(sb.app)}, creds=DEMO_CREDS) as s:
        plan = engine.make_plan(cfg, s)
        inventory = s.by_vendor["blumira"].discover()  # what the plan was made from, read again before apply
        result = past_the_notification(cfg, plan, s)
        checks = {c.name: c for c in engine.verify_run(None, s)}
    return plan, inventory, result, checks


@EXAMPLES
@given(data=customer())
def test_the_notes_objects_and_their_variants_go_through_a_whole_exit(
        data: dict[str, Any], cfg: ExitConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    sb = BlumiraSandbox(time_scale=FAST, customer_findings=0)
    settle_dispatch(monkeypatch, sb)  # so that a write would be sent if the plan allowed one
    seed(sb, data)
    neighbour = {k: dict(v) for k, v in sb.devices.items() if v["_account"] == NEIGHBOUR_ACCOUNT}

    plan, listed_before, result, checks = exit_once(sb, cfg)

    inventory = {(i.target.type, i.target.id): i for i in listed_before.items}
    for kind, objs, field in (("device", data["devices"], "device_id"), ("agent_key", data["keys"], "key_id")):
        for obj in objs:
            assert inventory[(kind, str(obj[field]))].owner == expected_owner(obj), obj
    assert all(inventory[("user", str(u["id"]))].owner == OURS for u in data["users"])  # the path is the proof

    # Writes: only to proven owners; an unknown owner is never dispatched to and stays listed.
    proven = {str(d["device_id"]) for d in data["devices"] if expected_owner(d) == OURS}
    unknown = {str(d["device_id"]) for d in data["devices"]} - proven
    assert {a.target.id for a in plan.actions() if a.operation == "uninstall_device"} == proven
    sent = [r.path for r in sb.requests if r.method == "POST" and r.path.endswith("/actions")]
    assert sorted(p.split("/")[-2] for p in sent) == sorted(proven)
    assert {str(d["device_id"]) for d in sb.of(sb.devices, CUSTOMER_ACCOUNT)} == unknown
    assert {k: v for k, v in sb.devices.items() if v["_account"] == NEIGHBOUR_ACCOUNT} == neighbour

    deleted = {r.path.rsplit("/", 1)[1] for r in sb.requests if r.method == "DELETE"}
    assert deleted == {str(h["id"]) for h in data["hooks"] if hook_is_customers_alone(h)}
    event(f"devices: {len(proven)} proven, {len(unknown)} unknown; webhooks deleted: {len(deleted)}")
    assert {r.method for r in sb.requests} <= {"GET", "POST", "DELETE"}
    assert not [r for r in sb.requests if r.method == "POST" and "/agents/keys" in r.path]

    # Verification: nothing unattributed counts as gone; each is named.
    devices = checks["no agent device listed"]
    assert devices.passed == (not unknown)
    assert devices.detail.count("(owner unknown") == len(unknown)
    keys = checks["no agent key listed"]
    assert not keys.passed and f"lists {len(data['keys'])} key(s)" in keys.detail  # keys go only by hand
    assert keys.detail.count("(owner unknown") == sum(expected_owner(k) != OURS for k in data["keys"])
    leavers = [u for u in data["users"] if str(u.get("email") or "").lower() != KEEP_USER]
    assert checks["only the users to keep remain"].passed == (not leavers)

    exported = result.run.path / "evidence" / "blumira" / "findings.json"
    assert exported.exists() and len(json.loads(exported.read_text())) == len(data["findings"])
    assert plan.vendor("blumira").snapshot["agent_devices"] == len(data["devices"])
