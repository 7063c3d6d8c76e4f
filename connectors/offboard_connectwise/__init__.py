"""The ConnectWise PSA connector for offboard: the exit's service ticket (a PSA connector).

Registered in the ``offboard.psa`` entry-point group as ``connectwise``.
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

from .auth import MemberKeys
from .session import ConnectWiseTicketSession
from .settings import RATE_WINDOW, ConnectWiseSettings

__all__ = ["ConnectWiseConnector", "ConnectWiseSettings", "ConnectWiseTicketSession", "connector"]

# A PSA is not the exit: a few quick tries (a 429's Retry-After is honoured), then a person.
POLICY = RetryPolicy(max_attempts=3, backoff_base=1.0, backoff_max=10.0, retry_after_max=60.0,
                     rate_limited_default=RATE_WINDOW / 4)


class ConnectWiseConnector:
    name = "connectwise"
    display_name = "ConnectWise PSA"
    settings_model = ConnectWiseSettings
    credential_fields = (
        CredentialField("public_key", "ConnectWise API member public key"),
        CredentialField("private_key", "ConnectWise API member private key"),
        CredentialField("client_id", "ConnectWise clientId (the integration's GUID from developer.connectwise.com)"),
    )

    def open(self, settings: PsaSettings, credentials: Mapping[str, SecretStr], *,
             transport: httpx.BaseTransport | None = None) -> ConnectWiseTicketSession:
        assert isinstance(settings, ConnectWiseSettings)
        public = credentials["public_key"].get_secret_value()
        auth = MemberKeys(settings.company_id, public, credentials["private_key"].get_secret_value(),
                          credentials["client_id"].get_secret_value())
        http = VendorHttp(
            "ConnectWise", settings.base_url, auth,
            SlidingWindowLimiter(settings.requests_per_minute, settings.rate_window_seconds),
            policy=POLICY.scaled(settings.time_scale), transport=transport,
            budget_file=budget_path(self.name, f"{settings.base_url} {settings.company_id} {public}"),
            limits=ReplyLimits.of(settings, "psa"),
        )
        return ConnectWiseTicketSession(http, settings)

    def sandbox(self) -> SandboxKit:
        from . import sandbox

        def make_app(time_scale: float) -> Any:
            return sandbox.ConnectWiseSandbox(time_scale=time_scale).app

        def config_section(base_url: str, time_scale: float) -> dict[str, Any]:
            return {"kind": self.name, "ticket_id": str(sandbox.EXIT_TICKET), "base_url": base_url + sandbox.PREFIX,
                    "company_id": sandbox.COMPANY, "rate_window_seconds": RATE_WINDOW * time_scale,
                    "close_status": "32"}

        creds = {"public_key": sandbox.DEMO_PUBLIC, "private_key": sandbox.DEMO_PRIVATE,
                 "client_id": sandbox.DEMO_CLIENT_ID}
        return SandboxKit(make_app=make_app, config_section=config_section, credentials=creds)


connector = ConnectWiseConnector()
