"""The ConnectWise PSA connector for offboard: the exit's service ticket (a PSA connector).

Registered in the ``offboard.psa`` entry-point group as ``connectwise``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from offboard.connectors import SandboxKit
from offboard.connectors.base import Wire, sandbox_kit
from offboard.connectors.psa import PsaConnectorBase
from offboard.wire.credentials import CredentialField

from .auth import MemberKeys
from .client import refusal
from .session import ConnectWiseTicketSession
from .settings import RATE_WINDOW, ConnectWiseSettings

__all__ = ["ConnectWiseConnector", "ConnectWiseSettings", "ConnectWiseTicketSession", "connector"]


class ConnectWiseConnector(PsaConnectorBase[ConnectWiseSettings]):
    name = "connectwise"
    display_name = "ConnectWise PSA"
    wire_name = "ConnectWise"
    settings_model = ConnectWiseSettings
    session_type = ConnectWiseTicketSession
    credential_fields = (
        CredentialField("public_key", "ConnectWise API member public key"),
        CredentialField("private_key", "ConnectWise API member private key"),
        CredentialField("client_id", "ConnectWise clientId (the integration's GUID from developer.connectwise.com)"),
    )
    policy = replace(PsaConnectorBase.policy, rate_limited_default=RATE_WINDOW / 4)  # a 429's Retry-After wins
    refusal = staticmethod(refusal)  # its validation envelope: recorded as refused, never resent

    def wire(self, settings: ConnectWiseSettings, credentials: Mapping[str, str]) -> Wire:
        public = credentials["public_key"]
        auth = MemberKeys(settings.company_id, public, credentials["private_key"], credentials["client_id"])
        return Wire(settings.base_url, auth, f"{settings.company_id} {public}", settings.requests_per_minute,
                    settings.rate_window_seconds)

    def sandbox(self) -> SandboxKit:
        from . import sandbox  # starlette: only when a sandbox is served or tested

        def section(base_url: str, time_scale: float) -> dict[str, Any]:
            return {"kind": self.name, "ticket_id": str(sandbox.EXIT_TICKET), "base_url": base_url + sandbox.PREFIX,
                    "company_id": sandbox.COMPANY, "rate_window_seconds": RATE_WINDOW * time_scale,
                    "close_status": "32"}

        return sandbox_kit(sandbox.ConnectWiseSandbox, section, {"public_key": sandbox.DEMO_PUBLIC,
                           "private_key": sandbox.DEMO_PRIVATE, "client_id": sandbox.DEMO_CLIENT_ID})


connector = ConnectWiseConnector()
