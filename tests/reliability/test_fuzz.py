"""Hypothesis: whatever the config file, the plan file or a vendor reply holds, offboard either
reads it or says in one line what is wrong (BadInput / VendorReplyError, exit 2) — never a
traceback, and never a half-read plan."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offboard.config import load_config
from offboard.connectors import installed
from offboard.errors import BadInput, ExitCode, VendorReplyError
from offboard.plan import Plan, VendorPlan, read_plan, write_plan
from offboard_blumira.client import NumberedPages
from offboard_blumira.models import AgentKey, Device, User, Webhook, unwrap
from offboard_blumira.models import parse as blu_parse
from offboard_huntress.client import TokenPages
from offboard_huntress.models import Agent, Membership, Organization
from offboard_huntress.models import parse as hun_parse

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
MODELS = {n: c.settings_model for n, c in installed().items()}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20)


def toml_scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_scalar(i) for i in v) + "]"
    return json.dumps(str(v))


keys = st.sampled_from(["name", "end_of_service", "organization_id", "products", "account_id", "base_url",
                        "requests_per_minute", "keep_users", "account_moves_to", "delete_data", "runs_dir",
                        "key_file", "rate_window_seconds", "page_size", "bogus"])
scalars = (st.booleans() | st.integers(-5, 10**6) | st.text(string.printable, max_size=30)
           | st.lists(st.text(string.ascii_letters + "@.", max_size=12), max_size=3))
sections = st.dictionaries(st.sampled_from(["customer", "run", "signing", "huntress", "blumira", "extra"]),
                           st.dictionaries(keys, scalars, max_size=6), max_size=5)


def one_line_bad_input(exc: BaseException) -> None:
    assert isinstance(exc, BadInput), f"{type(exc).__name__}: {exc}"
    assert exc.exit_code == ExitCode.BAD_INPUT and "\n" not in str(exc) and str(exc)


@FUZZ
@given(raw=st.binary(max_size=300))
def test_any_bytes_as_config_are_read_or_refused_in_one_line(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(raw)
    try:
        load_config(path, MODELS)
    except Exception as exc:  # the property is about which exceptions escape
        one_line_bad_input(exc)


names = st.text(string.ascii_letters + string.digits + " .-&'", min_size=1, max_size=30).filter(str.strip)


@st.composite
def valid_definitions(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    """A whole exit definition the guide documents: the customer, and one vendor or both."""
    doc: dict[str, dict[str, Any]] = {"customer": {
        "name": draw(names), "end_of_service": draw(st.dates()).isoformat(), "approved_by": draw(names),
        **draw(st.fixed_dictionaries({}, optional={"ticket": names}))}}
    if draw(st.booleans()):
        doc["run"] = {"runs_dir": draw(st.sampled_from(["runs", "exits/runs", "/tmp/offboard-runs"]))}
    vendors = draw(st.sampled_from([("huntress",), ("blumira",), ("huntress", "blumira")]))
    if "huntress" in vendors:
        doc["huntress"] = {"organization_id": draw(st.integers(1, 10**7)),
                           **draw(st.fixed_dictionaries({}, optional={"delete_organization": st.booleans()}))}
    if "blumira" in vendors:
        doc["blumira"] = {"account_id": draw(st.uuids()).hex,
                          **draw(st.fixed_dictionaries({}, optional={"keep_users": st.lists(
                              st.emails(), max_size=3)}))}
    return doc


@FUZZ
@given(doc=st.one_of(sections, valid_definitions().map(lambda d: {**d, "_valid": {}})))
def test_any_structured_config_is_read_or_refused_in_one_line(tmp_path: Path, doc: dict[str, dict[str, Any]]
                                                               ) -> None:
    valid = doc.pop("_valid", None) is not None  # drawn from valid_definitions: it must be accepted
    text = "".join(f"[{name}]\n" + "".join(f"{k} = {toml_scalar(v)}\n" for k, v in body.items()) + "\n"
                   for name, body in doc.items())
    path = tmp_path / "config.toml"
    path.write_text(text)
    try:
        cfg = load_config(path, MODELS)
    except Exception as exc:
        one_line_bad_input(exc)
        assert not valid, f"a valid exit definition was refused: {exc}\n{text}"
    else:
        assert cfg.customer.name == doc["customer"]["name"]  # what was read is what was written
        assert set(cfg.vendors) == {v for v in ("huntress", "blumira") if v in doc}
        if valid:
            assert cfg.customer.approved_by == doc["customer"]["approved_by"]


def a_plan() -> Plan:
    return Plan(plan_id="p-1", created_at="2026-11-23T00:00:00.000Z", customer="Acme", config_fingerprint="f" * 64,
                vendors=(VendorPlan(vendor="huntress", display_name="Huntress", scope="org 42", account="key",
                                    inventory_fingerprint="a" * 64, snapshot={"agents_count": 3}),)).sealed()


@FUZZ
@given(data=st.data())
def test_a_changed_or_truncated_plan_file_is_refused_never_half_read(tmp_path: Path, data: st.DataObject) -> None:
    path = tmp_path / "exit.plan.json"
    write_plan(a_plan(), path)
    original = path.read_bytes()
    how = data.draw(st.sampled_from(["truncate", "flip", "json"]))
    if how == "truncate":
        changed = original[:data.draw(st.integers(0, len(original) - 1))]
    elif how == "flip":
        at = data.draw(st.integers(0, len(original) - 1))
        changed = original[:at] + bytes([data.draw(st.integers(0, 255))]) + original[at + 1:]
    else:
        body = json.loads(original)
        key = data.draw(st.sampled_from(sorted(body)))
        body[key] = data.draw(json_values)
        changed = json.dumps(body).encode()
    path.write_bytes(changed)
    try:
        plan = read_plan(path)
    except Exception as exc:
        one_line_bad_input(exc)
    else:  # accepted only when the content is still exactly the sealed plan (e.g. a whitespace change)
        assert plan.model_dump(exclude={"checksum"}) == Plan.model_validate_json(original).model_dump(
            exclude={"checksum"})


def settles(fn: Any) -> None:
    """Either a value or one clear VendorReplyError line naming the call; nothing else escapes."""
    try:
        fn()
    except VendorReplyError as exc:
        assert exc.exit_code == ExitCode.BAD_INPUT and "\n" not in str(exc) and exc.call
    except Exception as exc:
        raise AssertionError(f"{type(exc).__name__} escaped: {exc}") from None


@FUZZ
@given(body=json_values)
def test_any_huntress_reply_is_parsed_or_refused_in_one_line(body: Any) -> None:
    pages = TokenPages("agents")
    settles(lambda: pages.items(body))
    settles(lambda: pages.next(body, {"limit": 500}) if isinstance(body, dict) else None)
    for model in (Agent, Organization, Membership):
        settles(lambda m=model: hun_parse(m, body, "GET /v1/x"))


@FUZZ
@given(body=json_values, page=st.integers(1, 5))
def test_any_blumira_reply_is_parsed_or_refused_in_one_line(body: Any, page: int) -> None:
    pages = NumberedPages("/msp/accounts/a/agents/devices", 200)
    settles(lambda: pages.items(body))
    settles(lambda: pages.next(body, {"page": page, "page_size": 200}))
    settles(lambda: unwrap(body, "GET /msp/accounts/a"))
    for model in (Device, AgentKey, User, Webhook):
        settles(lambda m=model: blu_parse(m, body, "GET /msp/accounts/a/x"))
    if isinstance(body, dict):
        settles(lambda: blu_parse(Webhook, {"id": "w", **body}, "GET /msp/webhooks").accounts())

