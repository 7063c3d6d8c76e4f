"""The Huntress connector for offboard: EDR agents of one organization (this slice).

Registered in the ``offboard.connectors`` entry-point group as ``huntress``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from offboard.connectors import SandboxKit
from offboard.connectors.base import VendorConnector, Wire, sandbox_kit
from offboard.wire.credentials import CredentialField
from offboard.wire.redact import REDACTOR

from .session import HuntressSession
from .settings import HuntressSettings

__all__ = ["HuntressConnector", "HuntressSession", "HuntressSettings", "connector"]


class HuntressConnector(VendorConnector[HuntressSettings, HuntressSession]):
    name = "huntress"
    display_name = "Huntress"
    settings_model = HuntressSettings
    session_type = HuntressSession
    credential_fields = (
        CredentialField("api_key", "Huntress API key (hk_…)"),
        CredentialField("api_secret", "Huntress API secret (hs_…)"),
    )
    # Observed, not documented (vendor-notes §1.3): used when sent, never required.
    remaining_header = "x-huntress-api-call-remaining"

    def wire(self, settings: HuntressSettings, credentials: Mapping[str, str]) -> Wire:
        key, secret = credentials["api_key"], credentials["api_secret"]
        REDACTOR.register_basic_auth(key, secret)
        return Wire(settings.base_url, httpx.BasicAuth(key, secret), key, settings.requests_per_minute,
                    settings.rate_window_seconds)

    def sandbox(self) -> SandboxKit:
        from . import sandbox  # starlette and uvicorn: only when a sandbox is served or tested

        def section(base_url: str, time_scale: float) -> dict[str, Any]:
            return {"organization_id": sandbox.CUSTOMER_ORG, "base_url": base_url,
                    "rate_window_seconds": 60.0 * time_scale}

        def org_of(index: int) -> int:  # the neighbour (43) stays every customer's neighbour
            return sandbox.CUSTOMER_ORG if index == 0 else sandbox.NEIGHBOUR_ORG + index

        def make_app_for(time_scale: float, customers: int) -> Any:
            more = {org_of(i): 8 for i in range(1, customers)}
            return sandbox.HuntressSandbox(time_scale=time_scale, more_customers=more).app

        def customer_section(base_url: str, time_scale: float, index: int) -> dict[str, Any]:
            return {**section(base_url, time_scale), "organization_id": org_of(index)}

        return sandbox_kit(sandbox.HuntressSandbox, section,
                           {"api_key": sandbox.DEMO_KEY, "api_secret": sandbox.DEMO_SECRET}, portal=True,
                           make_app_for=make_app_for, customer_section=customer_section)


connector = HuntressConnector()
