"""Contract: every request the connector makes is an operation of Huntress's own published spec,
and the sandbox answers in the spec's envelopes with the spec's field names.

The spec is found by tests/specs.py (OFFBOARD_VENDOR_SPECS, else ../shared/vendor-specs/); it is
never copied here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from offboard import engine
from offboard.connectors.sandboxing import InProcessTransport
from offboard_huntress.sandbox import DEMO_KEY, DEMO_SECRET, HuntressSandbox
from tests.conftest import Harness
from tests.specs import load_spec, needs_spec

SPEC = "huntress-openapi.json"
pytestmark = needs_spec(SPEC)


def spec() -> dict[str, Any]:
    return load_spec(SPEC)


def operation(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    for template, ops in spec()["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", r"[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in ops:
            return template, ops[method.lower()]
    return None


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec()["definitions"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def full_exit(harness: Harness) -> list[httpx.Request]:
    seen: list[httpx.Request] = []

    class Recording(httpx.BaseTransport):
        inner = InProcessTransport(harness.sandbox.app)

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return self.inner.handle_request(request)

    with harness.sessions(Recording()) as s:
        plan = engine.make_plan(harness.cfg, s)
        engine.apply(plan, harness.cfg, s, overrides=engine.Overrides(preflight="contract test", yes_guarded=True))
        engine.verify_run(plan, s)
    return seen


def test_every_request_of_a_full_exit_is_a_spec_operation_with_spec_query_parameters(harness: Harness) -> None:
    requests = full_exit(harness)
    assert {r.method for r in requests} == {"GET", "DELETE", "PATCH"}
    api = [r for r in requests if not r.url.path.startswith("/_sandbox/files/")]  # report PDFs: not the API
    assert len(requests) - len(api) == 2
    for request in api:
        found = operation(request.method, request.url.path)
        assert found is not None, f"{request.method} {request.url.path} is not in the Huntress spec"
        template, op = found
        allowed = {p["name"] for p in op.get("parameters", []) if p.get("in") == "query"}
        used = set(request.url.params.keys())
        assert used <= allowed, f"{request.method} {template}: {used - allowed} not in the spec"
        if "limit" in used:
            limit = next(p for p in op["parameters"] if p["name"] == "limit")
            assert int(request.url.params["limit"]) <= limit.get("maximum", 500)


def test_the_plans_displayed_calls_are_spec_operations(harness: Harness) -> None:
    with harness.sessions() as s:
        plan = engine.make_plan(harness.cfg, s)
    assert plan.api_actions()
    for action in plan.api_actions():
        method, rest = action.call.split(" ", 1)
        path = rest.split(" ")[0].split("?")[0]
        assert operation(method, path) is not None, action.call


@pytest.mark.parametrize(("path", "key", "definition"), [
    ("/v1/agents?organization_id=42&limit=500", "agents", "Agent"),
    ("/v1/incident_reports?limit=500", "incident_reports", "IncidentReport"),
    ("/v1/escalations?limit=500", "escalations", "Escalation"),
    ("/v1/memberships?limit=500", "memberships", "Membership"),
    ("/v1/unwanted_access_rules?limit=500", "unwanted_access_rules", "UnwantedAccessRule"),
    ("/v1/reports?limit=500", "reports", "SummaryReport"),
    ("/v1/signals?limit=500", "signals", "Signal"),
    ("/v1/identities?limit=500", "identities", "Identity"),
    ("/v1/invoices?limit=500", "invoices", "Invoice"),
    ("/v1/platform_actions?limit=500", "platform_actions", "PlatformAction"),
    ("/v1/incident_reports/501/remediations?limit=500", "remediations", "Remediation"),
])
def test_sandbox_list_envelopes_and_fields_are_the_specs(path: str, key: str, definition: str) -> None:
    body = sandbox_get(path)
    _, op = operation("GET", path.split("?")[0]) or ("", {})
    envelope = resolve(op["responses"]["200"]["schema"])
    assert set(body) == set(envelope["properties"]) == {key, "pagination"}
    fields = set(resolve({"$ref": f"#/definitions/{definition}"})["properties"])
    for item in body[key]:
        assert set(item) <= fields, f"{definition}: {set(item) - fields} not in the spec"
    assert set(body["pagination"]) <= set(resolve({"$ref": "#/definitions/Pagination"})["properties"])


def test_sandbox_single_object_envelopes_are_the_specs() -> None:
    org = sandbox_get("/v1/organizations/42")
    assert set(org) == {"organization"}
    org_fields = set(resolve({"$ref": "#/definitions/OrganizationWithActualProductUsages"})["properties"])
    assert set(org["organization"]) <= org_fields
    actor = sandbox_get("/v1/actor")
    assert set(actor) <= set(resolve({"$ref": "#/definitions/Actor"})["properties"])


def sandbox_get(path: str) -> Any:
    sandbox = HuntressSandbox(time_scale=0.005)
    with httpx.Client(transport=InProcessTransport(sandbox.app), base_url="http://sandbox",
                      auth=(DEMO_KEY, DEMO_SECRET)) as client:
        response = client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_reseller_exit_with_organization_deletion_uses_only_spec_operations(tmp_path: Path) -> None:
    from tests.conftest import load, write_config

    sandbox = HuntressSandbox(time_scale=0.005)
    cfg = load(write_config(tmp_path, extra="account_id = 7001\ndelete_organization = true\n"
                                            "stop_renewing_subscriptions = [5001]\n"))
    requests = full_exit(Harness(sandbox, cfg))
    api = [r for r in requests if not r.url.path.startswith("/_sandbox/")]
    mirrored = [r.url.path for r in api if r.url.path.startswith("/v1/accounts/7001/")]
    assert "/v1/accounts/7001/organizations/42" in mirrored
    assert "/v1/accounts/7001/agents" in mirrored  # listed there; removed by the organization's deletion
    assert not any(r.url.path.startswith("/v1/agents") for r in api)  # the mirror is used throughout
    for request in api:
        assert operation(request.method, request.url.path) is not None, f"{request.method} {request.url.path}"
    assert 42 not in sandbox.orgs and 43 in sandbox.orgs
    assert ("PATCH", "/v1/reseller/subscriptions/5001") in [(r.method, r.url.path) for r in api]
