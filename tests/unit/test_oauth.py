"""The one client-credentials implementation (offboard.wire.oauth), with a vendor's parameters:
the mint request a form-encoded vendor gets, and the lines a refused or failed mint says.
(The token's life — cache, early refresh, one re-mint on 401 — is tested through Blumira's
parameters in tests/connectors/test_blumira_calls.py.)"""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx
import pytest
import respx

from offboard.errors import VendorAuthError, VendorError
from offboard.wire.oauth import ClientCredentials, TokenEndpoint
from offboard.wire.redact import REDACTOR

TOKEN = "https://auth.example.test/token"
API = "https://api.example.test"
SECRET = "oauth_secret_canary_51d0"
ENDPOINT = TokenEndpoint("Example", TOKEN, fields={"scope": "all"}, params={"tenant": "acme"},
                         refused="run `offboard auth set example`", failed="a 500 means no agent is bound")


def test_a_form_encoded_vendor_gets_the_rfc_body_its_fields_and_its_query() -> None:
    with respx.mock as router:
        mint = router.post(TOKEN).respond(json={"access_token": "tok-canary-1", "expires_in": 3600})
        api = router.get(f"{API}/x").respond(json={})
        with httpx.Client(auth=ClientCredentials(ENDPOINT, "cid", SECRET)) as client:
            client.get(f"{API}/x")
            client.get(f"{API}/x")
    request = mint.calls[0].request
    assert mint.call_count == 1 and request.url.params["tenant"] == "acme"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.content.decode()) == {"grant_type": ["client_credentials"], "client_id": ["cid"],
                                                  "client_secret": [SECRET], "scope": ["all"]}
    assert [c.request.headers["Authorization"] for c in api.calls] == ["Bearer tok-canary-1"] * 2
    assert REDACTOR.text(f"Bearer tok-canary-1 {SECRET}") == "Bearer [REDACTED] [REDACTED]"


@pytest.mark.parametrize(("status", "kind", "says"), [
    (401, VendorAuthError, "HTTP 401: the client id and secret were refused; run `offboard auth set example`"),
    (500, VendorError, "the token endpoint answered HTTP 500 (a 500 means no agent is bound)"),
])
def test_a_refused_or_failed_mint_is_one_line_with_the_vendors_fix(status: int, kind: type[Exception],
                                                                   says: str) -> None:
    with respx.mock as router:
        router.post(TOKEN).respond(status, json={"error": "invalid_client"})
        api = router.get(f"{API}/x").respond(json={})
        with httpx.Client(auth=ClientCredentials(ENDPOINT, "cid", SECRET)) as client, \
                pytest.raises(kind) as raised:
            client.get(f"{API}/x")
    assert says in str(raised.value) and SECRET not in str(raised.value)
    assert not api.called
