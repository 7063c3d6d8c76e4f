"""An unreachable vendor host (issue 15, friction 9): a name that does not resolve fails at once,
naming the host and what to check; a host that refuses connections keeps its retries."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_config

TYPO_HOST = "api.huntres.example"


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The machine's resolver, answering 'no such name' for the typo'd host; no sleep is real."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == TYPO_HOST:
            asked.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_KEY", "hk_test")
    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_SECRET", "hs_test")
    return asked


def test_plan_against_a_host_that_does_not_resolve_names_it_and_does_not_retry_six_times(
        cli: Any, tmp_path: Path, resolver: list[str]) -> None:
    config = write_config(tmp_path, f"https://{TYPO_HOST}", window=60)
    result = cli("plan", "-c", str(config))
    assert result.code == 1, result.err
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.err
    assert TYPO_HOST in lines[0] and "could not be resolved" in lines[0]
    assert "base_url" in lines[0] and "network" in lines[0]
    assert 1 <= len(resolver) <= 2  # the old code asked 6 times, backing off ~20 s in between
