"""Vendor replies into typed models: a reply that does not fit is one line naming the call."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from offboard.errors import VendorReplyError

M = TypeVar("M", bound=BaseModel)


def parse_reply(vendor: str, model: type[M], data: Any, call: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(object)"
        raise VendorReplyError(vendor, call, f"unexpected reply: {model.__name__}.{where}: {err['msg']}") from None
