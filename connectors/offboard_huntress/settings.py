"""The [huntress] section of config.toml."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from offboard.config import SectionSettings, VendorUrl, rate_window, url_identity

API_URL = "https://api.huntress.io"
RATE_LIMIT = 60  # requests in any 60 s, per Huntress account (API docs, intro)
RATE_WINDOW = 60.0
Product = Literal["edr", "itdr", "sat", "siem", "psa", "api"]
ALL_PRODUCTS: tuple[Product, ...] = ("edr", "itdr", "sat", "siem", "psa", "api")


class HuntressSettings(SectionSettings):
    model_config = SettingsConfigDict(env_prefix="OFFBOARD_HUNTRESS__")
    full_window: ClassVar[float] = RATE_WINDOW

    organization_id: int = Field(gt=0, description="the customer's Huntress organization id")
    products: list[Product] | Literal["all"] = Field(
        "all", description='what the customer leaves: "all", or some of edr, itdr, sat, siem, psa, api')
    account_id: int | None = Field(
        None, gt=0, description="reseller keys only: the managed account, to use /v1/accounts/{id}/… paths")
    delete_organization: bool = Field(
        False, description="delete the whole organization at the end (all products only; needs --confirm)")
    stop_renewing_subscriptions: list[int] = Field(
        default_factory=list, description="reseller: subscription ids whose auto_renew is turned off at billing")
    stale_after_days: int = Field(21, ge=1, le=3650, description="agents silent this long count as wiped/stale")
    siem_logs_continue_at: str = Field("", description="for the closure note: where the customer's logs live now")
    base_url: VendorUrl = API_URL
    requests_per_minute: int = Field(
        RATE_LIMIT, ge=1, le=RATE_LIMIT,
        description="leave room for other tools (PSA sync, RMM) that share the account's 60/min",
    )
    rate_window_seconds: float = rate_window(RATE_WINDOW)

    @field_validator("products")
    @classmethod
    def _products(cls, v: list[Product] | Literal["all"]) -> list[Product] | Literal["all"]:
        if v != "all" and not v:
            raise ValueError('name at least one product, or "all"')
        return v

    @model_validator(mode="after")
    def _rules(self) -> HuntressSettings:
        if self.stop_renewing_subscriptions and not self.account_id:
            raise ValueError("stop_renewing_subscriptions needs account_id: subscriptions belong to a reseller's "
                             "managed account")
        if self.delete_organization and not self.whole_exit:
            raise ValueError('delete_organization needs products = "all": deleting the organization '
                             "removes every product")
        return self

    @property
    def scope(self) -> tuple[Product, ...]:
        if self.products == "all":
            return ALL_PRODUCTS
        return tuple(p for p in ALL_PRODUCTS if p in self.products)

    @property
    def whole_exit(self) -> bool:
        return self.scope == ALL_PRODUCTS

    def scope_key(self) -> dict[str, Any]:
        return {"organization_id": self.organization_id, "base_url": self.base_url, "account_id": self.account_id,
                "products": list(self.scope), "delete_organization": self.delete_organization,
                "stop_renewing_subscriptions": sorted(self.stop_renewing_subscriptions)}

    def exit_identity(self) -> dict[str, Any]:
        # Organization ids are unique on one Huntress API, whichever (reseller) account reaches them.
        return {"organization_id": self.organization_id, "base_url": url_identity(self.base_url)}

    def rate_limit(self) -> tuple[int, float]:
        return self.requests_per_minute, self.rate_window_seconds

    def account_identity(self) -> dict[str, Any]:
        return {"base_url": url_identity(self.base_url)}
