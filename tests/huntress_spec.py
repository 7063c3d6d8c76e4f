"""Huntress's published spec (Swagger 2.0) as JSON Schema, for the tests: every reply the sandbox
sends is validated against the operation's response schema (path, method, status), and objects
for the connector are generated from the definitions it parses.

Swagger 2.0 schemas are a dialect of JSON Schema draft 4. Turning them into plain draft 4 takes
a few decisions, each taken from the spec itself and listed in ``errata()`` as it applies:

- ``$ref`` is inlined; Swagger-only keywords (``example``, ``x-…``) are dropped.
- A property typed with a name JSON Schema does not know (``"Object"``, ``"Account"``,
  ``"Organization"``) is an object shaped like its ``example``: the example's keys carry the
  example's value types; other keys may appear.
- Where a property's declared schema rejects the spec's own ``example`` (``actual_usages`` is
  typed string, its example is an object; ``organizations`` is an array of strings, its example
  an array of objects), the example wins: it is what the vendor showed it sends.
- ``required`` names that are not properties (``Organization`` requires legacy names such as
  ``notify_emails``) are dropped.
- Swagger 2.0 has no null. A property whose description says it may be null (``edr_version``:
  "or `null` if EDR is not installed") also accepts null; any other may be absent, never null.
- Formats are checked: ``int32``/``int64`` ranges, ``date-time`` (RFC 3339), ``date``.
- ``closed=True`` (the sandbox's replies): an object the spec defines property by property
  carries no other property, so the double cannot invent fields. ``closed=False`` (generation):
  as the spec says, other properties may appear.

Error replies are not validated beyond their status: the spec documents no error body (its 4xx
"schemas" are the resource models). A status is accepted when the operation lists it, or when
the spec's introduction documents it for every call (400, 401, 404, 429, 5xx).
"""

from __future__ import annotations

import copy
import json
import re
import threading
from datetime import date, datetime
from functools import cache
from typing import Any

import jsonschema
from jsonschema import Draft4Validator, FormatChecker

from tests.specs import load_spec

SPEC = "huntress-openapi.json"
STANDARD_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})
SWAGGER_ONLY = frozenset({"example", "discriminator", "readOnly", "xml", "externalDocs"})
# The spec's introduction: "Specific error codes": any call may answer these, and 5xx.
GENERIC_STATUSES = frozenset({400, 401, 404, 429})
NULLABLE = re.compile(r"\bnull\b", re.IGNORECASE)
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def spec() -> dict[str, Any]:
    return load_spec(SPEC)


# -- formats ---------------------------------------------------------------------------

FORMATS = FormatChecker(formats=())


@FORMATS.checks("int64")
def _int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


@FORMATS.checks("int32")
def _int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@FORMATS.checks("date-time")
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


@FORMATS.checks("date")
def _date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


# -- Swagger 2.0 schema -> JSON Schema draft 4 -------------------------------------------------


def infer(example: Any) -> dict[str, Any]:
    """A schema shaped like an example value: its keys and their value types (other keys allowed)."""
    if isinstance(example, bool):
        return {"type": "boolean"}
    if isinstance(example, int):
        return {"type": "integer"}
    if isinstance(example, float):
        return {"type": "number"}
    if isinstance(example, str):
        return {"type": "string"}
    if isinstance(example, dict):
        return {"type": "object", "properties": {k: infer(v) for k, v in example.items()}}
    if isinstance(example, list):
        if not example:
            return {"type": "array"}
        if all(isinstance(e, dict) for e in example):
            merged: dict[str, Any] = {}
            for e in example:
                merged.update(e)
            return {"type": "array", "items": infer(merged)}
        return {"type": "array", "items": infer(example[0])}
    return {}


class Translator:
    def __init__(self, *, closed: bool) -> None:
        self.closed = closed
        self.errata: set[str] = set()

    def definition(self, name: str) -> dict[str, Any]:
        return self.schema(spec()["definitions"][name], name)

    def schema(self, node: dict[str, Any], where: str) -> dict[str, Any]:
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            out = self.definition(name)
            if "description" in node and NULLABLE.search(node["description"]):
                return _nullable(out)
            return out
        out: dict[str, Any] = {}
        declared = node.get("type")
        if isinstance(declared, str) and declared not in STANDARD_TYPES:
            self.errata.add(f"{where}: type {declared!r} is not a JSON Schema type; shaped like its example")
            out = infer(node["example"]) if "example" in node else {"type": "object"}
            return _nullable(out) if NULLABLE.search(node.get("description", "")) else out
        for key, value in node.items():
            if key in SWAGGER_ONLY or key.startswith("x-") or key == "description":
                continue
            if key == "properties":
                out[key] = {p: self.property(p, s, where) for p, s in value.items()}
            elif key == "items":
                if isinstance(value, dict):  # OrganizationUpdateParameters has "items": null
                    out[key] = self.schema(value, f"{where}[]")
            elif key == "additionalProperties" and isinstance(value, dict):
                out[key] = self.schema(value, f"{where}{{}}")
            elif key == "required":
                names = set(node.get("properties", {}))
                kept = [r for r in value if r in names]
                if len(kept) != len(value):
                    dropped = sorted(set(value) - names)
                    self.errata.add(f"{where}: required {dropped} are not among its properties; dropped")
                if kept:
                    out[key] = kept
            else:
                out[key] = copy.deepcopy(value)
        if self.closed and "properties" in out and "additionalProperties" not in node:
            out["additionalProperties"] = False
        return out

    def property(self, name: str, node: dict[str, Any], where: str) -> dict[str, Any]:
        here = f"{where}.{name}"
        out = self.schema(node, here)
        if "example" in node and "$ref" not in node and not _valid(node["example"], out):
            self.errata.add(f"{here}: declared {node.get('type')!r} rejects the spec's own example; "
                            "shaped like the example")
            out = infer(node["example"])
        if NULLABLE.search(node.get("description", "")):
            out = _nullable(out)
        return out


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if not schema:
        return schema
    return {"anyOf": [schema, {"type": "null"}]}


def _valid(instance: Any, schema: dict[str, Any]) -> bool:
    return Draft4Validator(schema, format_checker=FORMATS).is_valid(instance)


@cache
def definition_schema(name: str, *, closed: bool = False) -> dict[str, Any]:
    return Translator(closed=closed).definition(name)


def errata() -> list[str]:
    """Every place the spec had to be read (see the module's docstring), over all definitions."""
    t = Translator(closed=True)
    for name in spec()["definitions"]:
        t.definition(name)
    return sorted(t.errata)


def example(name: str) -> dict[str, Any]:
    """The spec's example object for a definition: each property's ``example``."""
    props = spec()["definitions"][name]["properties"]
    return {p: copy.deepcopy(s["example"]) for p, s in props.items() if "example" in s}


# -- operations ---------------------------------------------------------------------------------


@cache
def _operations() -> list[tuple[re.Pattern[str], str, str, dict[str, Any]]]:
    out = []
    for template, ops in spec()["paths"].items():
        pattern = re.compile("^" + re.sub(r"\{[^}]+\}", r"[^/]+", template) + "$")
        for method, op in ops.items():
            if method != "parameters":
                out.append((pattern, template, method.upper(), op))
    return out


def operation(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    for pattern, template, m, op in _operations():
        if m == method and pattern.match(path):
            return template, op
    return None


@cache
def _response_validator(template: str, method: str, status: str) -> Draft4Validator | None:
    response = spec()["paths"][template][method.lower()]["responses"][status]
    if "schema" not in response:
        return None
    schema = Translator(closed=True).schema(response["schema"], f"{method} {template} {status}")
    return Draft4Validator(schema, format_checker=FORMATS)


def reply_problems(method: str, path: str, status: int, body: bytes) -> list[str]:
    """What is wrong with a reply, judged by the spec ([] when it is what the spec describes)."""
    found = operation(method, path)
    if found is None:
        return [] if status in (404, 405) else [f"{method} {path}: no such operation in the spec"]
    template, op = found
    listed = {int(s) for s in op.get("responses", {}) if s.isdigit()}
    if status not in listed and status not in GENERIC_STATUSES and status < 500:
        return [f"{method} {template}: HTTP {status} is not a reply the spec lists (it lists {sorted(listed)})"]
    if status >= 400:
        return []  # no error body is documented
    validator = _response_validator(template, method, str(status))
    if validator is None:
        return [] if not body else [f"{method} {template} {status}: the spec describes no body, "
                                    f"the sandbox sent {body[:80]!r}"]
    try:
        data = json.loads(body)
    except ValueError:
        return [f"{method} {template} {status}: the body is not JSON: {body[:80]!r}"]
    return [f"{method} {path} {status}: at {'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
            for e in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))]


class ReplyLog:
    """Problems found in the sandbox's replies since the last ``take`` (any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._problems: list[str] = []
        self.checked = 0

    def check(self, method: str, path: str, status: int, body: bytes) -> None:
        problems = reply_problems(method, path, status, body)
        with self._lock:
            self.checked += 1
            self._problems += problems

    def take(self) -> list[str]:
        with self._lock:
            problems, self._problems = self._problems, []
        return problems


REPLIES = ReplyLog()


def validate(instance: Any, name: str, *, closed: bool = True) -> None:
    """Raise if ``instance`` is not a ``name`` object as the spec defines it."""
    jsonschema.validate(instance, definition_schema(name, closed=closed), cls=Draft4Validator,
                        format_checker=FORMATS)
