"""The HaloPSA connector for offboard: the exit's ticket in HaloPSA (a PSA connector).

Registered in the ``offboard.psa`` entry-point group as ``halopsa``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import SecretStr

from offboard.connectors import SandboxKit
from offboard.connectors.psa import PsaSettings
from offboard.wire.credentials import CredentialField
from offboard.wire.http import RetryPolicy, VendorHttp
from offboard.wire.ratelimit import SlidingWindowLimiter, budget_path
from offboard.wire.replies import ReplyLimits

from .auth import HaloToken
from .session import HaloTicketSession
from .settings import RATE_WINDOW, HaloSettings

__all__ = ["HaloConnector", "HaloSettings", "HaloTicketSession", "connector"]

# A PSA is not the exit: a few quick tries, then the note waits for a person (or a later try).
POLICY = RetryPolicy(max_attempts=3, backoff_base=1.0, backoff_max=10.0, retry_after_max=60.0,
                     rate_limited_default=RATE_WINDOW / 5)


class HaloConnector:
    name = "halopsa"
    display_name = "HaloPSA"
    demo_default = True  # `offboard demo` keeps the exit's ticket here: its notes are HTML, contract-tested
    settings_model = HaloSettings
    credential_fields = (
        CredentialField("client_id", "HaloPSA API application Client ID"),
        CredentialField("client_secret", "HaloPSA API application Client Secret"),
    )

    def open(self, settings: PsaSettings, credentials: Mapping[str, SecretStr], *,
             transport: httpx.BaseTransport | None = None) -> HaloTicketSession:
        assert isinstance(settings, HaloSettings)
        client_id = credentials["client_id"].get_secret_value()
        auth = HaloToken(settings.auth_url, settings.tenant, client_id, credentials["client_secret"].get_secret_value())
        http = VendorHttp(
            "HaloPSA", settings.base_url, auth,
            SlidingWindowLimiter(settings.requests_per_window, settings.rate_window_seconds),
            policy=POLICY.scaled(settings.time_scale), transport=transport,
            budget_file=budget_path(self.name, f"{settings.base_url} {client_id}"),
            limits=ReplyLimits.of(settings, "psa"),
        )
        return HaloTicketSession(http, settings)

    def sandbox(self) -> SandboxKit:
        from . import sandbox

        def make_app(time_scale: float) -> Any:
            return sandbox.HaloSandbox(time_scale=time_scale).app

        def config_section(base_url: str, time_scale: float) -> dict[str, Any]:
            return {"kind": self.name, "ticket_id": str(sandbox.EXIT_TICKET), "base_url": f"{base_url}/api",
                    "auth_url": f"{base_url}/auth", "rate_window_seconds": RATE_WINDOW * time_scale,
                    "close_status": "21"}

        return SandboxKit(make_app=make_app, config_section=config_section,
                          credentials={"client_id": sandbox.DEMO_CLIENT_ID, "client_secret": sandbox.DEMO_SECRET})


connector = HaloConnector()
