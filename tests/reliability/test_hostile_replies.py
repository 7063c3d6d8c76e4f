"""A vendor reply is hostile input (issue 20, findings 4-6): paging that loops, a reply too large
to be real, nesting too deep to be real. Each is one line naming the vendor, the call and what was
wrong ("the vendor's reply ..."), exit 1, no traceback, no "internal error", nothing written, and
offboard stops reading (calls and bytes bounded).

The doubles are this file's own (respx at the httpx transport seam, through the real CLI): a
Huntress that answers every discovery read plainly, except the one reply each test makes hostile.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import write_config

API = "https://api.huntress.io"
ORG = {"id": 42, "account_id": 7, "name": "Acme Dental", "key": "acme", "agents_count": 3,
       "actual_usages": {"edr": {"billable_agents_count": 3, "isolated_agents_count": 0}}}


def agent(agent_id: int) -> dict[str, Any]:
    return {"id": agent_id, "organization_id": 42, "hostname": f"acme-{agent_id}", "platform": "windows",
            "os": "Windows 11", "last_callback_at": "2026-11-23T09:00:00Z"}


Handler = Callable[[httpx.Request], httpx.Response]


# A listing the double pages past this many times ends there: without the guard a test fails (on its
# exit code and its counts) instead of paging for ever.
ENOUGH = 30


def huntress(agents: Handler | None = None, organization: Handler | None = None) -> Handler:
    """A Huntress double: every list is empty, the organization is plain, the agents listing pages
    once; ``agents`` and ``organization`` replace those two replies."""
    listed = [0]

    def reply(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/agents":
            listed[0] += 1
            if listed[0] > ENOUGH:
                return httpx.Response(200, json={"agents": [], "pagination": {}})
        if path == "/v1/actor":
            return httpx.Response(200, json={"account": {"id": 7, "name": "MSP"},
                                             "user": {"id": 1, "email": "t@msp.example"}})
        if path == "/v1/organizations/42":
            return organization(request) if organization else httpx.Response(200, json={"organization": ORG})
        if path == "/v1/agents" and agents is not None:
            return agents(request)
        key = path.rsplit("/", 1)[-1]
        return httpx.Response(200, json={key: [agent(1)] if key == "agents" else [], "pagination": {}})
    return reply


@pytest.fixture
def exit_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_KEY", "hk_test")
    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_SECRET", "hs_test")
    monkeypatch.setattr("time.sleep", lambda seconds: None)  # no real wait, whatever is retried
    monkeypatch.chdir(tmp_path)
    return tmp_path


def plan_against(cli: Any, exit_dir: Path, double: Handler, extra: str = "") -> tuple[str, respx.Route]:
    """`offboard plan -o` against the double: the one error line (exit 1, nothing written)."""
    config = write_config(exit_dir, API, window=60, extra=extra)
    with respx.mock(assert_all_called=False) as router:
        route = router.route(host="api.huntress.io").mock(side_effect=double)
        result = cli("plan", "-c", str(config), "-o", "exit.plan.json")
    assert result.code == 1, (result.out, result.err)
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err + result.out and "internal error" not in result.err
    assert not (exit_dir / "exit.plan.json").exists() and not (exit_dir / "runs").exists()
    return lines[0], route


def agents_calls(route: respx.Route) -> list[dict[str, str]]:
    return [dict(c.request.url.params) for c in route.calls if c.request.url.path == "/v1/agents"]


# -- finding 4: paging that loops ------------------------------------------------------------------


def test_a_page_token_cycling_7_14_7_stops_at_the_repeat(cli: Any, exit_dir: Path) -> None:
    after = {None: "7", "7": "14", "14": "7"}

    def pages(request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("page_token")
        return httpx.Response(200, json={"agents": [agent(int(token or 1))],
                                         "pagination": {"next_page_token": after[token]}})

    line, route = plan_against(cli, exit_dir, huntress(agents=pages))
    assert line.startswith("error: Huntress: GET /v1/agents failed: the vendor's reply pages without end"), line
    assert "page 3 names as its next page the one already read as page 2 (a repeated page token)" in line
    assert [c.get("page_token") for c in agents_calls(route)] == [None, "7", "14"]  # never asked for 7 twice


def test_a_new_token_on_every_page_over_the_same_items_stops_at_the_second_page(cli: Any, exit_dir: Path) -> None:
    count = iter(range(10_000))

    def pages(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"agents": [agent(1), agent(2)],
                                         "pagination": {"next_page_token": f"t{next(count)}"}})

    line, route = plan_against(cli, exit_dir, huntress(agents=pages))
    assert "Huntress: GET /v1/agents failed: the vendor's reply pages without end" in line
    assert "page 2 holds exactly the items of page 1, and still names another page" in line
    assert len(agents_calls(route)) == 2


def test_a_new_token_and_new_items_on_every_page_stop_past_the_listings_own_total(
        cli: Any, exit_dir: Path) -> None:
    count = iter(range(1, 10_000))

    def pages(request: httpx.Request) -> httpx.Response:
        n = next(count)
        return httpx.Response(200, json={"agents": [agent(n)], "pagination": {
            "next_page_token": f"t{n}", "total_count": 3}})

    line, route = plan_against(cli, exit_dir, huntress(agents=pages))
    assert "Huntress: GET /v1/agents failed: the vendor's reply pages without end" in line
    assert "the listing says it holds 3 items, yet page 5 names a page 6" in line
    assert len(agents_calls(route)) == 5  # 3 pages, 10 % more rounded up, and one page of slack


def test_endless_new_pages_without_totals_stop_at_max_pages(cli: Any, exit_dir: Path) -> None:
    count = iter(range(1, 10_000))

    def pages(request: httpx.Request) -> httpx.Response:
        n = next(count)
        return httpx.Response(200, json={"agents": [agent(n)], "pagination": {"next_page_token": f"t{n}"}})

    line, route = plan_against(cli, exit_dir, huntress(agents=pages), extra="max_pages = 20\n")  # < ENOUGH
    assert "Huntress: GET /v1/agents failed: the vendor's reply pages without end" in line
    assert "offboard reads at most 20 pages of one listing (max_pages in [huntress]" in line
    assert len(agents_calls(route)) == 20


# -- finding 5: a reply too large to be real ---------------------------------------------------------

LIMIT = "max_reply_mib = 0.0625\n"  # 64 KiB: the test's own small limit, so it stays cheap


def test_an_oversized_reply_that_declares_its_length_is_not_read(cli: Any, exit_dir: Path) -> None:
    padding = "x" * 200_000

    def organization(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"organization": {**ORG, "name": padding}})

    line, _ = plan_against(cli, exit_dir, huntress(organization=organization), extra=LIMIT)
    assert line.startswith("error: Huntress: GET /v1/organizations/42 failed: the vendor's reply is larger than "
                           "65,536 bytes (it declares 200,"), line
    assert "raise max_reply_mib in [huntress]" in line


def test_an_oversized_streamed_reply_is_read_no_further_than_the_limit(cli: Any, exit_dir: Path) -> None:
    sent: list[int] = []

    def endless() -> Iterator[bytes]:  # 100 MB in 4 KiB chunks, no Content-Length
        yield b'{"organization": {"name": "'
        for n in range(25_000):
            sent.append(n)
            yield b"x" * 4096

    def organization(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless(), headers={"content-type": "application/json"})

    line, _ = plan_against(cli, exit_dir, huntress(organization=organization), extra=LIMIT)
    assert "Huntress: GET /v1/organizations/42 failed: the vendor's reply is larger than 65,536 bytes " \
           "(offboard stopped reading it there)" in line
    assert len(sent) <= 17  # 64 KiB and the chunk that went past it: the other 99.9 MB were never read


def test_the_default_limit_is_far_above_a_real_page_and_a_big_real_page_passes(cli: Any, exit_dir: Path) -> None:
    # 2,000 agents on one page (the API sends at most 500) are ~0.4 MB: far under the default 16 MiB.
    def pages(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"agents": [agent(n) for n in range(1, 2001)], "pagination": {}})

    config = write_config(exit_dir, API, window=60)
    with respx.mock(assert_all_called=False) as router:
        router.route(host="api.huntress.io").mock(side_effect=huntress(agents=pages))
        result = cli("plan", "-c", str(config), "-o", "exit.plan.json")
    assert result.code == 0, result.err
    assert len(json.loads((exit_dir / "exit.plan.json").read_text())["vendors"][0]["steps"]) > 0


# -- finding 6: nesting too deep to be real ------------------------------------------------------------


def test_a_200000_deep_array_is_the_vendor_answering_nonsense(cli: Any, exit_dir: Path) -> None:
    def organization(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"[" * 200_000 + b"]" * 200_000,
                              headers={"content-type": "application/json"})

    line, _ = plan_against(cli, exit_dir, huntress(organization=organization))
    assert line.startswith("error: Huntress: GET /v1/organizations/42 failed: the vendor's reply nests 200,000 "
                           "levels deep"), line
    assert "offboard reads at most 64" in line


def test_nesting_inside_strings_is_text_and_a_real_reply_passes(cli: Any, exit_dir: Path) -> None:
    # Brackets in a hostname are text, not structure: the depth count skips strings (and their escapes).
    def pages(request: httpx.Request) -> httpx.Response:
        odd = {**agent(1), "hostname": '[' * 500 + '\\"[{' + "]" * 3}
        return httpx.Response(200, json={"agents": [odd], "pagination": {}})

    config = write_config(exit_dir, API, window=60)
    with respx.mock(assert_all_called=False) as router:
        router.route(host="api.huntress.io").mock(side_effect=huntress(agents=pages))
        result = cli("plan", "-c", str(config), "-o", "exit.plan.json")
    assert result.code == 0, result.err


@pytest.mark.parametrize("hostname", [b"acme-\\ud800", b"acme-\xed\xa0\x80"], ids=["escaped", "as-bytes"])
def test_a_lone_surrogate_in_a_reply_is_one_line_not_a_crash(cli: Any, exit_dir: Path, hostname: bytes) -> None:
    # No plan, audit line or evidence file can hold it as UTF-8: discovery crashed in the agents' spool.
    def pages(request: httpx.Request) -> httpx.Response:
        body = b'{"agents": [{"id": 1, "organization_id": 42, "hostname": "' + hostname + b'"}], "pagination": {}}'
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    line, _ = plan_against(cli, exit_dir, huntress(agents=pages))
    assert line.startswith("error: Huntress: GET /v1/agents failed: the vendor's reply holds text that is not "
                           "Unicode"), line


def test_an_emojis_surrogate_pair_is_one_character_and_passes(cli: Any, exit_dir: Path) -> None:
    def pages(request: httpx.Request) -> httpx.Response:
        body = b'{"agents": [{"id": 1, "organization_id": 42, "hostname": "acme-\\ud83d\\ude00"}], "pagination": {}}'
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    config = write_config(exit_dir, API, window=60)
    with respx.mock(assert_all_called=False) as router:
        router.route(host="api.huntress.io").mock(side_effect=huntress(agents=pages))
        result = cli("plan", "-c", str(config), "-o", "exit.plan.json")
    assert result.code == 0, result.err
    assert "acme-\U0001f600" in json.loads((exit_dir / "exit.plan.json").read_text())["vendors"][0]["listed"][1][3]


# -- a write answered past the limit ----------------------------------------------------------------


def test_a_write_answered_past_the_limit_is_ambiguous_and_is_re_read_never_resent() -> None:
    from offboard.errors import AmbiguousWrite
    from offboard.wire.http import VendorHttp
    from offboard.wire.ratelimit import SlidingWindowLimiter
    from offboard.wire.replies import ReplyLimits

    http = VendorHttp("Huntress", API, httpx.BasicAuth("k", "s"), SlidingWindowLimiter(1000, 1.0),
                      limits=ReplyLimits(max_bytes=1024))
    with respx.mock as router:
        route = router.delete(f"{API}/v1/organizations/42").respond(202, json={"organization": {"x": "y" * 5000}})
        with pytest.raises(AmbiguousWrite) as caught:
            http.request("DELETE", "/v1/organizations/42")
    assert route.call_count == 1  # the DELETE was answered: it may have landed, so it is not sent again
    assert "the vendor's reply is larger than 1,024 bytes" in str(caught.value)


# -- the depth count itself -------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ a\n:,'),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(alphabet='[]{}"\\ a'), inner, max_size=4),
    max_leaves=30)


def depth_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


@given(JSON, st.integers(min_value=0, max_value=8))
def test_the_depth_count_skips_strings_and_escapes_and_is_exact_below_and_above_the_limit(
        value: Any, limit: int) -> None:
    from offboard.wire.replies import nesting_depth

    for raw in (json.dumps(value).encode(), json.dumps(value, ensure_ascii=False, indent=1).encode()):
        assert nesting_depth(raw, limit) == depth_of(value), raw


def test_a_genuine_listing_that_changes_while_it_is_read_is_believed() -> None:
    from offboard.wire.paging import PageGuard, Totals

    # 1,000 items in pages of 500, read while machines enrol and others go: the total says 1,000
    # then 1,004, the pages bring 1,012 items over 3 pages, the last one short and then an empty one.
    guard = PageGuard("Huntress", "GET /v1/agents", max_pages=10_000)
    pages = [(list(range(500)), 1000), (list(range(500, 1000)), 1004), (list(range(1000, 1012)), 1004), ([], 1004)]
    for n, (items, total) in enumerate(pages):
        guard.request({"page_token": f"t{n}"})
        guard.received(items, Totals(items=total))
    assert guard.pages == 4 and guard.items == 1012


def test_a_psa_whose_next_links_cycle_is_stopped_by_the_same_guard() -> None:
    from offboard.errors import VendorReplyRefused
    from offboard.wire.http import VendorHttp
    from offboard.wire.ratelimit import SlidingWindowLimiter
    from offboard_connectwise.client import ConnectWiseClient

    base = "https://cw.example/v4_6_release/apis/3.0"
    http = VendorHttp("ConnectWise", base, httpx.BasicAuth("k", "s"), SlidingWindowLimiter(1000, 1.0))
    after = {"1": "2", "2": "3", "3": "2"}  # page 3 links back to page 2

    def notes(request: httpx.Request) -> httpx.Response:
        page = request.url.params.get("page", "1")
        link = f'<{base}/service/tickets/9/notes?page={after[page]}&pageSize=1000>; rel="next"'
        return httpx.Response(200, json=[{"id": int(page), "text": f"note {page}"}], headers={"Link": link})

    with respx.mock as router:
        route = router.get(url__startswith=f"{base}/service/tickets/9/notes").mock(side_effect=notes)
        with pytest.raises(VendorReplyRefused) as caught:
            ConnectWiseClient(http).notes(9)
    assert route.call_count == 3
    assert "ConnectWise: GET /service/tickets/9/notes failed: the vendor's reply pages without end" in str(caught.value)
    assert "page 3 names as its next page the one already read as page 2" in str(caught.value)
