"""Every evidence file names the requests that produced it — on its audit line, in the manifest
and in the report — and those are requests the vendor's sandbox saw, for that file and no other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from offboard.proof.audit import read_records
from offboard.wire.http import request_line
from offboard_blumira.sandbox import API_PREFIX, CUSTOMER_ACCOUNT
from tests.connectors.demo_run import DemoRun, demo_world, play

ACCT = f"/msp/accounts/{CUSTOMER_ACCOUNT}"
# What each file is made of: every request on its line reads one of these (and nothing else).
MADE_OF = {
    "huntress/organization.json": ("/v1/organizations/42",),
    "huntress/agents.json": ("/v1/agents",),
    "huntress/memberships.json": ("/v1/memberships",),
    "huntress/incident_reports.json": ("/v1/incident_reports",),
    "huntress/escalations.json": ("/v1/escalations",),
    "huntress/signals.json": ("/v1/signals",),
    "huntress/identities.json": ("/v1/identities",),
    "huntress/reports.json": ("/v1/reports",),
    "huntress/invoices.json": ("/v1/invoices", "/v1/accounts/"),
    "blumira/account.json": (ACCT,),
    "blumira/findings.json": (f"{ACCT}/findings",),
    "blumira/devices.json": (f"{ACCT}/agents/devices",),
    "blumira/keys.json": (f"{ACCT}/agents/keys",),
    "blumira/users.json": (f"{ACCT}/users",),
    "blumira/detection_rules.json": (f"{ACCT}/detection-rules",),
    "blumira/webhooks.json": ("/msp/webhooks", f"{ACCT}/webhooks"),
    "blumira/blumira-exit-request.eml": (ACCT,),
}


def sandbox_saw(demo: DemoRun, vendor: str) -> list[tuple[str, str, str, int]]:
    prefix = API_PREFIX if vendor == "blumira" else ""
    return [(r.method, r.path.removeprefix(prefix), r.query, r.status) for r in demo.sandboxes[vendor].requests]


def as_seen(req: dict[str, Any]) -> tuple[str, str, str, int]:
    path = req["path"]
    if "://" in path:  # a download from the storage host: scheme://host/path, no query
        path = "/" + path.split("://", 1)[1].split("/", 1)[1]
    return req["method"], path, req.get("query", ""), req["status"]


def is_subsequence(needles: list[Any], haystack: list[Any]) -> bool:
    it = iter(haystack)
    return all(any(n == h for h in it) for n in needles)


def evidence_lines(demo: DemoRun, run_path: Path) -> list[dict[str, Any]]:
    return [r for r in read_records(run_path / "audit.jsonl")
            if r["event"] == "action.succeeded" and isinstance(r.get("detail"), dict) and "files" in r["detail"]]


def test_each_evidence_line_names_the_requests_the_sandbox_saw_for_that_file(tmp_path: Path) -> None:
    demo = demo_world(tmp_path)
    result = play(demo)
    lines = evidence_lines(demo, result.run.path)
    seen_files = {f["path"] for r in lines for f in r["detail"]["files"]}
    assert {"huntress/agents.json", "blumira/findings.json", "blumira/users.json"} <= seen_files
    assert any(p.startswith("huntress/reports/") and p.endswith(".pdf") for p in seen_files)
    for line in lines:
        assert line["http"] is None, line  # no single call stands for a file set
        for f in line["detail"]["files"]:
            requests = f["requests"]
            assert requests, f"{f['path']} names no request"
            vendor = f["path"].split("/", 1)[0]
            # Each request was made (same method, path, query and status, in that order) ...
            assert is_subsequence([as_seen(q) for q in requests], sandbox_saw(demo, vendor)), f["path"]
            for q in requests:
                assert q["method"] == "GET" and q["status"] == 200, (f["path"], q)
                if f["path"].endswith(".pdf"):  # ... a download names its host and never its query
                    assert q["path"].startswith("http") and "query" not in q, q
                    continue
                # ... and reads what the file is made of, not another file's list or a write.
                assert q["path"].startswith(MADE_OF[f["path"]]), (f["path"], q["path"])


def test_a_paged_list_names_every_page_it_read_and_only_those(tmp_path: Path) -> None:
    demo = demo_world(tmp_path, blumira_extra="page_size = 2\n")  # 4 users: more than one page
    listed = len(demo.blumira.of(demo.blumira.users, CUSTOMER_ACCOUNT))
    result = play(demo)
    files = {f["path"]: f for r in evidence_lines(demo, result.run.path) for f in r["detail"]["files"]}
    users = [as_seen(q) for q in files["blumira/users.json"]["requests"]]
    log = sandbox_saw(demo, "blumira")
    first_delete = next(i for i, r in enumerate(log) if r[0] == "DELETE")
    # The export's own reads of the list, page by page; not discovery's, nor the plan's before it.
    reads = [r for r in log[:first_delete] if r[1] == f"{ACCT}/users"]
    assert len(users) > 1 and users == reads[-len(users):]
    assert [q for _, _, q, _ in users] == [f"page={n}&page_size=2" for n in range(1, len(users) + 1)]
    kept = json.loads((result.run.path / "evidence" / "blumira" / "users.json").read_text())
    assert len(kept) == listed > 2  # every page's users


def test_the_manifest_and_the_report_name_the_same_requests_as_the_log(tmp_path: Path) -> None:
    demo = demo_world(tmp_path)
    result = play(demo)
    manifest = json.loads((result.run.path / "evidence" / "manifest.json").read_text())["files"]
    report = result.run.report_path.read_text()
    html = (result.run.path / "report.html").read_text()
    for line in evidence_lines(demo, result.run.path):
        for f in line["detail"]["files"]:
            assert manifest[f["path"]]["requests"] == f["requests"], f["path"]
            for q in f["requests"]:
                shown = f"{request_line(q['method'], q['path'], q.get('query', ''))} → {q['status']}"
                assert shown in report, shown
                assert shown.replace("&", "&amp;") in html, shown
