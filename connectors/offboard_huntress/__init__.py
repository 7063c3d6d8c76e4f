"""The Huntress connector for offboard: EDR agents of one organization (this slice).

Registered in the ``offboard.connectors`` entry-point group as ``huntress``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import SecretStr

from offboard.config import SectionSettings
from offboard.connectors import ExitContext, SandboxKit
from offboard.wire.credentials import CredentialField
from offboard.wire.http import RetryPolicy, VendorHttp
from offboard.wire.ratelimit import SlidingWindowLimiter, budget_path
from offboard.wire.redact import REDACTOR

from .session import HuntressSession
from .settings import HuntressSettings

__all__ = ["HuntressConnector", "HuntressSession", "HuntressSettings", "connector"]


class HuntressConnector:
    name = "huntress"
    display_name = "Huntress"
    settings_model = HuntressSettings
    credential_fields = (
        CredentialField("api_key", "Huntress API key (hk_…)"),
        CredentialField("api_secret", "Huntress API secret (hs_…)"),
    )

    def open(self, settings: SectionSettings, credentials: Mapping[str, SecretStr], *,
             transport: httpx.BaseTransport | None = None, context: ExitContext | None = None) -> HuntressSession:
        assert isinstance(settings, HuntressSettings)
        key = credentials["api_key"].get_secret_value()
        secret = credentials["api_secret"].get_secret_value()
        REDACTOR.register_basic_auth(key, secret)
        http = VendorHttp(
            "Huntress",
            settings.base_url,
            httpx.BasicAuth(key, secret),
            SlidingWindowLimiter(settings.requests_per_minute, settings.rate_window_seconds),
            policy=RetryPolicy().scaled(settings.time_scale),
            transport=transport,
            budget_file=budget_path(self.name, f"{settings.base_url} {key}"),
            # Observed, not documented (vendor-notes §1.3): used when sent, never required.
            remaining_header="x-huntress-api-call-remaining",
        )
        return HuntressSession(http, settings)

    def sandbox(self) -> SandboxKit:
        # Imported here: starlette and uvicorn load only when a sandbox is served or tested.
        from offboard.connectors import sandboxing

        from . import sandbox

        def make_app(time_scale: float) -> Any:
            return sandbox.HuntressSandbox(time_scale=time_scale).app

        def config_section(base_url: str, time_scale: float) -> dict[str, Any]:
            return {"organization_id": sandbox.CUSTOMER_ORG, "base_url": base_url,
                    "rate_window_seconds": 60.0 * time_scale}

        def org_of(index: int) -> int:  # the neighbour (43) stays every customer's neighbour
            return sandbox.CUSTOMER_ORG if index == 0 else sandbox.NEIGHBOUR_ORG + index

        def make_app_for(time_scale: float, customers: int) -> Any:
            more = {org_of(i): 8 for i in range(1, customers)}
            return sandbox.HuntressSandbox(time_scale=time_scale, more_customers=more).app

        def customer_section(base_url: str, time_scale: float, index: int) -> dict[str, Any]:
            return {**config_section(base_url, time_scale), "organization_id": org_of(index)}

        return SandboxKit(make_app=make_app, config_section=config_section,
                          credentials={"api_key": sandbox.DEMO_KEY, "api_secret": sandbox.DEMO_SECRET},
                          portal=sandboxing.portal, make_app_for=make_app_for, customer_section=customer_section)


connector = HuntressConnector()
