"""Example Backup's replies, as its published spec (spec/example-backup-openapi.json) gives them.

A vendor's reply is hostile input: each is parsed into one of these models before it is used,
and a reply that does not fit is one line naming the call (``offboard.wire.replies``).
Unknown fields are kept, not refused: a vendor adds fields without notice.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class _Reply(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Customer(_Reply):
    id: str
    name: str
    plan_status: Literal["active", "cancelled"]


class Device(_Reply):
    id: str
    hostname: str
    customer_id: str  # whose device it is, as the vendor says: the scope guard compares it


class DeviceList(_Reply):
    devices: list[Device]
