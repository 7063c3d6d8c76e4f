"""The Blumira vendor notes' examples, transcribed for tests (there is no spec file:
vendor-specs/SOURCES.md). Field names and case are the notes' §2.4 lists; values are the
notes' where they show one (the mock's license "PRO", role 40 "responder", status 10 "Open",
timestamps like 2024-01-15T10:00:00.000) and plain placeholders otherwise. The replies'
envelopes are §1.5's examples. tests/contract/test_blumira_notes.py checks this file against
the notes themselves wherever they are on disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests import specs

ACCOUNT_ID = "2d4c9a7e-1b3f-4e60-9a21-5c8d7e6f0a11"
TIMESTAMP = "2024-01-15T10:00:00.000"  # "with no zone" [NODE mock]

ACCOUNT_LIST_ITEM: dict[str, Any] = {"account_id": ACCOUNT_ID, "name": "Example Customer", "open_findings": 1}
ACCOUNT_DETAIL: dict[str, Any] = {**ACCOUNT_LIST_ITEM, "license": "PRO", "agent_count_available": 10,
                                  "agent_count_used": 1, "user_count": 1}
DEVICE: dict[str, Any] = {
    "device_id": "7c0e6d8a-0001", "hostname": "WS-001", "arch": "x64", "plat": "windows", "description": "",
    "is_domain_controller": False, "is_excluded": False, "is_isolated": False, "is_sleeping": False,
    "isolation_requested": False, "key_id": "k-0001", "keyname": "Default key", "org_id": ACCOUNT_ID,
    "alive": TIMESTAMP, "created": TIMESTAMP, "modified": TIMESTAMP}
AGENT_KEY: dict[str, Any] = {"key_id": "k-0001", "description": "Default key", "agent_count": 1,
                             "agent_seat_count": 10, "org_id": ACCOUNT_ID, "created": TIMESTAMP,
                             "modified": TIMESTAMP}
ROLE: dict[str, Any] = {"role_id": 40, "role_name": "responder"}  # the mock's one role
USER: dict[str, Any] = {"id": "u-0001", "email": "responder@example.com", "first_name": "Rae", "last_name": "Doe",
                        "org_roles": [ROLE]}
FINDING: dict[str, Any] = {
    "finding_id": "f-0001", "short_id": "F-1", "name": "Example finding", "analysis": "<p>…</p>", "status": 10,
    "status_name": "Open", "priority": 1, "type_name": "Threat", "org_id": ACCOUNT_ID, "org_name": "Example Customer",
    "created": TIMESTAMP, "modified": TIMESTAMP}
PERSON: dict[str, Any] = {"id": "u-0001", "email": "responder@example.com", "first_name": "Rae", "last_name": "Doe"}
COMMENT: dict[str, Any] = {"id": "c-0001", "body": "<p>Reviewed.</p>", "age": 3600, "sender": PERSON}

# §2.4's objects by the name the notes give them, for the check against the notes' text.
OBJECTS: dict[str, dict[str, Any]] = {
    "MSP account, list item": ACCOUNT_LIST_ITEM, "MSP account, detail": ACCOUNT_DETAIL, "Agent device": DEVICE,
    "Agent key": AGENT_KEY, "Finding": FINDING, "Finding comment": COMMENT, "User": USER}

# §1.5's example replies.
LIST_ENVELOPE: dict[str, Any] = {
    "status": "OK", "data": [],
    "meta": {"page": 1, "page_size": 100, "total_items": 1, "total_pages": 1},
    "links": {"self": "/v1/org/findings?page=1", "next": None, "prev": None}}
SINGLE_ENVELOPE: dict[str, Any] = {"status": "OK", "data": {}}
EVIDENCE_ENVELOPE: dict[str, Any] = {"data": [], "evidence_keys": [], "meta": {}, "status": "OK"}


NOTES = "blumira-api.md"


def notes_path() -> Path:
    """Where the Blumira notes are (tests/specs.py: beside the vendor specs); it may not exist."""
    return specs.notes_dir() / NOTES
