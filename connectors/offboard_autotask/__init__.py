"""The Autotask PSA connector for offboard: the exit's ticket in Autotask (a PSA connector).

Registered in the ``offboard.psa`` entry-point group as ``autotask``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from offboard.connectors import SandboxKit
from offboard.connectors.base import Wire, sandbox_kit
from offboard.connectors.psa import PsaConnectorBase
from offboard.wire.credentials import CredentialField
from offboard.wire.http import RetryPolicy

from .auth import ApiUser
from .client import refusal
from .session import AutotaskTicketSession
from .settings import RATE_WINDOW, AutotaskSettings

__all__ = ["AutotaskConnector", "AutotaskSettings", "AutotaskTicketSession", "connector"]


class AutotaskConnector(PsaConnectorBase[AutotaskSettings]):
    name = "autotask"
    display_name = "Autotask"
    settings_model = AutotaskSettings
    session_type = AutotaskTicketSession
    credential_fields = (
        CredentialField("username", "Autotask API user name (an API-only user)"),
        CredentialField("secret", "Autotask API user secret"),
        CredentialField("integration_code", "Autotask API tracking identifier (integration code)"),
    )
    # The tenant's budget is shared by every integration: few tries, long waits on a 429.
    policy = RetryPolicy(max_attempts=3, backoff_base=2.0, backoff_max=20.0, retry_after_max=120.0,
                         rate_limited_default=60.0)
    refusal = staticmethod(refusal)  # its validation envelope: recorded as refused, never resent

    def wire(self, settings: AutotaskSettings, credentials: Mapping[str, str]) -> Wire:
        user = credentials["username"]
        auth = ApiUser(user, credentials["secret"], credentials["integration_code"])
        return Wire(settings.base_url, auth, user, settings.requests_per_hour, settings.rate_window_seconds)

    def sandbox(self) -> SandboxKit:
        from . import sandbox  # starlette: only when a sandbox is served or tested

        def section(base_url: str, time_scale: float) -> dict[str, Any]:
            return {"kind": self.name, "ticket_id": str(sandbox.EXIT_TICKET), "base_url": base_url + sandbox.PREFIX,
                    "rate_window_seconds": RATE_WINDOW * time_scale, "close_status": str(sandbox.COMPLETE)}

        return sandbox_kit(sandbox.AutotaskSandbox, section, {
            "username": sandbox.DEMO_USER, "secret": sandbox.DEMO_SECRET, "integration_code": sandbox.DEMO_CODE})


connector = AutotaskConnector()
