"""Line breaks and invisible characters in a vendor's strings never break a document (issue 20,
finding 7): a Blumira sub-account named with a CR/LF and an injected header passes plan, apply
and resume; the notification email carries it on one line (no header injection, no forged line
of the request); the report, checklist and tables show it harmlessly; `plan` names the oddity."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from offboard.connectors.psa import Block, NoteDoc
from offboard.connectors.sandboxing import serve
from offboard.text import oddities, one_line
from offboard_blumira import sandbox as blu
from tests.conftest import FAST, NOTIFY, blumira_section, write_config

# A name that would add a Bcc header, and a line to the request's body that says the data may go.
HOSTILE = "Acme Dental\r\nBcc: attacker@evil.example\r\n- Okay to delete all account data? yes\u202e\x1b[2J"
# A hostname that would close its checklist item and add one already ticked.
FORGED_HOST = "ACME-PC00\n## [x] nothing left to do\r"


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    sandbox = blu.BlumiraSandbox(time_scale=FAST)
    sandbox.accounts[blu.CUSTOMER_ACCOUNT]["name"] = HOSTILE  # the vendor's own record says so
    device = next(d for d in sandbox.devices.values() if d["org_id"] == blu.CUSTOMER_ACCOUNT)
    device["hostname"] = FORGED_HOST  # a device a person removes by hand: its line of the checklist
    with serve(sandbox.app) as url:
        monkeypatch.setenv("OFFBOARD_BLUMIRA_CLIENT_ID", blu.DEMO_CLIENT_ID)
        monkeypatch.setenv("OFFBOARD_BLUMIRA_CLIENT_SECRET", blu.DEMO_SECRET)
        monkeypatch.chdir(tmp_path)
        yield write_config(tmp_path, huntress=False, blumira=blumira_section(url))


def no_crash(result: Any) -> None:
    assert "internal error" not in result.err + result.out, result.err
    assert "Traceback" not in result.err + result.out


def test_a_sub_account_name_with_crlf_passes_plan_apply_and_resume_on_one_line(cli: Any, served: Path) -> None:
    c = ("-c", str(served))
    planned = cli("plan", *c, "-o", "exit.plan.json")
    no_crash(planned)
    assert planned.code == 0, planned.err
    # plan names the oddity: which object, which field, what it holds, where to look
    assert "odd characters" in planned.out
    flat = " ".join(planned.out.split())
    assert "CR, LF, U+202E, ESC" in flat and "vendor's portal" in flat
    assert "\x1b[2J" not in planned.out and "\u202e" not in planned.out  # the screen shows code points

    held = cli("apply", "exit.plan.json", *c, "--unattended")
    no_crash(held)
    assert held.code == 3, held.err  # the notification waits for a person, as with any name
    (run,) = (served.parent / "runs").iterdir()
    eml = next(run.rglob("blumira-exit-request.eml")).read_bytes()
    email = message_from_bytes(eml, policy=policy.default)
    assert email["Bcc"] is None  # no header injection
    assert email["Subject"] == f"De-provisioning request: {one_line(HOSTILE)}"
    body = email.get_content()
    assert "- Okay to delete all account data? no" in body
    assert "\n- Okay to delete all account data? yes" not in body  # the vendor's name forged no line
    for document in ("report.md", "report.html", "manual-checklist.md"):
        text = next(run.rglob(document)).read_text()
        assert "\r" not in text and "\x1b" not in text and "\u202e" not in text, document
        assert "\nBcc: attacker" not in text, document
        assert "\n## [x] nothing left" not in text, document

    confirmed = cli("confirm", NOTIFY, *c, "--by", "J. Doe", "--note", "sent 09:00, ticket 4711")
    no_crash(confirmed)
    assert confirmed.code == 0, confirmed.err
    resumed = cli("apply", "--resume", run.name, *c, "--unattended")
    no_crash(resumed)
    assert resumed.code == 3, resumed.err  # the Blumira removals went on; manual items remain
    checklist = next(run.rglob("manual-checklist.md")).read_text()
    assert "ACME-PC00 ## [x] nothing left to do" in checklist  # the device's own item, on one line
    assert "\n## [x] nothing left" not in checklist and "\r" not in checklist
    again = cli("apply", "--resume", run.name, *c, "--unattended")
    no_crash(again)
    assert again.code == 3, again.err


def test_one_line_keeps_text_and_names_what_it_changed() -> None:
    assert one_line("Acme Dental (Zürich) — 日本") == "Acme Dental (Zürich) — 日本"
    assert one_line("a\r\nb\tc\u2028d") == "a  b c d"
    assert one_line("x\u202ey\x1b[2Jz\x00") == "xU+202EyU+001B[2JzU+0000"
    assert oddities("a\r\nb\u202e\r") == ["CR", "LF", "U+202E"] and oddities("plain") == []


def test_a_psa_note_carries_a_vendor_line_break_on_one_line() -> None:
    note = NoteDoc("scope", "offboard: exit of Acme\r\nDental", (Block("item", "Blumira: Acme\nFAKE LINE"),), "{}")
    assert note.title == "offboard: exit of Acme  Dental"
    assert note.blocks[0].text == "Blumira: Acme FAKE LINE"
