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

from offboard.errors import AmbiguousWrite, VendorAuthError, VendorError, VendorReplyError
from offboard.wire import http as wire
from offboard.wire import waits
from offboard.wire.http import HttpRecord, RetryPolicy, VendorHttp, parse_retry_after
from offboard.wire.ratelimit import SlidingWindowLimiter
from offboard.wire.redact import REDACTOR
from tests.fakeclock import FakeClock

Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, *, remaining_header: str | None = None, budget_file: Path | None = None,
           policy: RetryPolicy | None = None) -> tuple[VendorHttp, list[float]]:
    slept: list[float] = []
    clock = FakeClock()  # the limiter's waits (a vendor's Retry-After holds it too) pass at once
    limiter = SlidingWindowLimiter(1000, 60.0, clock=clock, sleep=clock.sleep)
    return VendorHttp("Vendor", "https://api.vendor.example/v1", httpx.BasicAuth("user-k", "pass-s"),
                      limiter, transport=httpx.MockTransport(handler), sleep=slept.append,
                      remaining_header=remaining_header, budget_file=budget_file, policy=policy), slept


def test_a_policy_on_a_faster_clock_scales_every_wait_but_not_the_attempts() -> None:
    policy = RetryPolicy(max_attempts=4, backoff_base=2.0, backoff_max=30.0, retry_after_max=100.0,
                         rate_limited_default=50.0)
    assert policy.scaled(0.5) == RetryPolicy(max_attempts=4, backoff_base=1.0, backoff_max=15.0,
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
    if wait[1] is not None:
        assert retries[0].seconds == wait[1] == slept[0]


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
