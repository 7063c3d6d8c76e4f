"""What every connector package would otherwise write again: opening its vendor's API on the
core's wire (retries, the machine-wide rate budget, the redactor) and its sandbox kit.

A vendor's entry module then says only what is its own: its names, its credentials, how they
become an httpx auth, its settings and session types, its sandbox's config section. Both the
vendors' connectors (``VendorConnector``) and the PSAs' (``offboard.connectors.psa.PsaConnectorBase``)
are built on ``HttpConnector``. Subclassing is a convenience, not the contract: the core only
asks for the ``Connector`` / ``PsaConnector`` protocols.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import httpx
from pydantic import SecretStr

from offboard.config import SectionSettings, VendorSettings
from offboard.connectors import ExitContext, SandboxKit
from offboard.wire.credentials import CredentialField
from offboard.wire.http import RetryPolicy, VendorHttp
from offboard.wire.ratelimit import SlidingWindowLimiter, budget_path
from offboard.wire.replies import ReplyLimits

S = TypeVar("S", bound=SectionSettings)
T = TypeVar("T")


@dataclass(frozen=True)
class Wire:
    """How one set of credentials reaches the vendor's API."""

    base_url: str
    auth: httpx.Auth  # registers its secrets with the redactor when it is made
    account: str  # names the vendor account in the machine-wide rate budget (hashed there, never written)
    requests: int  # offboard's share of the account's limit …
    window: float  # … in this many seconds (the settings' rate_window_seconds)


class HttpConnector(Generic[S, T]):
    """A connector whose vendor is an HTTP API: a subclass names itself, its settings model, its
    credential fields and its session type, and turns credentials into a ``Wire`` (``wire``)."""

    name: str
    display_name: str
    settings_model: type[S]
    credential_fields: tuple[CredentialField, ...]
    session_type: Callable[[VendorHttp, S], T]
    wire_name: ClassVar[str] = ""  # the vendor as the wire's errors name it; default: display_name
    policy: ClassVar[RetryPolicy] = RetryPolicy()  # scaled by the settings' time scale (a sandbox's fast clock)
    remaining_header: ClassVar[str | None] = None  # the vendor's "calls left in the window" header, if any
    section: ClassVar[str] = ""  # the config section its settings come from; default: name

    def wire(self, settings: S, credentials: Mapping[str, str]) -> Wire:
        raise NotImplementedError

    def refusal(self, response: httpx.Response) -> str | None:
        """The vendor's documented refusal envelope in an error reply (its message), or None: a
        refusal is never retried nor taken for a write that may have landed (wire.http)."""
        return None

    def own(self, settings: SectionSettings) -> S:
        if not isinstance(settings, self.settings_model):
            raise TypeError(f"{self.name} opened with {type(settings).__name__}, not {self.settings_model.__name__}")
        return settings

    def connect(self, settings: S, credentials: Mapping[str, SecretStr],
                transport: httpx.BaseTransport | None) -> tuple[VendorHttp, Wire]:
        wire = self.wire(settings, {k: v.get_secret_value() for k, v in credentials.items()})
        http = VendorHttp(
            self.wire_name or self.display_name, wire.base_url, wire.auth,
            SlidingWindowLimiter(wire.requests, wire.window),
            policy=self.policy.scaled(settings.time_scale), transport=transport,
            budget_file=budget_path(self.name, f"{wire.base_url} {wire.account}"),
            remaining_header=self.remaining_header, refusal=self.refusal,
            limits=(ReplyLimits.of(settings, self.section or self.name) if isinstance(settings, VendorSettings)
                    else ReplyLimits()),
        )
        return http, wire

    def sandbox(self) -> SandboxKit | None:
        return None


class VendorConnector(HttpConnector[S, T]):
    """A vendor the customer leaves (the ``offboard.connectors`` group)."""

    def open(self, settings: SectionSettings, credentials: Mapping[str, SecretStr], *,
             transport: httpx.BaseTransport | None = None, context: ExitContext | None = None) -> T:
        mine = self.own(settings)
        http, wire = self.connect(mine, credentials, transport)
        return self.session(http, mine, wire, context)

    def session(self, http: VendorHttp, settings: S, wire: Wire, context: ExitContext | None) -> T:
        return self.session_type(http, settings)


def sandbox_kit(make: Callable[..., Any], section: Callable[[str, float], dict[str, Any]],
                credentials: Mapping[str, str], *, portal: bool = False,
                make_app_for: Callable[[float, int], Any] | None = None,
                customer_section: Callable[[str, float, int], dict[str, Any]] | None = None) -> SandboxKit:
    """A kit from a sandbox class (made with ``time_scale=``, serving its ``app``), the config
    section pointing at it (base URL, time scale), and its sandbox-only credentials. ``portal``:
    the sandbox does manual items when asked (``offboard.connectors.sandboxing.portal``).
    ``make_app_for`` and ``customer_section``: several customers of one account (a batch rehearsal)."""
    stand_in = None
    if portal:
        from offboard.connectors import sandboxing  # starlette and uvicorn: only when a sandbox is served

        stand_in = sandboxing.portal
    return SandboxKit(make_app=lambda time_scale: make(time_scale=time_scale).app, config_section=section,
                      credentials=dict(credentials), portal=stand_in, make_app_for=make_app_for,
                      customer_section=customer_section)
