"""The [psa] section for ConnectWise PSA (kind = "connectwise"): vendor-notes/psa-apis.md §1."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from offboard.config import VendorUrl, rate_window
from offboard.connectors.psa import PsaSettings

RATE_WINDOW = 60.0  # ConnectWise publishes no number: a 429 with Retry-After is its word (notes §1)


class ConnectWiseSettings(PsaSettings):
    full_window: ClassVar[float] = RATE_WINDOW
    ticket_id_hint: ClassVar[str] = "a ConnectWise ticket id is a number (the service ticket's #, e.g. 4711)"
    status_hint: ClassVar[str] = "a ConnectWise status is its id on the ticket's board (/service/boards/{id}/statuses)"
    claim_renewed_by_new_note: ClassVar[bool] = False  # the claim's one note is edited (JSON-Patch)

    kind: Literal["connectwise"] = "connectwise"
    base_url: VendorUrl = Field(description="https://{site}/v4_6_release/apis/3.0 (your ConnectWise site)")
    company_id: str = Field(min_length=1, description="the company id you log in with (not a secret)")
    max_file_mb: float = Field(20.0, gt=0, description="files larger than this are linked, not attached "
                                                        "(ConnectWise's own limit is not published)")
    requests_per_minute: int = Field(60, ge=1, le=1000, description="offboard's own ceiling; a 429 is waited out")
    rate_window_seconds: float = rate_window(RATE_WINDOW)
