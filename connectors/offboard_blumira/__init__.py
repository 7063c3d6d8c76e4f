"""The Blumira connector for offboard: de-provision one MSP sub-account.

Registered in the ``offboard.connectors`` entry-point group as ``blumira``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from offboard.connectors import ExitContext, SandboxKit
from offboard.connectors.base import VendorConnector, Wire, sandbox_kit
from offboard.wire.credentials import CredentialField
from offboard.wire.http import RetryPolicy, VendorHttp

from .auth import ClientCredentials
from .session import BlumiraSession
from .settings import AUDIENCE, RATE_WINDOW, BlumiraSettings

__all__ = ["BlumiraConnector", "BlumiraSession", "BlumiraSettings", "connector"]


class BlumiraConnector(VendorConnector[BlumiraSettings, BlumiraSession]):
    name = "blumira"
    display_name = "Blumira"
    settings_model = BlumiraSettings
    credential_fields = (
        CredentialField("client_id", "Blumira MSP API client ID"),
        CredentialField("client_secret", "Blumira MSP API client secret"),
    )
    # A 429 without Retry-After: wait one window (1 s), not Huntress-like minutes.
    policy = RetryPolicy(rate_limited_default=RATE_WINDOW)

    def wire(self, settings: BlumiraSettings, credentials: Mapping[str, str]) -> Wire:
        auth = ClientCredentials(settings.token_url, credentials["client_id"], credentials["client_secret"], AUDIENCE)
        return Wire(settings.base_url, auth, credentials["client_id"], settings.requests_per_second,
                    settings.rate_window_seconds)

    def session(self, http: VendorHttp, settings: BlumiraSettings, wire: Wire,
                context: ExitContext | None) -> BlumiraSession:
        assert isinstance(wire.auth, ClientCredentials)
        return BlumiraSession(http, settings, context, auth=wire.auth)  # the token's granted scope: a finding

    def sandbox(self) -> SandboxKit:
        from . import sandbox  # starlette and uvicorn: only when a sandbox is served or tested

        def section(base_url: str, time_scale: float) -> dict[str, Any]:
            return {"account_id": sandbox.CUSTOMER_ACCOUNT, "base_url": f"{base_url}{sandbox.API_PREFIX}",
                    "token_url": f"{base_url}{sandbox.TOKEN_PATH}", "rate_window_seconds": RATE_WINDOW * time_scale,
                    "keep_users": [sandbox.KEEP_USER], "msp_sender": "Sandbox MSP <noc@sandbox-msp.example>"}

        def account_of(index: int) -> str:
            return sandbox.CUSTOMER_ACCOUNT if index == 0 else f"5d0c9a7e-2b3f-4f61-a8c2-custom{index:06d}"

        def make_app_for(time_scale: float, customers: int) -> Any:
            more = {account_of(i): 3 for i in range(1, customers)}
            return sandbox.BlumiraSandbox(time_scale=time_scale, more_accounts=more).app

        def customer_section(base_url: str, time_scale: float, index: int) -> dict[str, Any]:
            account = account_of(index)
            return {**section(base_url, time_scale), "account_id": account,
                    "keep_users": [sandbox.keep_user_of(account)]}

        return sandbox_kit(sandbox.BlumiraSandbox, section,
                           {"client_id": sandbox.DEMO_CLIENT_ID, "client_secret": sandbox.DEMO_SECRET}, portal=True,
                           make_app_for=make_app_for, customer_section=customer_section)


connector = BlumiraConnector()
