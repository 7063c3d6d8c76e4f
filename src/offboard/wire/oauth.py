"""OAuth2 client credentials (RFC 6749 §4.4) as an httpx auth strategy, for any vendor.

The token is minted on first use, cached until shortly before ``expires_in``, and minted once
more when the API answers 401 (revoked or expired early); a second 401 is the caller's to report.
The mint request goes through the same client and transport as every call, so tests and the
sandbox see it. The client secret and every token are registered with the redactor.

What differs between vendors is data (``TokenEndpoint``): the URL and its query, whether the
request is form-encoded (the RFC) or JSON (some vendors), the extra fields (``audience``,
``scope``) and what to tell a person whose credentials were refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from offboard.errors import VendorAuthError, VendorError, VendorReplyError
from offboard.wire.redact import REDACTOR

EARLY = 60.0  # refresh this many seconds before the vendor says the token expires (a tenth of a shorter life)
DEFAULT_LIFETIME = 3600.0  # assumed when the reply has no expires_in (RFC 6749 §5.1 makes it optional)


@dataclass(frozen=True)
class TokenEndpoint:
    """One vendor's token endpoint: everything but the credentials."""

    vendor: str  # as errors name it
    url: str
    body: Literal["form", "json"] = "form"
    fields: Mapping[str, str] = field(default_factory=dict)  # beyond grant_type and the client's id and secret
    params: Mapping[str, str] = field(default_factory=dict)  # the query string, if the vendor wants one
    refused: str = "check the client id and secret"  # the fix, when the endpoint refuses them
    failed: str = ""  # what a failed mint usually means at this vendor, if it is known


class ClientCredentials(httpx.Auth):
    requires_response_body = True

    def __init__(self, endpoint: TokenEndpoint, client_id: str, client_secret: str, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.endpoint = endpoint
        self._id = client_id
        self._secret = client_secret
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self.minted = 0  # how many tokens this run asked for
        self.scope: str | None = None  # the scope the token reply grants, when it names one (RFC 6749 §5.1)
        REDACTOR.register(client_secret)

    @property
    def token_url(self) -> str:
        return self.endpoint.url

    def _mint_request(self) -> httpx.Request:
        ep = self.endpoint
        payload = {"grant_type": "client_credentials", "client_id": self._id, "client_secret": self._secret,
                   **ep.fields}
        body: dict[str, Any] = {"json": payload} if ep.body == "json" else {"data": payload}
        return httpx.Request("POST", ep.url, params=dict(ep.params) or None,
                             headers={"Accept": "application/json"}, **body)

    def _store(self, response: httpx.Response) -> None:
        ep = self.endpoint
        call = f"POST {httpx.URL(ep.url).path}"
        if response.status_code in (400, 401, 403):
            raise VendorAuthError(ep.vendor, call, f"HTTP {response.status_code}: the client id and secret were "
                                  f"refused; {ep.refused}", response.status_code)
        if response.status_code != 200:
            why = f" ({ep.failed})" if ep.failed else ""
            raise VendorError(ep.vendor, call, f"the token endpoint answered HTTP {response.status_code}{why}",
                              response.status_code)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise VendorReplyError(ep.vendor, call, "the token reply has no access_token")
        REDACTOR.register(token)
        lifetime = body.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 else DEFAULT_LIFETIME
        scope = body.get("scope")
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
