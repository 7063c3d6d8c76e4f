"""The Blumira test double behaves as the notes describe, and the connector rides out what it
does: the 10-per-second limit, a token that stops working mid-run, a lost DELETE reply."""

from __future__ import annotations

from collections import Counter

import httpx

from offboard import engine
from offboard.connectors.sandboxing import InProcessTransport
from offboard.errors import ExitCode
from offboard.proof.audit import read_records
from offboard_blumira.sandbox import API_PREFIX, CUSTOMER_ACCOUNT, DEMO_CLIENT_ID, DEMO_SECRET, TOKEN_PATH, Fault
from tests.conftest import BlumiraHarness, past_the_notification


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
    # the DELETE, its 502, a re-read showing it is still there, one more DELETE, then verification's re-read
    assert calls == [("DELETE", 502), ("GET", 200), ("DELETE", 204), ("GET", 404)]
    events = [r["event"] for r in read_records(result.run.audit_path) if r.get("action_id") ==
              "blumira.delete_webhook.wh-1"]
    assert events[:4] == ["action.planned", "action.started", "action.unknown", "action.succeeded"]
