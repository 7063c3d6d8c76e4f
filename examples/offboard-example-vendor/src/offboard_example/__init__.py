"""The Example Backup connector for offboard: retire one customer's devices, then have a person
cancel the customer's plan. A made-up vendor, shipped as its own distribution: the worked
example of docs/writing-a-connector.md.

Registered in the ``offboard.connectors`` entry-point group as ``example`` (pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any

import httpx

from offboard.connectors import SandboxKit
from offboard.connectors.base import VendorConnector, Wire, sandbox_kit
from offboard.wire.credentials import CredentialField
from offboard.wire.redact import REDACTOR

from .session import ExampleSession
from .settings import RATE_WINDOW, ExampleSettings

__all__ = ["ExampleConnector", "ExampleSession", "ExampleSettings", "connector"]


class BearerToken(httpx.Auth):
    """A static API token, sent as ``Authorization: Bearer``; registered with the redactor so it
    never reaches a log, an audit line or an error."""

    def __init__(self, token: str) -> None:
        self._token = token
        REDACTOR.register(token)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


class ExampleConnector(VendorConnector[ExampleSettings, ExampleSession]):
    name = "example"  # the config section [example], the keyring service, OFFBOARD_EXAMPLE_* variables
    display_name = "Example Backup"
    settings_model = ExampleSettings
    session_type = ExampleSession
    credential_fields = (CredentialField("api_token", "Example Backup API token"),)

    def wire(self, settings: ExampleSettings, credentials: Mapping[str, str]) -> Wire:
        token = credentials["api_token"]
        return Wire(settings.base_url, BearerToken(token), token, settings.requests_per_minute,
                    settings.rate_window_seconds)

    def sandbox(self) -> SandboxKit:
        from . import sandbox  # starlette and uvicorn: only when a sandbox is served or tested

        def section(base_url: str, time_scale: float) -> dict[str, Any]:
            return {"customer_id": sandbox.CUSTOMER, "base_url": base_url + sandbox.PREFIX,
                    "rate_window_seconds": RATE_WINDOW * time_scale}

        return sandbox_kit(sandbox.ExampleSandbox, section, {"api_token": sandbox.DEMO_TOKEN}, portal=True)


connector = ExampleConnector()
