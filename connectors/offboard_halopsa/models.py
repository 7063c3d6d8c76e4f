"""HaloPSA replies as typed models: only the fields offboard reads; the rest are kept as sent.

Field names are the OpenAPI document's (components ``Faults``, ``Actions``, ``Attachment``,
``Attachment_View``); contract tests check the sandbox against that document.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from offboard.wire.replies import parse_reply

_M = TypeVar("_M", bound=BaseModel)


class _Reply(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Ticket(_Reply):  # schema "Faults"
    id: int
    summary: str | None = None
    status_id: int | None = None
    status_name: str | None = None
    hasbeenclosed: bool | None = None


class Action(_Reply):  # schema "Actions"
    id: int
    ticket_id: int | None = None
    note: str | None = None
    note_html: str | None = None


class ActionList(_Reply):
    record_count: int | None = None
    actions: list[Action]


class Attachment(_Reply):  # schema "Attachment_List" / "Attachment"
    id: int
    filename: str | None = None
    note: str | None = None
    desc: str | None = None
    filesize: int | None = None


class Outcome(_Reply):  # schema "TOutcome": an action type
    id: int
    outcome: str | None = None
    hidefromuser: bool | None = None


class AttachmentView(_Reply):  # schema "Attachment_View"
    record_count: int | None = None
    attachments: list[Attachment] | None = None


def parse(model: type[_M], data: Any, call: str) -> _M:
    return parse_reply("HaloPSA", model, data, call)
