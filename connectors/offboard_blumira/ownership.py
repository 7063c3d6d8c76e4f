"""Whose a Blumira object is, from what the API proves and nothing else.

Proof is the path: an object listed (or read) under ``/msp/accounts/{account_id}/…`` is
that sub-account's, as the vendor itself scopes it (vendor-notes §2.2). The object's own
``org_id`` is not proof: the notes never say it equals the sub-account's ``account_id``
(unknowns.ORG_ID). So an ``org_id`` that names something else does not move the object to
another owner; it makes the owner unknown. An unknown owner is never written to by API,
still counts against "stopped", and is named wherever it is counted.
"""

from __future__ import annotations

UNKNOWN = "unknown"


def owner_of_account(account_id: str) -> str:
    return f"account:{account_id}"


def listed_owner(account_id: str, org_id: str | None) -> tuple[str, str]:
    """(owner, why it is unknown) of an object listed under the sub-account ``account_id``."""
    if org_id is None or org_id == "" or org_id == account_id:
        return owner_of_account(account_id), ""
    return UNKNOWN, (f"listed under sub-account {account_id} but its org_id is {org_id!r}, and the notes do not "
                     "say how the two relate")
