"""Autotask replies as typed models: only the fields offboard reads (notes §2's sources)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from offboard.wire.replies import parse_reply

_M = TypeVar("_M", bound=BaseModel)


class _Reply(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Ticket(_Reply):
    id: int
    title: str | None = None
    status: int | None = None
    ticketNumber: str | None = None


class One(_Reply):
    item: Ticket


class Note(_Reply):
    id: int
    title: str | None = None
    description: str | None = None


class Attachment(_Reply):
    id: int
    title: str | None = None
    fullPath: str | None = None
    fileSize: float | None = None


class PageDetails(_Reply):
    nextPageUrl: str | None = None


class Created(_Reply):
    itemId: int


class Picklist(_Reply):
    value: str
    label: str | None = None
    isDefaultValue: bool | None = None
    isActive: bool | None = None


class Field(_Reply):
    name: str
    picklistValues: list[Picklist] | None = None


class Fields(_Reply):
    fields: list[Field]


def parse(model: type[_M], data: Any, call: str) -> _M:
    return parse_reply("Autotask", model, data, call)
