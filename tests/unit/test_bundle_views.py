"""The proof views a bundle carries (proof/bundle.py ``proof_views``): what an auditor reads first,
pulled out of the audit log: each vendor's snapshot before and after, the re-reads, the people's
confirmations and what was posted to the PSA ticket, each line with the fields that say what
happened and nothing else, written as sorted, indented UTF-8 JSON."""

from __future__ import annotations

import json
from typing import Any

from offboard.plan import Plan, VendorPlan
from offboard.proof.bundle import proof_views

PLAN = Plan(plan_id="p1", created_at="2026-11-23T10:00:00Z", customer="Acme", config_fingerprint="f",
            vendors=(VendorPlan(vendor="blumira", display_name="Blumira", scope="org 42", account="key",
                                inventory_fingerprint="i", snapshot={"devices": 3}),
                     VendorPlan(vendor="huntress", display_name="Huntress", scope="org 7", account="key",
                                inventory_fingerprint="j", snapshot={"agents": 2})))


def line(seq: int, event: str, **fields: Any) -> dict[str, Any]:
    """An audit line: the fields a view keeps, and the chain's own, which no view repeats."""
    return {"seq": seq, "ts": f"2026-11-23T10:{seq:02d}:00Z", "run_id": "r1", "event": event, "vendor": "blumira",
            "step": "blumira.sensors", "action_id": f"blumira.a{seq}", "target": {"type": "sensor", "id": str(seq)},
            "http": {"method": "GET", "path": f"/sensors/{seq}", "status": 404}, "outcome": "success",
            "detail": {"by": "J. Müller"}, "prev_hash": "0" * 64, "hash": "1" * 64, **fields}


RECORDS = [
    line(1, "action.succeeded"),
    line(2, "verify.passed"),
    line(3, "verify.failed", outcome="failure"),
    line(4, "manual.confirmed"),
    line(5, "manual.rejected", outcome="failure"),
    line(6, "snapshot.taken", detail={"when": "after", "snapshot": {"devices": 0}}),
    *(line(7 + i, f"ticket.{kind}") for i, kind in enumerate(
        ("posted", "found", "attached", "linked", "status", "failed", "pasted"))),
    line(14, "ticket.other"),
]
KEPT = ("event", "ts", "seq", "vendor", "step", "action_id", "target", "http", "outcome", "detail")


def kept(*seqs: int) -> list[dict[str, Any]]:
    return [{k: r[k] for k in KEPT} for r in RECORDS if r["seq"] in seqs]


def test_each_view_holds_its_events_lines_with_the_fields_that_say_what_happened() -> None:
    views = {name: json.loads(data) for name, data in proof_views(PLAN, RECORDS).items()}
    assert views == {
        "proof/snapshots.json": {
            "blumira": {"before": {"at": "2026-11-23T10:00:00Z", "devices": 3},
                        "after": {"at": "2026-11-23T10:06:00Z", "devices": 0}},
            "huntress": {"before": {"at": "2026-11-23T10:00:00Z", "agents": 2}, "after": None}},  # not re-read
        "proof/verifications.json": kept(2, 3),
        "proof/confirmations.json": kept(4, 5),
        "proof/ticket.json": kept(7, 8, 9, 10, 11, 12, 13),
    }


def test_a_run_that_posted_nothing_to_a_ticket_has_no_ticket_view_and_a_bare_snapshot_line_counts() -> None:
    records = [line(1, "snapshot.taken", detail=None), line(2, "ticket.other")]
    views = {name: json.loads(data) for name, data in proof_views(PLAN, records).items()}
    assert set(views) == {"proof/snapshots.json", "proof/verifications.json", "proof/confirmations.json"}
    assert views["proof/snapshots.json"]["blumira"]["after"] == {"at": "2026-11-23T10:01:00Z"}
    assert views["proof/verifications.json"] == [] and views["proof/confirmations.json"] == []


def test_a_view_is_sorted_indented_utf8_json_ending_in_a_newline() -> None:
    confirmed = [r for r in RECORDS if r["event"] == "manual.confirmed"]
    assert proof_views(PLAN, confirmed)["proof/confirmations.json"].decode("utf-8") == """[
  {
    "action_id": "blumira.a4",
    "detail": {
      "by": "J. Müller"
    },
    "event": "manual.confirmed",
    "http": {
      "method": "GET",
      "path": "/sensors/4",
      "status": 404
    },
    "outcome": "success",
    "seq": 4,
    "step": "blumira.sensors",
    "target": {
      "id": "4",
      "type": "sensor"
    },
    "ts": "2026-11-23T10:04:00Z",
    "vendor": "blumira"
  }
]
"""
