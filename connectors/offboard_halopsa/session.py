"""One HaloPSA ticket: its state, its actions (notes), its attachments, its status."""

from __future__ import annotations

from offboard.connectors.psa import Limits, Posted, TicketFile, TicketInfo, TicketNote, Visibility
from offboard.errors import BadInput, VendorAuthError
from offboard.wire.http import VendorHttp

from .client import HaloClient
from .settings import HaloSettings

NOTE_CHARS = 30_000  # Halo's note limit is not published (notes §4): long notes are split below it


class HaloTicketSession:
    name = "halopsa"
    display_name = "HaloPSA"

    def __init__(self, http: VendorHttp, settings: HaloSettings) -> None:
        self.http = http
        self.s = settings
        self.client = HaloClient(http)
        self.ticket_id = settings.ticket_id
        self._id = int(settings.ticket_id)
        self._visibility: Visibility | None = None
        self.limits = Limits("html", NOTE_CHARS, int(settings.max_file_mb * 1024 * 1024))

    def close(self) -> None:
        self.http.close()

    def ticket(self) -> TicketInfo:
        t = self.client.ticket(self._id)
        status = t.status_id
        closed = status in self.s.closed_status_ids
        return TicketInfo(str(t.id), t.summary or "", "" if status is None else str(status), t.status_name or "",
                          closed)

    def visibility(self) -> Visibility:
        """Every action is posted with ``hiddenfromuser: true`` (notes §3: that makes it internal) and
        ``sendemail: false``, as the configured action type, which must itself be one hidden from the
        end user: an action type made for talking to the user is never used for offboard's notes."""
        if self._visibility is None:
            try:
                kind = self.client.outcome(self.s.outcome_id)
            except VendorAuthError as exc:
                if exc.status != 403:
                    raise
                # The API agent may not read action types (Halo's permissions gate each endpoint): each
                # action's own hiddenfromuser, the documented flag, is what keeps it internal then.
                self._visibility = Visibility(
                    f"action type {self.s.outcome_id} (not readable by the API agent) with hiddenfromuser true, "
                    "sendemail false", "attachments with showforusers false",
                    "hidden from the end user by each action's hiddenfromuser (notes §3)", "outcome_id")
                return self._visibility
            if not kind.hidefromuser:
                hidden = [f'{o.id} "{o.outcome or ""}"' for o in self.client.outcomes() if o.hidefromuser]
                raise BadInput(f'config: psa.outcome_id = {kind.id} is the HaloPSA action type "{kind.outcome or ""}", '
                               "which is not hidden from the end user; set psa.outcome_id to an action type hidden "
                               f"from users (found: {', '.join(hidden) or 'none'})")
            self._visibility = Visibility(
                f'action type {kind.id} "{kind.outcome or ""}" with hiddenfromuser true, sendemail false',
                "attachments with showforusers false",
                "hidden from the end user: the action type's hidefromuser and each action's hiddenfromuser "
                "(Halo's OpenAPI document, schemas TOutcome, Actions, Attachment)", "outcome_id")
        return self._visibility

    def notes(self) -> list[TicketNote]:
        return [TicketNote(str(a.id), f"{a.note or ''}\n{a.note_html or ''}") for a in self.client.actions(self._id)]

    def add_note(self, title: str, body: str, *, customer_visible: bool) -> Posted:
        self.visibility()
        action, reply = self.client.add_action(self._id, self.s.outcome_id, body, hidden=not customer_visible)
        return Posted(str(action.id), reply.record)

    def files(self) -> list[TicketFile]:
        return [TicketFile(str(a.id), a.filename or "", f"{a.note or ''} {a.desc or ''}", a.filesize)
                for a in self.client.attachments(self._id)]

    def attach(self, name: str, content: bytes, description: str, *, customer_visible: bool) -> Posted:
        self.visibility()
        attachment, reply = self.client.add_attachment(self._id, name, content, description)
        return Posted(str(attachment.id), reply.record)

    def set_status(self, status: str) -> Posted:
        ticket, reply = self.client.set_status(self._id, int(status))
        return Posted(str(ticket.id), reply.record)

