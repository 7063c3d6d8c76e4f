"""The exact HTTP calls the Blumira connector makes (respx at the httpx transport seam):
the token's life, paging, and lenient parsing of the shapes the notes saw."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from offboard.errors import VendorAuthError, VendorReplyError
from offboard.wire.http import RetryPolicy, VendorHttp
from offboard.wire.ratelimit import SlidingWindowLimiter
from offboard.wire.redact import REDACTOR
from offboard_blumira import BlumiraSettings, connector
from offboard_blumira.auth import ClientCredentials
from offboard_blumira.client import BlumiraClient
from tests.fakeclock import FakeClock

API = "https://api.blumira.com/public-api/v1"
TOKEN = "https://auth.blumira.com/oauth/token"
ACCT = "acct-1"
CLIENT_SECRET = "blu_secret_canary_7c41e9"
CREDS = {"client_id": "client-canary", "client_secret": CLIENT_SECRET}


def token_reply(n: int, expires_in: int = 3600) -> httpx.Response:
    return httpx.Response(200, json={"access_token": f"jwt-canary-token-{n}", "token_type": "Bearer",
                                     "expires_in": expires_in})


def client(clock: FakeClock | None = None, page_size: int = 200) -> tuple[BlumiraClient, ClientCredentials]:
    auth = ClientCredentials(TOKEN, CREDS["client_id"], CLIENT_SECRET, "public-api", clock=clock or FakeClock())
    http = VendorHttp("Blumira", API, auth, SlidingWindowLimiter(10, 1.0), policy=RetryPolicy().scaled(0.0),
                      sleep=lambda _s: None)
    return BlumiraClient(http, ACCT, page_size), auth


def test_token_is_minted_once_with_the_public_api_audience_and_sent_as_a_bearer() -> None:
    with respx.mock as router:
        mint = router.post(TOKEN).mock(side_effect=[token_reply(1)])
        router.get(f"{API}/msp/accounts/{ACCT}").respond(json={"status": "OK", "data": {"account_id": ACCT}})
        c, _ = client()
        c.account()
        c.account()
        api_calls = [call for call in router.calls if call.request.url.host == "api.blumira.com"]
    assert mint.call_count == 1
    assert json.loads(mint.calls[0].request.content) == {
        "grant_type": "client_credentials", "client_id": "client-canary", "client_secret": CLIENT_SECRET,
        "audience": "public-api"}
    assert [call.request.headers["Authorization"] for call in api_calls] == ["Bearer jwt-canary-token-1"] * 2


def test_token_is_re_minted_shortly_before_it_expires() -> None:
    clock = FakeClock()
    with respx.mock as router:
        mint = router.post(TOKEN).mock(side_effect=[token_reply(1, 600), token_reply(2, 600)])
        router.get(f"{API}/msp/accounts/{ACCT}").respond(json={"status": "OK", "data": {"account_id": ACCT}})
        c, _ = client(clock)
        c.account()
        clock.now = 600 - 61  # still valid, with the early margin
        c.account()
        assert mint.call_count == 1
        clock.now = 600 - 59  # inside the last minute: minted again before the call
        c.account()
        assert mint.call_count == 2
        last = [call for call in router.calls if call.request.url.host == "api.blumira.com"][-1]
        assert last.request.headers["Authorization"] == "Bearer jwt-canary-token-2"


def test_a_401_mints_a_new_token_once_and_retries_the_call() -> None:
    with respx.mock as router:
        mint = router.post(TOKEN).mock(side_effect=[token_reply(1), token_reply(2)])
        account = router.get(f"{API}/msp/accounts/{ACCT}").mock(side_effect=[
            httpx.Response(401, json={"title": "Unauthorized"}),
            httpx.Response(200, json={"status": "OK", "data": {"account_id": ACCT, "name": "Acme"}})])
        c, _ = client()
        got, _ = c.account()
    assert got is not None and got.name == "Acme"
    assert mint.call_count == 2 and account.call_count == 2
    assert account.calls[1].request.headers["Authorization"] == "Bearer jwt-canary-token-2"


def test_a_second_401_is_an_auth_error_naming_the_call_and_no_secret() -> None:
    with respx.mock as router:
        router.post(TOKEN).mock(side_effect=[token_reply(1), token_reply(2)])
        router.get(f"{API}/msp/accounts/{ACCT}").respond(401, json={"title": "Unauthorized"})
        c, _ = client()
        with pytest.raises(VendorAuthError) as err:
            c.account()
    msg = REDACTOR.text(str(err.value))
    assert f"GET /msp/accounts/{ACCT}" in msg and "401" in msg
    assert CLIENT_SECRET not in str(err.value) and "jwt-canary-token" not in str(err.value)


def test_refused_client_credentials_say_how_to_fix_them() -> None:
    with respx.mock as router:
        router.post(TOKEN).respond(401, json={"error": "access_denied"})
        c, _ = client()
        with pytest.raises(VendorAuthError) as err:
            c.account()
    assert "client id and secret were refused" in str(err.value) and "offboard auth set blumira" in str(err.value)
    assert err.value.exit_code == 2


def test_lists_are_paged_with_page_and_page_size_until_links_next_is_null() -> None:
    pages = [[{"device_id": f"d{i}", "org_id": ACCT} for i in range(p * 2, p * 2 + 2)] for p in range(3)]
    replies = [httpx.Response(200, json={
        "status": "OK", "data": page, "meta": {"page": n + 1, "page_size": 2, "total_items": 6, "total_pages": 3},
        "links": {"next": None if n == 2 else f"/v1/x?page={n + 2}"}}) for n, page in enumerate(pages)]
    with respx.mock as router:
        router.post(TOKEN).mock(side_effect=[token_reply(1)])
        route = router.get(f"{API}/msp/accounts/{ACCT}/agents/devices").mock(side_effect=replies)
        c, _ = client(page_size=2)
        devices = list(c.devices())
    assert [d.device_id for d in devices] == ["d0", "d1", "d2", "d3", "d4", "d5"]
    assert [dict(call.request.url.params) for call in route.calls] == [
        {"page": "1", "page_size": "2"}, {"page": "2", "page_size": "2"}, {"page": "3", "page_size": "2"}]


def test_replies_are_parsed_leniently_bare_arrays_unwrapped_objects_unknown_fields_kept() -> None:
    with respx.mock as router:
        router.post(TOKEN).mock(side_effect=[token_reply(1)])
        # a bare array (no envelope), an int id, a field nobody documented
        router.get(f"{API}/msp/accounts/{ACCT}/users").respond(json=[
            {"id": 7, "email": "a@acme.example", "org_roles": [{"role_id": 10, "role_name": "Administrator"}],
             "mfa": True}])
        router.get(f"{API}/msp/accounts/{ACCT}").respond(json={"account_id": ACCT, "name": "Acme"})  # no data
        c, _ = client()
        users = list(c.users())
        account, _ = c.account()
    assert users[0].id == "7" and users[0].is_admin and users[0].model_extra == {"mfa": True}
    assert account is not None and account.name == "Acme" and account.license is None


@pytest.mark.parametrize("body, why", [
    ({"status": "OK", "data": {"not": "a list"}}, "wrong envelope"),
    ({"status": "OK", "data": [{"hostname": "no id"}]}, "device_id"),
    ("<html>502 Bad Gateway</html>", "not JSON"),
])
def test_a_reply_that_breaks_the_contract_is_one_line_naming_the_endpoint(body: Any, why: str) -> None:
    with respx.mock as router:
        router.post(TOKEN).mock(side_effect=[token_reply(1)])
        route = router.get(f"{API}/msp/accounts/{ACCT}/agents/devices")
        if isinstance(body, str):
            route.respond(200, text=body, headers={"content-type": "text/html"})
        else:
            route.respond(json=body)
        c, _ = client()
        with pytest.raises(VendorReplyError) as err:
            list(c.devices())
    msg = str(err.value)
    assert f"GET /msp/accounts/{ACCT}/agents/devices" in msg and why in msg and "\n" not in msg
    assert err.value.exit_code == 2


def test_connector_opens_with_the_configured_token_url_and_limit() -> None:
    settings = BlumiraSettings(account_id=ACCT)
    from pydantic import SecretStr
    session = connector.open(settings, {k: SecretStr(v) for k, v in CREDS.items()})
    try:
        assert session.http.limiter.max_calls == 10
        auth = session.http._client.auth
        assert isinstance(auth, ClientCredentials) and auth.token_url == TOKEN and auth.audience == "public-api"
    finally:
        session.close()
