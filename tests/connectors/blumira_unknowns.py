"""For tests that exercise a path the notes leave unconfirmed: settle the unknown on both
sides at once, as a maintainer would after checking Blumira's live spec."""

from __future__ import annotations

import pytest

from offboard_blumira import unknowns
from offboard_blumira.sandbox import BlumiraSandbox

SETTLED_FIELD = "settled_by_test"  # deliberately no guess at the real name


def settle_dispatch(monkeypatch: pytest.MonkeyPatch, sandbox: BlumiraSandbox, *, offers_uninstall: bool = True,
                    field: str = SETTLED_FIELD) -> None:
    """The catalog answers these credentials, and the dispatch body's field is known to both
    the connector and the double."""
    monkeypatch.setattr(unknowns, "DISPATCH_ACTION_FIELD", field)
    sandbox.catalog_status = 200
    sandbox.dispatch_action_field = field
    sandbox.offers_uninstall = offers_uninstall
