"""One exit, one writer across machines: apply's claim of the exit in its PSA ticket.

The machine's exit lock (``runfolder.exit_lock``) keeps two processes of one machine apart; nothing on
one machine sees another. Where the exit has a PSA ticket, the ticket is the one place every machine
reads: ``apply`` and ``apply --resume`` post a claim note there (host, OS user, run id, expiry) before
any vendor write, read the notes again, and go on only when their claim is the earliest live one.

- **Keyed on the exit**, as the vendors name it (``VendorSession.exit_identity``), never on the config's
  spelling: two configs of one exit find each other's claims in the ticket.
- **Timed by the PSA's clock**: the expiry written and the "now" it is compared with come from the PSA's
  own replies (their ``Date`` header), so two machines' clocks are never compared. Only where a PSA
  sends no ``Date`` is the local clock used.
- **Holder**: a run on a host. A resume of the same run on the same host takes up its own claim (the
  machine lock proves the earlier process is gone); the same run live on another host is refused (two
  machines resuming one run at once is the danger itself).
- **Race**: two claims posted at once are both live at the re-read; the earlier in the ticket's own
  order (the PSA's note ids) wins, the other releases its note and refuses, naming the winner.
- **Renewal**: a thread renews the claim before it expires — by editing its one note where the PSA
  documents editing a note (``NoteEditor``), else by a new note at a longer period (people read the
  ticket). The claim is released when the run ends however it ends; a crash leaves it to expire.
- **Never silent**: a claim that cannot be read or written (the PSA down, a ticket that refuses notes)
  leaves the run unclaimed, as the ticket is never in the exit's way — recorded (``claim.failed``, the
  PSA's words) and warned about on the screen, never taken for a claim. ``--require-claim`` refuses
  such a run instead (exit 2), before any vendor write.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from offboard import hints
from offboard.connectors.psa import Block, NoteDoc, NoteEditor, Posted, TicketNote, compose
from offboard.engine.ticket import TROUBLE, Ticket, _why
from offboard.errors import AmbiguousWrite, ClaimLapsed, ClaimRefused, VendorError
from offboard.proof.audit import AuditLog

HOST_ENV = "OFFBOARD_CLAIM_HOST"  # the name a claim gives this machine (default: its host name)
EDIT_MINUTES = 30.0  # a claim renewed by editing its note: every 10 min, so 20 min of PSA trouble is absorbed
POST_MINUTES = 120.0  # renewed by a new note: once an hour, so a 6-hour exit adds 6 notes, not 72
TAG_RE = re.compile(r"\[offboard-claim exit=([0-9a-f]{12}) run=([A-Za-z0-9._-]+) host=([A-Za-z0-9._@-]+) "
                    r"user=([A-Za-z0-9._@-]+) expires=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) state=(live|released)\]")
_SAFE = re.compile(r"[^A-Za-z0-9._@-]")
STAMP = "%Y-%m-%dT%H:%M:%SZ"
LAPSE_MARGIN_S = 60.0  # a write is not started within this of the claim's expiry: its round trip fits


class ClaimUnavailable(ClaimRefused):
    """The ticket could not be read or written for the claim: the run is unclaimed (or, with
    ``--require-claim``, refused)."""


def local_now() -> datetime:
    return datetime.now(UTC)


def exit_key(identities: Sequence[str]) -> str:
    """The exit as its vendors name it (sorted), hashed: the same for every config spelling one exit."""
    return hashlib.sha256("\n".join(sorted(identities)).encode()).hexdigest()[:12]


def this_host() -> str:
    return _safe(os.environ.get(HOST_ENV) or socket.gethostname())


def this_user() -> str:
    try:
        return _safe(getpass.getuser())
    except (KeyError, OSError):
        return "unknown"


def _safe(word: str) -> str:
    return _SAFE.sub("_", word.strip())[:64] or "unknown"


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime(STAMP)


@dataclass(frozen=True)
class Holder:
    """One run on one host, as the ticket's claim notes say: its first claim's place in the ticket's
    order, and its latest note's state and expiry."""

    run: str
    host: str
    user: str
    expires: datetime
    state: str
    first: tuple[int, int]  # the PSA's note id (numeric), then the listing's order
    note_id: str  # its latest claim note

    @property
    def key(self) -> tuple[str, str]:
        return self.run, self.host

    def live(self, now: datetime) -> bool:
        return self.state == "live" and self.expires > now

    def words(self) -> str:
        return f"run {self.run} on host {self.host} (user {self.user}), claimed until {_stamp(self.expires)}"


def _order(note: TicketNote, index: int) -> tuple[int, int]:
    return (int(note.id), index) if note.id.isdigit() else (2**62, index)


def holders(notes: Sequence[TicketNote], key: str) -> dict[tuple[str, str], Holder]:
    """Every holder of this exit's claim the notes name, in the ticket's own order (note ids as the PSA
    reports them): a holder's latest note says whether it is live, and until when."""
    found: dict[tuple[str, str], Holder] = {}
    tagged = sorted(((_order(n, i), n) for i, n in enumerate(notes)), key=lambda p: p[0])
    for order, note in tagged:
        for m in TAG_RE.finditer(note.text):
            exit_, run, host, user, expires, state = m.groups()
            if exit_ != key:
                continue
            when = datetime.strptime(expires, STAMP).replace(tzinfo=UTC)
            earlier = found.get((run, host))
            found[(run, host)] = Holder(run, host, user, when, state, earlier.first if earlier else order, note.id)
    return found


class Claim:
    """This run's claim of the exit in the ticket. ``take`` is ``look``, ``decide``, ``post`` and
    ``settle`` in turn; a test runs two claims' steps interleaved to play a race."""

    def __init__(self, ticket: Ticket, key: str, run_id: str, audit: AuditLog | None, *, take_over_hint: str,
                 resume_hint: str = "", host: str | None = None, user: str | None = None, minutes: float | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.ticket = ticket
        self.session = ticket.session
        self.key = key
        self.run_id = run_id
        self.audit = audit
        self.host = host or this_host()
        self.user = user or this_user()
        self.editable = isinstance(self.session, NoteEditor)
        self.minutes = minutes or ticket.settings.claim_minutes or (EDIT_MINUTES if self.editable else POST_MINUTES)
        self.hint = take_over_hint
        self.resume_hint = resume_hint
        self._clock = clock
        self._psa_seen: tuple[datetime, float] | None = None
        # Each claim note is a note of its own (its marker's facts): this process and the count of its notes.
        self._nonce = secrets.token_hex(4)
        self._writes = 0
        self.started = ""
        self.note_id: str | None = None
        self.expires: datetime | None = None
        self._taken_over: list[Holder] = []
        self.lost: str | None = None  # why this run may write no more (its claim lapsed or was taken over)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def me(self) -> tuple[str, str]:
        return self.run_id, self.host

    # -- time: the PSA's ------------------------------------------------------------------------

    def now(self) -> datetime:
        """The PSA's clock: its latest reply's ``Date``, moved on by the time elapsed here since (a
        monotonic clock, never this machine's wall clock); this machine's clock where the PSA sends none."""
        if self._clock is not None:
            return self._clock()
        http = getattr(self.session, "http", None)
        server = getattr(http, "server_time", None)
        if isinstance(server, datetime):
            if self._psa_seen is None or self._psa_seen[0] != server:
                self._psa_seen = (server, time.monotonic())
            return server + timedelta(seconds=time.monotonic() - self._psa_seen[1])
        return local_now()

    def _clock_words(self) -> str:
        http = getattr(self.session, "http", None)
        psa = self._clock is None and getattr(http, "server_time", None) is not None
        return "the PSA's clock" if psa else "this machine's clock"

    # -- the steps --------------------------------------------------------------------------------

    def look(self) -> list[TicketNote]:
        try:
            return self.session.notes()
        except TROUBLE as exc:
            raise self._unavailable("read", exc) from None

    def decide(self, notes: Sequence[TicketNote], take_over: str | None) -> None:
        """Refuse while another holder's claim is live (unless a person takes it over, audited); an expired
        claim is taken with an audit line naming it."""
        now = self.now()
        for h in holders(notes, self.key).values():
            if h.key == self.me:
                self.note_id = h.note_id if h.state == "live" else None  # this run's own, from a process now gone
                continue
            if h.state != "live":
                continue
            if not h.live(now):
                self._record("claim.expired", holder=h.words(), run=h.run, host=h.host,
                             expired=_stamp(h.expires), clock=self._clock_words())
                continue
            if take_over is None:
                self._record("claim.refused", holder=h.words(), run=h.run, host=h.host, expires=_stamp(h.expires))
                raise ClaimRefused(self._refusal(h))
            self._taken_over.append(h)
        if self._taken_over and take_over is not None:
            self._take_over(take_over)

    def post(self) -> None:
        """The claim note: edited in place where this run's earlier note is there and the PSA edits
        notes, else posted (a lost reply is settled by reading the notes again)."""
        self.started = self.started or _stamp(self.now())
        try:
            if self.note_id is not None and self.editable:
                self._write(edit=True)
                return
            self.note_id = None
            try:
                self._write(edit=False)
            except AmbiguousWrite:
                mine = holders(self.look(), self.key).get(self.me)
                if mine is None or mine.state != "live":
                    self._write(edit=False)  # re-read first: it did not land, so it is sent once more
                else:
                    self.note_id = mine.note_id
        except TROUBLE as exc:
            raise self._unavailable("written", exc) from None

    def settle(self) -> None:
        """Read the notes again: of the live claims, the earliest in the ticket's order holds the exit.
        A later one (a race) releases its note, is recorded and refused, naming the winner."""
        notes = self.look()
        now = self.now()
        gone = {h.key for h in self._taken_over}
        live = [h for h in holders(notes, self.key).values() if h.live(now) and h.key not in gone]
        mine = next((h for h in live if h.key == self.me), None)
        if mine is None:
            raise self._unavailable("read back", ValueError("the ticket does not show this run's claim note"))
        winner = min(live, key=lambda h: h.first)
        if winner.key != self.me:
            self._record("claim.lost", holder=winner.words(), run=winner.run, host=winner.host,
                         expires=_stamp(winner.expires), note=self.note_id)
            self.release()
            raise ClaimRefused(self._refusal(winner, race=True))
        self._record("claim.taken", note=self.note_id, expires=_stamp(self.expires or now), minutes=self.minutes,
                     renewed_by="editing the note" if self.editable else "a new note", clock=self._clock_words())

    def take(self, take_over: str | None = None) -> None:
        self.decide(self.look(), take_over)
        self.post()
        self.settle()
        self._thread = threading.Thread(target=self._renewing, name="offboard-claim", daemon=True)
        self._thread.start()

    # -- while the run lasts ---------------------------------------------------------------------

    def period_s(self) -> float:
        """Renewed at a third of its life (editing) or half (a new note each time: fewer notes)."""
        return self.minutes * 60 / (3 if self.editable else 2)

    def _renewing(self) -> None:
        while not self._stop.wait(self.period_s()):
            self.renew()

    def renew(self) -> None:
        """Read the notes (has a person taken the claim over?), then renew it."""
        with self._lock:
            if self._stop.is_set() or self.lost is not None:
                return
            try:
                mine = holders(self.session.notes(), self.key).get(self.me)
                if mine is not None and mine.state == "released":
                    self.lost = (f"{self.ticket.ref}: this run's claim of the exit was taken over (note {mine.note_id} "
                                 "releases it); this run writes nothing more")
                    self._record("claim.lapsed", reason=self.lost)
                    return
                self._write(edit=self.editable and self.note_id is not None)
            except TROUBLE as exc:
                self._record("claim.renew_failed", reason=_why(exc), expires=_stamp(self.expires or self.now()))
                return
            self._record("claim.renewed", note=self.note_id, expires=_stamp(self.expires or self.now()),
                         how="edited" if self.editable else "posted")

    def check(self) -> None:
        """Before each vendor write: the claim still holds. A claim taken over, or past its expiry by the
        PSA's clock (its renewals failed: the PSA unreachable), lets another machine start; this run
        then stops writing (``ClaimLapsed``, resumable), so two machines never write at once."""
        if self.lost is None and self.expires is not None:
            margin = timedelta(seconds=min(LAPSE_MARGIN_S, self.minutes * 6))  # a tenth of the claim's life
            if self.now() >= self.expires - margin:
                self.lost = (f"{self.ticket.ref}: this run's claim of the exit expired at {_stamp(self.expires)} "
                             f"({self._clock_words()}) without a renewal (the PSA did not answer); another "
                             "machine may start this exit now, so this run writes nothing more")
                self._record("claim.lapsed", reason=self.lost)
        if self.lost is not None:
            raise ClaimLapsed(f"{self.lost}; once no other machine runs it: {self.resume_hint or self.hint}")

    def release(self) -> None:
        """The run ended (success, failure, stop, Ctrl-C): the claim note says released. Never raises."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        with self._lock:
            if self.note_id is None:
                return
            try:
                self._write(edit=self.editable, state="released")
            except TROUBLE as exc:
                self._record("claim.release_failed", reason=_why(exc),
                             expires=_stamp(self.expires or self.now()))
                return
            self._record("claim.released", note=self.note_id)
            self.note_id = None

    # -- notes --------------------------------------------------------------------------------

    def tag(self, state: str, expires: datetime, holder: Holder | None = None) -> str:
        run, host, user = (holder.run, holder.host, holder.user) if holder else (self.run_id, self.host, self.user)
        return (f"[offboard-claim exit={self.key} run={run} host={host} user={user} expires={_stamp(expires)} "
                f"state={state}]")

    def _body(self, doc: NoteDoc) -> tuple[str, str]:
        part = compose(doc, self.key, self.ticket.limits)[0]
        return part.title, part.body

    def _write(self, *, edit: bool, state: str = "live") -> None:
        now = self.now()
        expires = now + timedelta(minutes=self.minutes) if state == "live" else now
        if state == "live":
            doc = NoteDoc("claim", f"offboard: claim — run {self.run_id} on {self.host} is running this exit", (
                Block("p", f"Run {self.run_id} of offboard on host {self.host} (user {self.user}) holds this exit "
                           f"since {self.started}. While this claim is live, an apply or resume of this exit on "
                           "another machine refuses to start."),
                Block("p", f"Live until {_stamp(expires)} ({self._clock_words()}); renewed every "
                           f"{self.period_s() / 60:.0f} min while the run lasts, released when it ends. Only if "
                           f"that machine is known to have stopped may a person take it over: {self.hint}"),
                Block("pre", self.tag("live", expires))), facts=f"{self.run_id}|{self.host}|{_stamp(expires)}")
        else:
            doc = NoteDoc("claim", f"offboard: claim released — run {self.run_id} on {self.host}", (
                Block("p", f"Run {self.run_id} on host {self.host} (user {self.user}) ended its part at "
                           f"{_stamp(now)}; the exit may be run again."),
                Block("pre", self.tag("released", now))), facts=f"{self.run_id}|{self.host}|released|{_stamp(now)}")
        self._writes += 1
        title, body = self._body(replace(doc, facts=f"{doc.facts}|{self._nonce}|{self._writes}"))
        posted: Posted
        if edit and self.note_id is not None and isinstance(self.session, NoteEditor):
            try:
                posted = self.session.edit_note(self.note_id, title, body)
            except VendorError as exc:
                if exc.status != 404 or isinstance(exc, AmbiguousWrite):
                    raise
                # Someone deleted the claim note: the claim is posted anew (its marker is a new note's).
                posted = self.session.add_note(title, body, customer_visible=False)
        else:
            posted = self.session.add_note(title, body, customer_visible=False)
        self.note_id = posted.id or self.note_id
        self.expires = expires

    def _take_over(self, reason: str) -> None:
        """A person says the live claims' machines have stopped: a note in the ticket releases each on its
        behalf and says who took over from whom and why; the audit log names each previous holder."""
        for h in self._taken_over:
            self._record("claim.taken_over", holder=h.words(), run=h.run, host=h.host, expires=_stamp(h.expires),
                         reason=reason, by=f"{self.user} on {self.host}")
        blocks = [Block("p", f"{self.user} on host {self.host} (run {self.run_id}) took over the exit's claim from "
                             f"{h.words()}. Reason given: {reason}") for h in self._taken_over]
        blocks += [Block("pre", self.tag("released", self.now(), h)) for h in self._taken_over]
        facts = "|".join([self.run_id, self.host, reason, *(f"{h.run}@{h.host}" for h in self._taken_over)])
        heading = f"offboard: claim taken over by run {self.run_id} on {self.host}"
        title, body = self._body(NoteDoc("claim-takeover", heading, tuple(blocks), facts=facts))
        try:
            self.session.add_note(title, body, customer_visible=False)
        except TROUBLE as exc:
            raise self._unavailable("taken over", exc) from None

    # -- words ------------------------------------------------------------------------------------

    def _refusal(self, h: Holder, *, race: bool = False) -> str:
        how = ("claimed it first (both claims were posted at once; the ticket's order decides)" if race
               else "holds a live claim")
        return (f"{self.ticket.ref}: this exit is being run elsewhere: {h.words()} ({self._clock_words()}) {how}; "
                f"nothing was written to a vendor. Wait for that run to end, or, only if that machine has "
                f"stopped, take the claim over: {self.hint}")

    def _unavailable(self, what: str, exc: BaseException) -> ClaimUnavailable:
        self._record("claim.failed", reason=_why(exc), what=what)
        return ClaimUnavailable(f"{self.ticket.ref}: the exit's claim could not be {what} ({_why(exc)})")

    def _record(self, event: str, **detail: Any) -> None:
        if self.audit is None:
            return
        with contextlib.suppress(OSError):
            self.audit.emit(event, vendor=self.session.name, step="claim",
                            outcome="failure" if event in FAILED else "success",
                            detail={"ticket": self.session.ticket_id, "exit": self.key, "run": self.run_id,
                                    "host": self.host, "user": self.user,
                                    **{k: v for k, v in detail.items() if v is not None}})


FAILED = frozenset({"claim.lapsed", "claim.refused", "claim.lost", "claim.failed", "claim.renew_failed",
                    "claim.release_failed"})


@contextlib.contextmanager
def claimed(ticket: Ticket | None, identities: Sequence[str], run_id: str, audit: AuditLog, *,
            take_over: str | None, require: bool, config: Path | None,
            warn: Callable[[str], None]) -> Iterator[Claim | None]:
    """The exit claimed in its ticket for as long as the block runs (no ticket: nothing to claim, and two
    machines are not kept apart). Raises ``ClaimRefused`` (exit 2) before the block when another run
    holds it; when the ticket cannot be read or written for it, the run goes on unclaimed and ``warn`` is
    told so (``require``: refused instead)."""
    if ticket is None:
        yield None
        return
    hint = hints.command("apply", "--resume", run_id, config=config, extra=["--take-over-claim", "REASON"])
    claim = Claim(ticket, exit_key(identities), run_id, audit, take_over_hint=hint,
                  resume_hint=hints.resume(run_id, config))
    try:
        claim.take(take_over)
    except ClaimUnavailable as exc:
        claim.release()  # a note that did land says released: nothing claims what this run cannot renew
        if require:
            raise ClaimUnavailable(
                f"{exc}; nothing was written to a vendor (--require-claim). Try again once the PSA answers: "
                f"{hints.command('apply', '--resume', run_id, config=config, extra=['--require-claim'])}; or "
                f"without --require-claim, warned and unclaimed: {hints.resume(run_id, config)}") from None
        warn(f"{exc}: this run is NOT claimed in the ticket, so another machine running this exit at the same "
             "time is not kept apart (recorded in the audit log; --require-claim refuses such a run)")
        yield None
        return
    try:
        yield claim
    finally:
        claim.release()
