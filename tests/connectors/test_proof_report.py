"""The proof-of-stop report: its counts agree with the audit log, the HTML page is well formed
and self-contained, and it reads as finished only when the exit is."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from offboard import engine
from offboard.connectors.sandboxing import InProcessTransport
from offboard.lifecycle import fold
from offboard.plan import Plan, read_plan
from offboard.proof.audit import read_records
from tests.conftest import BlumiraHarness, Harness, past_the_notification

VOID = {"meta", "br", "img", "hr", "input", "link"}
LAB = engine.Overrides(preflight="lab")


class StrictHtml(HTMLParser):
    """Every element closed in order; no script, no external resource."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "link", "iframe", "img"):
            self.problems.append(f"<{tag}> makes the page depend on something else")
        for name, value in attrs:
            if name in ("src", "href") and value and re.match(r"^[a-z]+:", value):
                self.problems.append(f"{name}={value} points outside the page")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def glance_from_markdown(report: str) -> dict[str, list[int]]:
    section = report.split("## At a glance", 1)[1].split("\n\n", 2)[1]
    rows = [line.strip("|").split("|") for line in section.splitlines()[2:] if line.startswith("| ")]
    return {cells[0].strip(): [int(c) for c in cells[1:]] for cells in rows}


def glance_from_log(plan: Plan, records: list[dict[str, object]]) -> dict[str, list[int]]:
    last = fold(records).last  # type: ignore[arg-type]
    out = {}
    for vp in plan.vendors:
        n: Counter[str] = Counter()
        for a in (a for s in vp.steps for a in s.actions):
            rec = last.get(a.id)
            ev = rec["event"] if rec else None
            gone = bool(rec and isinstance(rec.get("detail"), dict) and rec["detail"].get("already_absent"))
            files = rec["detail"].get("files") if rec and isinstance(rec.get("detail"), dict) else None
            drafted = bool(files) and all(f.get("draft_for") for f in files)  # type: ignore[union-attr]
            if ev == "action.succeeded" and not drafted:  # a drafted email is not evidence exported
                n["exported" if not a.destructive else "already" if gone else "removed"] += 1
            elif ev is None:
                n["later"] += 1
            elif ev == "manual.confirmed":
                n["hand"] += 1
            elif ev in ("manual.pending", "manual.rejected"):
                n["pending"] += 1
            elif ev in ("action.failed", "action.unknown", "action.blocked", "action.started"):
                n["problem"] += 1
            elif ev == "action.skipped":
                n["skipped"] += 1
        out[vp.display_name] = [n["removed"], n["already"], n["hand"], n["pending"], n["later"], n["problem"],
                                n["exported"],
                                n["skipped"] + len(vp.skipped)]
    return out


def test_the_reports_counts_agree_with_the_audit_log_while_pending_and_when_done(blumira: BlumiraHarness) -> None:
    with blumira.sessions() as s:
        result = past_the_notification(blumira.cfg, engine.make_plan(blumira.cfg, s), s)
    run = result.run
    plan = read_plan(run.plan_path)
    report = run.report_path.read_text()
    assert glance_from_markdown(report) == glance_from_log(plan, list(read_records(run.audit_path)))
    assert "**Not finished yet: 7 manual step(s) still waiting for a person" in report
    assert "| End of service (requested) | 2026-12-31 |" in report
    assert "| Service proven stopped | not yet proven |" in report
    with httpx.Client(transport=InProcessTransport(blumira.sandbox.app), base_url="http://sandbox") as portal:
        for item in ("agents.remove-devices", "agents.remove-keys", "users.remove"):  # the person at the portal
            portal.post(f"/_sandbox/portal/{item}")
    with blumira.sessions() as s:
        for a in result.pending:
            assert engine.confirm(run.run_id, a.id, "J. Doe", "done", blumira.cfg, s).accepted
    report = run.report_path.read_text()
    assert glance_from_markdown(report) == glance_from_log(plan, list(read_records(run.audit_path)))
    assert glance_from_markdown(report)["Blumira"][2] == 8  # done by hand
    assert "**Service stopped:" in report
    proven = next(line for line in report.splitlines() if line.startswith("| Service proven stopped |"))
    assert re.search(r"\| \d{4}-\d\d-\d\d \d\d:\d\d UTC \|$", proven), proven  # before 2026-12-31: not late
    after = report.split("### Billing-relevant counts, before and after", 1)[1]
    assert "| agent devices | 8 | 0 |" in after and "| users | 4 | 1 |" in after  # re-read after the last item


def test_the_html_page_is_well_formed_self_contained_and_says_what_the_markdown_says(harness: Harness) -> None:
    with harness.sessions() as s:
        result = engine.apply(engine.make_plan(harness.cfg, s), harness.cfg, s, overrides=LAB)
    html = (result.run.path / "report.html").read_text()
    parser = StrictHtml()
    parser.feed(html)
    parser.close()
    assert parser.problems == [] and parser.stack == []
    text = " ".join(parser.text)
    assert "Not finished yet: 13 manual step(s) still waiting for a person" in text
    assert "acme-lnx-07" in text and "no longer listed (GET /v1/agents?organization_id=42)" in text  # proof
    assert "Counts the vendor bills or reports on" in text and "Timeline" in text
    assert "acme-neighbour" not in html.lower()  # nothing of the neighbouring organization


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium is not installed on this machine")
def test_the_html_page_renders_in_headless_chromium(harness: Harness, tmp_path: Path) -> None:
    with harness.sessions() as s:
        result = engine.apply(engine.make_plan(harness.cfg, s), harness.cfg, s, overrides=LAB)
    shot = tmp_path / "report.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2000", f"--screenshot={shot}",
                    (result.run.path / "report.html").as_uri()], capture_output=True, timeout=120, check=False)
    assert shot.exists() and shot.stat().st_size > 20_000  # a page with content, not a blank one


# A vendor string that would be markup if copied raw: HTML, a javascript: link, an image, a pipe
# that splits the table row, backticks, emphasis, strikethrough, an entity, line breaks (also
# U+2028) and a bidi override that would reorder what is shown.
CRAFTED = ("<img src=x onerror=alert(1)> [x](javascript:alert(1)) ![i](https://evil.example/p.png) | `tick` "
           "*em* ~~s~~ &amp; <https://evil.example>\nline2\u2028- item \u202egnp.exe")


def test_vendor_strings_in_the_markdown_report_stay_text(harness: Harness) -> None:
    from markdown_it import MarkdownIt  # rich's own Markdown parser: CommonMark, with GFM tables

    agent = min(a["id"] for a in harness.sandbox.agents_of(42))
    harness.sandbox.agents[agent]["hostname"] = CRAFTED
    with harness.sessions() as s:
        result = engine.apply(engine.make_plan(harness.cfg, s), harness.cfg, s, overrides=LAB)
    html = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(
        result.run.report_path.read_text())
    assert "onerror" in html  # the host is in the report …
    for markup in ("<img", "<a ", "javascript:alert(1)\"", "<em>", "<s>", "<code>tick</code>", "<br", "<li>item"):
        assert markup not in html, markup  # … and nothing it spells became markup
    row = next(r for r in html.split("<tr>") if "onerror" in r)
    assert row.count("<td") == 6  # its pipe did not split the row
    parser = StrictHtml()
    parser.feed(html)
    shown = " ".join(" ".join(parser.text).split())
    expected = " ".join(CRAFTED.replace("\u2028", " ").replace("\u202e", "U+202E").split())
    assert expected in shown  # the reader sees the vendor's string as the vendor spelled it


def headings(markdown: str) -> list[tuple[int, str]]:
    """Each heading as a CommonMark parser reads it: its level and the text a reader sees."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    out = []
    for n, tok in enumerate(tokens):
        if tok.type == "heading_open":
            inline = tokens[n + 1]
            out.append((int(tok.tag[1]), "".join(c.content for c in inline.children or [] if c.type in
                                                 ("text", "code_inline"))))
    return out


def test_the_markdown_reports_headings_parse_as_commonmark_with_the_titles_intended(tmp_path: Path) -> None:
    from tests.connectors.demo_run import demo_world, play

    demo = demo_world(tmp_path)
    result = play(demo)
    plan = read_plan(result.run.plan_path)
    parsed = headings(result.run.report_path.read_text())
    assert parsed[0] == (1, f"Proof of service stop — {plan.customer}")
    steps = [s.title for vp in plan.vendors for s in vp.steps]
    assert "0. Notify Blumira first" in steps
    assert [t for level, t in parsed if level == 3 and t in steps] == steps  # each step's own title, in order
    assert all("\\" not in t for _, t in parsed), parsed  # no escape shows
    assert [t.split(" — ")[0] for level, t in parsed if level == 2 and " — " in t] == \
        [vp.display_name for vp in plan.vendors]


def test_the_html_pages_first_layer_is_the_customers_and_the_auditors_detail_is_a_click_away(tmp_path: Path) -> None:
    import copy

    from tests.connectors.demo_run import demo_world, play

    demo = demo_world(tmp_path)
    result = play(demo)  # the demo's preflight override, every item done
    sb = demo.huntress  # then an agent appears again under the customer: the re-read fails
    again = copy.deepcopy(next(iter(sb.agents.values())))
    sb.agents[max(sb.agents) + 1] = {**again, "id": max(sb.agents) + 1, "hostname": "acme-late", "organization_id": 42}
    with demo.sessions() as s:
        assert not all(c.passed for c in engine.verify_recorded(result.run.run_id, demo.cfg, s))
    html = (result.run.path / "report.html").read_text()
    first, auditor = html.split("<h2>For the auditor</h2>", 1)
    verdict = first.split('<div class="verdict', 1)[1].split("</div>", 1)[0]
    assert "Not finished yet" in verdict
    assert "<strong>Overridden</strong>" in verdict and "isolated host is part of the exercise" in verdict
    assert "<strong>Check failed</strong>: re-read at Huntress" in verdict
    assert "<details" in verdict.split("Check failed", 1)[1]  # what the vendor answered: a click away
    first_screen = unescape(re.sub(r"<details.*?</details>", "", first, flags=re.S))
    auditor = unescape(auditor)
    assert "EDR agents uninstalled — by your MSP through Huntress" in first_screen
    assert "Blumira users removed — by J. Doe, your MSP's technician, attested" in first_screen
    assert not re.search(r"\b(GET|DELETE|PATCH|POST) /", first_screen)  # no request ...
    assert not re.search(r"[0-9a-f]{16}", first_screen)  # ... no hash, no id on the first screen
    assert "Objects removed by API" in first_screen and "Steps waiting for a person" in first_screen
    # The auditor's layer: every person-done item says who attested it, when, and what an API could show.
    attested = re.findall(r"Attested by J\. Doe on [0-9-]+ [0-9:]+ UTC; ([^<]*)", auditor)
    assert attested and set(attested) <= {"Huntress's API was re-read and agreed",
                                          "Blumira's API was re-read and agreed",
                                          "no API can show this, so it rests on their word"}
    assert "no API can show this" in " ".join(attested) and "API was re-read and agreed" in " ".join(attested)
    draft = next(r for r in auditor.split("<tr>") if "Notification email draft" in r)
    assert ">Drafted<" in draft and ">Exported<" not in draft  # a drafted email is not an export
    assert re.search(r"sha256 <code>[0-9a-f]{64}</code>", auditor)  # every hash in full, a click away
