"""Autotask's API user (notes §2): three headers, no Basic auth — ``ApiIntegrationCode``,
``UserName``, ``Secret``. Each value goes to the redactor."""

from __future__ import annotations

from collections.abc import Generator

import httpx

from offboard.wire.redact import REDACTOR


class ApiUser(httpx.Auth):
    def __init__(self, username: str, secret: str, integration_code: str) -> None:
        self._headers = {"ApiIntegrationCode": integration_code, "UserName": username, "Secret": secret}
        REDACTOR.register(secret, integration_code)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self._headers)
        yield request
