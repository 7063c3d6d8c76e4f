"""`offboard demo`, as the README tells a new user to run it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from offboard.proof.audit import verify_file
from tests.e2e.test_cli_over_http import offboard_exe

pytestmark = pytest.mark.e2e


def test_demo_exits_the_customer_from_both_vendors_and_leaves_a_verifiable_audit_log(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFBOARD_") or k == "OFFBOARD_LOCK_DIR"}
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    result = subprocess.run([*offboard_exe(), "demo"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=180, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for heading in ("1. plan", "2. apply", "3. status and verification", "4. audit"):
        assert heading in out
    assert "test doubles of \nBlumira, Huntress" in out or "test doubles of Blumira, Huntress" in out
    # The plan's counts are the run's (issue 22: the plan said 17 exports where the run exported 16 and drafted 1).
    counts = "16 evidence export(s), 1 document(s) drafted for a person to send, 1 ticket note(s)"
    assert f"43 removal(s) by API, {counts}, 20 manual item(s)" in out, out
    assert f"43 removed by API (0 already gone), {counts}, 20 manual item(s) confirmed" in out, out
    assert "Exported 16 evidence file set(s)" in out
    # 42 Huntress removals and the one Blumira webhook limited to the customer
    # (issue 22 review: the first apply said "removed 42" beside the plan's 43, unexplained: the one held is said)
    assert "43 removal(s) by API" in out
    assert ("removed 42 object(s) by API of 43 planned (1 held until a person confirms blumira.notify.sent), "
            "failed 0") in out, out
    # Blumira's one write waits for "notify Blumira first", then the run continues
    assert "8 action(s) waited for those confirmations" in out  # the webhook and the 7 items after the notice
    # The scope item is offboard's with a [psa] section: posted at `plan -o`, re-read at apply.
    assert out.count("  confirmed huntress.") == 12 and out.count("  confirmed blumira.") == 8
    assert "HaloPSA ticket 4711 now holds the exit scope and the plan summary" in out
    assert "manual-pending" not in out
    assert "12 object" not in out  # the neighbour's agents never appear as candidates
    assert "Bright Smiles" not in out  # nor the neighbouring Blumira sub-account
    # Piped, the progress is timestamped lines: both vendors' steps, then the whole plan done.
    assert "Huntress: 3. Remove endpoint coverage (EDR agents) (36 to do)" in out  # a log: progress with stdout
    assert "Blumira: 0. Notify Blumira first" in out
    # Only what is done counts: each pass ends saying what waits for a person (issue 22), and with
    # them the whole plan (the demo's confirmations then settle the last 7).
    assert re.search(r"Actions finished: 60/81 done, \S+ elapsed, 21 held until a person confirms", out), out
    assert re.search(r"Actions finished: 74/81 done, \S+ elapsed, 7 held until a person confirms", out), out
    runs = list((tmp_path / "offboard-demo" / "runs").iterdir())
    assert len(runs) == 1
    assert verify_file(runs[0] / "audit.jsonl").ok
    eml = (runs[0] / "evidence" / "blumira" / "blumira-exit-request.eml").read_text()
    assert "To: support@blumira.com" in eml and "Cc: msp@blumira.com" in eml
    assert "Organization: Acme Dental" in eml and "Current Blumira Edition: PRO" in eml
    report = runs[0] / "report.md"
    assert report.exists()
    assert any(line.startswith(f"Report:    {report.relative_to(tmp_path)}  ") for line in out.splitlines())
    assert "Service stopped" in report.read_text() and (runs[0] / "report.html").exists()
    final = (runs[0] / "documents" / "blumira" / "blumira-exit-complete.eml").read_text()
    assert "De-provisioning complete? yes" in final  # the draft written when the exit ended
    # The ticket, as the service manager opens it: scope, start, each vendor, the checklist and its
    # updates, the closure; the report and the signed bundle attached.
    ticket = out[out.index("5. the exit's PSA ticket"):]
    for line in ("offboard: exit scope for Acme Dental", "offboard: Huntress — API work finished",
                 "offboard: Blumira — API work finished", "report.html", f"offboard-exit-{runs[0].name}"):
        assert line in ticket.replace("│\n│      │       │ ", ""), line
    postings = [r for r in verify_file(runs[0] / "audit.jsonl").records if r["event"] in ("ticket.posted",
                                                                                       "ticket.attached")]
    assert len(postings) >= 25 and all(r["detail"].get("note_id") or r["detail"].get("file_id") for r in postings)
    signed = subprocess.run([*offboard_exe(), "audit", "verify", str(runs[0] / "audit.jsonl"), "--public-key",
                             str(tmp_path / "offboard-demo" / "msp.pub")], env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert signed.returncode == 0 and "covers all" in signed.stdout
