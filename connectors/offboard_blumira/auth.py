"""Blumira's OAuth2 client credentials (vendor-notes §1.2): the core's ``wire.oauth`` with
Blumira's token endpoint — a JSON body with the ``audience`` Blumira's own demo code sends."""

from __future__ import annotations

import time
from collections.abc import Callable

from offboard.wire import oauth


class ClientCredentials(oauth.ClientCredentials):
    def __init__(self, token_url: str, client_id: str, client_secret: str, audience: str, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        endpoint = oauth.TokenEndpoint(
            "Blumira", token_url, body="json", fields={"audience": audience},
            refused="check them with `offboard auth set blumira` or the "
                    "OFFBOARD_BLUMIRA_CLIENT_ID/_CLIENT_SECRET variables")
        super().__init__(endpoint, client_id, client_secret, clock=clock)
        self.audience = audience
