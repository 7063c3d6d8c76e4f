"""The wire's parts, each as a caller sees it: the retry policy on a sandbox's clock, what the audit
log keeps of a call, Retry-After, the vendor's calls-left header, other origins, raw downloads,
paging, replies that are not JSON, the waits told to whoever shows progress, and the reasons a
connection failed (wire/http.py)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from offboard.errors import (
    AmbiguousWrite,
    VendorAuthError,
    VendorError,
    VendorRefused,
    VendorReplyError,
    VendorReplyRefused,
)
from offboard.wire import http as wire
from offboard.wire import waits
from offboard.wire.http import HttpRecord, RetryPolicy, VendorHttp, parse_retry_after
from offboard.wire.paging import Totals
from offboard.wire.ratelimit import SlidingWindowLimiter
from offboard.wire.redact import REDACTOR
from offboard.wire.replies import ReplyLimits
from tests.fakeclock import FakeClock

Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, *, remaining_header: str | None = None, budget_file: Path | None = None,
           policy: RetryPolicy | None = None, base_url: str = "https://api.vendor.example/v1",
           **extra: Any) -> tuple[VendorHttp, list[float]]:
    slept: list[float] = []
    clock = FakeClock()  # the limiter's waits (a vendor's Retry-After holds it too) pass at once
    limiter = SlidingWindowLimiter(1000, 60.0, clock=clock, sleep=clock.sleep)
    return VendorHttp("Vendor", base_url, httpx.BasicAuth("user-k", "pass-s"),
                      limiter, transport=httpx.MockTransport(handler), sleep=slept.append,
                      remaining_header=remaining_header, budget_file=budget_file, policy=policy, **extra), slept


def test_a_policy_on_a_faster_clock_scales_every_wait_but_not_the_attempts() -> None:
    policy = RetryPolicy(max_attempts=4, backoff_base=3.0, backoff_max=30.0, retry_after_max=100.0,
                         rate_limited_default=50.0)  # none of them the default, so each one's scaling shows
    assert policy.scaled(0.5) == RetryPolicy(max_attempts=4, backoff_base=1.5, backoff_max=15.0,
                                             retry_after_max=50.0, rate_limited_default=25.0)


def test_the_audit_log_keeps_method_path_status_attempt_and_duration_only() -> None:
    assert HttpRecord("DELETE", "/v1/agents/7", 204, 2, 31).as_dict() == {
        "method": "DELETE", "path": "/v1/agents/7", "status": 204, "attempt": 2, "duration_ms": 31}


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert parse_retry_after(" 7 ") == 7.0 and parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("") is None and parse_retry_after("soon") is None
    now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now.timestamp()) == 90.0
    assert parse_retry_after("Mon, 23 Nov 2026 10:01:30", now.timestamp()) == 90.0  # no zone: read as UTC
    assert parse_retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now.timestamp()) == 0.0


def test_a_client_sends_who_it_is_and_what_it_accepts_and_never_follows_a_redirect() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/moved"):
            return httpx.Response(302, headers={"Location": "https://elsewhere.example/x"})
        return httpx.Response(200, json={"ok": True})

    http, _ = client(handler)
    assert http.get("/things").body == {"ok": True}
    assert seen[0].headers["User-Agent"] == "offboard/0.1" and seen[0].headers["Accept"] == "application/json"
    assert str(seen[0].url) == "https://api.vendor.example/v1/things"
    with pytest.raises(VendorError, match="HTTP 302"):
        http.get("/moved")
    assert [r.url.host for r in seen] == ["api.vendor.example", "api.vendor.example"]  # not followed
    assert http.calls == 2


def test_every_attempt_is_counted_and_the_record_names_the_last() -> None:
    answers = iter([503, 503, 200])
    http, slept = client(lambda r: httpx.Response(next(answers), json={}))
    http.get("/x")
    assert http.calls == 3 and len(slept) == 2
    assert http.last_call is not None and (http.last_call.status, http.last_call.attempt) == (200, 3)


def test_the_budget_file_shares_the_window_machine_wide(tmp_path: Path) -> None:
    http, _ = client(lambda r: httpx.Response(200, json={}), budget_file=tmp_path / "budget.json")
    http.get("/x")
    assert (tmp_path / "budget.json").exists()


@pytest.mark.parametrize("value, left", [("17", 17), (" 3 ", 3), ("", None), ("many", None), ("-1", None)])
def test_the_vendors_count_of_calls_left_is_read_when_it_sends_one(value: str, left: int | None) -> None:
    told: list[int | None] = []
    http, _ = client(lambda r: httpx.Response(200, json={}, headers={"x-calls-left": value}),
                     remaining_header="x-calls-left")
    real = http.limiter.completed

    def completed(token: str | None = None, *, remaining: int | None = None, throttled: bool = False) -> None:
        told.append(remaining)
        real(token, remaining=remaining, throttled=throttled)

    http.limiter.completed = completed  # type: ignore[method-assign]
    http.get("/x")
    assert told == [left]
    without, _ = client(lambda r: httpx.Response(200, json={}, headers={"x-calls-left": "5"}))
    assert without._remaining(httpx.Response(200, headers={"x-calls-left": "5"})) is None  # no header configured
    assert http._remaining(None) is None


def test_a_file_on_another_origin_is_fetched_raw_without_the_credentials() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"%PDF-1.7")

    http, _ = client(handler)
    for url in ("https://files.vendor.example/r.pdf", "http://api.vendor.example/v1/r.pdf",
                "https://api.vendor.example:8443/v1/r.pdf"):
        assert http.download(url).body == b"%PDF-1.7"
    assert http.download("https://api.vendor.example/v1/r.pdf").body == b"%PDF-1.7"
    assert [("authorization" in r.headers) for r in seen] == [False, False, False, True]
    assert http.download("/v1/r.pdf").body == b"%PDF-1.7" and "authorization" in seen[-1].headers


class Numbered:
    """Pages 1..3 of two items each."""

    def first(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, "page": 1}

    def items(self, body: Any) -> list[dict[str, Any]]:
        return list(body["data"])

    def next(self, body: Any, params: dict[str, Any]) -> dict[str, Any] | None:
        return {**params, "page": params["page"] + 1} if params["page"] < 3 else None

    def totals(self, body: Any) -> None:
        return None  # the listing states no totals: the paging guard's other rules still hold


def test_paging_walks_every_page_with_the_callers_params() -> None:
    asked: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(dict(request.url.params))
        page = int(request.url.params["page"])
        return httpx.Response(200, json={"data": [{"id": 2 * page - 1}, {"id": 2 * page}]})

    http, _ = client(handler)
    pages: Iterator[dict[str, Any]] = http.paginate("/devices", Numbered(), {"size": 2})
    assert [i["id"] for i in pages] == [1, 2, 3, 4, 5, 6]
    assert asked == [{"size": "2", "page": "1"}, {"size": "2", "page": "2"}, {"size": "2", "page": "3"}]
    assert [i["id"] for i in http.paginate("/devices", Numbered())] == [1, 2, 3, 4, 5, 6]


def test_the_next_page_is_asked_for_while_the_caller_still_reads_this_one() -> None:
    """At the vendor's ceiling a lane that parsed a page before asking for the next lost a slot per page."""
    second_asked = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        if page == 2:
            second_asked.set()
        return httpx.Response(200, json={"data": [{"id": 2 * page - 1}, {"id": 2 * page}]})

    http, _ = client(handler)
    pages = http.pages("/devices", Numbered())
    _, first = next(pages)
    assert [i["id"] for i in first] == [1, 2]
    assert second_asked.wait(10)  # asked for before the caller came back for it
    assert [[i["id"] for i in items] for _, items in pages] == [[3, 4], [5, 6]]
    http.close()


def test_a_page_read_ahead_is_recorded_in_the_callers_recording_in_order() -> None:
    http, _ = client(lambda r: httpx.Response(200, json={"data": [{"id": int(r.url.params["page"])}]}))
    with http.recording() as calls:
        assert [i["id"] for i in http.paginate("/devices", Numbered())] == [1, 2, 3]
    assert [c.query for c in calls] == ["page=1", "page=2", "page=3"]
    with http.recording() as others:  # a recording opened later hears nothing of the earlier listing
        pass
    assert others == []
    http.close()


def test_a_page_read_ahead_that_failed_fails_the_listing_where_the_caller_reaches_it() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params["page"] == "2":
            return httpx.Response(200, content=b"<html>proxy error</html>")
        return httpx.Response(200, json={"data": [{"id": 1}]})

    http, _ = client(handler)
    seen: list[int] = []
    with pytest.raises(VendorReplyError, match="GET /devices failed: reply is not JSON"):
        for item in http.paginate("/devices", Numbered()):
            seen.append(item["id"])
    assert seen == [1]  # the first page was read whole before the second's fault was told
    http.close()


def test_a_listing_the_caller_stops_reading_asks_for_one_page_ahead_at_most() -> None:
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params["page"])
        return httpx.Response(200, json={"data": [{"id": int(request.url.params["page"])}]})

    http, _ = client(handler)
    pages = http.pages("/devices", Numbered())
    next(pages)
    pages.close()
    http.close()  # returns once the reader thread has ended
    assert asked in (["1"], ["1", "2"])


def test_a_page_read_ahead_waiting_for_the_rate_limit_is_never_sent_once_the_caller_stops() -> None:
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params["page"])
        return httpx.Response(200, json={"data": [{"id": 1}]})

    # One call a minute, on the real clock: the second page waits (in the reader thread) for a minute.
    http = VendorHttp("Vendor", "https://api.vendor.example/v1", httpx.BasicAuth("u", "p"),
                      SlidingWindowLimiter(1, 60.0), transport=httpx.MockTransport(handler))
    pages = http.pages("/devices", Numbered())
    next(pages)
    pages.close()  # e.g. Ctrl-C while the caller read the first page
    http.close()  # returns once the reader's wait has ended, unsent
    assert asked == ["1"]


def test_an_empty_reply_is_none_and_one_that_is_not_json_is_one_line() -> None:
    http, _ = client(lambda r: httpx.Response(204))
    assert http.get("/x").body is None
    http, _ = client(lambda r: httpx.Response(200, content=b""))
    assert http.get("/x").body is None
    http, _ = client(lambda r: httpx.Response(200, content=b"<html>down</html>", headers={"content-type": "text/html"}))
    with pytest.raises(VendorReplyError) as caught:
        http.get("/x")
    assert str(caught.value).endswith("reply is not JSON (content-type text/html, 17 bytes); the vendor may be down "
                                      "or a proxy answered")


@pytest.mark.parametrize("fault, wait", [
    (lambda r: httpx.Response(429, headers={"Retry-After": "2"}), ("rate_limit", 2.0,
                                                                   "for the rate limit (the vendor answered 429)")),
    (lambda r: httpx.Response(503, headers={"Retry-After": "3"}), ("retry", 3.0, "before retrying (HTTP 503)")),
    (lambda r: (_ for _ in ()).throw(httpx.ReadTimeout("slow", request=r)),
     ("retry", None, "before retrying (no reply in time)")),
    (lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused", request=r)),
     ("retry", None, "before retrying (the connection failed)")),
])
def test_each_wait_is_told_with_what_it_waits_for(fault: Handler, wait: tuple[str, float | None, str]) -> None:
    calls: Iterator[Handler] = iter([fault, lambda r: httpx.Response(200, json={})])
    http, slept = client(lambda r: next(calls)(r))
    heard: list[waits.Wait] = []
    with waits.listening(heard.append):
        http.get("/x")
    retries = [w for w in heard if w.why.startswith("before") or w.why.endswith("answered 429)")]
    assert [(w.vendor, w.kind, w.why) for w in retries] == [("Vendor", wait[0], wait[2])]
    assert retries[0].seconds == slept[0]  # what is told is what is waited (a backoff's too: random, told as drawn)
    if wait[1] is not None:
        assert retries[0].seconds == wait[1]


def test_a_429_without_retry_after_waits_a_whole_window() -> None:
    answers = iter([429, 200])
    http, slept = client(lambda r: httpx.Response(next(answers), json={}), policy=RetryPolicy(rate_limited_default=42))
    http.get("/x")
    assert slept == [42]


def gai(message: str = "Name or service not known") -> socket.gaierror:
    return socket.gaierror(socket.EAI_NONAME, message)


def chained(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__cause__ = inner
    return outer


def test_a_host_that_does_not_resolve_is_told_apart_from_one_that_refuses() -> None:
    assert wire._unresolved(chained(httpx.ConnectError("x"), gai()))
    assert wire._unresolved(httpx.ConnectError("[Errno -2] Name or service not known"))
    assert wire._unresolved(httpx.ConnectError("getaddrinfo failed"))
    assert not wire._unresolved(httpx.ConnectError("Connection refused"))
    assert not wire._unresolved(httpx.ReadTimeout("Name or service not known"))
    looped = httpx.ConnectError("refused")
    looped.__context__ = chained(OSError("inner"), looped)
    assert not wire._unresolved(looped)  # a chain that loops ends


def test_the_reason_is_the_resolvers_own_words_else_the_error_redacted() -> None:
    assert wire._reason(chained(httpx.ConnectError("x"), gai("No address associated with hostname"))) == (
        "No address associated with hostname")
    REDACTOR.register("secret-in-url-123")
    assert wire._reason(httpx.ConnectError("https://secret-in-url-123@h")) == "https://[REDACTED]@h"
    assert wire._reason(httpx.ConnectError("")) == "no address"
    looped = httpx.ConnectError("")
    looped.__context__ = chained(OSError(""), looped)
    assert wire._reason(looped) == "no address"
    assert wire._host_of(httpx.ConnectError("x", request=httpx.Request("GET", "https://h.example/"))) == "h.example"
    assert wire._host_of(httpx.ConnectError("x")) is None


# -- what a failed call says, whole -----------------------------------------------------------------


def failure(http: VendorHttp, method: str = "GET", path: str = "/x") -> VendorError:
    with pytest.raises(VendorError) as caught:
        http.request(method, path)
    return caught.value


@pytest.mark.parametrize("status, kind", [(400, VendorError), (404, VendorError), (401, VendorAuthError),
                                          (403, VendorAuthError)])
def test_a_refused_call_names_the_vendor_the_call_the_status_and_the_vendors_words(
        status: int, kind: type[VendorError]) -> None:
    http, _ = client(lambda r: httpx.Response(status, text="  no \\n  such   thing "))
    exc = failure(http, "GET", "/agents/7")
    assert type(exc) is kind and (exc.vendor, exc.call, exc.status) == ("Vendor", "GET /agents/7", status)
    reason = httpx.codes.get_reason_phrase(status)
    assert str(exc) == f"Vendor: GET /agents/7 failed: HTTP {status} {reason}: no \\n such thing"
    http, _ = client(lambda r: httpx.Response(status))
    assert str(failure(http)) == f"Vendor: GET /x failed: HTTP {status} {reason}"  # no body: no colon


def test_the_vendors_words_are_cut_at_300_characters() -> None:
    http, _ = client(lambda r: httpx.Response(400, text="x" * 400))
    assert str(failure(http)).endswith(": " + "x" * 300)


def test_a_read_that_stays_down_gives_up_naming_the_status_and_attempts() -> None:
    http, slept = client(lambda r: httpx.Response(503), policy=RetryPolicy(max_attempts=3))
    exc = failure(http)
    assert (exc.vendor, exc.call, exc.status) == ("Vendor", "GET /x", 503) and len(slept) == 2
    assert str(exc) == "Vendor: GET /x failed: HTTP 503 Service Unavailable (gave up after 3 attempts)"


def test_a_write_answered_5xx_may_have_landed_and_is_never_retried() -> None:
    http, slept = client(lambda r: httpx.Response(502, text="upstream"))
    exc = failure(http, "DELETE", "/agents/7")
    assert type(exc) is AmbiguousWrite and (exc.vendor, exc.call, exc.status) == ("Vendor", "DELETE /agents/7", 502)
    assert str(exc) == "Vendor: DELETE /agents/7 failed: HTTP 502 Bad Gateway: upstream"
    assert http.calls == 1 and slept == []


def test_a_write_whose_reply_was_lost_is_ambiguous_and_a_read_that_times_out_gives_up() -> None:
    def lost(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    http, _ = client(lost, policy=RetryPolicy(max_attempts=2))
    exc = failure(http, "POST", "/agents/7/actions")
    assert type(exc) is AmbiguousWrite and (exc.vendor, exc.call) == ("Vendor", "POST /agents/7/actions")
    assert str(exc) == "Vendor: POST /agents/7/actions failed: reply lost (ReadTimeout: timed out)"
    assert http.calls == 1
    read = failure(http, "GET", "/agents")
    assert type(read) is VendorError and (read.vendor, read.call) == ("Vendor", "GET /agents")
    assert str(read) == "Vendor: GET /agents failed: ReadTimeout: timed out (gave up after 2 attempts)"


def test_an_error_without_words_is_named_by_its_kind() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("", request=request)

    http, _ = client(refused, policy=RetryPolicy(max_attempts=2))
    exc = failure(http, "DELETE", "/agents/7")  # not sent: safe to retry, then given up
    assert type(exc) is VendorError and str(exc) == ("Vendor: DELETE /agents/7 failed: ConnectError (gave up after "
                                                     "2 attempts)")


def test_a_host_that_does_not_resolve_is_named_with_the_fix() -> None:
    def unresolved(request: httpx.Request) -> httpx.Response:
        raise chained(httpx.ConnectError("x", request=request), gai("Name or service not known"))

    http, slept = client(unresolved)
    exc = failure(http, "GET", "/agents")
    assert (exc.vendor, exc.call) == ("Vendor", "GET /agents") and len(slept) == 1
    assert str(exc) == ("Vendor: GET /agents failed: the host name api.vendor.example could not be resolved (Name or "
                        "service not known; tried 2 times): check the Vendor URL in the config (base_url) and this "
                        "machine's network and DNS")


def test_a_reply_that_is_not_json_names_the_vendor_and_the_call() -> None:
    http, _ = client(lambda r: httpx.Response(200, content=b"<html>"))
    with pytest.raises(VendorReplyError) as caught:
        http.get("/agents")
    assert (caught.value.vendor, caught.value.call) == ("Vendor", "GET /agents")
    assert "content-type ?" in str(caught.value)  # no content type at all


# -- what a call sends, and what it gives back -------------------------------------------------------


def test_a_write_sends_its_json_body_params_and_forms_to_any_origin() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": 1}, headers={"X-Request-Id": "r-1"})

    http, _ = client(handler)
    reply = http.request("POST", "/notes", json={"text": "hi"}, params={"ticket": "7"})
    assert (reply.status, reply.body, reply.headers["x-request-id"]) == (201, {"id": 1}, "r-1")
    assert json.loads(seen[-1].content) == {"text": "hi"} and seen[-1].url.params["ticket"] == "7"
    http.request("POST", "/files", files={"file": ("r.md", b"# report", "text/markdown")}, data={"note": "n"})
    assert b"# report" in seen[-1].content and b'name="note"' in seen[-1].content
    http.request("POST", "https://files.vendor.example/up", json={"a": 1}, params={"p": "1"})
    assert json.loads(seen[-1].content) == {"a": 1} and seen[-1].url.params["p"] == "1"
    http.request("POST", "https://files.vendor.example/up", files={"f": ("a", b"bytes-here", "x/y")},
                 data={"d": "v"})
    assert b"bytes-here" in seen[-1].content and b'name="d"' in seen[-1].content
    assert "authorization" not in seen[-1].headers
    assert http.last_call is not None and http.last_call.duration_ms >= 0 and http.last_call.status == 201


def test_the_limiter_hears_each_call_with_its_token_and_whether_it_was_throttled() -> None:
    answers = iter([429, 200])
    http, _ = client(lambda r: httpx.Response(next(answers), json={}, headers={"Retry-After": "0"}))
    heard: list[tuple[object, bool]] = []
    real = http.limiter.completed

    def completed(token: str | None = None, *, remaining: int | None = None, throttled: bool = False) -> None:
        heard.append((token, throttled))
        real(token, remaining=remaining, throttled=throttled)

    http.limiter.completed = completed  # type: ignore[method-assign]
    http.get("/x")
    assert [t for _, t in heard] == [True, False] and all(token is not None for token, _ in heard)


def test_a_new_client_has_made_no_call_and_waits_with_the_real_sleep_unless_given_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    http, _ = client(lambda r: httpx.Response(200, json={}))
    assert http.last_call is None and http.calls == 0
    slept: list[float] = []
    monkeypatch.setattr("time.sleep", slept.append)
    wire._sleep(2.5)
    # In slices a Ctrl-C can cut short (wire.waits), adding up to the wait asked for.
    assert slept and abs(sum(slept) - 2.5) < 1e-9 and max(slept) <= 2.5
    assert str(wire._RetryableStatus(httpx.Response(503))) == "HTTP 503"


def test_retry_after_as_a_date_without_a_zone_is_utc_whatever_the_machines_zone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
        assert parse_retry_after("Mon, 23 Nov 2026 10:01:30", now.timestamp()) == 90.0
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_a_limiter_wait_says_whether_the_vendor_asked_for_it() -> None:
    http, _ = client(lambda r: httpx.Response(200, json={}))
    heard: list[waits.Wait] = []
    with waits.listening(heard.append):
        http._limiter_wait(4.0, True)
        http._limiter_wait(1.5, False)
    assert [(w.vendor, w.seconds, w.kind, w.why) for w in heard] == [
        ("Vendor", 4.0, "rate_limit", "for the rate limit (the vendor asked to wait)"),
        ("Vendor", 1.5, "rate_limit", "for the rate limit")]


# -- what the mutation run (bench/mutation.py wire/http.py) found no test for --------------------------


def test_a_backoff_doubles_from_the_policys_base_up_to_its_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    import tenacity

    monkeypatch.setattr(tenacity.wait.random, "uniform", lambda low, high: high)  # full jitter at its top
    answers = iter([503, 503, 503, 503, 200])
    http, slept = client(lambda r: httpx.Response(next(answers), json={}),
                         policy=RetryPolicy(backoff_base=3.0, backoff_max=10.0))
    http.get("/x")
    assert slept == [3.0, 6.0, 10.0, 10.0]


def test_a_post_that_only_reads_is_retried_as_a_read_not_taken_for_a_write() -> None:
    answers = iter([503, 200])
    http, slept = client(lambda r: httpx.Response(next(answers), json={"found": []}))
    assert http.request("POST", "/search", json={"q": "x"}, read=True).body == {"found": []}
    assert http.calls == 2 and len(slept) == 1


def test_a_write_refused_with_429_until_retries_give_up_did_not_land() -> None:
    http, _ = client(lambda r: httpx.Response(429, headers={"Retry-After": "0"}),
                     policy=RetryPolicy(max_attempts=3))
    with pytest.raises(VendorError) as caught:
        http.request("DELETE", "/agents/7")
    # 429 says the call was not taken: a plain failure to retry later, never "may have landed"
    assert type(caught.value) is VendorError and caught.value.status == 429
    assert str(caught.value) == "Vendor: DELETE /agents/7 failed: HTTP 429 Too Many Requests (gave up after 3 attempts)"


def test_a_refusal_in_the_vendors_documented_form_is_raised_as_refused_naming_vendor_call_and_status() -> None:
    def envelope(response: httpx.Response) -> str | None:
        return response.json().get("error")

    http, _ = client(lambda r: httpx.Response(422, json={"error": "name is required"}), refusal=envelope)
    with pytest.raises(VendorRefused) as caught:
        http.request("POST", "/things", json={})
    assert (caught.value.vendor, caught.value.call, caught.value.status) == ("Vendor", "POST /things", 422)
    assert str(caught.value) == "Vendor: POST /things failed: HTTP 422, refused: name is required"
    assert http.calls == 1  # a refusal is never resent


def test_an_error_reply_past_the_limit_is_named_by_its_status_and_only_the_words_read() -> None:
    declared, _ = client(lambda r: httpx.Response(400, content=b"x" * 100), limits=ReplyLimits(max_bytes=10))
    with pytest.raises(VendorError) as caught:
        declared.get("/x")  # declared 100 bytes: not read at all
    assert str(caught.value) == "Vendor: GET /x failed: HTTP 400 Bad Request"
    streamed, _ = client(lambda r: httpx.Response(400, content=iter([b"0123456789", b"ABCDEF"])),
                         limits=ReplyLimits(max_bytes=10))
    with pytest.raises(VendorError) as caught:
        streamed.get("/x")  # sent without a length: read up to the limit
    assert str(caught.value) == "Vendor: GET /x failed: HTTP 400 Bad Request: 0123456789"


def test_a_reply_is_never_read_past_the_limit() -> None:
    def endless() -> Iterator[bytes]:
        yield b"[" + b"1," * 20
        yield b"1," * 20
        raise AssertionError("the reply was read past the limit")

    http, _ = client(lambda r: httpx.Response(200, content=endless()), limits=ReplyLimits(max_bytes=30,
                                                                                          max_download_bytes=30))
    with pytest.raises(VendorReplyRefused, match="larger than 30 bytes"):
        http.get("/x")
    with pytest.raises(VendorReplyRefused, match="larger than 30 bytes"):
        http.download("https://files.vendor.example/r.pdf")  # another origin, sent without the credentials


def test_a_download_is_held_to_the_download_limit_not_the_replies_one() -> None:
    http, _ = client(lambda r: httpx.Response(200, content=b"%PDF" + b"x" * 40),
                     limits=ReplyLimits(max_bytes=10, max_download_bytes=100))
    assert http.download("https://files.vendor.example/r.pdf").body == b"%PDF" + b"x" * 40
    with pytest.raises(VendorReplyRefused, match="larger than 10 bytes"):
        http.get("/x")


def test_a_no_content_reply_with_a_body_anyway_is_none() -> None:
    http, _ = client(lambda r: httpx.Response(204, content=b"<html>ignored</html>"))
    assert http.request("DELETE", "/agents/7").body is None


@pytest.mark.parametrize("url, recorded", [
    ("https://files.vendor.example:8443/r.pdf", "https://files.vendor.example:8443/r.pdf"),  # the port kept
    ("https://api.vendor.example/files/r.pdf", "/files/r.pdf"),  # the API's host, outside its base path: whole
    ("https://api.vendor.example/v1/r.pdf", "/r.pdf"),
])
def test_a_download_is_recorded_by_where_it_was_fetched(url: str, recorded: str) -> None:
    http, _ = client(lambda r: httpx.Response(200, content=b"%PDF"))
    with http.recording() as calls:
        http.download(url)
    assert [c.path for c in calls] == [recorded]


@pytest.mark.parametrize("base", ["https://api.vendor.example/apiX", "https://api.vendor.example/apiX/"])
def test_the_base_urls_own_path_is_left_out_of_the_record_whatever_it_ends_with(base: str) -> None:
    http, _ = client(lambda r: httpx.Response(200, json={}), base_url=base)
    http.get("/things", params={"page": 2})
    assert http.last_call is not None and (http.last_call.path, http.last_call.query) == ("/things", "page=2")


def test_a_request_that_cannot_be_built_is_raised_and_costs_no_call() -> None:
    sent: list[httpx.Request] = []
    http, _ = client(lambda r: sent.append(r) or httpx.Response(200, json={}))
    with pytest.raises(TypeError, match="not JSON serializable"):
        http.request("POST", "/things", json={"when": object()})
    assert sent == [] and http.calls == 0 and http.last_call is None


def test_the_words_of_a_lost_connection_are_kept_whole_only_a_trailing_colon_is_dropped() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("no route to host-X", request=request)

    http, _ = client(down, policy=RetryPolicy(max_attempts=1))
    with pytest.raises(VendorError) as caught:
        http.get("/x")
    assert str(caught.value) == "Vendor: GET /x failed: ConnectError: no route to host-X (gave up after 1 attempts)"


def test_a_call_whose_connection_failed_is_recorded_without_a_status() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    http, _ = client(down, policy=RetryPolicy(max_attempts=2))
    with pytest.raises(VendorError, match="gave up after 2 attempts"):
        http.get("/x")
    assert http.last_call is not None and (http.last_call.status, http.last_call.attempt) == (None, 2)


def test_a_calls_duration_is_recorded_in_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    ticks = iter([1000.0, 1002.5])  # the call starts, then its reply is read two and a half seconds later
    monkeypatch.setattr(wire, "time", types.SimpleNamespace(monotonic=lambda: next(ticks)))
    http, _ = client(lambda r: httpx.Response(200, json={}))
    http.get("/x")
    assert http.last_call is not None and http.last_call.duration_ms == 2500


def test_a_host_of_another_origin_that_does_not_resolve_is_named_not_the_apis() -> None:
    def unresolved(request: httpx.Request) -> httpx.Response:
        raise chained(httpx.ConnectError("x", request=request), gai())

    http, _ = client(unresolved)
    with pytest.raises(VendorError, match=r"the host name files\.elsewhere\.example could not be resolved"):
        http.download("https://files.elsewhere.example/r.pdf")


def test_the_servers_clock_is_read_from_a_dated_reply_in_utc_whatever_the_machines_zone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    dates = iter(["Mon, 23 Nov 2026 10:00:00 +0100", "Mon, 23 Nov 2026 11:00:00 -0000", "not a date"])
    http, _ = client(lambda r: httpx.Response(200, json={}, headers={"Date": next(dates)}))
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        http.get("/x")
        assert http.server_time == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
        assert http.server_time.utcoffset() == timedelta(0)  # shown and compared as UTC, not the machine's zone
        http.get("/x")  # "-0000": a time with no zone (RFC 5322), so not the server's clock: the last one stands
        http.get("/x")
        assert http.server_time == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


class Stated(Numbered):
    """Ten pages, each stating the listing's size in its body."""

    def next(self, body: Any, params: dict[str, Any]) -> dict[str, Any] | None:
        return {**params, "page": params["page"] + 1} if params["page"] < 10 else None

    def totals(self, body: Any) -> Totals:  # type: ignore[override]
        return Totals(pages=body["pages"])


def test_a_listing_is_held_to_the_totals_it_states_and_the_message_names_the_vendor_and_the_call() -> None:
    http, _ = client(lambda r: httpx.Response(200, json={"data": [{"id": int(r.url.params["page"])}], "pages": 1}))
    with pytest.raises(VendorReplyRefused) as caught:
        list(http.paginate("/devices", Stated()))
    assert str(caught.value).startswith("Vendor: GET /devices failed: the vendor's reply pages without end: the "
                                        "listing says it holds 1 pages, yet page")
    http.close()


def test_a_listing_longer_than_max_pages_names_the_setting_where_it_is_set() -> None:
    http, _ = client(lambda r: httpx.Response(200, json={"data": [{"id": int(r.url.params["page"])}]}),
                     limits=ReplyLimits(max_pages=2, where="[vendor]"))
    with pytest.raises(VendorReplyRefused, match=r"^Vendor: GET /devices failed: .* offboard reads at most 2 pages "
                                                 r"of one listing \(max_pages in \[vendor\];"):
        list(http.paginate("/devices", Numbered()))
    http.close()


def test_a_client_reads_ahead_one_page_at_a_time_in_its_own_named_thread_and_close_sends_none_still_queued() -> None:
    asked: list[tuple[str, str, str]] = []
    a_reading, release = threading.Event(), threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        page = request.url.params["page"]
        asked.append((request.url.path, page, threading.current_thread().name))
        if request.url.path.endswith("/a") and page == "2":
            a_reading.set()
            assert release.wait(30)
        return httpx.Response(200, json={"data": [{"id": int(page)}]})

    http, _ = client(handler)
    a = http.pages("/a", Numbered())
    next(a)  # /a's page 2 is read ahead, and held at the vendor
    assert a_reading.wait(30)
    b = http.pages("/b", Numbered())
    next(b)  # /b's page 2 waits behind it: the client reads ahead one page at a time
    closing = threading.Thread(target=http.close)
    closing.start()
    closing.join(0.2)
    assert closing.is_alive()  # close waits for the read under way
    release.set()
    closing.join(30)
    assert not closing.is_alive()
    assert [(path, page) for path, page, _ in asked] == [("/v1/a", "1"), ("/v1/a", "2"), ("/v1/b", "1")]
    assert asked[1][2].startswith("Vendor-pages")  # what a stack dump shows of the reader
    a.close()
    b.close()
