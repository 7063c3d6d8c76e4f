"""ConnectWise's API-member keys (notes §1): Basic ``<companyId>+<publicKey>:<privateKey>`` and the
integration's ``clientId`` header on every request. Every form of them goes to the redactor."""

from __future__ import annotations

from collections.abc import Generator

import httpx

from offboard.wire.redact import REDACTOR


class MemberKeys(httpx.Auth):
    def __init__(self, company_id: str, public_key: str, private_key: str, client_id: str) -> None:
        user = f"{company_id}+{public_key}"
        self._basic = httpx.BasicAuth(user, private_key)
        self._client_id = client_id
        REDACTOR.register_basic_auth(user, private_key)
        REDACTOR.register(public_key, private_key, client_id)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["clientId"] = self._client_id
        yield from self._basic.auth_flow(request)
