"""The Autotask PSA connector for offboard: the exit's ticket in Autotask (a PSA connector).

Registered in the ``offboard.psa`` entry-point group as ``autotask``.
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

from .auth import ApiUser
from .session import AutotaskTicketSession
from .settings import RATE_WINDOW, AutotaskSettings

__all__ = ["AutotaskConnector", "AutotaskSettings", "AutotaskTicketSession", "connector"]

# The tenant's budget is shared by every integration: few tries, long waits on a 429.
POLICY = RetryPolicy(max_attempts=3, backoff_base=2.0, backoff_max=20.0, retry_after_max=120.0,
                     rate_limited_default=60.0)


class AutotaskConnector:
    name = "autotask"
    display_name = "Autotask"
    settings_model = AutotaskSettings
    credential_fields = (
        CredentialField("username", "Autotask API user name (an API-only user)"),
        CredentialField("secret", "Autotask API user secret"),
        CredentialField("integration_code", "Autotask API tracking identifier (integration code)"),
    )

    def open(self, settings: PsaSettings, credentials: Mapping[str, SecretStr], *,
             transport: httpx.BaseTransport | None = None) -> AutotaskTicketSession:
        assert isinstance(settings, AutotaskSettings)
        user = credentials["username"].get_secret_value()
        auth = ApiUser(user, credentials["secret"].get_secret_value(),
                       credentials["integration_code"].get_secret_value())
        http = VendorHttp(
            "Autotask", settings.base_url, auth,
            SlidingWindowLimiter(settings.requests_per_hour, settings.rate_window_seconds),
            policy=POLICY.scaled(settings.time_scale), transport=transport,
            budget_file=budget_path(self.name, f"{settings.base_url} {user}"),
            limits=ReplyLimits.of(settings, "psa"),
        )
        return AutotaskTicketSession(http, settings)

    def sandbox(self) -> SandboxKit:
        from . import sandbox

        def make_app(time_scale: float) -> Any:
            return sandbox.AutotaskSandbox(time_scale=time_scale).app

        def config_section(base_url: str, time_scale: float) -> dict[str, Any]:
            return {"kind": self.name, "ticket_id": str(sandbox.EXIT_TICKET), "base_url": base_url + sandbox.PREFIX,
                    "rate_window_seconds": RATE_WINDOW * time_scale, "close_status": str(sandbox.COMPLETE)}

        creds = {"username": sandbox.DEMO_USER, "secret": sandbox.DEMO_SECRET, "integration_code": sandbox.DEMO_CODE}
        return SandboxKit(make_app=make_app, config_section=config_section, credentials=creds)


connector = AutotaskConnector()
