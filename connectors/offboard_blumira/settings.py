"""The [blumira] section of config.toml."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from offboard.config import SectionSettings, VendorUrl, rate_window, url_identity

API_URL = "https://api.blumira.com/public-api/v1"
TOKEN_URL = "https://auth.blumira.com/oauth/token"
AUDIENCE = "public-api"  # the literal Blumira's own demo code sends (vendor-notes §1.2)
RATE_LIMIT = 10  # requests per second per key (vendor-notes §1.4)
RATE_WINDOW = 1.0
PAGE_SIZE_MAX = 200  # vendor-notes §1.5
Moving = Literal["no", "self", "msp", "unknown"]


class BlumiraSettings(SectionSettings):
    model_config = SettingsConfigDict(env_prefix="OFFBOARD_BLUMIRA__")
    full_window: ClassVar[float] = RATE_WINDOW

    account_id: str = Field(min_length=1, description="the customer's sub-account id (MSP Portal → the account; "
                                                      "GET /msp/accounts lists them)")
    account_moves_to: Moving = Field(
        "no", description='after the exit the account: "no" (closes), "self" (customer runs it), "msp" (another '
                          'MSP takes it), "unknown"')
    new_administrators: list[str] = Field(
        default_factory=list, description="account moving: the contacts who take it over (name <email>)")
    incoming_msp_contact: str = Field("", description='account_moves_to = "msp": the incoming MSP\'s admin '
                                                      '(name <email>), copied on the notification')
    end_client_contact: str = Field("", validate_default=True,
                                    description='account_moves_to = "msp": someone at the customer, copied '
                                                "on the notification")
    delete_data: bool = Field(False, description="tell Blumira all account data may be deleted on or after the "
                                                 "end-of-service date (never when the account moves)")
    keep_users: list[str] = Field(
        default_factory=list, description="emails of the users who keep access; every other user is removed")
    msp_sender: str = Field("", description="who signs the notification email (name <email>)")
    base_url: VendorUrl = API_URL
    token_url: VendorUrl = TOKEN_URL
    page_size: int = Field(PAGE_SIZE_MAX, ge=1, le=PAGE_SIZE_MAX)
    requests_per_second: int = Field(RATE_LIMIT, ge=1, le=RATE_LIMIT,
                                     description="leave room for other tools using the same API key")
    rate_window_seconds: float = rate_window(RATE_WINDOW)

    @field_validator("keep_users")
    @classmethod
    def _emails(cls, v: list[str]) -> list[str]:
        bad = [e for e in v if "@" not in e]
        if bad:
            raise ValueError(f"{bad[0]!r} is not an email address")
        return sorted({e.strip().lower() for e in v})

    @field_validator("end_client_contact")
    @classmethod
    def _end_client(cls, v: str, info: ValidationInfo) -> str:
        # The document: moving to another MSP, "CC an admin from the incoming MSP and someone from
        # the end client so that we can obtain approval from everyone": both are required.
        if info.data.get("account_moves_to") == "msp" and not v.strip():
            raise ValueError('account_moves_to = "msp" needs someone at the customer copied on the notification '
                             "(Blumira wants everyone's approval before re-parenting); add "
                             'end_client_contact = "Name <email>" to [blumira]')
        return v

    @model_validator(mode="after")
    def _rules(self) -> BlumiraSettings:
        if self.account_moves_to != "no" and self.delete_data:
            raise ValueError("delete_data must be false when the account moves: Blumira keeps a moving "
                             "account's data")
        if self.account_moves_to == "self" and not self.new_administrators:
            raise ValueError('account_moves_to = "self" needs new_administrators: the contacts who take over '
                             "the account")
        if self.account_moves_to == "msp" and not self.incoming_msp_contact:
            raise ValueError('account_moves_to = "msp" needs incoming_msp_contact: Blumira needs the incoming '
                             "MSP's approval")
        return self

    def scope_key(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "base_url": self.base_url,
                "account_moves_to": self.account_moves_to, "keep_users": self.keep_users,
                "delete_data": self.delete_data}

    def exit_identity(self) -> dict[str, Any]:
        # Account ids are UUIDs: one account however they are spelled.
        return {"account_id": self.account_id.strip().lower(), "base_url": url_identity(self.base_url)}

    def rate_limit(self) -> tuple[int, float]:
        return self.requests_per_second, self.rate_window_seconds

    def account_identity(self) -> dict[str, Any]:
        return {"base_url": url_identity(self.base_url)}
