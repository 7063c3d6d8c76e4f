"""The claim's steps one by one (engine/claim.py), against the ConnectWise sandbox in-process, with an
injected clock: a race played deterministically, the holder's identity (run and host), renewal by edit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from offboard.engine.claim import Claim, exit_key, holders
from offboard.engine.ticket import Ticket
from offboard.errors import ClaimLapsed, ClaimRefused
from tests.connectors.psa_harness import CW, PsaExit

KEY = exit_key(["huntress account 7001 organization 42"])
T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def ticket(tmp_path: Path) -> Iterator[tuple[Ticket, PsaExit]]:
    x = PsaExit(CW, tmp_path)
    with x.sessions() as s:
        assert s.ticket is not None
        yield s.ticket, x


def claim(ticket: Ticket, run: str, host: str, clock: Clock) -> Claim:
    return Claim(ticket, KEY, run, None, take_over_hint="offboard apply --resume RUN --take-over-claim REASON",
                 host=host, user="tech", clock=clock)


def test_a_race_two_claims_posted_at_once_the_earlier_in_the_tickets_order_wins(
        ticket: tuple[Ticket, PsaExit]) -> None:
    t, _ = ticket
    clock = Clock()
    a, b = claim(t, "run-a", "host-a", clock), claim(t, "run-b", "host-b", clock)
    seen_a, seen_b = a.look(), b.look()  # both read before either posted: neither sees the other
    a.decide(seen_a, None)
    b.decide(seen_b, None)
    a.post()
    b.post()
    a.settle()  # the earlier note: a holds the exit
    with pytest.raises(ClaimRefused) as lost:
        b.settle()
    assert "run run-a on host host-a" in str(lost.value) and "the ticket's order decides" in str(lost.value)
    live = [h for h in holders(t.session.notes(), KEY).values() if h.live(clock())]
    assert [h.run for h in live] == ["run-a"]  # b's note says released


def test_the_same_run_live_on_another_host_is_refused_and_on_this_host_taken_up(
        ticket: tuple[Ticket, PsaExit]) -> None:
    t, x = ticket
    clock = Clock()
    first = claim(t, "run-a", "host-a", clock)
    first.decide(first.look(), None)
    first.post()
    first.settle()
    elsewhere = claim(t, "run-a", "host-b", clock)  # the same run resumed on a second machine meanwhile
    with pytest.raises(ClaimRefused, match="run run-a on host host-a"):
        elsewhere.decide(elsewhere.look(), None)
    posts = len([r for r in x.sandbox.requests if r.method == "POST"])
    again = claim(t, "run-a", "host-a", clock)  # this host's process died; the machine lock proves it gone
    again.decide(again.look(), None)
    again.post()
    again.settle()
    assert again.note_id == first.note_id  # its own note, edited: no second claim note
    assert len([r for r in x.sandbox.requests if r.method == "POST"]) == posts


def test_an_expired_claim_is_not_live_and_renewal_edits_the_note_with_a_later_expiry(
        ticket: tuple[Ticket, PsaExit]) -> None:
    t, x = ticket
    clock = Clock()
    old = claim(t, "run-a", "host-a", clock)
    old.decide(old.look(), None)
    old.post()
    old.settle()
    clock.now = T0 + timedelta(minutes=31)  # past its 30 minutes: host-a stopped renewing
    new = claim(t, "run-b", "host-b", clock)
    new.decide(new.look(), None)
    new.post()
    new.settle()
    clock.now += timedelta(minutes=10)
    before = len(x.sandbox.requests)
    new.renew()
    sent = x.sandbox.requests[before:]
    assert [(r.method, r.path) for r in sent] == [  # read (taken over?), then the edit: no new note
        ("GET", "/v4_6_release/apis/3.0/service/tickets/4711/notes"),
        ("PATCH", f"/v4_6_release/apis/3.0/service/tickets/4711/notes/{new.note_id}")]
    ops = json.loads(sent[1].body)
    assert ops[0]["op"] == "replace" and ops[0]["path"] == "text"
    assert "expires=2026-12-04T10:11:00Z state=live" in ops[0]["value"]


def test_a_claim_note_someone_deleted_is_posted_anew_at_the_next_renewal(ticket: tuple[Ticket, PsaExit]) -> None:
    t, x = ticket
    mine = claim(t, "run-a", "host-a", Clock())
    mine.take()
    try:
        x.sandbox.notes = [n for n in x.sandbox.notes if n["id"] != int(mine.note_id or 0)]
        mine.renew()
        live = holders(t.session.notes(), KEY)
        assert live[("run-a", "host-a")].state == "live" and live[("run-a", "host-a")].note_id == mine.note_id
    finally:
        mine.release()
    assert holders(t.session.notes(), KEY)[("run-a", "host-a")].state == "released"


def test_a_claim_past_its_expiry_unrenewed_stops_the_writes(ticket: tuple[Ticket, PsaExit]) -> None:
    t, _ = ticket
    clock = Clock()
    mine = claim(t, "run-a", "host-a", clock)
    mine.take()
    try:
        mine.check()  # live: writes go on
        clock.now = T0 + timedelta(minutes=29, seconds=30)  # the PSA unreachable since: no renewal landed
        with pytest.raises(ClaimLapsed, match=r"expired at 2026-12-04T09:30:00Z .* without a renewal"):
            mine.check()
    finally:
        mine.release()
