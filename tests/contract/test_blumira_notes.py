"""Contract: the transcribed examples (tests/connectors/blumira_notes.py) carry exactly the field
names the vendor notes list for each object (§2.4), and the envelopes of §1.5's examples.
The notes are found as tests/specs.py says; skipped, saying where it looked, when they are not
there (a failure when OFFBOARD_REQUIRE_SPECS is set)."""

from __future__ import annotations

import json
import re
from functools import cache

import pytest

from tests.connectors import blumira_notes as notes
from tests.specs import needs_notes

NOTES = notes.notes_path()
pytestmark = needs_notes(notes.NOTES)
BULLET = re.compile(r"^- \*\*(?P<name>[^*]+?):?\*\*:?(?P<rest>.*)$", re.MULTILINE)


@cache
def listed_fields() -> dict[str, set[str]]:
    """§2.4's field names per object: the backticked names before the bullet's first citation
    or full stop, parenthesised remarks left out."""
    section = NOTES.read_text().split("### 2.4", 1)[1].split("\n## ", 1)[0]
    found: dict[str, set[str]] = {}
    for m in BULLET.finditer(section):
        text = re.sub(r"\([^()]*\)", "", m["rest"]).strip()
        text = re.split(r" \[|\. ", text, maxsplit=1)[0]
        found[m["name"].strip()] = {t.group(1) for t in re.finditer(r"`([a-z_]+)[^`]*`", text)}
    found["MSP account, detail"] |= found.get("MSP account, list item", set())  # "the list fields plus"
    return found


@pytest.mark.parametrize("name", sorted(notes.OBJECTS))
def test_each_transcribed_example_has_exactly_the_fields_the_notes_list(name: str) -> None:
    fields = listed_fields()
    assert name in fields, f"§2.4 no longer lists {name!r}"
    assert set(notes.OBJECTS[name]) == fields[name]


def test_the_notes_envelopes_are_the_transcribed_ones() -> None:
    text = NOTES.read_text()
    block = re.search(r"```json\n(.*?)```", text, re.DOTALL)
    assert block is not None
    envelope = json.loads(block.group(1).replace("[ ... ]", "[]"))
    assert envelope == notes.LIST_ENVELOPE
    assert '`{"status":"OK","data":{…}}`' in text and set(notes.SINGLE_ENVELOPE) == {"status", "data"}
    assert '`{"data":[…],"evidence_keys":[…],"meta":{…},"status":"OK"}`' in text
    assert set(notes.EVIDENCE_ENVELOPE) == {"data", "evidence_keys", "meta", "status"}


def test_the_notes_values_the_examples_use() -> None:
    text = NOTES.read_text()
    assert '`license` (for example `"PRO"` in the mock)' in text and notes.ACCOUNT_DETAIL["license"] == "PRO"
    assert '(mock: `40 / "responder"`)' in text and notes.ROLE == {"role_id": 40, "role_name": "responder"}
    assert "Status: 10 = Open" in text and notes.FINDING["status"] == 10
    assert f"Timestamps look like `{notes.TIMESTAMP}`" in text
    assert "`sender{id,email,first_name,last_name}`" in text and set(notes.PERSON) == {
        "id", "email", "first_name", "last_name"}
