"""The [psa] section for HaloPSA (kind = "halopsa"): vendor-notes/psa-apis.md §3."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from offboard.config import VendorUrl, rate_window
from offboard.connectors.psa import PsaSettings

RATE_LIMIT = 300  # Halo-hosted: "300 Requests per rolling 5 minute window" (notes §3, two reports)
RATE_WINDOW = 300.0
INTERNAL_NOTE = 7  # the built-in "Internal Note" action type of a stock Halo (notes §3)
CLOSED = 9  # commonly the closed status (UNCONFIRMED per instance: configurable)


class HaloSettings(PsaSettings):
    full_window: ClassVar[float] = RATE_WINDOW
    ticket_id_hint: ClassVar[str] = "a HaloPSA ticket id is a number (the ticket's ID field, e.g. 4711)"
    status_hint: ClassVar[str] = "a HaloPSA status is its id, a number (Config > Tickets > Status)"

    kind: Literal["halopsa"] = "halopsa"
    base_url: VendorUrl = Field(description="the instance's API, e.g. https://msp.halopsa.com/api")
    auth_url: VendorUrl = Field(description="the authorisation server: {instance}/auth when self-hosted, "
                                            "https://auth.<domain> when Halo hosts it (Config > Integrations > "
                                            "Halo API)")
    tenant: str = Field("", description="Halo-hosted instances: the tenant sent with the token request")
    outcome_id: int = Field(INTERNAL_NOTE, gt=0, description="the action type each note is posted as; the API "
                                                             "agent must be allowed to use it")
    closed_status_ids: list[int] = Field(default_factory=lambda: [CLOSED],
                                         description="statuses that mean the ticket is closed (notes are still tried: "
                                                     "the PSA's answer decides)")
    max_file_mb: float = Field(20.0, gt=0, description="files larger than this are linked, not attached "
                                                        "(Halo's own limit is not published)")
    requests_per_window: int = Field(240, ge=1, le=RATE_LIMIT,
                                     description="of the 300 per 5 minutes the instance allows every integration")
    rate_window_seconds: float = rate_window(RATE_WINDOW)
