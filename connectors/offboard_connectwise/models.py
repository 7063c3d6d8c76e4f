"""ConnectWise replies as typed models: only the fields offboard reads (notes §1's sources)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from offboard.wire.replies import parse_reply

_M = TypeVar("_M", bound=BaseModel)


class _Reply(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Ref(_Reply):
    id: int | None = None
    name: str | None = None


class Ticket(_Reply):
    id: int
    summary: str | None = None
    status: Ref | None = None
    closedFlag: bool | None = None


class Note(_Reply):
    id: int
    ticketId: int | None = None
    text: str | None = None


class Document(_Reply):
    id: int
    title: str | None = None
    fileName: str | None = None


def parse(model: type[_M], data: Any, call: str) -> _M:
    return parse_reply("ConnectWise", model, data, call)


def parse_list(model: type[_M], data: Any, call: str) -> list[_M]:
    if not isinstance(data, list):
        parse_reply("ConnectWise", model, data, call)  # raises with the reply named
        return []
    return [parse(model, item, call) for item in data]
