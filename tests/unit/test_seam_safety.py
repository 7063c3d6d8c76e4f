"""A connector written for an older seam, lacking what the scope guard and the exit lock ask of it,
is refused when its session opens: one line naming what is missing, before any vendor call."""

from __future__ import annotations

import pytest

from offboard.errors import BadInput
from offboard_huntress.session import HuntressSession
from tests.conftest import Harness


@pytest.mark.parametrize("method", ["owner_now", "exit_identity"])
def test_a_session_without_the_scope_guards_or_the_locks_read_is_refused(harness: Harness, method: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(HuntressSession, method)
    with pytest.raises(BadInput, match=f"does not provide {method}.*upgrade the connector package"), \
            harness.sessions():
        pass
    assert harness.sandbox.requests == []  # refused before anything was read
