"""What a PSA connector provides (the exit's ticket), and how the core finds the installed ones.

A PSA connector is a distribution that registers an object in the ``offboard.psa``
entry-point group; the ``[psa]`` section's ``kind`` names it. The core never imports one by
name. A PSA is not a vendor the customer leaves: it is where the MSP runs the exit from, so
its session only reads and writes one ticket — its state, its notes, its files, its status.

What the core asks of a ticket is small on purpose: none of the PSAs offers an idempotency key,
so exactly-once is the core's (a marker in every note, read back before posting), and each
connector only says how its PSA lists and adds things.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import ClassVar, Literal, Protocol, TypeVar, runtime_checkable

import httpx
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from offboard.config import VendorSettings
from offboard.connectors import SandboxKit
from offboard.connectors.base import HttpConnector
from offboard.errors import BadInput
from offboard.text import one_line
from offboard.wire.credentials import CredentialField
from offboard.wire.http import HttpRecord, RetryPolicy

GROUP = "offboard.psa"
SECTION = "psa"  # the config section, the keyring service (offboard:psa) and OFFBOARD_PSA_* variables
# The runbooks' manual item "record the exit scope in the PSA ticket": with a [psa] section the
# core posts that note itself and the item becomes an API action (a connector's steps name it).
RECORD_SCOPE = "scope.record-in-psa"
NoteFormat = Literal["text", "html"]


class PsaSettings(VendorSettings):
    """The fields every ``[psa]`` section has; a connector's model adds its own (URLs, ids)."""

    model_config = SettingsConfigDict(env_prefix="OFFBOARD_PSA__")

    kind: str = Field(description="which PSA: the name of an installed PSA connector")
    ticket_id: str = Field(min_length=1, description="the exit's ticket (defaults to [customer] ticket)")
    closure_visible_to_customer: bool = Field(
        False, description="post the closure note where the customer sees it (every other note is internal)")
    close_status: str = Field("", description="the ticket status to set once the exit has ended; empty: leave it")
    attach_bundle: bool = Field(True, description="attach the signed evidence bundle (needs a signing key)")
    files_url: str = Field("", description="where files the PSA refuses (type or size) are kept instead; "
                                           "named in the note that replaces the attachment")
    max_note_chars: int | None = Field(None, ge=500, description="split notes longer than this; default: the "
                                                                 "PSA's own limit")
    claim_minutes: float | None = Field(
        None, gt=0, le=24 * 60, description="how long apply's claim of the exit in the ticket lasts after each "
                                            "renewal; default: 30 where the PSA's API edits a note, else 120 "
                                            "(at least 10 there: each renewal is a new note)")

    # How a person finds the ticket's id and a status's id, the one line a wrong value gets: a PSA
    # whose ids are numbers sets them (empty: the PSA's ids are any text).
    ticket_id_hint: ClassVar[str] = ""
    status_hint: ClassVar[str] = ""
    # A PSA whose API cannot edit a note renews the claim with a new note every half of claim_minutes,
    # in a ticket people read: a floor (1 minute would post 720 notes in a 6-hour exit).
    claim_renewed_by_new_note: ClassVar[bool] = True
    MIN_CLAIM_MINUTES_BY_NOTE: ClassVar[float] = 10.0

    @field_validator("ticket_id")
    @classmethod
    def _ticket(cls, v: str) -> str:
        if cls.ticket_id_hint and not v.strip().isdigit():
            raise ValueError(cls.ticket_id_hint)
        return v.strip()

    @field_validator("claim_minutes")
    @classmethod
    def _claim(cls, v: float | None) -> float | None:
        if v is not None and cls.claim_renewed_by_new_note and v < cls.MIN_CLAIM_MINUTES_BY_NOTE:
            raise ValueError(f"at least {cls.MIN_CLAIM_MINUTES_BY_NOTE:g} with this PSA: each renewal of the claim "
                             f"is a new note in the ticket, one every {v / 2:g} minute(s) at {v:g}")
        return v

    @field_validator("close_status")
    @classmethod
    def _status(cls, v: str) -> str:
        if v and cls.status_hint and not v.strip().isdigit():
            raise ValueError(cls.status_hint)
        return v.strip()

    def scope_key(self) -> dict[str, str]:
        # Which ticket the plan's scope is recorded in; tuning fields (limits, statuses) are left out.
        return {"kind": self.kind, "ticket": self.ticket_id}


@dataclass(frozen=True)
class Limits:
    """What one PSA accepts, as far as its documentation says; the PSA's refusal is the backstop."""

    note_format: NoteFormat
    max_note_chars: int
    max_file_bytes: int
    file_types: frozenset[str] | None = None  # suffixes accepted (".html", ".tar.gz"); None: the PSA decides


@dataclass(frozen=True)
class TicketInfo:
    id: str
    summary: str
    status: str  # the PSA's status id, as text
    status_name: str
    closed: bool


@dataclass(frozen=True)
class TicketNote:
    id: str
    text: str  # the body as the PSA returns it: searched for offboard's markers


@dataclass(frozen=True)
class TicketFile:
    id: str
    name: str
    description: str  # where offboard's marker for the file is kept
    size: int | None = None


@dataclass(frozen=True)
class Visibility:
    """What offboard posts its internal notes and files as, chosen by the value's documented meaning
    (internal to the MSP: never a value the customer or its co-managing IT staff can read)."""

    notes: str  # the value by label and id, as the PSA names it: 'publish 7 "Internal Only"'
    files: str
    meaning: str  # why it is internal, and where that is documented
    config_key: str  # the [psa] key that names another value

    def line(self, ref: str) -> str:
        return f"{ref}: internal notes as {self.notes}, files as {self.files} ({self.meaning})"


@dataclass(frozen=True)
class Posted:
    id: str
    http: HttpRecord | None = None


class TicketSession(Protocol):
    """One PSA ticket, opened with credentials. Every method does I/O except ``limits``."""

    name: str
    display_name: str
    ticket_id: str
    limits: Limits

    def ticket(self) -> TicketInfo: ...

    def visibility(self) -> Visibility:
        """The internal visibility every note and file is posted with, read from the tenant where it is
        a per-tenant value. Raises ``BadInput`` (naming the values found and the config key) when the
        tenant offers no value whose documented meaning is internal to the MSP: nothing is posted then."""
        ...

    def notes(self) -> list[TicketNote]: ...

    def add_note(self, title: str, body: str, *, customer_visible: bool) -> Posted:
        """``body`` is already in ``limits.note_format``; ``title`` is the first line of it (a PSA
        with a title field gets it there too)."""
        ...

    def files(self) -> list[TicketFile]: ...

    def attach(self, name: str, content: bytes, description: str, *, customer_visible: bool) -> Posted: ...

    def set_status(self, status: str) -> Posted: ...

    def close(self) -> None: ...


@runtime_checkable
class NoteEditor(Protocol):
    """A ticket session whose PSA documents changing a note it holds (``TicketSession`` plus this): apply's
    claim of the exit is renewed and released by editing its one note, rather than by posting new ones."""

    def edit_note(self, note_id: str, title: str, body: str) -> Posted:
        """Replace the text of note ``note_id`` (``body`` in ``limits.note_format``); its visibility stays."""
        ...


@runtime_checkable
class PsaConnector(Protocol):
    name: str
    display_name: str
    settings_model: type[PsaSettings]
    credential_fields: tuple[CredentialField, ...]

    def open(self, settings: PsaSettings, credentials: Mapping[str, SecretStr], *,
             transport: httpx.BaseTransport | None = None) -> TicketSession: ...

    def sandbox(self) -> SandboxKit | None: ...


P = TypeVar("P", bound=PsaSettings)


class PsaConnectorBase(HttpConnector[P, TicketSession]):
    """What every PSA package's connector does the same way (``offboard.connectors.base``): the
    package names its credentials, how they become an auth, its settings and its session."""

    section: ClassVar[str] = SECTION
    # A PSA is not the exit: a few quick tries, then the note waits for a person (or a later try).
    policy: ClassVar[RetryPolicy] = RetryPolicy(max_attempts=3, backoff_base=1.0, backoff_max=10.0,
                                                retry_after_max=60.0)

    def open(self, settings: PsaSettings, credentials: Mapping[str, SecretStr], *,
             transport: httpx.BaseTransport | None = None) -> TicketSession:
        mine = self.own(settings)
        http, _ = self.connect(mine, credentials, transport)
        return self.session_type(http, mine)


def installed() -> dict[str, PsaConnector]:
    found: dict[str, PsaConnector] = {}
    for ep in entry_points(group=GROUP):
        obj = ep.load()
        if not isinstance(obj, PsaConnector):
            raise BadInput(f"entry point {ep.name!r} in {GROUP} is not an offboard PSA connector")
        found[obj.name] = obj
    return found


def get(kind: str, available: Mapping[str, PsaConnector] | None = None) -> PsaConnector:
    available = installed() if available is None else available
    try:
        return available[kind]
    except KeyError:
        known = ", ".join(sorted(available)) or "none"
        raise BadInput(f"config: psa.kind {kind!r} is not an installed PSA connector; installed: {known}") from None


# -- what a note is, before a PSA's format --------------------------------------------------

Kind = Literal["p", "item", "pre"]


@dataclass(frozen=True)
class Block:
    """One paragraph or list item of a note: one line, whatever vendor string it carries (a line
    break would forge a line of the note, or of the marker a later run looks for)."""

    kind: Kind
    text: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", one_line(self.text))


@dataclass(frozen=True)
class NoteDoc:
    """A note as the core writes it. ``facts`` are what makes it *this* note (never a timestamp,
    a run's wall-clock or anything that differs between two posts of the same news): the marker's
    hash is over them, so a retry, a resume or a second apply finds the note it already posted."""

    key: str  # which note of the exit: "scope", "start", "vendor.<name>", "closure", …
    title: str
    blocks: tuple[Block, ...]
    facts: str
    customer_visible: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "title", one_line(self.title))


@dataclass(frozen=True)
class NotePart:
    """One note as posted: its marker, its title and its body in the PSA's format."""

    key: str
    marker: str
    title: str
    body: str
    customer_visible: bool = False


MARKER_RE = re.compile(r"\[offboard:([0-9a-f]{12}):([A-Za-z0-9._-]+):([0-9a-f]{12})\]")


def fact_hash(facts: str) -> str:
    return hashlib.sha256(facts.encode("utf-8")).hexdigest()[:12]


def marker(exit_id: str, key: str, facts: str) -> str:
    return f"[offboard:{exit_id[:12]}:{key}:{fact_hash(facts)}]"


def _render(title: str, blocks: tuple[Block, ...], fmt: NoteFormat, tail: str) -> str:
    if fmt == "html":
        out = [f"<p><b>{html.escape(title)}</b></p>"]
        items: list[str] = []

        def flush() -> None:
            if items:
                out.append("<ul>" + "".join(items) + "</ul>")
                items.clear()

        for b in blocks:
            if b.kind == "item":
                items.append(f"<li>{html.escape(b.text)}</li>")
                continue
            flush()
            out.append(f"<pre>{html.escape(b.text)}</pre>" if b.kind == "pre" else f"<p>{html.escape(b.text)}</p>")
        flush()
        out.append(f"<p><small>{html.escape(tail)}</small></p>")
        return "".join(out)
    lines = [title, ""]
    for b in blocks:
        lines.append(f"- {b.text}" if b.kind == "item" else b.text)
    lines += ["", tail]
    return "\n".join(lines)


def compose(doc: NoteDoc, exit_id: str, limits: Limits) -> list[NotePart]:
    """The note in the PSA's format, with its marker, split into parts when it is longer than the
    PSA takes: whole blocks per part; a block longer than a part is cut into pieces, each saying
    it continues. Nothing is dropped: the parts hold every character of the note."""
    budget = limits.max_note_chars

    def tail_for(key: str) -> str:
        return f"Posted by offboard {marker(exit_id, key, doc.facts)}"

    def size(blocks: tuple[Block, ...], title: str) -> int:
        return len(_render(title, blocks, limits.note_format, tail_for(doc.key + ".p99")))

    whole = _render(doc.title, doc.blocks, limits.note_format, tail_for(doc.key))
    if len(whole) <= budget:
        return [NotePart(doc.key, marker(exit_id, doc.key, doc.facts), doc.title, whole, doc.customer_visible)]
    title_room = f"{doc.title} (part 99 of 99)"
    room = budget - size((), title_room) - 16  # what one block's text may hold in a part of its own
    if room < 100:
        raise ValueError("max_note_chars is too small for a note's title and marker")
    pieces: list[Block] = []
    for b in doc.blocks:
        text = b.text
        while len(_render("", (Block(b.kind, text),), limits.note_format, "")) > room:
            cut = room // 2 if limits.note_format == "html" else room  # escaping may double the length
            pieces.append(Block(b.kind, text[:cut] + " …(continues)"))
            text = "…" + text[cut:]
        pieces.append(Block(b.kind, text))
    parts: list[list[Block]] = [[]]
    for piece in pieces:
        if parts[-1] and size((*parts[-1], piece), title_room) > budget:
            parts.append([])
        parts[-1].append(piece)
    out = []
    for n, blocks in enumerate(parts, start=1):
        key = f"{doc.key}.p{n}"
        title = f"{doc.title} (part {n} of {len(parts)})"
        out.append(NotePart(key, marker(exit_id, key, doc.facts), title,
                            _render(title, tuple(blocks), limits.note_format, tail_for(key)), doc.customer_visible))
    return out


@dataclass
class Burst:
    """What one posting occasion read from the ticket: read once, then kept current by our posts."""

    info: TicketInfo | None = None
    notes: list[TicketNote] = field(default_factory=list)
    files: list[TicketFile] | None = None

    def note_with(self, mark: str) -> TicketNote | None:
        return next((n for n in self.notes if mark in n.text), None)

    def file_with(self, name: str, mark: str) -> TicketFile | None:
        return next((f for f in self.files or [] if f.name == name and mark in f.description), None)
