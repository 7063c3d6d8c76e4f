"""The [psa] section for Autotask PSA (kind = "autotask"): vendor-notes/psa-apis.md §2."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from offboard.config import VendorUrl, rate_window
from offboard.connectors.psa import PsaSettings

TENANT_LIMIT = 10_000  # requests per rolling hour per tenant database, shared by every integration (notes §2)
RATE_WINDOW = 3600.0
COMPLETE = 5  # the default "Complete" ticket status (notes §2)


class AutotaskSettings(PsaSettings):
    full_window: ClassVar[float] = RATE_WINDOW
    ticket_id_hint: ClassVar[str] = ("an Autotask ticket id is the ticket's numeric id (not its number T2026…): open "
                                     "the ticket, its id is in the URL (ticketId=…)")
    status_hint: ClassVar[str] = "an Autotask status is its picklist value, a number (5 is Complete by default)"

    kind: Literal["autotask"] = "autotask"
    base_url: VendorUrl = Field(description="your zone's REST API, e.g. "
                                            "https://webservices5.autotask.net/atservicesrest (GET "
                                            "https://webservices.autotask.net/atservicesrest/v1.0/zoneInformation"
                                            "?user=<API user> names it)")
    closed_status_ids: list[int] = Field(default_factory=lambda: [COMPLETE],
                                         description="statuses that mean the ticket is closed (notes are still tried: "
                                                     "the PSA's answer decides)")
    note_type: int | None = Field(None, description="the note type picklist value; default: the tenant's default")
    publish_internal: int | None = Field(None, description="the publish value of an internal note; default: the "
                                                            "tenant's one value labelled Internal Only (else "
                                                            "Internal Project Team); never co-managed or all-users")
    attachment_publish_internal: int | None = Field(None, description="the same for attachments (their own "
                                                                       "picklist)")
    publish_visible: int | None = Field(None, description="the publish value of a note the customer may see; "
                                                           "default: the tenant's value labelled All")
    max_file_mb: float = Field(6.0, gt=0, le=7.0, description="Autotask takes 6-7 MB per file through its API")
    requests_per_hour: int = Field(600, ge=1, le=TENANT_LIMIT // 2,
                                   description="offboard's share of the tenant's 10,000 an hour (responses slow down "
                                               "from half of it, for every integration)")
    rate_window_seconds: float = rate_window(RATE_WINDOW)
