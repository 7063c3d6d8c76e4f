"""The sandbox behaves as the vendor notes say Huntress does; the connector depends on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from offboard.connectors.sandboxing import InProcessTransport, serve
from offboard_huntress.sandbox import (
    CUSTOMER_ORG,
    DEMO_KEY,
    DEMO_SECRET,
    READ_ONLY_KEY,
    READ_ONLY_SECRET,
    HuntressSandbox,
)
from tests.conftest import write_config


def client(sandbox: HuntressSandbox, auth: tuple[str, str] = (DEMO_KEY, DEMO_SECRET)) -> httpx.Client:
    return httpx.Client(transport=InProcessTransport(sandbox.app), base_url="http://sandbox", auth=auth)


def test_basic_auth_is_required() -> None:
    with client(HuntressSandbox(), auth=(DEMO_KEY, "wrong")) as c:
        assert c.get("/v1/actor").status_code == 401


def test_limit_must_be_1_to_500() -> None:
    with client(HuntressSandbox()) as c:
        assert c.get("/v1/agents", params={"limit": 501}).status_code == 400
        assert c.get("/v1/agents", params={"limit": 0}).status_code == 400
        assert c.get("/v1/agents", params={"limit": 500}).status_code == 200


def test_default_page_is_10_newest_first_and_tokens_walk_every_item_once() -> None:
    sandbox = HuntressSandbox()
    seen: list[int] = []
    with client(sandbox) as c:
        params: dict[str, Any] = {"organization_id": CUSTOMER_ORG}
        while True:
            body = c.get("/v1/agents", params=params).json()
            seen += [a["id"] for a in body["agents"]]
            token = body["pagination"].get("next_page_token")
            if not token:
                break
            params = {"organization_id": CUSTOMER_ORG, "page_token": token}
    assert len(seen) == 36 and seen == sorted(seen, reverse=True)
    assert set(seen) == {a["id"] for a in sandbox.agents_of(CUSTOMER_ORG)}


def test_the_61st_request_in_a_window_gets_429_with_retry_after() -> None:
    sandbox = HuntressSandbox(time_scale=1.0)
    with client(sandbox) as c:
        statuses = [c.get("/v1/actor").status_code for _ in range(61)]
        last = c.get("/v1/actor")
    assert statuses[:60] == [200] * 60 and statuses[60] == 429
    assert last.status_code == 429 and 0 < float(last.headers["Retry-After"]) <= 60


def test_delete_answers_204_then_the_agent_is_404_and_a_read_only_key_gets_403() -> None:
    sandbox = HuntressSandbox()
    agent_id = sandbox.agents_of(CUSTOMER_ORG)[0]["id"]
    with client(sandbox, auth=(READ_ONLY_KEY, READ_ONLY_SECRET)) as ro:
        assert ro.delete(f"/v1/agents/{agent_id}").status_code == 403
    with client(sandbox) as c:
        assert c.delete(f"/v1/agents/{agent_id}").status_code == 204
        assert c.get(f"/v1/agents/{agent_id}").status_code == 404
        assert c.delete(f"/v1/agents/{agent_id}").status_code == 404


def test_seed_has_an_isolated_and_a_stale_agent_and_a_neighbour() -> None:
    sandbox = HuntressSandbox()
    mine = sandbox.agents_of(CUSTOMER_ORG)
    assert 24 <= len(mine) <= 60 and {a["platform"] for a in mine} == {"windows", "darwin", "linux"}
    assert sum(a["firewall_status"] == "Isolated" for a in mine) == 1
    assert len(sandbox.agents_of(43)) == 12


def test_a_read_only_account_key_stops_apply_with_one_line_about_user_keys(
        tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox = HuntressSandbox(time_scale=0.005)
    with serve(sandbox.app) as url:
        config = write_config(tmp_path, url)
        monkeypatch.setenv("OFFBOARD_HUNTRESS_API_KEY", READ_ONLY_KEY)
        monkeypatch.setenv("OFFBOARD_HUNTRESS_API_SECRET", READ_ONLY_SECRET)
        plan = cli("plan", "-c", str(config), "-o", str(tmp_path / "exit.plan.json"), "--detailed-exitcode")
        assert plan.code == 10
        assert "read-only" in plan.out  # the plan says which kind of key is in use
        result = cli("apply", str(tmp_path / "exit.plan.json"), "-c", str(config), "--override-preflight", "lab")
    # Found before the first write (issue 15): exit 4, one line, no run folder, nothing sent.
    assert result.code == 4
    assert result.err.startswith("error:") and len(result.err.strip().splitlines()) == 1
    assert "user-based Huntress API key" in result.err and "account key" in result.err
    assert sandbox.writes() == [] and not (tmp_path / "runs").exists()
    assert len(sandbox.agents_of(CUSTOMER_ORG)) == 36
