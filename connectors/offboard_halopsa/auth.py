"""HaloPSA's OAuth2 client credentials (notes §3), as an httpx auth strategy.

``POST {auth_url}/token[?tenant=…]``, form-encoded ``grant_type=client_credentials``, the client
id and secret, ``scope=all``; then ``Authorization: Bearer``. The token is kept until shortly
before ``expires_in`` and minted once more on a 401. The secret and every token are registered
with the redactor; the mint goes through the same transport as every call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator

import httpx

from offboard.errors import VendorAuthError, VendorError, VendorReplyError
from offboard.wire.redact import REDACTOR

EARLY = 60.0
DEFAULT_LIFETIME = 3600.0
VENDOR = "HaloPSA"


class HaloToken(httpx.Auth):
    requires_response_body = True

    def __init__(self, auth_url: str, tenant: str, client_id: str, client_secret: str, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.token_url = auth_url.rstrip("/") + "/token"
        self.tenant = tenant
        self._id = client_id
        self._secret = client_secret
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        REDACTOR.register(client_secret)

    def _mint_request(self) -> httpx.Request:
        params = {"tenant": self.tenant} if self.tenant else None
        return httpx.Request("POST", self.token_url, params=params, data={
            "grant_type": "client_credentials", "client_id": self._id, "client_secret": self._secret,
            "scope": "all"}, headers={"Accept": "application/json"})

    def _store(self, response: httpx.Response) -> None:
        call = f"POST {httpx.URL(self.token_url).path}"
        if response.status_code in (400, 401, 403):
            raise VendorAuthError(VENDOR, call, f"HTTP {response.status_code}: the client id and secret were refused; "
                                  "check them with `offboard auth set psa` or OFFBOARD_PSA_CLIENT_ID/_CLIENT_SECRET",
                                  response.status_code)
        if response.status_code != 200:
            # A 500 here usually means the application has no agent bound to it (notes §3).
            raise VendorError(VENDOR, call, f"the token endpoint answered HTTP {response.status_code} (a 500 usually "
                              "means the API application has no agent with login type Agent)", response.status_code)
        try:
            body = response.json()
        except ValueError:
            body = None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise VendorReplyError(VENDOR, call, "the token reply has no access_token")
        REDACTOR.register(token)
        lifetime = body.get("expires_in") if isinstance(body, dict) else None
        seconds = float(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 else DEFAULT_LIFETIME
        self._token = token
        self._expires_at = self._clock() + max(seconds - min(EARLY, seconds / 10), 0.0)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._token is None or self._clock() >= self._expires_at:
            self._store((yield self._mint_request()))
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:
            self._store((yield self._mint_request()))
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request
