"""One Blumira notice per meaning (issue 15, friction 10): the request sent before the exit and the
completion notice sent after it have their own names, and "send it yourself" is printed only while
the notice it names is still unsent."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx
import pytest

from offboard.connectors.sandboxing import serve
from offboard.proof.audit import read_records
from offboard_blumira import sandbox as blu
from tests.conftest import FAST, NOTIFY, blumira_section, write_config

REQUEST = "blumira-exit-request.eml"
COMPLETE = "blumira-exit-complete.eml"
SUPPORT = "blumira.support.confirmation"
SEND = "send it yourself"


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    sandbox = blu.BlumiraSandbox(time_scale=FAST)
    with serve(sandbox.app) as url:
        monkeypatch.setenv("OFFBOARD_BLUMIRA_CLIENT_ID", blu.DEMO_CLIENT_ID)
        monkeypatch.setenv("OFFBOARD_BLUMIRA_CLIENT_SECRET", blu.DEMO_SECRET)
        monkeypatch.chdir(tmp_path)
        yield url, write_config(tmp_path, huntress=False, blumira=blumira_section(url))


def sends(output: str) -> list[str]:
    return [line for line in output.splitlines() if SEND in line]


def test_the_request_and_the_completion_notice_are_two_files_each_pointed_at_only_while_unsent(
        cli: Any, served: tuple[str, Path]) -> None:
    url, config = served
    c = ("-c", str(config))
    assert cli("plan", *c, "-o", "exit.plan.json").code == 0
    held = cli("apply", "exit.plan.json", *c, "--unattended")
    assert held.code == 3, held.err
    (run,) = (config.parent / "runs").iterdir()
    request = run / "evidence" / "blumira" / REQUEST
    body = message_from_bytes(request.read_bytes())
    assert body["Subject"].startswith("De-provisioning request") and "complete? no" in str(body.get_payload())
    assert not (run / "documents" / "blumira" / COMPLETE).exists()  # nothing is complete yet
    assert [p.name for p in run.rglob("*.eml")] == [REQUEST]  # one notice, one name
    assert len(sends(held.out)) == 1 and str(request) in sends(held.out)[0]

    sent = cli("confirm", NOTIFY, *c, "--by", "J. Doe", "--note", "sent 09:00, ticket 4711")
    assert sent.code == 0, sent.err
    assert sends(sent.out) == []  # confirmed as sent: no longer "send it yourself"

    resumed = cli("apply", "--resume", run.name, *c, "--unattended")
    assert resumed.code == 3, resumed.err
    assert sends(resumed.out) == []  # removals not done yet: no completion notice to send
    # Support's confirmation before the removals it confirms (review at 120x40: it was accepted, with the
    # completion notice it follows not even drafted): refused, naming what is still to do, nothing recorded.
    early = cli("confirm", SUPPORT, *c, "--by", "J. Doe", "--note", "support replied")
    assert early.code == 2, early.err + early.out
    assert (f"{SUPPORT} comes after Blumira's removals, and 6 of them are not done: blumira.sensors.remove, "
            "blumira.cloud-connectors.remove, blumira.agents.remove-devices and 3 more; do and confirm those first "
            "(listed by:") in " ".join(early.err.split()), early.err
    assert [r["action_id"] for r in read_records(run / "audit.jsonl") if r["event"] == "manual.confirmed"] == [NOTIFY]
    for item in ("sensors.remove", "cloud-connectors.remove", "agents.remove-devices", "agents.remove-keys",
                 "reports.delete-scheduled", "users.remove"):
        httpx.post(f"{url}/_sandbox/portal/{item}").raise_for_status()
        done = cli("confirm", f"blumira.{item}", *c, "--by", "J. Doe", "--note", "done in the portal")
        assert done.code == 0, done.err + done.out
    complete = run / "documents" / "blumira" / COMPLETE
    notice = message_from_bytes(complete.read_bytes())
    assert notice["Subject"].startswith("De-provisioning complete") and "complete? yes" in str(notice.get_payload())
    assert len(sends(done.out)) == 1 and str(complete) in sends(done.out)[0]
    assert "complete? no" in str(message_from_bytes(request.read_bytes()).get_payload())  # the request is kept

    last = cli("confirm", SUPPORT, *c, "--by", "J. Doe", "--note", "support replied 2026-11-30, ends 12-31")
    assert last.code == 0, last.err + last.out
    assert sends(last.out) == []
    assert sorted(p.name for p in run.rglob("*.eml")) == [COMPLETE, REQUEST]
