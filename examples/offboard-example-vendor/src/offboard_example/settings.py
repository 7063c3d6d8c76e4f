"""The [example] section of config.toml: which customer leaves, and where the API is."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from offboard.config import SectionSettings, VendorUrl, rate_window, url_identity

API_URL = "https://api.example-backup.invalid/v1"  # a made-up vendor: there is no real API
RATE_LIMIT = 120  # requests per rolling minute per API token (the vendor's published limit)
RATE_WINDOW = 60.0


class ExampleSettings(SectionSettings):
    model_config = SettingsConfigDict(env_prefix="OFFBOARD_EXAMPLE__")
    full_window: ClassVar[float] = RATE_WINDOW  # a shorter rate_window_seconds only against the sandbox

    customer_id: str = Field(min_length=1, description="the customer's id at Example Backup (Portal → Customers)")
    base_url: VendorUrl = API_URL
    requests_per_minute: int = Field(RATE_LIMIT, ge=1, le=RATE_LIMIT,
                                     description="leave room for other tools using the same token")
    rate_window_seconds: float = rate_window(RATE_WINDOW)

    def scope_key(self) -> dict[str, Any]:
        # Whose exit this is: a plan made for another customer or API is refused at apply.
        return {"customer_id": self.customer_id, "base_url": self.base_url}

    def exit_identity(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "base_url": url_identity(self.base_url)}

    def rate_limit(self) -> tuple[int, float]:
        return self.requests_per_minute, self.rate_window_seconds
