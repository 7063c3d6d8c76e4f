"""Contract: what offboard sends HaloPSA, and what the HaloPSA sandbox answers, against Halo's own
OpenAPI document (OpenAPI 3.0.1, ``components.schemas`` with ``additionalProperties: false``).

Every request of a whole exit is an operation of the document, with the document's query
parameters, and its JSON body validates against the operation's request schema (jsonschema);
every reply of the sandbox validates against the schema of the object it stands for. The
document is read from OFFBOARD_VENDOR_SPECS or ../shared/vendor-specs beside the clone, never
copied here.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from offboard import engine
from offboard.connectors.sandboxing import InProcessTransport
from offboard_halopsa import sandbox as halo
from tests import specs
from tests.connectors.psa_harness import HALO, PsaExit, confirm_all

NAME = "halopsa-openapi.json"
SPEC = specs.specs_dir() / NAME
pytestmark = specs.needs_spec(NAME)


@cache
def spec() -> dict[str, Any]:
    return json.loads(SPEC.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0's schema dialect as JSON Schema: ``nullable`` becomes a null type, component
    references point into ``$defs``."""
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if k not in ("nullable", "example", "format")}
    if "$ref" in out:
        out["$ref"] = out["$ref"].replace("#/components/schemas/", "#/$defs/")
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


@cache
def defs() -> dict[str, Any]:
    return _json_schema(spec()["components"]["schemas"])  # type: ignore[no-any-return]


def validate(instance: Any, schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator({**_json_schema(schema), "$defs": defs()}).validate(instance)


def component(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def operation(method: str, path: str) -> dict[str, Any] | None:
    for template, ops in spec()["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", r"[^/]+", template) + "$"
        if re.match(pattern, path, flags=re.IGNORECASE) and method.lower() in ops:
            return ops[method.lower()]  # type: ignore[no-any-return]
    return None


def full_exit(tmp_path: Path) -> tuple[list[httpx.Request], list[httpx.Response], PsaExit]:
    x = PsaExit(HALO, tmp_path, extra='close_status = "21"\n')
    seen: list[httpx.Request] = []
    answers: list[httpx.Response] = []

    class Recording(httpx.BaseTransport):
        inner = InProcessTransport(x.sandbox.app)

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request)
            response = self.inner.handle_request(request)
            answers.append(response)
            return response

        def close(self) -> None:
            self.inner.close()

    cfg = x.cfg
    with x.sessions(Recording(), cfg=cfg) as s:
        plan = engine.make_plan(cfg, s)
        assert s.ticket is not None
        engine.record_scope(s.ticket, plan)
        result = engine.apply(plan, cfg, s, overrides=engine.Overrides(preflight="contract test"))
        confirm_all(x, cfg, s, result)
    return seen, answers, x


def test_every_request_of_an_exit_is_a_documented_operation_with_a_body_the_document_accepts(tmp_path: Path) -> None:
    requests, _, x = full_exit(tmp_path)
    api = [r for r in requests if r.url.path.startswith("/api/")]
    assert {(r.method, r.url.path) for r in api} >= {("GET", "/api/Tickets/4711"), ("GET", "/api/Actions"),
                                                     ("POST", "/api/Actions"), ("GET", "/api/Attachment"),
                                                     ("POST", "/api/Attachment"), ("POST", "/api/Tickets")}
    for request in api:
        path = request.url.path.removeprefix("/api")
        op = operation(request.method, path)
        assert op is not None, f"{request.method} {path} is not in Halo's document"
        documented = {p["name"] for p in op.get("parameters", []) if p.get("in") == "query"}
        assert set(request.url.params) <= documented, f"{request.method} {path}: {set(request.url.params) - documented}"
        if request.method == "POST":
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            validate(json.loads(request.content), schema)
    # The token request is the auth server's (not in the /api document): the form the notes give.
    token = [r for r in requests if r.url.path == "/auth/token"]
    assert len(token) == 1 and token[0].headers["content-type"] == "application/x-www-form-urlencoded"
    assert b"grant_type=client_credentials" in token[0].content and b"scope=all" in token[0].content
    assert x.sandbox.tickets[halo.EXIT_TICKET]["status_id"] == 21  # the configured status, set at the end


def test_the_notes_are_internal_html_actions_of_the_configured_type_and_never_mail_anyone(tmp_path: Path) -> None:
    requests, _, _ = full_exit(tmp_path)
    posted = [json.loads(r.content) for r in requests if r.method == "POST" and r.url.path == "/api/Actions"]
    assert len(posted) >= 6
    for body in posted:
        assert isinstance(body, list) and len(body) == 1
        note = body[0]
        assert set(note) == {"ticket_id", "outcome_id", "note_html", "hiddenfromuser", "sendemail"}
        assert note["ticket_id"] == 4711 and note["outcome_id"] == 7 and note["sendemail"] is False
        assert note["hiddenfromuser"] is True  # the closure too: closure_visible_to_customer is off by default
        assert note["note_html"].startswith("<p><b>offboard: ")
    files = [json.loads(r.content)[0] for r in requests if r.method == "POST" and r.url.path == "/api/Attachment"]
    assert [f["filename"] for f in files] == ["report.html"]
    assert set(files[0]) == {"ticket_id", "filename", "note", "data_base64", "showforusers"}
    assert files[0]["showforusers"] is False  # not shown to the end user


def test_every_reply_of_the_sandbox_is_an_object_of_the_document(tmp_path: Path) -> None:
    requests, answers, _ = full_exit(tmp_path)
    checked = 0
    for request, response in zip(requests, answers, strict=True):
        path = request.url.path
        if not path.startswith("/api/") or response.status_code >= 400:
            continue
        body = response.json()
        if path.startswith("/api/Tickets"):  # GET one ticket, or the upsert's answer
            validate(body, component("Faults"))
        elif path == "/api/Actions" and request.method == "GET":
            assert set(body) == {"record_count", "actions"}  # the list's envelope is not in the document
            for action in body["actions"]:
                validate(action, component("Actions"))
        elif path == "/api/Actions":
            validate(body, component("Actions"))
        elif path == "/api/Attachment" and request.method == "GET":
            validate(body, component("Attachment_View"))
        elif path == "/api/Attachment":
            validate(body, component("Attachment"))
        elif path.startswith("/api/Outcome/"):  # the action type's visibility, read before posting
            validate(body, component("TOutcome"))
        else:
            raise AssertionError(f"unexpected {request.method} {path}")
        checked += 1
    assert checked >= 15


def test_the_contract_check_catches_a_field_halo_does_not_have() -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate({"id": 1, "ticket_id": 4711, "note_markdown": "x"}, component("Actions"))
    with pytest.raises(jsonschema.ValidationError):
        validate([{"ticket_id": "4711"}], operation("POST", "/Actions")["requestBody"]["content"][  # type: ignore[index]
            "application/json"]["schema"])
