"""The Blumira test double behaves as the notes describe, and the connector rides out what it
does: the 10-per-second limit, a token that stops working mid-run, a lost DELETE reply."""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx

from offboard import engine
from offboard.connectors.sandboxing import InProcessTransport
from offboard.errors import ExitCode
from offboard.proof.audit import read_records
from offboard_blumira.sandbox import (
    API_PREFIX,
    CUSTOMER_ACCOUNT,
    DEMO_CLIENT_ID,
    DEMO_SECRET,
    NEIGHBOUR_ACCOUNT,
    TOKEN_PATH,
    Fault,
)
from tests.conftest import BlumiraHarness, past_the_notification
from tests.connectors import blumira_notes as notes


def raw_client(h: BlumiraHarness) -> httpx.Client:
    return httpx.Client(transport=InProcessTransport(h.sandbox.app), base_url="http://sandbox")


def token(c: httpx.Client) -> str:
    reply = c.post(TOKEN_PATH, json={"grant_type": "client_credentials", "client_id": DEMO_CLIENT_ID,
                                     "client_secret": DEMO_SECRET, "audience": "public-api"})
    assert reply.status_code == 200 and reply.json()["expires_in"] > 0
    return str(reply.json()["access_token"])


def test_sandbox_token_endpoint_wants_the_public_api_audience_and_the_right_secret(blumira: BlumiraHarness) -> None:
    with raw_client(blumira) as c:
        base = {"grant_type": "client_credentials", "client_id": DEMO_CLIENT_ID, "client_secret": DEMO_SECRET}
        assert c.post(TOKEN_PATH, json={**base, "audience": "https://api.blumira.com/public-api/v1"}
                      ).status_code == 400
        assert c.post(TOKEN_PATH, json={**base, "client_secret": "wrong", "audience": "public-api"}
                      ).status_code == 401
        assert c.post(TOKEN_PATH, data={**base, "audience": "public-api"}).status_code == 200  # form body too
        assert c.get(f"{API_PREFIX}/msp/accounts/{CUSTOMER_ACCOUNT}").status_code == 401  # no bearer


def test_sandbox_answers_429_past_10_requests_in_a_second_and_pages_with_an_envelope(
        blumira: BlumiraHarness) -> None:
    blumira.sandbox.time_scale = 1.0  # a real one-second window for this test
    with raw_client(blumira) as c:
        headers = {"Authorization": f"Bearer {token(c)}"}
        path = f"{API_PREFIX}/msp/accounts/{CUSTOMER_ACCOUNT}/agents/devices"
        replies = [c.get(path, params={"page": 1, "page_size": 3}, headers=headers) for _ in range(11)]
        assert [r.status_code for r in replies] == [200] * 10 + [429]
        assert "Retry-After" not in replies[-1].headers  # not confirmed at Blumira: the double does not promise it
        body = replies[0].json()
        assert body["status"] == "OK" and len(body["data"]) == 3
        assert body["meta"] == {"page": 1, "page_size": 3, "total_items": 8, "total_pages": 3}
        assert body["links"]["next"].endswith("page=2&page_size=3") and body["links"]["prev"] is None


def test_a_run_rides_out_429s_without_retry_after_and_a_token_that_stops_working(blumira: BlumiraHarness) -> None:
    blumira.sandbox.faults += [Fault(method="GET", path_prefix=f"{API_PREFIX}/msp/accounts", status=429, times=3,
                                     after=5),
                               Fault(method="GET", path_prefix=f"{API_PREFIX}/msp/webhooks", status=503, times=2)]
    with blumira.sessions() as s:
        plan = engine.make_plan(blumira.cfg, s)
        minted = len(blumira.sandbox.issued)
        blumira.sandbox.expire_tokens()  # as if the token expired early or was revoked
        result = past_the_notification(blumira.cfg, plan, s)
    assert result.exit_code == ExitCode.MANUAL_PENDING, result.message
    assert len(blumira.sandbox.issued) == minted + 1  # minted once more on the 401, then carried on
    statuses = Counter(r.status for r in blumira.sandbox.requests)
    assert statuses[429] == 3 and statuses[503] == 2 and statuses[401] == 1
    assert "wh-1" not in blumira.sandbox.webhooks


def test_a_delete_whose_reply_is_lost_is_re_read_before_anything_is_resent(blumira: BlumiraHarness) -> None:
    blumira.sandbox.faults.append(Fault(method="DELETE", path_prefix=f"{API_PREFIX}/msp/webhooks/", status=502))
    with blumira.sessions() as s:
        plan = engine.make_plan(blumira.cfg, s)
        result = past_the_notification(blumira.cfg, plan, s)
    assert result.exit_code == ExitCode.MANUAL_PENDING
    hook = f"{API_PREFIX}/msp/webhooks/wh-1"
    calls = [(r.method, r.status) for r in blumira.sandbox.requests if r.path == hook]
    # the owner read just before the write (the scope guard), the DELETE, its 502, a re-read showing it
    # is still there (and still the customer's), one more DELETE, then verification's re-read
    assert calls == [("GET", 200), ("DELETE", 502), ("GET", 200), ("DELETE", 204), ("GET", 404)]
    events = [r["event"] for r in read_records(result.run.audit_path) if r.get("action_id") ==
              "blumira.delete_webhook.wh-1"]
    assert events[:4] == ["action.planned", "action.started", "action.unknown", "action.succeeded"]


# -- the double answers as the notes' examples do (tests/connectors/blumira_notes.py) -----------


def kinds(example: dict[str, Any]) -> dict[str, type]:
    return {k: type(v) for k, v in example.items()}


def same_shape(got: dict[str, Any], example: dict[str, Any]) -> None:
    """The same keys, in the same case, with values of the same JSON types as the example."""
    assert set(got) == set(example)
    assert kinds(got) == kinds(example), {k: (type(got[k]), type(v)) for k, v in example.items()
                                          if type(got[k]) is not type(v)}


@contextlib.contextmanager
def authed(h: BlumiraHarness) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    with raw_client(h) as c:
        yield c, {"Authorization": f"Bearer {token(c)}"}


def test_sandbox_lists_and_objects_have_the_notes_envelopes_field_names_and_types(blumira: BlumiraHarness) -> None:
    acct = f"{API_PREFIX}/msp/accounts/{CUSTOMER_ACCOUNT}"
    with authed(blumira) as (c, auth):
        def get(path: str, **params: Any) -> Any:
            reply = c.get(path, params=params, headers=auth)
            assert reply.status_code == 200, (path, reply.text)
            return reply.json()

        for path, example in ((f"{API_PREFIX}/msp/accounts", notes.ACCOUNT_LIST_ITEM),
                              (f"{acct}/agents/devices", notes.DEVICE), (f"{acct}/agents/keys", notes.AGENT_KEY),
                              (f"{acct}/users", notes.USER), (f"{acct}/findings", notes.FINDING)):
            body = get(path, page=1, page_size=2)
            assert set(body) == set(notes.LIST_ENVELOPE) and body["status"] == "OK"
            assert set(body["meta"]) == set(notes.LIST_ENVELOPE["meta"])
            assert set(body["links"]) == set(notes.LIST_ENVELOPE["links"])
            assert body["data"], path
            for item in body["data"]:
                same_shape(item, example)
        user = get(f"{acct}/users")["data"][0]
        same_shape(user["org_roles"][0], notes.ROLE)
        assert all(r["role_name"] == r["role_name"].lower() for u in get(f"{acct}/users")["data"]
                   for r in u["org_roles"])  # the mock's case: "responder"

        detail = get(acct)
        assert set(detail) == set(notes.SINGLE_ENVELOPE)
        same_shape(detail["data"], notes.ACCOUNT_DETAIL)
        device = get(f"{acct}/agents/devices/dev-0001-000")
        assert set(device) == set(notes.SINGLE_ENVELOPE)
        same_shape(device["data"], notes.DEVICE)

        evidence = get(f"{acct}/findings/fnd-0001-0000/evidence", page=1, page_size=200)
        assert set(evidence) == set(notes.EVIDENCE_ENVELOPE)
        comments = get(f"{acct}/findings/fnd-0001-0000/comments")
        assert isinstance(comments, list) and comments  # a bare array, as the mocks show
        same_shape(comments[0], notes.COMMENT)
        same_shape(comments[0]["sender"], notes.PERSON)

        stamps = [d[k] for d in get(f"{acct}/agents/devices")["data"] for k in ("alive", "created", "modified")]
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", s) for s in stamps)  # no zone


def test_sandbox_errors_follow_the_codes_the_notes_list(blumira: BlumiraHarness) -> None:
    acct = f"{API_PREFIX}/msp/accounts/{CUSTOMER_ACCOUNT}"
    with authed(blumira) as (c, auth):
        assert c.get(f"{acct}/agents/devices", params={"page_size": 201}, headers=auth).status_code == 400
        assert c.get(f"{acct}/agents/devices", params={"page": 0}, headers=auth).status_code == 400
        assert c.get(f"{API_PREFIX}/msp/accounts/nope", headers=auth).status_code == 404
        assert c.get(f"{acct}/agents/devices/nope", headers=auth).status_code == 404
        assert c.get(f"{API_PREFIX}/msp/accounts/{NEIGHBOUR_ACCOUNT}/agents/devices/dev-0001-000",
                     headers=auth).status_code == 404  # a device is read only under the account that lists it
        refused = c.get(f"{API_PREFIX}/org/agents/actions", headers=auth)
        assert refused.status_code == 403  # an organization endpoint: this is an MSP credential
        assert set(refused.json()) == {"type", "title", "status", "detail"}  # the notes' guess (RFC 7807)


def test_sandbox_refuses_what_the_notes_do_not_name_in_what_it_receives(blumira: BlumiraHarness) -> None:
    acct = f"{API_PREFIX}/msp/accounts/{CUSTOMER_ACCOUNT}"
    with authed(blumira) as (c, auth):
        base = {"grant_type": "client_credentials", "client_id": DEMO_CLIENT_ID, "client_secret": DEMO_SECRET,
                "audience": "public-api"}
        assert c.post(TOKEN_PATH, json={**base, "scope": "read"}).status_code == 400  # a guessed extra field
        listed = c.get(f"{acct}/agents/devices", params={"per_page": 5}, headers=auth)  # not a notes parameter
        assert listed.status_code == 400 and "per_page" in listed.json()["detail"]
        assert c.get(f"{acct}/agents/devices", params={"order_by": "hostname;asc", "limit": 5},
                     headers=auth).status_code == 200
        assert c.get(f"{acct}/findings", params={"status.eq": 10, "priority.!in": "4,5",
                                                  "created_after": "2026-01-01"}, headers=auth).status_code == 200
        assert c.get(f"{acct}/findings", params={"severity.eq": 1}, headers=auth).status_code == 400  # §1.6
        deleted = c.request("DELETE", f"{API_PREFIX}/msp/webhooks/wh-1", json={"reason": "exit"}, headers=auth)
        assert deleted.status_code == 400 and "wh-1" in blumira.sandbox.webhooks
        dispatched = c.post(f"{acct}/agents/devices/dev-0001-000/actions", json={"action": "isolate"},
                            headers=auth)
        assert dispatched.status_code == 400  # request_action_dispatch's field names are not published
    assert blumira.sandbox.received == []
