"""Which ``publish`` value of a tenant's picklist is internal to the MSP, read by the label's meaning.

``publish`` ids vary by tenant (and public clients disagree on which id is internal), so the id is
never assumed: the label decides. Autotask's Co-managed Help Desk documentation describes co-managing
users as the customer's own IT staff (external users tied to a contact), so "Internal & Co-Managed"
is readable at the customer, and "All Autotask Users" includes those co-managing users: neither is
ever chosen. "Internal Only" is. "Internal Project Team" (the common tenant's value 2) restricts the
note further, to the MSP's own resources on the project team: no contact or co-managing user reads
it, so it is internal too, used when the tenant has no "Internal Only". Anything else is not guessed:
a person names the value in the config.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from offboard.errors import BadInput

from .models import Picklist

Meaning = Literal["internal-only", "internal-team", "wider", "unknown"]
_WIDER = re.compile(r"co-?\s?managed|\ball\b|everyone|customer|contact|client|public|external|portal")


def meaning(label: str) -> Meaning:
    norm = " ".join(label.lower().replace("&", " and ").split())
    if _WIDER.search(norm):
        return "wider"
    if norm == "internal only":
        return "internal-only"
    if norm == "internal project team":
        return "internal-team"
    return "unknown"


@dataclass(frozen=True)
class Choice:
    value: int
    label: str

    def __str__(self) -> str:
        return f'publish {self.value} "{self.label}"'


def _found(values: Sequence[Picklist]) -> str:
    shown = [f'{p.value} "{p.label or ""}"' + ("" if p.isActive is not False else " (retired)") for p in values]
    return ", ".join(shown) or "none"


def internal(values: Sequence[Picklist], configured: int | None, *, what: str, key: str) -> Choice:
    """The tenant's internal value for ``what`` (notes, attachments); ``configured`` is the config's."""
    active = [p for p in values if p.isActive is not False and str(p.value).strip().lstrip("-").isdigit()]
    if configured is not None:
        named = next((p for p in active if int(p.value) == configured), None)
        if named is None:
            raise BadInput(f"config: psa.{key} = {configured} is not an active publish value of the tenant's "
                           f"{what} (found: {_found(values)}); name one of them")
        if meaning(named.label or "") == "wider":
            raise BadInput(f'config: psa.{key} = {configured} is "{named.label}", which people outside the MSP '
                           f"read (co-managing users are the customer's IT staff); name an internal-only value "
                           f"(found: {_found(values)})")
        return Choice(configured, named.label or "")
    for wanted in ("internal-only", "internal-team"):
        hits = [p for p in active if meaning(p.label or "") == wanted]
        if len(hits) == 1:
            return Choice(int(hits[0].value), hits[0].label or "")
        if len(hits) > 1:
            break  # two values claim the same meaning: a person decides
    raise BadInput(f"the Autotask tenant's {what} publish picklist has no single internal-only value "
                   f"(found: {_found(values)}); offboard posts only what the customer cannot read: set "
                   f"psa.{key} in the config to the value that is internal to your MSP")
