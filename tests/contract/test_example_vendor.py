"""Contract: the third vendor (examples/offboard-example-vendor, its own distribution) — its
sandbox answers as the vendor's published spec says, and its connector, opened through the seam,
plans and carries out an exit against that sandbox in-process.

The example is not installed in this environment (tests/e2e/test_third_vendor.py installs it in
a fresh one, next to offboard): its modules are imported from its source folder here.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from pydantic import SecretStr

from offboard.connectors import Connector
from offboard.connectors.sandboxing import InProcessTransport

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "offboard-example-vendor"
sys.path.insert(0, str(EXAMPLE / "src"))

from offboard_example import ExampleSettings, connector  # noqa: E402
from offboard_example import sandbox as exb  # noqa: E402

SPEC: dict[str, Any] = json.loads((EXAMPLE / "spec" / "example-backup-openapi.json").read_text())
AUTH = {"Authorization": f"Bearer {exb.DEMO_TOKEN}"}


def operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The spec's operation a request is (its path template), or a failed test."""
    path = path.removeprefix(exb.PREFIX)
    for template, ops in SPEC["paths"].items():
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path) and method.lower() in ops:
            return template, ops[method.lower()]
    raise AssertionError(f"{method} {path} is no operation of the vendor's spec")


def problems(method: str, path: str, status: int, body: bytes) -> list[str]:
    """What is wrong with one reply, by the spec: an undocumented status, or a body its schema refuses."""
    template, op = operation(method, path)
    documented = op["responses"].get(str(status))
    if documented is None:
        return [f"{method} {template}: HTTP {status} is not a documented reply"]
    content = documented.get("content", {}).get("application/json")
    if content is None:
        return [] if not body else [f"{method} {template}: HTTP {status} has a body the spec does not give it"]
    schema = {**content["schema"], "components": SPEC["components"]}
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{method} {template} {status}: {e.message}" for e in validator.iter_errors(json.loads(body))]


@pytest.fixture
def sandbox() -> Iterator[exb.ExampleSandbox]:
    yield exb.ExampleSandbox(time_scale=0.01)


def call(sb: exb.ExampleSandbox, method: str, path: str, **kw: Any) -> httpx.Response:
    with httpx.Client(transport=InProcessTransport(sb.app), base_url="http://sandbox", headers=AUTH) as client:
        return client.request(method, exb.PREFIX + path, **kw)


def test_every_reply_of_every_operation_is_what_the_spec_documents(sandbox: exb.ExampleSandbox) -> None:
    device = sandbox.devices_of(exb.CUSTOMER)[0]["id"]
    made = [("GET", f"/customers/{exb.CUSTOMER}"), ("GET", "/customers/nobody"),
            ("GET", f"/devices?customer_id={exb.CUSTOMER}"), ("GET", "/devices"),
            ("GET", f"/devices/{device}"), ("DELETE", f"/devices/{device}"),
            ("GET", f"/devices/{device}"), ("DELETE", f"/devices/{device}")]
    replies = [(m, p, call(sandbox, m, p)) for m, p in made]
    assert [r.status_code for _, _, r in replies] == [200, 404, 200, 400, 200, 204, 404, 404]
    found = [p for m, p, r in replies for p in problems(m, p.split("?")[0], r.status_code, r.content)]
    assert found == []
    exercised = {operation(m, p.split("?")[0])[0] + " " + m for m, p in made}
    assert exercised == {f"{t} {m.upper()}" for t, ops in SPEC["paths"].items() for m in ops}


def test_the_check_has_teeth(sandbox: exb.ExampleSandbox) -> None:
    device = sandbox.devices_of(exb.CUSTOMER)[0]
    device["owner"] = "someone"  # a field the spec's Device does not have
    sandbox.customers[exb.CUSTOMER]["plan_status"] = "paused"  # not of the spec's enum
    device_reply = call(sandbox, "GET", f"/devices/{device['id']}")
    customer_reply = call(sandbox, "GET", f"/customers/{exb.CUSTOMER}")
    assert problems("GET", f"/devices/{device['id']}", 200, device_reply.content)
    assert problems("GET", f"/customers/{exb.CUSTOMER}", 200, customer_reply.content)
    assert problems("GET", f"/customers/{exb.CUSTOMER}", 201, b"{}")  # an undocumented status


def test_the_connector_is_a_connector_and_its_sandbox_kit_serves_its_config(sandbox: exb.ExampleSandbox) -> None:
    assert isinstance(connector, Connector)
    kit = connector.sandbox()
    section = kit.config_section("http://127.0.0.1:8000", 0.02)
    settings = ExampleSettings(**section)
    assert settings.base_url == "http://127.0.0.1:8000/v1" and settings.time_scale == pytest.approx(0.02)
    assert kit.credentials == {"api_token": exb.DEMO_TOKEN}


def test_through_the_seam_it_plans_and_retires_only_the_customers_devices(sandbox: exb.ExampleSandbox) -> None:
    settings = ExampleSettings(customer_id=exb.CUSTOMER, base_url="http://127.0.0.1:9/v1", rate_window_seconds=0.6)
    neighbour = sandbox.devices_of(exb.NEIGHBOUR)
    session = connector.open(settings, {"api_token": SecretStr(exb.DEMO_TOKEN)},
                             transport=InProcessTransport(sandbox.app))
    try:
        inventory = session.discover()
        parts = session.plan(inventory)
        removals = [a for s in parts.steps for a in s.actions if a.kind == "api" and a.destructive]
        assert [a.call for a in removals] == [f"DELETE /devices/dev-{n}" for n in (101, 102, 103)]
        assert [a.id for s in parts.steps for a in s.actions if a.kind == "manual"] == ["example.cancel-plan"]
        for action in removals:
            assert session.execute(action).outcome == "success"
            assert session.reread(action).already_absent
        checks = session.verify(None, session.discover())
        assert [c.passed for c in checks] == [True]
    finally:
        session.close()
    assert sandbox.devices_of(exb.CUSTOMER) == [] and sandbox.devices_of(exb.NEIGHBOUR) == neighbour
    retired = [("DELETE", f"/v1/devices/dev-{n}") for n in (101, 102, 103)]
    assert [(r.method, r.path) for r in sandbox.writes()] == retired
