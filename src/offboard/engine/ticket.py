"""The exit's PSA ticket: what offboard posts there, exactly once, without ever stopping the exit.

Exactly once: no PSA offers an idempotency key, so every note carries a marker
(``[offboard:<exit>:<note>:<hash of its facts>]``) and the ticket's notes are read before
posting; what is already there is skipped. A post whose reply was lost is settled by reading
the notes again, and sent once more only when the marker is not there. Files are matched by
name and by the marker (with their SHA-256) kept in their description.

Never blocking: a PSA that is down, or refuses a note or a file, is recorded in the audit log
(``ticket.failed``), the text to paste is written to the run's ``ticket/`` folder, and it becomes an
item of the manual checklist (``offboard confirm ticket.<note>``); the exit goes on. A later posting
occasion tries again first — except what the PSA refused in its documented way (``VendorRefused``):
sent again it would be refused again, so it waits for a person. A closed ticket is not assumed to
refuse: none of the PSAs documents that, so offboard posts and handles the PSA's answer. A file the
PSA will not hold gets a note of its own (``link.<file>``: where it is kept, its SHA-256, why), which
is retried like any note, whatever was posted after it.

Each occasion reads the ticket and its notes once and keeps that reading current with its own posts
(re-reading after a lost reply), so a run reads the ticket a few times, not once per note.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import httpx

from offboard.config import ExitConfig
from offboard.connectors import ActionResult, Check, Owners, PlanParts, VendorSession, Watched, listed_owners
from offboard.connectors.psa import (
    RECORD_SCOPE,
    Block,
    Burst,
    Limits,
    NoteDoc,
    NotePart,
    PsaSettings,
    TicketFile,
    TicketNote,
    TicketSession,
    compose,
    marker,
)
from offboard.errors import AmbiguousWrite, BadInput, ExitCode, OffboardError, VendorError, VendorRefused
from offboard.plan import Action, Finding, Inventory, Plan, VendorPlan
from offboard.proof import ticket_notes
from offboard.proof.audit import AuditLog
from offboard.proof.evidence import EvidenceStore
from offboard.proof.model import last_signature
from offboard.proof.signing import Signer
from offboard.proof.ticket_notes import open_pastes
from offboard.rundir import RunDir, atomic_write_bytes, atomic_write_text
from offboard.wire.redact import REDACTOR

SCOPE_OPERATION = "ticket.record-scope"  # the scope item, once it is offboard's to post
FOLDER = "ticket"  # in the run folder: texts to paste, and the files as they were attached
PREFIX = "ticket."  # `offboard confirm ticket.<note>`: a note pasted by hand
State = Literal["posted", "found", "failed"]
# Everything a PSA, its reply or our own file handling may raise: recorded, never raised on.
TROUBLE = (OffboardError, httpx.HTTPError, OSError, ValueError)


@dataclass(frozen=True)
class Outcome:
    key: str
    state: State
    detail: str  # the note's or file's id, or why it could not be posted
    refused: bool = False  # the PSA refused it in its documented way: never sent again by offboard


class Ticket:
    """One exit's ticket. Thread-safe: vendor lanes report their completion from their threads."""

    def __init__(self, session: TicketSession, settings: PsaSettings) -> None:
        self.session = session
        self.settings = settings
        self.limits = replace(session.limits, max_note_chars=settings.max_note_chars or session.limits.max_note_chars)
        self._lock = threading.RLock()
        self.plan: Plan | None = None
        self.run: RunDir | None = None
        self.audit: AuditLog | None = None
        self.outcomes: list[Outcome] = []  # this process's, for the screen
        self.visibility_line: str | None = None  # what plan showed: the visibility notes are posted with
        # One posting occasion (plan -o, a vendor's end, after a run, a confirmation) reads the ticket and
        # its notes once, then keeps that reading current with its own posts (and re-reads after a lost
        # reply): a closed ticket is read a few times a run, not once a note.
        self._occasion: Burst | None = None
        self._depth = 0

    @property
    def ref(self) -> str:
        return f"{self.session.display_name} ticket {self.session.ticket_id}"

    def bind(self, plan: Plan, run: RunDir | None = None, audit: AuditLog | None = None) -> None:
        with self._lock:
            self.plan, self.run, self.audit = plan, run, audit

    def close(self) -> None:
        self.session.close()

    def visibility(self) -> str | None:
        """`offboard plan`: the visibility every note and file will be posted with, by label and id.
        A tenant without an internal-only value is refused here (``BadInput``: exit 2, naming the values
        found and the config key), before anything is saved or posted. None when the PSA cannot be read
        now: apply reads it again, and posts nothing until it has an internal value."""
        try:
            chosen = self.session.visibility()
        except BadInput:
            raise
        except TROUBLE:
            return None
        return chosen.line(self.ref)

    @contextlib.contextmanager
    def occasion(self) -> Iterator[None]:
        """Everything posted inside shares one reading of the ticket (nested occasions join the outer one)."""
        with self._lock:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._occasion = None

    # -- the occasions ---------------------------------------------------------------------

    def record_scope(self, plan: Plan) -> Outcome:
        """`offboard plan -o`: the exit's scope and the plan's summary, before anything is removed."""
        self.bind(plan)
        with self.occasion():
            return self._worst(self.publish(ticket_notes.scope_note(plan)), "scope")

    def run_started(self, run_id: str) -> None:
        plan = self.plan
        if plan is not None:
            self._safely("start", lambda: self.publish(ticket_notes.start_note(plan, run_id)))

    def vendor_finished(self, vendor: str) -> None:
        plan, audit = self.plan, self.audit
        if plan is not None and audit is not None:
            self._safely(f"vendor.{vendor}",
                         lambda: self.publish(ticket_notes.vendor_note(plan, vendor, list(audit.records))))

    def _safely(self, key: str, post: Callable[[], object]) -> None:
        """Whatever goes wrong while composing or posting, the exit goes on: it is recorded instead."""
        try:
            with self.occasion():
                post()
        except TROUBLE as exc:
            self._record("ticket.failed", key=key, reason=_why(exc), title=f"the {key} note", paste="", marker="")

    def after_run(self, exit_code: ExitCode, message: str, signer: Signer | None) -> bool:
        """After apply or resume: notes left to paste are tried again, then the failure, the
        checklist or the closure. Returns whether anything reached the log (to sign it again)."""
        plan, run, audit = self.plan, self.run, self.audit
        assert plan is not None and run is not None and audit is not None
        with self.occasion():
            return self._after_run(plan, run, audit, exit_code, message, signer)

    def _after_run(self, plan: Plan, run: RunDir, audit: AuditLog, exit_code: ExitCode, message: str,
                   signer: Signer | None) -> bool:
        before = len(audit.records)
        self._safely("retry", self.retry_pasted)
        records = list(audit.records)
        if exit_code in (ExitCode.FAILED, ExitCode.PREFLIGHT_BLOCKED, ExitCode.INTERRUPTED):
            self._safely("failure", lambda: self.publish(
                ticket_notes.failure_note(plan, run.run_id, message, int(exit_code), records)))
        if ticket_notes.pending_items(plan, records):
            self._safely("checklist", lambda: self.publish(ticket_notes.checklist_note(plan, records, run.run_id)))
        elif exit_code == ExitCode.OK:
            self._safely("closure", lambda: self.close_out(signer))
        return len(audit.records) > before

    def after_confirm(self, action: Action, by: str, note: str, closed: bool, signer: Signer | None) -> bool:
        plan, audit = self.plan, self.audit
        assert plan is not None and audit is not None
        with self.occasion():
            before = len(audit.records)
            self._safely("retry", self.retry_pasted)
            self._confirmed(plan, audit, action, by, note)
            if closed:
                self._safely("closure", lambda: self.close_out(signer))
            return len(audit.records) > before

    def _confirmed(self, plan: Plan, audit: AuditLog, action: Action, by: str, note: str) -> None:
        self._safely(f"confirmed.{action.id}", lambda: self.publish(
            ticket_notes.confirmed_note(plan, action, by, note, list(audit.records))))

    def close_out(self, signer: Signer | None) -> None:
        """The closure note (with the signed chain head), then the report and the signed bundle (which
        holds the closure note's record, with its id), then the ticket's status when one is
        configured: a status that closes the ticket comes after everything posted to it."""
        assert self.plan is not None and self.run is not None and self.audit is not None
        files: list[tuple[str, Path]] = []
        with contextlib.suppress(*TROUBLE):
            files.append(("report", self._keep_copy(self.run.path / "report.html", "report.html")))
        bundle = self.run.path / FOLDER / f"offboard-exit-{self.run.run_id}.tar.gz"
        bundling = self.settings.attach_bundle and signer is not None
        names = [p.name for _, p in files] + ([bundle.name] if bundling else [])
        self.publish(ticket_notes.closure_note(
            self.plan, list(self.audit.records), EvidenceStore(self.run.path).manifest(), last_signature(self.run.path),
            names, visible=self.settings.closure_visible_to_customer))
        if bundling and signer is not None:
            try:
                files.append(("signed evidence bundle", self._bundle(signer, bundle)))
            except TROUBLE as exc:
                self._record("ticket.failed", key=f"file.{bundle.name}", reason=f"no bundle was made: {exc}",
                             title=f"attach the bundle (`offboard bundle {self.run.run_id}`)", paste="", marker="")
        for label, path in files:
            self.attach(path, label)
        if self.settings.close_status:
            self.set_status(self.settings.close_status)

    # -- notes, exactly once ------------------------------------------------------------------

    def publish(self, doc: NoteDoc, *, item: str | None = None) -> list[Outcome]:
        """Post a note (in parts when it is long) unless the ticket already holds it. ``item``: the
        plan's manual item that stands for it when it cannot be posted (no separate paste item)."""
        with self._lock:
            assert self.plan is not None
            exit_id = self.plan.config_fingerprint
            refused = self._last_word(doc.key)
            if refused.get("refused") and refused.get("marker") == marker(exit_id, doc.key, doc.facts):
                # The PSA refused this very note: sent again it would be refused again. It waits for a person.
                return [Outcome(doc.key, "failed", str(refused.get("reason") or "refused"), refused=True)]
            try:
                parts = compose(doc, exit_id, self.limits)
                burst = self._burst()
            except TROUBLE as exc:
                return [self._failed(doc, _why(exc), item)]
            out = [self._post(burst, doc, part) for part in parts]
            self.outcomes += [o for o in out if o.state != "failed"]
            failed = [o for o in out if o.state == "failed"]
            if failed:  # the whole note waits for a person (or a later try): parts already there are found then
                self._failed(doc, failed[0].detail, item, refused=failed[0].refused)
            return out

    def _burst(self) -> Burst:
        """The ticket and its notes as this occasion read them. A closed ticket is read and tried like any
        other: none of the PSAs documents that it refuses notes (a refusal, if it comes, is the PSA's own
        answer, recorded with its words), and what it already holds is found, never pasted again."""
        if self._occasion is not None:
            return self._occasion
        burst = Burst(info=self.session.ticket(), notes=self.session.notes())
        if self._depth:
            self._occasion = burst
        return burst

    def _closed_hint(self, burst: Burst | None) -> str:
        info = burst.info if burst is not None else None
        if info is None or not info.closed:
            return ""
        return f" (the ticket is closed: status {info.status_name or info.status})"

    def _post(self, burst: Burst, doc: NoteDoc, part: NotePart) -> Outcome:
        found = burst.note_with(part.marker)
        if found is not None:
            self._record("ticket.found", key=doc.key, part=part.key, note_id=found.id, marker=part.marker)
            return Outcome(part.key, "found", found.id)
        body = REDACTOR.text(part.body)  # the notes are built from the plan and the log; never let a secret out
        for attempt in (1, 2):
            try:
                posted = self.session.add_note(part.title, body, customer_visible=part.customer_visible)
            except AmbiguousWrite as exc:
                # The note may be there: read the notes, and post again only if it is not.
                try:
                    burst.notes = self.session.notes()
                except TROUBLE as again:
                    return Outcome(part.key, "failed", f"{exc}; the notes could not be read back ({_why(again)})")
                found = burst.note_with(part.marker)
                if found is not None:
                    self._record("ticket.posted", key=doc.key, part=part.key, note_id=found.id, marker=part.marker,
                                 settled_by="re-read", visible=part.customer_visible)
                    return Outcome(part.key, "posted", found.id)
                if attempt == 2:
                    return Outcome(part.key, "failed", str(exc))
                continue
            except VendorRefused as exc:
                return Outcome(part.key, "failed", _why(exc) + self._closed_hint(burst), refused=True)
            except TROUBLE as exc:
                return Outcome(part.key, "failed", _why(exc))
            burst.notes.append(TicketNote(posted.id, body))
            self._record("ticket.posted", key=doc.key, part=part.key, note_id=posted.id, marker=part.marker,
                         visible=part.customer_visible, http=posted.http.as_dict() if posted.http else None)
            return Outcome(part.key, "posted", posted.id)
        raise AssertionError("unreachable")

    def _failed(self, doc: NoteDoc, reason: str, item: str | None, *, refused: bool = False) -> Outcome:
        """Keep the note to paste by hand (as plain text, with its marker) and record why."""
        assert self.plan is not None
        text = _as_text(doc, self.plan.config_fingerprint)
        paste = ""
        if self.run is not None:
            folder = self.run.path / FOLDER
            with contextlib.suppress(OSError):
                atomic_write_text(folder / f"{doc.key}.txt", text)
                atomic_write_text(folder / f"{doc.key}.json", json.dumps(asdict(doc), indent=2) + "\n")
                paste = f"{FOLDER}/{doc.key}.txt"
        self._record("ticket.failed", key=doc.key, reason=reason, paste=paste, item=item,
                     marker=marker(self.plan.config_fingerprint, doc.key, doc.facts), title=doc.title,
                     refused=refused or None)
        outcome = Outcome(doc.key, "failed", reason, refused)
        if item is None:  # the plan's own item says it otherwise
            self.outcomes.append(outcome)
        return outcome

    def retry_pasted(self) -> None:
        """Notes that could not be posted earlier (and nobody pasted): try them again now."""
        if self.run is None:
            return
        for key, waiting in sorted(self.open_pastes().items()):
            if waiting.get("refused"):
                continue  # the PSA refused it: sending it again would be refused again; a person's item
            kept = Path(str(waiting.get("file") or ""))
            if key.startswith("file.") and waiting.get("file") and kept.is_file() and not waiting.get("linked"):
                if self.attach(kept, "file").state != "failed":
                    self._record("ticket.pasted", key=key, by="offboard", note="attached on a later try")
                continue
            if key == "status" and self.settings.close_status:
                if self.set_status(self.settings.close_status).state != "failed":
                    self._record("ticket.pasted", key=key, by="offboard", note="set on a later try")
                continue
            path = self.run.path / FOLDER / f"{key}.json"
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                doc = NoteDoc(key=data["key"], title=data["title"], facts=data["facts"],
                              blocks=tuple(Block(b["kind"], b["text"]) for b in data["blocks"]),
                              customer_visible=bool(data.get("customer_visible")))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a file to attach, or a note kept only as text: the person's item stays
            if all(o.state != "failed" for o in self.publish(doc)):
                self._record("ticket.pasted", key=key, by="offboard", note="posted on a later try")

    def _last_word(self, key: str) -> dict[str, Any]:
        """The detail of the log's last ticket record for ``key`` when it is a failure (the plan's own items
        included), else {}."""
        last: dict[str, Any] = {}
        for r in self.audit.records if self.audit is not None else []:
            detail = r.get("detail")
            if r["event"] in ticket_notes.EVENTS and isinstance(detail, dict) and detail.get("key") == key:
                last = detail if r["event"] == "ticket.failed" else {}
        return last

    def _linked(self, key: str, sha: str) -> bool:
        """Whether these bytes were already found unfit for the PSA (a note names where they are kept)."""
        return any(r["event"] == "ticket.linked" and isinstance(r.get("detail"), dict)
                   and r["detail"].get("key") == key and r["detail"].get("sha256") == sha
                   for r in (self.audit.records if self.audit is not None else []))

    def open_pastes(self) -> dict[str, dict[str, Any]]:
        """The notes and files waiting for a person (or a later try): last word ``ticket.failed``."""
        if self.audit is None:
            return {}
        return open_pastes(self.audit.records)

    # -- files ---------------------------------------------------------------------------------

    def attach(self, path: Path, label: str) -> Outcome:
        """Attach a file unless the ticket has it (same name, same SHA-256); where the PSA will not
        take it (type, size, a refusal), post a note naming where it is kept instead."""
        with self._lock:
            assert self.plan is not None
            content = path.read_bytes()
            sha = hashlib.sha256(content).hexdigest()
            key = f"file.{path.name}"
            mark = marker(self.plan.config_fingerprint, key, sha)
            description = f"offboard: {label} of the exit, SHA-256 {sha} {mark}"
            if self._linked(key, sha):
                # The PSA will not hold these bytes (refused, or over its limits): its note says where they are
                # kept; sent again they would be refused again. A person's item, or done once they confirmed it.
                waiting = self._last_word(key)
                if not waiting:
                    return Outcome(key, "found", "kept as its note says (confirmed by a person)")
                return Outcome(key, "failed", str(waiting.get("reason") or "refused"), refused=True)
            limits = self.limits
            if len(content) > limits.max_file_bytes:
                return self._link(path, sha, f"{len(content):,} bytes is over what {self.session.display_name} "
                                             f"takes through its API ({limits.max_file_bytes:,})")
            if limits.file_types is not None and not any(path.name.endswith(t) for t in limits.file_types):
                return self._link(path, sha, f"{self.session.display_name} does not take this file type")
            try:
                burst = self._burst()
                if burst.files is None:
                    burst.files = self.session.files()
            except TROUBLE as exc:
                return self._file_failed(path, sha, _why(exc))
            found = burst.file_with(path.name, mark)
            if found is not None:
                self._record("ticket.found", key=key, file_id=found.id, name=path.name, sha256=sha, marker=mark)
                return Outcome(key, "found", found.id)
            for attempt in (1, 2):
                try:
                    posted = self.session.attach(path.name, content, description, customer_visible=False)
                except AmbiguousWrite as exc:
                    try:
                        burst.files = self.session.files()
                    except TROUBLE as again:
                        return self._file_failed(path, sha, f"{exc}; the files could not be read back ({_why(again)})")
                    found = burst.file_with(path.name, mark)
                    if found is not None:
                        self._record("ticket.attached", key=key, file_id=found.id, name=path.name, sha256=sha,
                                     bytes=len(content), marker=mark, settled_by="re-read")
                        return Outcome(key, "posted", found.id)
                    if attempt == 2:
                        return self._file_failed(path, sha, str(exc))
                    continue
                except VendorError as exc:
                    if isinstance(exc, VendorRefused) or (
                            exc.status is not None and 400 <= exc.status < 500 and exc.status not in (401, 429)):
                        return self._link(path, sha, f"{self.session.display_name} refused it ({_why(exc)})"
                                          + self._closed_hint(burst))
                    return self._file_failed(path, sha, _why(exc))
                except TROUBLE as exc:
                    return self._file_failed(path, sha, _why(exc))
                burst.files.append(TicketFile(posted.id, path.name, description, len(content)))
                self._record("ticket.attached", key=key, file_id=posted.id, name=path.name, sha256=sha,
                             bytes=len(content), marker=mark, http=posted.http.as_dict() if posted.http else None)
                outcome = Outcome(key, "posted", posted.id)
                self.outcomes.append(outcome)
                return outcome
            raise AssertionError("unreachable")

    def _where(self, path: Path) -> str:
        if self.settings.files_url:
            return f"{self.settings.files_url.rstrip('/')}/{path.name} (upload it there from {path})"
        return f"the run folder on the offboard machine: {path}"

    def _link(self, path: Path, sha: str, reason: str) -> Outcome:
        """The PSA will not hold the file: a note says where it is, and a person attaches or uploads it."""
        size = path.stat().st_size
        self.publish(ticket_notes.link_note(path.name, size, sha, reason, self._where(path)))
        self._record("ticket.linked", key=f"file.{path.name}", name=path.name, sha256=sha, reason=reason)
        return self._file_failed(path, sha, reason, linked=True)

    def _file_failed(self, path: Path, sha: str, reason: str, *, linked: bool = False) -> Outcome:
        """The file waits for a person (a later try sends it again, unless the PSA refused its type or size)."""
        key = f"file.{path.name}"
        self._record("ticket.failed", key=key, reason=reason, file=str(path), sha256=sha, title=f"attach {path.name}",
                     paste="", item=None, marker="", linked=linked or None)
        outcome = Outcome(key, "failed", reason)
        self.outcomes.append(outcome)
        return outcome

    def _keep_copy(self, source: Path, name: str) -> Path:
        """The file as attached, kept beside the texts to paste: a retry sends the same bytes
        (the run's own report is rewritten as the log grows)."""
        assert self.run is not None
        dest = self.run.path / FOLDER / name
        if not dest.exists():
            atomic_write_bytes(dest, source.read_bytes())
        return dest

    def _bundle(self, signer: Signer, dest: Path) -> Path:
        """The signed bundle of the run as it stands (made once: a retry attaches the same bytes).
        The log is signed first, so the bundle vouches for every line, the postings' included."""
        from offboard.proof import bundle as bundles

        assert self.run is not None and self.audit is not None
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.audit.sync()
            signer.sign_head(self.run.path, self.run.run_id, len(self.audit.records), self.audit.last_hash)
            bundles.create(self.run, signer, dest)
        return dest

    # -- status ----------------------------------------------------------------------------------

    def set_status(self, status: str) -> Outcome:
        """Set the configured status once the exit has ended; re-read first (it may be set already)
        and after (to record what the PSA shows)."""
        with self._lock:
            try:
                info = self.session.ticket()
                if info.status == status:
                    self._record("ticket.found", key="status", status=status)
                    return Outcome("status", "found", status)
                try:
                    posted = self.session.set_status(status)
                except AmbiguousWrite:
                    posted = None
                now = self.session.ticket()
            except TROUBLE as exc:
                return self._status_failed(status, _why(exc))
            if self._occasion is not None:
                self._occasion.info = now
            if now.status != status:
                return self._status_failed(status, f"the ticket still shows status {now.status_name or now.status}")
            self._record("ticket.status", key="status", status=status, name=now.status_name,
                         settled_by="re-read" if posted is None else None)
            return Outcome("status", "posted", status)

    def _status_failed(self, status: str, reason: str) -> Outcome:
        self._record("ticket.failed", key="status", reason=reason, title=f"set the ticket's status to {status}",
                     paste="", item=None, marker="")
        outcome = Outcome("status", "failed", reason)
        self.outcomes.append(outcome)
        return outcome

    # -- the scope item, as an API action ---------------------------------------------------------

    def scope_action(self, action: Action) -> ActionResult:
        if self.plan is None:
            return ActionResult("failure", "no plan is bound to the ticket", manual_fallback=True)
        out = self.publish(ticket_notes.scope_note(self.plan), item=action.id)
        failed = [o for o in out if o.state == "failed"]
        if failed:
            return ActionResult("failure", f"{self.ref}: {failed[0].detail}; paste {FOLDER}/scope.txt into the ticket "
                                "(it carries the note's marker), then confirm", manual_fallback=True)
        check = self.scope_check(action)
        if check is None or not check.passed:
            return ActionResult("failure", f"{self.ref}: the note was sent but the re-read does not show it "
                                f"({check.detail if check else 'the ticket could not be read'}); paste "
                                f"{FOLDER}/scope.txt, then confirm", manual_fallback=True)
        ids = ", ".join(o.detail for o in out)
        how = "already on the ticket" if all(o.state == "found" for o in out) else "posted"
        return ActionResult("success", f"{how}: note {ids} on {self.ref}; the re-read shows it", self._http())

    def scope_check(self, action: Action) -> Check | None:
        """Re-read the ticket: is the scope note there (posted by offboard, or pasted with its marker)?
        None when the PSA cannot be read: the person's word is recorded instead."""
        if self.plan is None:
            return None
        doc = ticket_notes.scope_note(self.plan)
        exit_id = self.plan.config_fingerprint
        whole = marker(exit_id, doc.key, doc.facts)
        try:
            parts = compose(doc, exit_id, self.limits)
            notes = self.session.notes()
        except TROUBLE:
            return None
        texts = [n.text for n in notes]
        ok = any(whole in t for t in texts) or all(any(p.marker in t for t in texts) for p in parts)
        detail = (f"{self.ref} holds the scope note ({whole})" if ok
                  else f"{self.ref} has no note with the marker {whole}")
        return Check("exit scope recorded in the ticket", ok, detail, http=self._http(), action_id=action.id)

    def scope_confirm(self, action: Action) -> Check | None:
        """A person confirms the scope item: the ticket is re-read; where the note is still missing and
        the PSA takes notes again, offboard posts it now rather than ask for a paste."""
        check = self.scope_check(action)
        if check is not None and not check.passed and self.plan is not None:
            self.publish(ticket_notes.scope_note(self.plan), item=action.id)
            check = self.scope_check(action)
        return check

    def _http(self) -> Any:
        http = getattr(self.session, "http", None)
        return getattr(http, "last_call", None)

    # -- pasted by hand ----------------------------------------------------------------------------

    def confirm_pasted(self, key: str, by: str, note: str) -> tuple[bool, str]:
        """A person pasted a note (or attached a file) by hand: re-read the ticket where it can be
        read; refuse while it does not show it."""
        assert self.audit is not None
        waiting = self.open_pastes()
        if key not in waiting:
            known = ", ".join(PREFIX + k for k in sorted(waiting)) or "none"
            raise BadInput(f"{PREFIX}{key} is not a ticket item waiting for a person; waiting: {known}")
        pending = waiting[key]
        mark = pending.get("marker") or ""
        seen = "the PSA could not be read: recorded on your word"
        try:
            if key.startswith("file."):
                name = key.removeprefix("file.")
                files = self.session.files()
                ok = any(f.name == name for f in files)
                seen = f"{self.ref} lists {name}" if ok else f"{self.ref} lists no file named {name}"
                if not ok and pending.get("linked") and self.plan is not None:
                    # The PSA will not hold the file: its note saying where it is kept is what the ticket holds.
                    doc = ticket_notes.link_note(name, 0, str(pending.get("sha256") or ""), "", "")
                    link = marker(self.plan.config_fingerprint, doc.key, doc.facts)
                    ok = any(link in n.text for n in self.session.notes())
                    seen = (f"{self.ref} holds the note saying where {name} is kept ({link})" if ok
                            else f"{self.ref} lists no file named {name} and no note saying where it is kept")
            elif key == "status":
                info = self.session.ticket()
                ok = info.status == self.settings.close_status
                seen = f"{self.ref} has status {info.status_name or info.status}"
            else:
                ok = any(mark in n.text for n in self.session.notes())
                seen = f"{self.ref} holds a note with {mark}" if ok else f"{self.ref} has no note with {mark}"
        except TROUBLE:
            ok = True
        if not ok:
            return False, seen
        self._record("ticket.pasted", key=key, by=by, note=note, seen=seen)
        return True, seen

    # -- the audit log -------------------------------------------------------------------------------

    def _record(self, event: str, **detail: Any) -> None:
        if self.audit is None:
            return
        with contextlib.suppress(OSError):
            self.audit.emit(event, vendor=self.session.name, step="ticket", outcome=(
                "failure" if event == "ticket.failed" else "success"),
                detail={"ticket": self.session.ticket_id, **{k: v for k, v in detail.items() if v is not None}})

    def _worst(self, out: list[Outcome], key: str) -> Outcome:
        failed = [o for o in out if o.state == "failed"]
        if failed:
            return failed[0]
        if all(o.state == "found" for o in out):
            return Outcome(key, "found", ", ".join(o.detail for o in out))
        return Outcome(key, "posted", ", ".join(o.detail for o in out))


def _as_text(doc: NoteDoc, exit_id: str) -> str:
    whole = compose(doc, exit_id, Limits("text", 10**9, 0))[0]
    return REDACTOR.text(whole.body) + "\n"


def _why(exc: BaseException) -> str:
    return REDACTOR.text(str(exc) or type(exc).__name__)


# -- the plan's scope item, and the vendor sessions around it -------------------------------------


def as_api_action(action: Action, ref: str) -> Action:
    """The runbooks' "record the exit scope in the PSA ticket", done by offboard: posted at `plan -o`,
    re-read (and posted if missing) at apply; its manual instructions stay as the fallback."""
    return action.model_copy(update={
        "kind": "api", "operation": SCOPE_OPERATION, "destructive": False,
        "summary": f"record the exit scope and the plan summary in {ref} (internal note), re-read to verify",
        "call": f"POST internal note to {ref}"})


def with_ticket(parts: PlanParts, ref: str) -> PlanParts:
    steps = tuple(s.model_copy(update={"actions": tuple(
        as_api_action(a, ref) if a.kind == "manual" and a.operation == RECORD_SCOPE else a for a in s.actions)})
        for s in parts.steps)
    return PlanParts(steps=steps, skipped=parts.skipped)


class TicketAware:
    """A vendor session whose scope item the ticket does; everything else is the vendor's."""

    def __init__(self, inner: VendorSession, ticket: Ticket) -> None:
        self.inner = inner
        self.ticket = ticket

    def discover(self) -> Inventory:
        return self.inner.discover()

    def owners(self) -> Owners:
        return listed_owners(self.inner)

    def preflight(self, inventory: Inventory) -> list[Finding]:
        return self.inner.preflight(inventory)

    def plan(self, inventory: Inventory) -> PlanParts:
        return with_ticket(self.inner.plan(inventory), self.ticket.ref)

    def execute(self, action: Action) -> ActionResult:
        if action.operation == SCOPE_OPERATION:
            return self.ticket.scope_action(action)
        return self.inner.execute(action)

    def reread(self, action: Action) -> ActionResult:
        if action.operation == SCOPE_OPERATION:
            check = self.ticket.scope_check(action)
            return ActionResult("success" if check and check.passed else "failure",
                                check.detail if check else "the ticket could not be read")
        return self.inner.reread(action)

    def owner_now(self, action: Action) -> ActionResult:
        return self.inner.owner_now(action)

    def exit_identity(self) -> str:
        return self.inner.exit_identity()

    def verify(self, vendor_plan: VendorPlan | None, inventory: Inventory) -> list[Check]:
        return self.inner.verify(vendor_plan, inventory)

    @property
    def calls_made(self) -> int:
        return self.inner.calls_made

    def check_manual(self, action: Action) -> Check | None:
        if action.operation in (SCOPE_OPERATION, RECORD_SCOPE):
            return self.ticket.scope_confirm(action)
        return self.inner.check_manual(action)

    def documents(self, vendor_plan: VendorPlan, states: Mapping[str, str]) -> tuple[Any, ...]:
        return self.inner.documents(vendor_plan, states)

    def watch(self, since: datetime) -> list[Watched]:
        return self.inner.watch(since)

    def close(self) -> None:
        self.inner.close()


def summary(ticket: Ticket | None) -> list[str]:
    """What this process did on the ticket, one line each, for the screen."""
    if ticket is None or not ticket.outcomes:
        return []
    posted = sum(1 for o in ticket.outcomes if o.state == "posted")
    found = sum(1 for o in ticket.outcomes if o.state == "found")
    lines = [f"{ticket.ref}: {posted} note(s) or file(s) posted, {found} already there (not posted again)."]
    for o in ticket.outcomes:
        if o.state == "failed":
            lines.append(f"{ticket.ref}: {o.key} not posted ({o.detail}); it is on the checklist: "
                         f"offboard confirm {PREFIX}{o.key} once it is in the ticket")
    return lines


def record_scope(ticket: Ticket, plan: Plan) -> str:
    """`offboard plan -o`: post the scope note; one line saying what happened (never an error: apply
    re-reads the ticket and posts it then, or hands it to a person)."""
    outcome = ticket.record_scope(plan)
    if outcome.state == "failed":
        return (f"{ticket.ref}: the exit scope was not recorded ({outcome.detail}); apply tries again, and "
                "lists it on the manual checklist if the ticket still cannot take it")
    what = "already holds" if outcome.state == "found" else "now holds"
    return f"{ticket.ref} {what} the exit scope and the plan summary (note {outcome.detail})."


def open_ticket(cfg: ExitConfig, session: TicketSession) -> Ticket:
    if not isinstance(cfg.psa, PsaSettings):
        raise BadInput("config: [psa] was not validated by a PSA connector's settings")
    return Ticket(session, cfg.psa)
