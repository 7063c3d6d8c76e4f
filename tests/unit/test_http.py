"""VendorHttp: retries, Retry-After, write safety, errors (respx at the transport seam)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx

from offboard.errors import AmbiguousWrite, VendorAuthError, VendorError, VendorRefused, VendorReplyError
from offboard.wire import waits
from offboard.wire.http import RetryPolicy, VendorHttp, parse_retry_after
from offboard.wire.ratelimit import SlidingWindowLimiter
from offboard.wire.replies import ReplyLimits
from offboard.wire.waits import Wait
from tests.fakeclock import FakeClock

BASE = "https://api.example.test"


def make(clock: FakeClock, attempts: int = 4) -> VendorHttp:
    limiter = SlidingWindowLimiter(1000, 60, clock=clock, sleep=clock.sleep)
    return VendorHttp("Vendor", BASE, httpx.BasicAuth("k", "s"), limiter,
                      policy=RetryPolicy(max_attempts=attempts, backoff_base=0.5, backoff_max=8),
                      sleep=clock.sleep)


@respx.mock
def test_429_then_success_waits_exactly_the_retry_after_seconds() -> None:
    route = respx.get(f"{BASE}/v1/things").mock(side_effect=[
        httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200, json={"ok": True})])
    clock = FakeClock()
    reply = make(clock).get("/v1/things")
    assert reply.body == {"ok": True}
    assert route.call_count == 2
    assert clock.slept == [7.0]
    assert reply.record.attempt == 2


@respx.mock
def test_429_without_retry_after_waits_a_whole_window() -> None:
    respx.get(f"{BASE}/x").mock(side_effect=[httpx.Response(429), httpx.Response(200, json={})])
    clock = FakeClock()
    make(clock).get("/x")
    assert clock.slept == [60.0]


@respx.mock
def test_5xx_on_a_read_backs_off_with_jitter_then_succeeds() -> None:
    route = respx.get(f"{BASE}/x").mock(side_effect=[httpx.Response(503), httpx.Response(502),
                                                     httpx.Response(200, json={})])
    clock = FakeClock()
    make(clock).get("/x")
    assert route.call_count == 3
    assert len(clock.slept) == 2 and all(0 <= s <= 8 for s in clock.slept)


@respx.mock
def test_read_gives_up_after_the_budget_naming_vendor_and_call() -> None:
    respx.get(f"{BASE}/x").mock(return_value=httpx.Response(500, text="boom"))
    with pytest.raises(VendorError) as info:
        make(FakeClock(), attempts=3).get("/x")
    assert str(info.value) == "Vendor: GET /x failed: HTTP 500 Internal Server Error: boom (gave up after 3 attempts)"


@respx.mock
def test_a_write_answered_5xx_is_not_resent_and_is_ambiguous() -> None:
    route = respx.delete(f"{BASE}/v1/things/1").mock(return_value=httpx.Response(502))
    with pytest.raises(AmbiguousWrite):
        make(FakeClock()).request("DELETE", "/v1/things/1")
    assert route.call_count == 1


@respx.mock
def test_a_write_whose_reply_is_lost_is_not_resent() -> None:
    route = respx.delete(f"{BASE}/v1/things/1").mock(side_effect=httpx.ReadTimeout("lost"))
    with pytest.raises(AmbiguousWrite, match="reply lost"):
        make(FakeClock()).request("DELETE", "/v1/things/1")
    assert route.call_count == 1


@respx.mock
def test_a_write_that_never_connected_or_got_429_is_resent() -> None:
    route = respx.delete(f"{BASE}/v1/things/1").mock(side_effect=[
        httpx.ConnectError("refused"), httpx.Response(429, headers={"Retry-After": "1"}), httpx.Response(204)])
    reply = make(FakeClock()).request("DELETE", "/v1/things/1")
    assert reply.status == 204
    assert route.call_count == 3


@respx.mock
def test_401_is_an_auth_error_and_not_retried() -> None:
    route = respx.get(f"{BASE}/x").mock(return_value=httpx.Response(401))
    with pytest.raises(VendorAuthError):
        make(FakeClock()).get("/x")
    assert route.call_count == 1


@respx.mock
def test_an_html_error_page_is_a_reply_error_not_a_traceback() -> None:
    respx.get(f"{BASE}/x").mock(return_value=httpx.Response(200, text="<html>maintenance</html>",
                                                              headers={"content-type": "text/html"}))
    with pytest.raises(VendorReplyError, match="not JSON"):
        make(FakeClock()).get("/x")


@respx.mock
def test_basic_auth_header_is_sent_and_timeouts_are_explicit() -> None:
    route = respx.get(f"{BASE}/x").mock(return_value=httpx.Response(200, json={}))
    http = make(FakeClock())
    http.get("/x")
    assert route.calls.last.request.headers["Authorization"] == "Basic azpz"
    timeout = http._client.timeout
    assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (10.0, 30.0, 30.0, 10.0)


def test_parse_retry_after_seconds_and_http_dates() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("0.25") == 0.25
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@respx.mock
def test_a_host_name_that_does_not_resolve_is_tried_twice_not_the_whole_budget() -> None:
    route = respx.get(f"{BASE}/x").mock(side_effect=httpx.ConnectError("[Errno -2] Name or service not known"))
    clock = FakeClock()
    with pytest.raises(VendorError) as info:
        make(clock, attempts=6).get("/x")
    assert route.call_count == 2 and len(clock.slept) == 1
    assert "host name api.example.test could not be resolved" in str(info.value)
    assert "base_url" in str(info.value) and "DNS" in str(info.value)


@respx.mock
def test_a_refused_connection_keeps_its_retries() -> None:
    route = respx.get(f"{BASE}/x").mock(side_effect=httpx.ConnectError("[Errno 111] Connection refused"))
    with pytest.raises(VendorError, match="gave up after 6 attempts"):
        make(FakeClock(), attempts=6).get("/x")
    assert route.call_count == 6


@respx.mock
def test_every_wait_is_told_to_the_listeners_in_words() -> None:
    respx.get(f"{BASE}/x").mock(side_effect=[httpx.Response(429, headers={"Retry-After": "7"}),
                                             httpx.Response(503), *[httpx.Response(200, json={})] * 3])
    clock = FakeClock()
    one_a_minute = SlidingWindowLimiter(1, 64, clock=clock, sleep=clock.sleep, margin=0)
    http = VendorHttp("Vendor", BASE, httpx.BasicAuth("k", "s"), one_a_minute,
                      policy=RetryPolicy(backoff_base=0.5, backoff_max=8), sleep=clock.sleep)
    heard: list[Wait] = []
    with waits.listening(heard.append):
        http.get("/x")
        http.get("/x")
    before = len(heard)
    http.get("/x")  # waits too, but no one listens any more
    assert len(heard) == before and clock.slept[-1] > 0
    said = [(w.vendor, w.kind, w.why) for w in heard]
    assert said[0] == ("Vendor", "rate_limit", "for the rate limit (the vendor answered 429)")
    assert heard[0].seconds == 7.0
    assert heard[0].describe() == "Vendor: waiting 7s for the rate limit (the vendor answered 429)"
    assert ("Vendor", "retry", "before retrying (HTTP 503)") in said
    assert ("Vendor", "rate_limit", "for the rate limit") in said  # one call per 60 s: the limiter holds the next


def test_a_listener_that_fails_never_fails_the_call() -> None:
    def broken(wait: Wait) -> None:
        raise RuntimeError("the screen went away")

    with waits.listening(broken):
        waits.report(Wait("Vendor", 1.0, "retry", "before retrying"))


def _errors_envelope(response: httpx.Response) -> str | None:
    body = response.json()
    return "; ".join(body["errors"]) if isinstance(body, dict) and body.get("errors") else None


@respx.mock
def test_a_documented_refusal_is_neither_retried_nor_ambiguous_whatever_its_status() -> None:
    clock = FakeClock()
    http = make(clock)
    http._refusal = _errors_envelope
    write = respx.post(f"{BASE}/notes").mock(return_value=httpx.Response(500, json={"errors": ["too large"]}))
    with pytest.raises(VendorRefused, match="HTTP 500, refused: too large"):
        http.request("POST", "/notes", json={})
    read = respx.get(f"{BASE}/notes").mock(return_value=httpx.Response(500, json={"errors": ["bad filter"]}))
    with pytest.raises(VendorRefused):
        http.get("/notes")
    assert write.call_count == 1 and read.call_count == 1 and clock.slept == []
    # A 5xx that is not the envelope stays what it was: a write's is ambiguous, a read's is retried.
    respx.post(f"{BASE}/files").mock(return_value=httpx.Response(500, text="<html>proxy error</html>"))
    with pytest.raises(AmbiguousWrite):
        http.request("POST", "/files", json={})
    flaky = respx.get(f"{BASE}/files").mock(side_effect=[httpx.Response(503, text="down"),
                                                         httpx.Response(200, json=[])])
    assert http.get("/files").body == [] and flaky.call_count == 2


@respx.mock
def test_a_recording_names_each_request_in_one_form_path_and_query_and_a_download_host_without_its_query() -> None:
    limiter = SlidingWindowLimiter(1000, 60, clock=FakeClock(), sleep=FakeClock().sleep)
    http = VendorHttp("Vendor", f"{BASE}/api/v2", httpx.BasicAuth("k", "s"), limiter)
    respx.get(f"{BASE}/api/v2/things").mock(return_value=httpx.Response(200, json=[]))
    respx.get(f"{BASE}/api/v2/one").mock(return_value=httpx.Response(200, json={}))
    respx.get("https://files.example.test/r/7.pdf").mock(return_value=httpx.Response(200, content=b"%PDF"))
    with http.recording() as outer:
        http.get("/things", params={"org": 42, "page": 2})
        with http.recording() as inner:
            http.download(f"{BASE}/api/v2/one?x=1")  # same origin: a path like any other
            http.download("https://files.example.test/r/7.pdf?X-Signature=s3cr3t")
    assert [r.line for r in inner] == ["GET /one?x=1", "GET https://files.example.test/r/7.pdf"]
    assert [r.line for r in outer] == ["GET /things?org=42&page=2", *[r.line for r in inner]]
    assert "s3cr3t" not in str([r.as_dict() for r in outer])  # a storage link's signature is never kept
    http.get("/things")  # after the block: recorded nowhere
    assert len(outer) == 3


# -- the connector's refusal reader: what it is shown, and when it is asked at all ----------------------


class Reader:
    """A connector's refusal reader that notes what it was shown (status, content type)."""

    def __init__(self, answer: str | None = "field 'name' is required") -> None:
        self.answer = answer
        self.shown: list[tuple[int, str]] = []

    def __call__(self, response: httpx.Response) -> str | None:
        self.shown.append((response.status_code, response.headers.get("content-type", "<none>")))
        return self.answer


def refused_with(reply: httpx.Response, reader: Reader, limits: ReplyLimits | None = None) -> VendorError:
    http = make(FakeClock(), attempts=1)
    http._refusal = reader
    if limits is not None:
        http.limits = limits
    respx.post(f"{BASE}/notes").mock(return_value=reply)
    with pytest.raises(VendorError) as caught:
        http.request("POST", "/notes", json={})
    return caught.value


@respx.mock
@pytest.mark.parametrize("status", [400, 404, 422, 500])
def test_a_refusal_is_read_from_any_status_from_400_the_reader_seeing_the_status_and_type(status: int) -> None:
    reader = Reader()
    exc = refused_with(httpx.Response(status, json={"errors": ["x"]}), reader)
    assert isinstance(exc, VendorRefused) and f"HTTP {status}, refused: field 'name' is required" in str(exc)
    assert set(reader.shown) == {(status, "application/json")}


@respx.mock
def test_a_reply_without_a_content_type_is_shown_to_the_reader_with_an_empty_one() -> None:
    reader = Reader()
    refused_with(httpx.Response(400, content=b'{"errors": ["x"]}'), reader)
    assert reader.shown == [(400, "")]


@respx.mock
@pytest.mark.parametrize("status", [401, 403, 429])
def test_refused_credentials_and_throttling_are_never_read_as_a_refusal(status: int) -> None:
    reader = Reader()
    exc = refused_with(httpx.Response(status, json={"errors": ["x"]}, headers={"Retry-After": "0"}), reader)
    assert not isinstance(exc, VendorRefused) and reader.shown == []


@respx.mock
def test_a_reply_past_the_size_or_nesting_limit_is_not_read_as_a_refusal() -> None:
    reader = Reader()
    cut = refused_with(httpx.Response(400, json={"errors": ["x" * 200]}), reader, ReplyLimits(max_bytes=64))
    deep = refused_with(httpx.Response(400, content=b"[" * 6 + b"]" * 6), reader, ReplyLimits(max_depth=5))
    assert not isinstance(cut, VendorRefused) and not isinstance(deep, VendorRefused) and reader.shown == []
    at_the_limit = refused_with(httpx.Response(400, content=b"[" * 5 + b"]" * 5), reader, ReplyLimits(max_depth=5))
    assert isinstance(at_the_limit, VendorRefused)


@respx.mock
def test_a_reply_the_reader_finds_no_refusal_in_is_the_vendors_error_as_it_was() -> None:
    exc = refused_with(httpx.Response(400, json={"message": "bad"}), Reader(answer=None))
    assert not isinstance(exc, VendorRefused) and "HTTP 400" in str(exc)


@respx.mock
def test_the_refusal_is_shown_on_one_line_cut_at_300_characters() -> None:
    exc = refused_with(httpx.Response(400, json={}), Reader(answer="a\n  b " + "c" * 400))
    shown = str(exc).split("refused: ", 1)[1]
    assert shown == ("a b " + "c" * 400)[:300]


def test_a_request_with_a_query_is_recorded_with_it() -> None:
    from offboard.wire.http import HttpRecord

    assert HttpRecord("GET", "/v1/agents", 200, 1, 5, query="page=2").as_dict() == {
        "method": "GET", "path": "/v1/agents", "query": "page=2", "status": 200, "attempt": 1, "duration_ms": 5}


@respx.mock
def test_a_download_is_recorded_as_a_get() -> None:
    respx.get("https://files.example.test/export.csv").mock(return_value=httpx.Response(200, content=b"a,b\n"))
    reply = make(FakeClock()).download("https://files.example.test/export.csv")
    assert reply.record.method == "GET" and reply.record.line == "GET https://files.example.test/export.csv"


def test_an_unresolved_hosts_reason_is_found_though_its_error_chain_loops() -> None:
    """A transport may chain errors in a loop; the reason is still one line, and found (never a hang)."""
    import socket

    from offboard.wire import http as wire

    looped = httpx.ConnectError("no address")
    resolver = socket.gaierror()  # no strerror: the chain is walked on, and it loops back
    looped.__cause__ = resolver
    resolver.__cause__ = looped
    assert wire._unresolved(looped) and wire._reason(looped) == "no address"


@respx.mock
def test_the_servers_clock_is_kept_from_its_date_header_and_a_reply_without_one_keeps_the_last() -> None:
    # What a claim in a PSA ticket is timed by: the server's own clock, never this machine's.
    clock = FakeClock()
    http = make(clock)
    route = respx.get(f"{BASE}/clock")
    route.side_effect = [httpx.Response(200, json={}, headers={"Date": "Fri, 04 Dec 2026 09:00:00 GMT"}),
                         httpx.Response(200, json={}, headers={"Date": "not a date"}),
                         httpx.Response(200, json={})]
    assert http.server_time is None
    http.get("/clock")
    assert http.server_time is not None and http.server_time.isoformat() == "2026-12-04T09:00:00+00:00"
    http.get("/clock")
    http.get("/clock")
    assert http.server_time.isoformat() == "2026-12-04T09:00:00+00:00"


def test_a_next_link_is_followed_only_on_the_apis_own_origin() -> None:
    http = make(FakeClock())
    assert http.same_origin("/v1/agents?page=2") and http.same_origin(f"{BASE}/v1/agents?page=2")
    assert not http.same_origin("https://elsewhere.example.test/v1/agents?page=2")
    assert not http.same_origin("http://api.example.test/v1/agents?page=2")  # another scheme: another origin


def test_a_retry_after_date_already_past_waits_nothing() -> None:
    # read against the machine's own clock when no time is given; any date before now is no wait
    assert parse_retry_after("Mon, 01 Jan 2001 00:00:00 GMT") == 0.0


# -- a reply read no further than the limit (the hostile-reply CLI tests cover the whole path) -------


def capped(reply: httpx.Response, max_bytes: int) -> str:
    http = make(FakeClock(), attempts=1)
    http.limits = ReplyLimits(max_bytes=max_bytes)
    respx.get(f"{BASE}/x").mock(return_value=reply)
    with pytest.raises(VendorError) as caught:
        http.get("/x")
    return str(caught.value)


@respx.mock
def test_a_reply_declaring_more_than_the_limit_is_refused_naming_its_size() -> None:
    said = capped(httpx.Response(200, content=b"[1, 2, 3]", headers={"Content-Length": " 90000 "}), 1000)
    assert "the vendor's reply is larger than" in said and "(it declares 90,000 bytes)" in said


@respx.mock
def test_a_reply_streaming_past_the_limit_is_cut_there_and_refused() -> None:
    def chunks() -> Any:
        yield b"[" + b"1," * 20
        yield b"1," * 20 + b"1]"

    said = capped(httpx.Response(200, content=chunks()), 30)
    assert "the vendor's reply is larger than" in said and "offboard stopped reading it there" in said


@respx.mock
def test_a_reply_of_exactly_the_limit_is_read_whole() -> None:
    body = b"[" + b"1," * 9 + b"1]"
    http = make(FakeClock(), attempts=1)
    http.limits = ReplyLimits(max_bytes=len(body))
    respx.get(f"{BASE}/x").mock(return_value=httpx.Response(200, content=body,
                                                             headers={"Content-Length": str(len(body))}))
    assert http.get("/x").body == [1] * 10
    respx.get(f"{BASE}/y").mock(return_value=httpx.Response(200, content=iter([body[:5], body[5:]])))
    assert http.get("/y").body == [1] * 10


@respx.mock
def test_a_reply_past_the_limit_to_a_write_is_ambiguous_to_a_read_refused_each_naming_its_setting() -> None:
    from offboard.errors import VendorReplyRefused

    http = make(FakeClock(), attempts=1)
    http.limits = ReplyLimits(max_bytes=8, max_download_bytes=8)
    big = httpx.Response(201, content=b"[" + b"1," * 20 + b"1]")
    respx.post(f"{BASE}/agents").mock(return_value=big)
    with pytest.raises(AmbiguousWrite) as write:
        http.request("POST", "/agents", json={})
    assert isinstance(write.value, AmbiguousWrite) and write.value.vendor == "Vendor" and write.value.status == 201
    assert str(write.value).startswith("Vendor: POST /agents failed: the vendor's reply is larger than")
    assert "raise max_reply_mib in" in str(write.value)
    respx.get(f"{BASE}/agents").mock(return_value=httpx.Response(200, content=b"[" + b"1," * 20 + b"1]"))
    with pytest.raises(VendorReplyRefused) as read:
        http.get("/agents")
    assert str(read.value).startswith("Vendor: GET /agents failed: the vendor's reply is larger than")
    respx.get("https://files.example.test/f").mock(return_value=httpx.Response(200, content=b"x" * 20))
    with pytest.raises(VendorReplyRefused) as download:
        http.download("https://files.example.test/f")
    assert "raise max_download_mib in" in str(download.value)
