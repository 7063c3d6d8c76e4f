"""The HaloPSA connector for offboard: the exit's ticket in HaloPSA (a PSA connector).

Registered in the ``offboard.psa`` entry-point group as ``halopsa``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from offboard.connectors import SandboxKit
from offboard.connectors.base import Wire, sandbox_kit
from offboard.connectors.psa import PsaConnectorBase
from offboard.wire.credentials import CredentialField

from .auth import halo_token
from .client import refusal
from .session import HaloTicketSession
from .settings import RATE_WINDOW, HaloSettings

__all__ = ["HaloConnector", "HaloSettings", "HaloTicketSession", "connector"]


class HaloConnector(PsaConnectorBase[HaloSettings]):
    name = "halopsa"
    display_name = "HaloPSA"
    demo_default = True  # `offboard demo` keeps the exit's ticket here: its notes are HTML, contract-tested
    settings_model = HaloSettings
    session_type = HaloTicketSession
    credential_fields = (
        CredentialField("client_id", "HaloPSA API application Client ID"),
        CredentialField("client_secret", "HaloPSA API application Client Secret"),
    )
    policy = replace(PsaConnectorBase.policy, rate_limited_default=RATE_WINDOW / 5)
    refusal = staticmethod(refusal)  # its validation envelope: recorded as refused, never resent

    def wire(self, settings: HaloSettings, credentials: Mapping[str, str]) -> Wire:
        auth = halo_token(settings.auth_url, settings.tenant, credentials["client_id"], credentials["client_secret"])
        return Wire(settings.base_url, auth, credentials["client_id"], settings.requests_per_window,
                    settings.rate_window_seconds)

    def sandbox(self) -> SandboxKit:
        from . import sandbox  # starlette: only when a sandbox is served or tested

        def section(base_url: str, time_scale: float) -> dict[str, Any]:
            return {"kind": self.name, "ticket_id": str(sandbox.EXIT_TICKET), "base_url": f"{base_url}/api",
                    "auth_url": f"{base_url}/auth", "rate_window_seconds": RATE_WINDOW * time_scale,
                    "close_status": "21"}

        return sandbox_kit(sandbox.HaloSandbox, section,
                           {"client_id": sandbox.DEMO_CLIENT_ID, "client_secret": sandbox.DEMO_SECRET})


connector = HaloConnector()
