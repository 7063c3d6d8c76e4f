"""One Autotask ticket: its state, its notes (plain text), its attachments, its status."""

from __future__ import annotations

import re

from offboard.connectors.psa import MARKER_RE, Limits, Posted, TicketFile, TicketInfo, TicketNote, Visibility
from offboard.wire.http import VendorHttp

from . import publish
from .client import AutotaskClient
from .settings import AutotaskSettings

# Autotask stores plain text only and refuses Rich Text (notes §2): a "<name>" in a portal path must not
# read as a tag, so angle brackets around a word become the single guillemets that look the same.
TAG_LIKE = re.compile(r"<(/?[A-Za-z][^<>]*)>")
NOTE_CHARS = 30_000  # believed about 32,000 (notes §2, UNCONFIRMED): split below it
TITLE_CHARS = 250  # a note's title; the title is also the body's first line, so nothing is lost
FALLBACK_VISIBLE, FALLBACK_TYPE = 1, 1  # notes §2 (UNCONFIRMED): only where the picklist names none
# The internal publish value has no fallback: a note is posted only with a value read as internal.


class AutotaskTicketSession:
    name = "autotask"
    display_name = "Autotask"

    def __init__(self, http: VendorHttp, settings: AutotaskSettings) -> None:
        self.http = http
        self.s = settings
        self.client = AutotaskClient(http)
        self.ticket_id = settings.ticket_id
        self._id = int(settings.ticket_id)
        self.limits = Limits("text", NOTE_CHARS, int(settings.max_file_mb * 1_000_000))
        self._picks: tuple[int, int, int, int] | None = None  # (note type, internal, visible, file internal)
        self._labels = ("", "")

    def close(self) -> None:
        self.http.close()

    def ticket(self) -> TicketInfo:
        t = self.client.ticket(self._id)
        status = "" if t.status is None else str(t.status)
        return TicketInfo(str(t.id), t.title or "", status, status, t.status in self.s.closed_status_ids)

    def notes(self) -> list[TicketNote]:
        return [TicketNote(str(n.id), f"{n.title or ''}\n{n.description or ''}") for n in self.client.notes(self._id)]

    def _picklists(self) -> tuple[int, int, int, int]:
        """publish and noteType are per-tenant picklists (notes §2): read once, the internal value chosen
        by its label's meaning (publish.py), never by its id."""
        if self._picks is None:
            s = self.s
            fields = {f.name.lower(): f.picklistValues or [] for f in self.client.note_fields().fields}
            internal = publish.internal(fields.get("publish", []), s.publish_internal, what="note",
                                        key="publish_internal")
            files = {f.name.lower(): f.picklistValues or [] for f in self.client.attachment_fields().fields}
            files_internal = publish.internal(files.get("publish", []), s.attachment_publish_internal,
                                              what="attachment", key="attachment_publish_internal")
            active = [p for p in fields.get("notetype", []) if p.isActive is not False]
            default = next((p for p in active if p.isDefaultValue), None)
            note_type = s.note_type or (int(default.value) if default else FALLBACK_TYPE)
            by_label = {(p.label or "").lower(): int(p.value) for p in fields.get("publish", [])
                        if p.isActive is not False}
            visible = s.publish_visible or next((v for k, v in by_label.items() if k.startswith("all")),
                                                FALLBACK_VISIBLE)
            self._labels = (str(internal), str(files_internal))
            self._picks = (note_type, internal.value, visible, files_internal.value)
        return self._picks

    def visibility(self) -> Visibility:
        self._picklists()
        notes, files = self._labels
        return Visibility(notes, files, "internal to the MSP by its label: never co-managed or all-users, which "
                          "people at the customer read; the picklists are the tenant's (TicketNotes and "
                          "TicketAttachments entityInformation/fields)", "publish_internal")

    def add_note(self, title: str, body: str, *, customer_visible: bool) -> Posted:
        note_type, internal, visible, _ = self._picklists()
        body = TAG_LIKE.sub(lambda m: f"\u2039{m.group(1)}\u203a", body)
        note_id, reply = self.client.add_note(self._id, title[:TITLE_CHARS], body, note_type,
                                              visible if customer_visible else internal)
        return Posted(str(note_id), reply.record)

    def files(self) -> list[TicketFile]:
        return [TicketFile(str(a.id), a.fullPath or "", a.title or "",
                           None if a.fileSize is None else int(a.fileSize)) for a in self.client.attachments(self._id)]

    def attach(self, name: str, content: bytes, description: str, *, customer_visible: bool) -> Posted:
        _, _, visible, internal = self._picklists()
        found = MARKER_RE.search(description)
        title = f"{name} {found.group(0)}" if found else name
        file_id, reply = self.client.add_attachment(self._id, name, content, title[:TITLE_CHARS],
                                                    visible if customer_visible else internal)
        return Posted(str(file_id), reply.record)

    def set_status(self, status: str) -> Posted:
        ticket_id, reply = self.client.set_status(self._id, int(status))
        return Posted(str(ticket_id), reply.record)
