"""The [huntress] section of config.toml."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from offboard.config import SectionSettings, check_vendor_url, is_loopback_url

API_URL = "https://api.huntress.io"
RATE_LIMIT = 60  # requests in any 60 s, per Huntress account (API docs, intro)
RATE_WINDOW = 60.0


class HuntressSettings(SectionSettings):
    model_config = SettingsConfigDict(env_prefix="OFFBOARD_HUNTRESS__")

    organization_id: int = Field(gt=0, description="the customer's Huntress organization id")
    base_url: str = API_URL
    requests_per_minute: int = Field(
        RATE_LIMIT, ge=1, le=RATE_LIMIT,
        description="leave room for other tools (PSA sync, RMM) that share the account's 60/min",
    )
    rate_window_seconds: float = Field(
        RATE_WINDOW, gt=0, le=RATE_WINDOW,
        description="the rate-limit window; shorter only against the sandbox, whose clock runs fast",
    )

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_vendor_url(v)

    @model_validator(mode="after")
    def _window_only_for_sandbox(self) -> HuntressSettings:
        if self.rate_window_seconds < RATE_WINDOW and not is_loopback_url(self.base_url):
            raise ValueError("rate_window_seconds below 60 is only for the sandbox on 127.0.0.1; "
                             "Huntress counts a 60 s window")
        return self

    def scope_key(self) -> dict[str, Any]:
        return {"organization_id": self.organization_id, "base_url": self.base_url}

    @property
    def time_scale(self) -> float:
        return self.rate_window_seconds / RATE_WINDOW
