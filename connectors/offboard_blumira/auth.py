"""OAuth2 client credentials → bearer JWT (vendor-notes §1.2), as an httpx auth strategy.

The token is minted on first use, cached until shortly before ``expires_in``, and minted
once more when the API answers 401 (revoked or expired early). The mint request goes
through the same client and transport as every call, so tests and the sandbox see it.
Both the client secret and every token are registered with the redactor.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator

import httpx

from offboard.errors import VendorAuthError, VendorError, VendorReplyError, VendorReplyRefused
from offboard.wire.redact import REDACTOR

EARLY = 60.0  # refresh this many seconds before the vendor says the token expires
DEFAULT_LIFETIME = 3600.0  # clients assume this when expires_in is missing (vendor-notes §1.2)
VENDOR = "Blumira"


# A token reply is a few hundred bytes; more than this is the endpoint answering nonsense.
TOKEN_REPLY_MAX = 64 * 1024


class ClientCredentials(httpx.Auth):
    # Only the token endpoint's reply is read here, and no further than TOKEN_REPLY_MAX; the API's
    # replies are VendorHttp's to read, streamed within their limit (httpx would read them whole).
    requires_response_body = False

    def __init__(self, token_url: str, client_id: str, client_secret: str, audience: str, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.token_url = token_url
        self._id = client_id
        self._secret = client_secret
        self.audience = audience
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self.minted = 0  # how many tokens this run asked for
        self.scope: str | None = None  # the scope the token reply grants, when it names one (OAuth2 §5.1)
        REDACTOR.register(client_secret)

    def _mint_request(self) -> httpx.Request:
        return httpx.Request("POST", self.token_url, json={
            "grant_type": "client_credentials", "client_id": self._id, "client_secret": self._secret,
            "audience": self.audience}, headers={"Accept": "application/json"})

    def _store(self, response: httpx.Response) -> None:
        call = f"POST {httpx.URL(self.token_url).path}"
        if response.status_code in (400, 401, 403):
            raise VendorAuthError(VENDOR, call, f"HTTP {response.status_code}: the client id and secret were "
                                  "refused; check them with `offboard auth set blumira` or the "
                                  "OFFBOARD_BLUMIRA_CLIENT_ID/_CLIENT_SECRET variables", response.status_code)
        if response.status_code != 200:
            raise VendorError(VENDOR, call, f"the token endpoint answered HTTP {response.status_code}",
                              response.status_code)
        length = response.headers.get("content-length", "").strip()
        if length.isdigit() and int(length) > TOKEN_REPLY_MAX:  # a chunked reply is read whole (httpx reads it)
            raise VendorReplyRefused(VENDOR, call, f"the vendor's reply to the token request is {int(length):,} "
                                     f"bytes (a token is a few hundred): the vendor is answering nonsense; try "
                                     "again later or ask the vendor")
        response.read()
        try:
            body = json.loads(response.content)
        except (ValueError, RecursionError):
            body = None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise VendorReplyError(VENDOR, call, "the token reply has no access_token")
        REDACTOR.register(token)
        lifetime = body.get("expires_in") if isinstance(body, dict) else None
        seconds = float(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 else DEFAULT_LIFETIME
        scope = body.get("scope") if isinstance(body, dict) else None
        self.scope = scope if isinstance(scope, str) else None
        self._token = token
        self._expires_at = self._clock() + max(seconds - min(EARLY, seconds / 10), 0.0)
        self.minted += 1

    def _fresh(self) -> bool:
        return self._token is not None and self._clock() < self._expires_at

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not self._fresh():
            self._store((yield self._mint_request()))
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:
            self._store((yield self._mint_request()))  # once: a second 401 is the caller's to report
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request
