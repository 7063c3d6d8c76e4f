"""The closure note is the customer's: what was removed as objects and counts per product, who did
each, what was kept and how to get it, what stops updating, who monitors after the exit — with no
runbook step number, no internal file name, and nothing listed as removed that removed nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

from offboard.plan import read_plan
from offboard.proof import ticket_notes
from offboard.proof.audit import read_records
from offboard_blumira.sandbox import CUSTOMER_ACCOUNT, KEEP_USER
from tests.connectors.demo_run import demo_world, play


def section(note: str, title: str) -> str:
    return note.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_demos_closure_note_names_objects_and_counts_per_product_and_only_removals(tmp_path: Path) -> None:
    demo = demo_world(tmp_path)
    users = [u for u in demo.blumira.of(demo.blumira.users, CUSTOMER_ACCOUNT) if u["email"] != KEEP_USER]
    result = play(demo)
    plan = read_plan(result.run.plan_path)
    note = (result.run.path / "closure-note.md").read_text()
    removed = section(note, "What was removed")
    per_product = dict(re.findall(r"### (\w+)\n\n((?:- .*\n)+)", removed))
    assert set(per_product) == {"Huntress", "Blumira"}
    uninstalls = [a for a in plan.actions() if a.operation == "uninstall_agent" and a.removes
                  and a.removes.verb == "uninstalled"]
    assert len(uninstalls) > 30
    assert f"- {len(uninstalls)} EDR agents uninstalled — by your MSP through Huntress's API; checked again at " \
           "Huntress afterwards." in per_product["Huntress"]
    blumira = per_product["Blumira"]
    assert f"- {len(users)} Blumira users removed — by J. Doe, your MSP's technician, attested " in blumira
    assert "Blumira's API confirmed it" in next(line for line in per_product["Blumira"].splitlines() if "users" in line)
    assert "- 1 webhook for your findings deleted — by your MSP through Blumira's API" in per_product["Blumira"]
    sensors = next(line for line in per_product["Blumira"].splitlines() if "sensors" in line)
    assert "no API can show this, so it rests on their word" in sensors  # attested only, and said so
    # Every line of the section is one kind of object the plan said it removes: nothing else.
    kinds = {(a.vendor, a.removes.many, a.removes.one) for a in plan.actions() if a.removes is not None}
    for product, lines in per_product.items():
        for line in lines.splitlines():
            assert any(v == product.lower() and (many.lower() in line.lower() or one in line)
                       for v, many, one in kinds), line
    for not_a_removal in ("notif", "support", "billing handoff", "account manager", "closure note", "export",
                          "Notify", "confirms"):
        assert not_a_removal not in removed, not_a_removal
    # No runbook step numbers, no internal file names, anywhere in the note.
    assert not re.search(r"(^|\s)\d+[a-z]?\. [A-Z]", note), note
    for internal in ("manifest", "evidence/", ".json", ".jsonl", ".md", ".eml", "run folder", "offboard "):
        assert internal not in note, internal
    kept = section(note, "What we kept for you")
    assert "agent inventory" in kept and "findings, all statuses, with evidence and comments" in kept
    files = [e for e in json.loads((result.run.path / "evidence" / "manifest.json").read_text())["files"].values()
             if not e.get("draft_for")]
    assert f"keeps these {len(files)} file(s)" in kept and "ticket PSA-4711" in kept
    assert "notification email draft" not in kept  # a drafted email is not evidence kept for the customer
    assert "EDR: no endpoint monitoring" in section(note, "What no longer updates")
    assert section(note, "Who monitors your systems after the exit").strip()


def test_the_ticket_is_given_the_customers_closure_note(tmp_path: Path) -> None:
    demo = demo_world(tmp_path)
    result = play(demo)
    plan = read_plan(result.run.plan_path)
    records = list(read_records(result.run.audit_path))
    manifest = json.loads((result.run.path / "evidence" / "manifest.json").read_text())
    doc = ticket_notes.closure_note(plan, records, manifest, None, [], visible=True)
    text = "\n".join(b.text for b in doc.blocks)
    assert "Blumira users removed — by J. Doe, your MSP's technician" in text
    assert "EDR agents uninstalled" in text
    assert "manifest" not in text and "Send the closure note" not in text
