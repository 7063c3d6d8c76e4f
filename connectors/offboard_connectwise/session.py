"""One ConnectWise service ticket: its state, its notes, its documents, its status."""

from __future__ import annotations

from offboard.connectors.psa import MARKER_RE, Limits, Posted, TicketFile, TicketInfo, TicketNote, Visibility
from offboard.wire.http import VendorHttp

from .client import ConnectWiseClient
from .settings import ConnectWiseSettings

NOTE_CHARS = 8_000  # the note text limit is not published (notes §4): long notes are split below this


VISIBILITY = Visibility(
    "internalAnalysisFlag true (Internal Analysis), detailDescriptionFlag and resolutionFlag false, "
    "processNotifications false", "documents with privateFlag true",
    "internal, no customer notification (ConnectWise's ServiceNote fields, notes §1)", "(none: fixed flags)")


class ConnectWiseTicketSession:
    name = "connectwise"
    display_name = "ConnectWise PSA"

    def __init__(self, http: VendorHttp, settings: ConnectWiseSettings) -> None:
        self.http = http
        self.s = settings
        self.client = ConnectWiseClient(http)
        self.ticket_id = settings.ticket_id
        self._id = int(settings.ticket_id)
        # Text: whether ConnectWise renders Markdown or HTML in a note is not confirmed (notes §4).
        self.limits = Limits("text", NOTE_CHARS, int(settings.max_file_mb * 1024 * 1024))

    def close(self) -> None:
        self.http.close()

    def ticket(self) -> TicketInfo:
        t = self.client.ticket(self._id)
        status = t.status or None
        return TicketInfo(str(t.id), t.summary or "", str(status.id) if status and status.id is not None else "",
                          status.name or "" if status else "", bool(t.closedFlag))

    def visibility(self) -> Visibility:
        """Fixed by ConnectWise's flags, not a tenant picklist: a note is Internal Analysis
        (``internalAnalysisFlag``; ``detailDescriptionFlag`` is the customer-facing Discussion), with
        ``processNotifications`` false so no workflow mails the customer; a document is private."""
        return VISIBILITY

    def notes(self) -> list[TicketNote]:
        return [TicketNote(str(n.id), n.text or "") for n in self.client.notes(self._id)]

    def add_note(self, title: str, body: str, *, customer_visible: bool) -> Posted:
        note, reply = self.client.add_note(self._id, body, customer_visible=customer_visible)
        return Posted(str(note.id), reply.record)

    def edit_note(self, note_id: str, title: str, body: str) -> Posted:
        """ConnectWise documents changing a note (a JSON-Patch of its ``text``): apply's claim of the exit is
        renewed and released in its one note rather than by a new note every few minutes."""
        note, reply = self.client.edit_note(self._id, int(note_id), body)
        return Posted(str(note.id), reply.record)

    def files(self) -> list[TicketFile]:
        return [TicketFile(str(d.id), d.fileName or "", d.title or "") for d in self.client.documents(self._id)]

    def attach(self, name: str, content: bytes, description: str, *, customer_visible: bool) -> Posted:
        # A document's title is short: the file's name and offboard's marker (the SHA-256 is in the marker's
        # hash and in the note that names the file).
        found = MARKER_RE.search(description)
        title = f"{name} {found.group(0)}" if found else name
        doc, reply = self.client.add_document(self._id, name, content, title)
        return Posted(str(doc.id), reply.record)

    def set_status(self, status: str) -> Posted:
        ticket, reply = self.client.set_status(self._id, int(status))
        return Posted(str(ticket.id), reply.record)
