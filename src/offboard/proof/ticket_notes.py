"""What offboard writes in the exit's PSA ticket, built from the plan and the audit log only.

Each note is a ``NoteDoc``: blocks the PSA's connector renders (plain text or HTML), and the
``facts`` that make it this note. The marker's hash is over the facts, never over a timestamp
or anything that differs between two posts of the same news, so the note a retry, a resume or
a second apply would post is recognised on the ticket and skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from offboard.connectors.psa import Block, NoteDoc
from offboard.lifecycle import TERMINAL, fold, open_for_person
from offboard.plan import Action, Plan, VendorPlan, canonical_json
from offboard.proof.closure import render_closure_note


def _facts(**kv: Any) -> str:
    return canonical_json(kv)


def _p(text: str) -> Block:
    return Block("p", text)


def _item(text: str) -> Block:
    return Block("item", text)


def _counts(vp: VendorPlan) -> str:
    actions = [a for s in vp.steps for a in s.actions]
    removals = sum(1 for a in actions if a.kind == "api" and a.destructive)
    reads = sum(1 for a in actions if a.kind == "api" and not a.destructive)
    manual = sum(1 for a in actions if a.kind == "manual")
    return f"{removals} removal(s) by API, {reads} export(s) or record(s) by API, {manual} manual item(s)"


def scope_note(plan: Plan) -> NoteDoc:
    """The exit's scope and the plan's summary, recorded before anything is removed (`plan -o`)."""
    blocks = [_p(f"Planned exit of {plan.customer}"
                 + (f", end of service {plan.end_of_service}" if plan.end_of_service else "")
                 + (f", approved by {plan.approved_by}" if plan.approved_by else "")
                 + ". Nothing has been removed yet: this note records what the exit covers.")]
    for vp in plan.vendors:
        blocks.append(_item(f"{vp.display_name}: {vp.scope} (as {vp.account}) — {_counts(vp)}"))
        for step in vp.steps:
            n_api = sum(1 for a in step.actions if a.kind == "api")
            n_manual = len(step.actions) - n_api
            blocks.append(_item(f"{vp.display_name} — {step.title}: {n_api} by API, {n_manual} by hand"))
        for f in vp.findings:
            if f.blocking:
                blocks.append(_item(f"{vp.display_name}: stops the exit until resolved — {f.kind}: {f.detail}"))
        if vp.skipped:
            blocks.append(_item(f"{vp.display_name}: {len(vp.skipped)} object(s) seen outside the exit's scope, "
                                "never touched"))
    if plan.monitoring_after_exit:
        blocks.append(_p(f"Monitoring after the exit: {plan.monitoring_after_exit}"))
    blocks.append(_p(f"Plan {plan.plan_id}, made {plan.created_at}; apply it with `offboard apply`."))
    facts = _facts(note="scope", customer=plan.customer, end=plan.end_of_service, approved=plan.approved_by,
                   vendors=[{"vendor": vp.vendor, "scope": vp.scope,
                             "steps": [[s.id, [a.id for a in s.actions]] for s in vp.steps],
                             "skipped": sorted(k.target.id for k in vp.skipped)} for vp in plan.vendors])
    return NoteDoc("scope", f"offboard: exit scope for {plan.customer}", tuple(blocks), facts)


def start_note(plan: Plan, run_id: str) -> NoteDoc:
    blocks = [_p(f"offboard started the exit of {plan.customer} (run {run_id}); the vendors are worked on in "
                 "their runbooks' order. Each vendor's completion, the manual checklist and the closure follow here.")]
    blocks += [_item(f"{vp.display_name}: {vp.scope} — {_counts(vp)}") for vp in plan.vendors]
    return NoteDoc("start", f"offboard: exit of {plan.customer} started", tuple(blocks),
                   _facts(note="start", plan=plan.plan_id, checksum=plan.checksum))


def _tally(vp: VendorPlan, states: Mapping[str, str], records: list[dict[str, Any]]) -> Counter[str]:
    absent = {r["action_id"] for r in records if r["event"] == "action.succeeded"
              and isinstance(r.get("detail"), dict) and r["detail"].get("already_absent")}
    c: Counter[str] = Counter()
    for a in (a for s in vp.steps for a in s.actions):
        state = states.get(a.id)
        if a.kind == "manual" or state in ("manual.pending", "manual.rejected", "manual.confirmed"):
            c["confirmed by a person" if state == "manual.confirmed" else "for a person"] += 1
        elif state == "action.succeeded":
            c[("already absent" if a.id in absent else "removed by API") if a.destructive else "exported"] += 1
        elif state in ("action.failed", "action.blocked"):
            c["failed or held back"] += 1
        elif state in ("action.unknown", "action.started"):
            c["unknown until re-read"] += 1
        elif state == "action.skipped":
            c["skipped by the scope guard"] += 1
        else:
            c["not started"] += 1
    return c


def vendor_note(plan: Plan, vendor: str, records: list[dict[str, Any]]) -> NoteDoc:
    """Where one vendor stands when its lane ends: finished, or held for a person."""
    vp = plan.vendor(vendor)
    states = {aid: r["event"] for aid, r in fold(records).last.items()}
    c = _tally(vp, states, records)
    held = [r for r in records if r["event"] == "vendor.held" and r.get("vendor") == vendor]
    api_open = [a for s in vp.steps for a in s.actions if a.kind == "api" and states.get(a.id) not in TERMINAL
                and states.get(a.id) not in ("manual.pending", "manual.rejected")]
    if held and api_open:
        title = f"offboard: {vp.display_name} is waiting for a person"
        lead = (f"{vp.display_name} makes no change until {held[-1]['action_id']} is confirmed; "
                f"{len(api_open)} action(s) wait for it.")
    else:
        title = f"offboard: {vp.display_name} — API work finished"
        lead = f"{vp.display_name}: the API part of the runbook is done ({vp.scope})."
    blocks = [_p(lead), *(_item(f"{n} {what}") for what, n in sorted(c.items()))]
    # What the API did is the news; people's confirmations are the checklist's (a resume that
    # only follows confirmations finds this note already on the ticket).
    api = sorted((what, n) for what, n in c.items() if what not in PERSON)
    return NoteDoc(f"vendor.{vendor}", title, tuple(blocks),
                   _facts(note="vendor", plan=plan.plan_id, vendor=vendor, counts=api, held=bool(held and api_open)))


PERSON = ("confirmed by a person", "for a person")


def pending_items(plan: Plan, records: list[dict[str, Any]]) -> list[Action]:
    last = fold(records).last
    return [a for a in plan.actions() if (rec := last.get(a.id)) is not None and open_for_person(a, rec["event"])]


def checklist_note(plan: Plan, records: list[dict[str, Any]], run_id: str) -> NoteDoc:
    """The manual items still open, each with where to go, what done looks like and how to record it."""
    todo = pending_items(plan, records)
    names = {vp.vendor: vp.display_name for vp in plan.vendors}
    blocks = [_p(f"{len(todo)} item(s) have no vendor API and wait for a person. Do each, then record it: "
                 f"offboard confirm ITEM --by \"Your Name\" --note \"what you did\" --run {run_id}")]
    for a in todo:
        where = f" Where: {a.manual.portal_path}. Done when: {a.manual.done_when}." if a.manual else ""
        record = f" Record: {a.manual.record}." if a.manual and a.manual.record else ""
        blocks.append(_item(f"[ ] {names.get(a.vendor, a.vendor)} — {a.target.name} ({a.id}): {a.summary}.{where}"
                            f"{record}"))
    return NoteDoc("checklist", f"offboard: manual checklist for {plan.customer} ({len(todo)} open)", tuple(blocks),
                   _facts(note="checklist", plan=plan.plan_id, run=run_id, open=sorted(a.id for a in todo)))


def confirmed_note(plan: Plan, action: Action, by: str, note: str, records: list[dict[str, Any]]) -> NoteDoc:
    """A checklist update: one item done, and what is still open."""
    todo = pending_items(plan, records)
    blocks = [_p(f"Done: {action.target.name} ({action.id}), confirmed by {by}" + (f": {note}" if note else "")
                 + ".")]
    if todo:
        blocks.append(_p(f"Still open ({len(todo)}):"))
        blocks += [_item(f"{a.target.name} ({a.id})") for a in todo]
    else:
        blocks.append(_p("Every manual item reached so far is confirmed."))
    states = fold(records).last
    waiting = [a for a in plan.actions() if a.id not in states]
    if waiting:
        run_id = records[0]["run_id"] if records else "RUN_ID"
        blocks.append(_p(f"{len(waiting)} more action(s) of this run have not run yet (a vendor's first step held "
                         f"them): offboard apply --resume {run_id}"))
    return NoteDoc(f"confirmed.{action.id}", f"offboard: checklist update — {len(todo)} item(s) open", tuple(blocks),
                   _facts(note="confirmed", plan=plan.plan_id, action=action.id, by=by, text=note))


def failure_note(plan: Plan, run_id: str, message: str, exit_code: int, records: list[dict[str, Any]]) -> NoteDoc:
    """The run stopped, failed or was held back: what happened and how to continue."""
    failed = [r for r in records if r["event"] in ("action.failed", "action.blocked", "action.unknown")
              and r.get("action_id")]
    blocks = [_p(message or f"The run ended with exit code {exit_code}."),
              *(_item(f"{r['action_id']}: {_message(r.get('detail'))}") for r in failed[-20:])]
    if len(failed) > 20:
        blocks.insert(1, _p(f"The last 20 of {len(failed)} problems (the audit log has every one):"))
    blocks.append(_p(f"Continue with: offboard apply --resume {run_id} (what is done is not redone; an action "
                     "whose outcome is unknown is re-read at the vendor before anything is sent again)."))
    return NoteDoc("failure", f"offboard: exit of {plan.customer} needs attention (run {run_id})", tuple(blocks),
                   _facts(note="failure", run=run_id, code=exit_code, problems=[r["action_id"] for r in failed]))


def _message(detail: Any) -> str:
    if isinstance(detail, dict):
        return str(detail.get("message") or detail)
    return str(detail)


def closure_blocks(markdown: str) -> list[Block]:
    """The closure note's Markdown as note blocks (headings become paragraphs)."""
    out: list[Block] = []
    for line in markdown.splitlines():
        text = line.strip()
        if not text or text.startswith("# "):
            continue
        if text.startswith("- "):
            out.append(_item(text[2:].replace("**", "").replace("`", "")))
        else:
            out.append(_p(text.lstrip("#").strip().replace("**", "").replace("`", "")))
    return out


def closure_note(plan: Plan, records: list[dict[str, Any]], manifest: dict[str, Any],
                 head: Mapping[str, Any] | None, files: Iterable[str], *, visible: bool) -> NoteDoc:
    """The exit's end: the closure note, the audit log's signed chain head, the files that follow."""
    blocks = closure_blocks(render_closure_note(plan, records, manifest))
    if head is not None:
        blocks.append(_p(f"Audit log: {head.get('audit_lines')} events, chain head {head.get('last_hash')}, signed "
                         f"by {head.get('key')} at {head.get('signed_at')}. Check it in the run's bundle unpacked (it "
                         "holds msp.pub, the MSP's public key) with `offboard audit verify audit.jsonl --public-key "
                         "msp.pub`."))
    else:
        blocks.append(_p("The audit log is not signed (no MSP signing key: `offboard keys init`)."))
    names = list(files)
    if names:
        blocks.append(_p("Attached: " + ", ".join(names) + "."))
    states = fold(records).last
    facts = _facts(note="closure", plan=plan.plan_id,
                   states=sorted((aid, r["event"]) for aid, r in states.items()), files=sorted(names))
    return NoteDoc("closure", f"offboard: {plan.customer} — exit closed", tuple(blocks), facts,
                   customer_visible=visible)


def link_note(name: str, size: int, sha256: str, reason: str, where: str) -> NoteDoc:
    """A file the PSA would not take: what it is, why it is not attached, and where it is kept."""
    blocks = (_p(f"{name} ({size:,} bytes, SHA-256 {sha256}) is not attached: {reason}."),
              _p(f"It is kept at: {where}. Its SHA-256 above lets anyone check the copy they open."))
    return NoteDoc(f"link.{name}", f"offboard: {name} (not attached)", blocks,
                   _facts(note="link", name=name, sha256=sha256))


EVENTS = ("ticket.posted", "ticket.found", "ticket.failed", "ticket.pasted", "ticket.attached", "ticket.linked",
          "ticket.status")


def open_pastes(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Ticket notes and files whose last word is a failure, by key: each waits for a person (or a
    later try). The plan's scope item, a manual item of its own when it fails, is left to it."""
    last: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["event"] in EVENTS and isinstance(r.get("detail"), dict) and r["detail"].get("key"):
            last[r["detail"]["key"]] = r
    return {k: r["detail"] for k, r in last.items() if r["event"] == "ticket.failed" and not r["detail"].get("item")}
