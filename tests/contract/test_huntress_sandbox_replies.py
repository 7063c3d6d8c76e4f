"""Contract: the Huntress sandbox speaks Huntress's published spec.

Every reply it sends during the suite is validated against the spec's response schema for its
operation (tests/conftest.py installs the check; tests/huntress_spec.py reads the spec). These
tests prove that check has teeth, and that the sandbox's seeds are the spec's own examples.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from offboard.connectors.sandboxing import InProcessTransport
from offboard_huntress.sandbox import CUSTOMER_ORG, DEMO_KEY, DEMO_SECRET, HuntressSandbox
from offboard_huntress.sandbox_examples import EXAMPLES
from tests import huntress_spec
from tests.huntress_spec import REPLIES, reply_problems
from tests.specs import REPO, needs_spec

pytestmark = needs_spec(huntress_spec.SPEC)


def get(sandbox: HuntressSandbox, path: str) -> httpx.Response:
    with httpx.Client(transport=InProcessTransport(sandbox.app), base_url="http://sandbox",
                      auth=(DEMO_KEY, DEMO_SECRET)) as client:
        return client.get(path)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_sandboxs_seeds_start_from_the_specs_own_examples(name: str) -> None:
    assert EXAMPLES[name] == huntress_spec.example(name)
    huntress_spec.validate(EXAMPLES[name], name)  # and the example is what the (read) spec allows


def test_rules_are_seeded_as_the_spec_spells_their_scope() -> None:
    sandbox = HuntressSandbox(time_scale=0.005)
    assert {r["applied_to"]["type"] for r in sandbox.rules.values()} == {"Organization", "Identity", "Account"}
    assert EXAMPLES["UnwantedAccessRule"]["applied_to"]["type"] == "Organization"


def test_the_hook_is_installed_and_checks_every_reply() -> None:
    assert HuntressSandbox.reply_check == REPLIES.check
    before = REPLIES.checked
    sandbox = HuntressSandbox(time_scale=0.005)
    for path in ("/v1/actor", "/v1/organizations/42", "/v1/agents?organization_id=42&limit=5",
                 "/v1/memberships?organization_id=42", "/v1/unwanted_access_rules?organization_id=42",
                 "/v1/agents/999999"):
        get(sandbox, path)
    assert REPLIES.checked - before == 6
    assert REPLIES.take() == []


def break_permissions(s: HuntressSandbox) -> None:
    s.memberships[1]["permissions"] = "admin"  # the spec's enum says "Admin"


def break_category(s: HuntressSandbox) -> None:
    s.rules[41]["category"] = "Country"  # the spec's enum says "country"


def break_type(s: HuntressSandbox) -> None:
    s.orgs[CUSTOMER_ORG]["incident_reports_count"] = "2"  # an int64, sent as a string


def break_format(s: HuntressSandbox) -> None:
    s.agents_of(CUSTOMER_ORG)[0]["last_callback_at"] = "2026-01-22 01:07:08 UTC"  # not an RFC 3339 date-time


def break_null(s: HuntressSandbox) -> None:
    s.orgs[CUSTOMER_ORG]["identity_provider_tenant_id"] = None  # the spec never says it may be null


def break_invented_field(s: HuntressSandbox) -> None:
    s.rules[41]["organization_id"] = CUSTOMER_ORG  # not a field of UnwantedAccessRule


@pytest.mark.parametrize(("breaks", "path", "expected"), [
    (break_permissions, "/v1/memberships/1", "at membership/permissions: 'admin' is not one of"),
    (break_category, "/v1/unwanted_access_rules/41", "at unwanted_access_rule/category: 'Country' is not one of"),
    (break_type, "/v1/organizations/42", "at organization/incident_reports_count: '2' is not of type 'integer'"),
    (break_format, "/v1/agents?organization_id=42&limit=500", "'2026-01-22 01:07:08 UTC' is not a 'date-time'"),
    (break_null, "/v1/organizations/42", "at organization/identity_provider_tenant_id: None is not of type"),
    (break_invented_field, "/v1/unwanted_access_rules/41", "('organization_id' was unexpected)"),
])
def test_a_malformed_reply_is_named_with_the_field_and_the_rule_it_breaks(breaks: Any, path: str,
                                                                          expected: str) -> None:
    sandbox = HuntressSandbox(time_scale=0.005)
    breaks(sandbox)
    assert get(sandbox, path).status_code == 200
    problems = REPLIES.take()  # taken here, so this test itself passes
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(("method", "path", "status", "body", "expected"), [
    ("DELETE", "/v1/agents/7", 200, b"", "HTTP 200 is not a reply the spec lists"),
    ("DELETE", "/v1/organizations/42", 200, b'{"organization": {"id": 42}}', "HTTP 200 is not a reply"),
    ("DELETE", "/v1/agents/7", 204, b'{"ok": true}', "the spec describes no body"),
    ("GET", "/v1/agents", 200, b'{"agents": []}', "'pagination' is a required property"),
    ("GET", "/v1/agents", 200, b"[]", "[] is not of type 'object'"),
    ("POST", "/v1/agents/7/uninstall", 201, b"{}", "no such operation in the spec"),
])
def test_statuses_bodies_and_envelopes_are_judged_by_the_operation(method: str, path: str, status: int,
                                                                   body: bytes, expected: str) -> None:
    assert any(expected in p for p in reply_problems(method, path, status, body))


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/v1/agents/7", 404), ("GET", "/v1/agents", 429), ("GET", "/v1/agents", 503),
    ("DELETE", "/v1/organizations/42", 409), ("PATCH", "/v1/organizations/42", 403),
])
def test_error_replies_the_spec_documents_are_accepted(method: str, path: str, status: int) -> None:
    assert reply_problems(method, path, status, b'{"errors": [{"message": "x"}]}') == []


def test_the_spec_is_read_where_it_contradicts_itself_and_says_so() -> None:
    errata = huntress_spec.errata()
    for expected in (
        "OrganizationWithActualProductUsages.actual_usages: declared 'string' rejects the spec's own example",
        "Escalation.organizations: declared 'array' rejects the spec's own example",
        "UnwantedAccessRule.applied_to: type 'Object' is not a JSON Schema type",
        "Organization: required ['microsoft_365_tenant_id', 'microsoft_365_users_count', 'notify_emails'] are "
        "not among its properties",
    ):
        assert any(e.startswith(expected) for e in errata), expected


PROBE = '''
import httpx
from offboard.connectors.sandboxing import InProcessTransport
from offboard_huntress.sandbox import DEMO_KEY, DEMO_SECRET, HuntressSandbox


def test_probe():
    sandbox = HuntressSandbox(time_scale=0.005)
    sandbox.memberships[1]["permissions"] = "admin"
    with httpx.Client(transport=InProcessTransport(sandbox.app), base_url="http://sandbox",
                      auth=(DEMO_KEY, DEMO_SECRET)) as client:
        assert client.get("/v1/memberships/1").status_code == 200  # the test itself asks nothing more
'''


def test_a_test_whose_sandbox_reply_breaks_the_spec_fails(tmp_path: Path) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
                             "-q", "--rootdir", str(tmp_path), str(probe)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed" in result.stdout
    assert "the Huntress sandbox sent 1 reply problem(s)" in result.stdout
    assert "GET /v1/memberships/1 200: at membership/permissions: 'admin' is not one of" in result.stdout
