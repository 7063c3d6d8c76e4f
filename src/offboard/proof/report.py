"""The proof-of-stop report, written to the run folder as Markdown and as a self-contained HTML
page, both rendered from one ``model.Proof`` built from the plan and the audit log."""

from __future__ import annotations

from typing import Any

from offboard.plan import Plan
from offboard.proof import watch
from offboard.proof.model import build, last_signature
from offboard.proof.report_html import render_html
from offboard.proof.report_md import render_markdown
from offboard.rundir import RunDir, atomic_write_text


def write_report(run: RunDir, plan: Plan, records: list[dict[str, Any]]) -> None:
    p = build(run.run_id, plan, records, last_signature(run.path))
    atomic_write_text(run.report_path, watch.with_section(render_markdown(p), watch.after_exit_markdown(plan, records),
                                                          "## Timeline"))
    atomic_write_text(run.path / "report.html", watch.with_section(render_html(p), watch.after_exit_html(plan, records),
                                                                   "<h2>Timeline</h2>"))
