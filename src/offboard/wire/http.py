"""VendorHttp: the one place that knows retries, backoff, Retry-After, rate limits, paging and
the limits on what a reply may be.

Connectors' clients are thin typed methods over ``VendorHttp``; none of them
retries, sleeps or pages by hand.

Write safety: a read (GET) is retried on 429, 5xx, timeouts and connection
errors. A write is retried only where it surely did not land: a 429 (the vendor
refused it before acting) or a failure to connect. A write whose request was
sent but whose reply was lost, or that got a 5xx, raises ``AmbiguousWrite``: the
caller re-reads the object before deciding anything.

Reply safety: a vendor reply is hostile input. Every body is read streamed and never past its
limit (``ReplyLimits``: a size far above any real reply), its nesting is checked before it is
parsed, and a listing's pages go through the paging guard (``paging.PageGuard``). A reply past
a limit is one line naming the vendor, the call and what was wrong (exit 1), with memory bounded.
"""

from __future__ import annotations

import contextlib
import email.utils
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import tenacity

from offboard.errors import AmbiguousWrite, VendorAuthError, VendorError, VendorRefused, VendorReplyRefused
from offboard.wire import waits
from offboard.wire.paging import PageGuard, Totals
from offboard.wire.ratelimit import SlidingWindowLimiter
from offboard.wire.redact import REDACTOR
from offboard.wire.replies import ReplyLimits, nesting_depth, read_json, too_large

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=30.0, write=30.0, pool=10.0)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
READ_METHODS = frozenset({"GET", "HEAD"})
# Errors raised before the request reached the vendor: safe to resend even a write.
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# A host name that does not resolve is a typo'd URL or a machine without DNS: waiting does not fix
# it, so it gets one more try (a resolver's passing hiccup), not the whole retry budget.
UNRESOLVED_ATTEMPTS = 2
_UNRESOLVED_WORDS = ("name or service not known", "nodename nor servname", "getaddrinfo failed",
                     "name resolution", "no address associated", "no such host")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    backoff_base: float = 1.0  # seconds; doubled each attempt, with full jitter
    backoff_max: float = 60.0
    retry_after_max: float = 120.0  # never sleep longer than this on a vendor's say-so
    rate_limited_default: float = 60.0  # a 429 without Retry-After: wait a whole window

    def scaled(self, factor: float) -> RetryPolicy:
        """The same policy on a compressed clock (the sandbox runs time faster)."""
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_base=self.backoff_base * factor,
            backoff_max=self.backoff_max * factor,
            retry_after_max=self.retry_after_max * factor,
            rate_limited_default=self.rate_limited_default * factor,
        )


@dataclass(frozen=True)
class HttpRecord:
    """What the audit log keeps of a call: never headers, never bodies."""

    method: str
    path: str
    status: int | None
    attempt: int
    duration_ms: int
    # The query string as sent (paging, filters), secrets redacted. ``path`` is relative to the
    # vendor's base URL; a file fetched from another host (a storage link) is ``https://host/path``
    # with no query, which may carry the link's signature.
    query: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "path": self.path}
        if self.query:
            out["query"] = self.query
        out.update(status=self.status, attempt=self.attempt, duration_ms=self.duration_ms)
        return out

    @property
    def line(self) -> str:
        """The request as one reads it: ``GET /v1/agents?organization_id=42&page_token=x``."""
        return request_line(self.method, self.path, self.query)


def request_line(method: str, path: str, query: str = "") -> str:
    """The one form a request is shown in everywhere (audit detail, report, manifest, ticket)."""
    return f"{method} {path}" + (f"?{query}" if query else "")


@dataclass
class Reply:
    status: int
    body: Any
    record: HttpRecord
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Received:
    """A reply as read: its status line and headers, and its body up to the limit."""

    status_code: int
    reason_phrase: str
    headers: httpx.Headers
    content: bytes
    cut: bool = False  # the body is past the limit: ``content`` holds none or only the start of it
    declared: int | None = None  # the Content-Length it declared, when that alone was past the limit

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class _RetryableStatus(Exception):
    def __init__(self, response: _Received) -> None:
        self.response = response
        super().__init__(f"HTTP {response.status_code}")


def _read_capped(response: httpx.Response, limit: int) -> _Received:
    """A streamed reply's body, read no further than ``limit`` bytes (decoded): a reply that
    declares more is not read at all; one that sends more is cut there and marked."""
    def received(content: bytes, cut: bool = False, declared: int | None = None) -> _Received:
        return _Received(response.status_code, response.reason_phrase, response.headers, content, cut, declared)

    length = response.headers.get("content-length", "").strip()
    if length.isdigit() and int(length) > limit:
        return received(b"", True, int(length))
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > limit:
            del body[limit:]
            return received(bytes(body), True)
    return received(bytes(body))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now_ts = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - now_ts)


def _vendor_message(response: _Received) -> str:
    # The error body shape is not documented by every vendor: show it raw, short.
    text = " ".join(response.text.split())[:300]
    return f"HTTP {response.status_code} {response.reason_phrase}" + (f": {text}" if text else "")


class PageStyle(Protocol):
    """How one vendor pages a list: first request, the items, the next request."""

    def first(self, params: dict[str, Any]) -> dict[str, Any]: ...

    def items(self, body: Any) -> list[dict[str, Any]]: ...

    def next(self, body: Any, params: dict[str, Any]) -> dict[str, Any] | None: ...

    def totals(self, body: Any) -> Totals | None:
        """What the listing says about its own size (items, pages), where it says it."""
        ...


@dataclass(frozen=True)
class _ReadAhead:
    """A listing's next page, asked for while its caller reads the current one."""

    future: Future[Reply]
    abandoned: threading.Event

    def abandon(self) -> None:
        self.abandoned.set()
        self.future.cancel()


class VendorHttp:
    """One vendor account's HTTP client: auth, timeouts, limiter, retries, paging."""

    def __init__(
        self,
        vendor: str,
        base_url: str,
        auth: httpx.Auth,
        limiter: SlidingWindowLimiter,
        *,
        policy: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        sleep: Callable[[float], None] | None = None,
        user_agent: str = "offboard/0.1",
        budget_file: Path | None = None,
        remaining_header: str | None = None,
        refusal: Callable[[httpx.Response], str | None] | None = None,
        limits: ReplyLimits | None = None,
    ) -> None:
        self.vendor = vendor
        self.limits = limits or ReplyLimits()
        self.limiter = limiter
        if budget_file is not None:
            limiter.share(budget_file)  # one window per vendor account, machine-wide
        self.calls = 0  # requests sent (every attempt), for the plan's estimates
        self.policy = policy or RetryPolicy()
        self._remaining_header = remaining_header  # the vendor's "calls left in the window", if it sends one
        # The vendor's documented refusal (its validation envelope, whatever the status code): the
        # vendor's message, or None. A refusal is never retried and never taken for an ambiguous write.
        self._refusal = refusal
        self._sleep = sleep or _sleep
        self.last_call: HttpRecord | None = None  # only the latest: memory must not grow with calls
        # The server's own clock (its latest reply's ``Date`` header, RFC 9110): what a claim in a PSA
        # ticket is timed by, so two machines' clocks are never compared. None: no reply carried one.
        self.server_time: datetime | None = None
        # Open recordings (see ``recording``), per thread: a file's requests, not another lane's.
        self._recorders = threading.local()
        self._reader: ThreadPoolExecutor | None = None  # where a listing's next page is read (``pages``)
        self._reader_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._client = httpx.Client(
            base_url=base_url,
            auth=auth,
            transport=transport,
            timeout=timeout,
            headers={"User-Agent": user_agent, "Accept": "application/json"},
            follow_redirects=False,
        )

    def close(self) -> None:
        if self._reader is not None:
            self._reader.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    def __enter__(self) -> VendorHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ---------------------------------------------------------------

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[HttpRecord]]:
        """Collect the requests made in this block on this thread (each call's final attempt), e.g.
        every page and download that went into one evidence file. Nested recordings each see them."""
        calls: list[HttpRecord] = []
        stack: list[list[HttpRecord]] = self._recorders.__dict__.setdefault("stack", [])
        stack.append(calls)
        try:
            yield calls
        finally:
            stack.remove(calls)

    def _shown_url(self, url: httpx.URL, path: str) -> tuple[str, str]:
        """(path, query) as a request is recorded: the path on the vendor's API (the base URL's own
        path left out), the query as sent; a URL on another origin as scheme://host:port/path, no query."""
        if not self._same_origin(path):
            port = f":{url.port}" if url.port else ""
            return REDACTOR.text(f"{url.scheme}://{url.host}{port}{url.path}"), ""
        rel = url.path
        prefix = self._client.base_url.path.rstrip("/")
        if prefix and rel.startswith(prefix + "/"):
            rel = rel[len(prefix):]
        return REDACTOR.text(rel), REDACTOR.text(url.query.decode("ascii", errors="replace"))

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        ok: frozenset[int] = frozenset({200, 201, 202, 204}),
        allow: frozenset[int] = frozenset(),
        raw: bool = False,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        data: Mapping[str, str] | None = None,
        read: bool | None = None,
    ) -> Reply:
        """Send one logical call; ``allow`` lists statuses returned to the caller
        instead of raised (e.g. 404 on a read that checks absence). ``raw`` returns the
        body as bytes. ``files`` and ``data`` send a multipart form (a file upload) instead of
        JSON. A full URL on another origin is fetched without our credentials. ``read``: a POST
        that only reads (a query sent as a body) is retried as a read, never ambiguous."""
        method = method.upper()
        is_read = method in READ_METHODS if read is None else read
        call = f"{method} {path}"
        attempt = 0
        shown: tuple[str, str] | None = None  # (path, query) as recorded: from the first request built

        def _retryable(exc: BaseException) -> bool:
            if isinstance(exc, _RetryableStatus):
                return is_read or exc.response.status_code == 429
            if _unresolved(exc):
                return attempt < UNRESOLVED_ATTEMPTS
            if isinstance(exc, NOT_SENT_ERRORS):
                return True
            return is_read and isinstance(exc, httpx.TransportError)

        def _wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, _RetryableStatus):
                hinted = parse_retry_after(exc.response.headers.get("Retry-After"))
                if hinted is not None:
                    wait = min(hinted, self.policy.retry_after_max)
                    self.limiter.block_for(wait)
                    return wait
                if exc.response.status_code == 429:
                    wait = self.policy.rate_limited_default
                    self.limiter.block_for(wait)
                    return wait
            backoff = tenacity.wait_random_exponential(
                multiplier=self.policy.backoff_base, max=self.policy.backoff_max
            )
            return float(backoff(state))

        limit = self.limits.max_download_bytes if raw else self.limits.max_bytes

        record: HttpRecord | None = None  # this call's, whatever another thread sends meanwhile

        def _once() -> _Received:
            nonlocal attempt, shown, record
            attempt += 1
            # Built before a slot of the window is taken: a request that cannot be built (a body that
            # is not JSON) is the caller's fault, raised as such, and costs the vendor account no call.
            request = self._client.build_request(method, path, params=params, json=json, files=files, data=data)
            if shown is None:  # one URL built per call, not one more to show it
                shown = self._shown_url(request.url, path)
            token = self.limiter.acquire(on_wait=self._limiter_wait)
            with self._count_lock:
                self.calls += 1
            waits.report(waits.Sent(self.vendor, self.limiter.outlook))
            started = time.monotonic()
            status: int | None = None
            response: httpx.Response | None = None
            try:
                # Another origin (e.g. a report PDF on a storage host) never gets the API key.
                if self._same_origin(path):
                    response = self._client.send(request, stream=True)
                else:
                    response = self._client.send(request, stream=True, auth=None)
                status = response.status_code
                try:
                    received = _read_capped(response, limit)
                finally:
                    response.close()
            finally:
                self.limiter.completed(token, remaining=self._remaining(response), throttled=status == 429)
                record = self.last_call = HttpRecord(method, shown[0], status, attempt,
                                                     int((time.monotonic() - started) * 1000), shown[1])
            if received.status_code in RETRY_STATUSES and not (received.status_code != 429
                                                               and self._refused(received)):
                raise _RetryableStatus(received)
            return received

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.policy.max_attempts),
            wait=_wait,
            retry=tenacity.retry_if_exception(_retryable),
            sleep=self._sleep,
            before_sleep=self._retry_wait,
            reraise=True,
        )
        try:
            response = retrying(_once)
        except _RetryableStatus as exc:
            if not is_read and exc.response.status_code != 429:
                raise AmbiguousWrite(
                    self.vendor, call, _vendor_message(exc.response), exc.response.status_code
                ) from None
            raise VendorError(
                self.vendor,
                call,
                f"{_vendor_message(exc.response)} (gave up after {attempt} attempts)",
                exc.response.status_code,
            ) from None
        except httpx.TransportError as exc:
            if _unresolved(exc):
                host = _host_of(exc) or self._client.base_url.host
                raise VendorError(
                    self.vendor, call,
                    f"the host name {host} could not be resolved ({_reason(exc)}; tried {attempt} times): check "
                    f"the {self.vendor} URL in the config (base_url) and this machine's network and DNS",
                ) from None
            detail = REDACTOR.text(f"{type(exc).__name__}: {exc}".rstrip(": "))
            if not is_read and not isinstance(exc, NOT_SENT_ERRORS):
                raise AmbiguousWrite(self.vendor, call, f"reply lost ({detail})") from None
            raise VendorError(
                self.vendor, call, f"{detail} (gave up after {attempt} attempts)"
            ) from None

        assert record is not None
        self.server_time = _server_date(response.headers.get("date")) or self.server_time
        for calls in self._recorders.__dict__.get("stack", ()):
            calls.append(record)
        if response.status_code in ok or response.status_code in allow:
            if response.cut:
                words = too_large(self.limits, limit, response.declared,
                                  "max_download_mib" if raw else "max_reply_mib")
                if not is_read:  # the write was answered: it may well have landed, so it is re-read
                    raise AmbiguousWrite(self.vendor, call, words, response.status_code)
                raise VendorReplyRefused(self.vendor, call, words)
            body = response.content if raw else self._json_or_none(response, call)
            return Reply(response.status_code, body, record, dict(response.headers))
        if response.status_code in (401, 403):
            raise VendorAuthError(self.vendor, call, _vendor_message(response), response.status_code)
        refused = self._refused(response)
        if refused is not None:
            raise VendorRefused(self.vendor, call, f"HTTP {response.status_code}, refused: {refused}",
                                response.status_code)
        raise VendorError(self.vendor, call, _vendor_message(response), response.status_code)

    def _refused(self, response: _Received) -> str | None:
        if self._refusal is None or response.status_code < 400 or response.status_code in (401, 403, 429):
            return None
        if response.cut or nesting_depth(response.content, self.limits.max_depth) > self.limits.max_depth:
            return None  # past the limits: no envelope the vendor documents, whatever it holds
        # The reader is the connector's and reads an httpx reply: the body as read (decoded), its type.
        readable = httpx.Response(response.status_code, content=response.content,
                                  headers={"content-type": response.headers.get("content-type", "")})
        try:
            found = self._refusal(readable)
        except ValueError:  # not the envelope (e.g. not JSON): not a documented refusal
            return None
        return None if found is None else REDACTOR.text(" ".join(found.split())[:300])

    # -- waits, told to whoever shows progress (see wire.waits) -------------------------

    def _limiter_wait(self, seconds: float, vendor_said: bool) -> None:
        why = "for the rate limit" + (" (the vendor asked to wait)" if vendor_said else "")
        waits.report(waits.Wait(self.vendor, seconds, "rate_limit", why, self.limiter.outlook))

    def _retry_wait(self, state: tenacity.RetryCallState) -> None:
        seconds = state.next_action.sleep if state.next_action is not None else 0.0
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _RetryableStatus) and exc.response.status_code == 429:
            wait = waits.Wait(self.vendor, seconds, "rate_limit", "for the rate limit (the vendor answered 429)")
        elif isinstance(exc, _RetryableStatus):
            wait = waits.Wait(self.vendor, seconds, "retry", f"before retrying (HTTP {exc.response.status_code})")
        elif isinstance(exc, httpx.TimeoutException):
            wait = waits.Wait(self.vendor, seconds, "retry", "before retrying (no reply in time)")
        else:
            wait = waits.Wait(self.vendor, seconds, "retry", "before retrying (the connection failed)")
        waits.report(wait)

    def _remaining(self, response: httpx.Response | None) -> int | None:
        """The vendor's count of calls left in its window, when it sends one."""
        if self._remaining_header is None or response is None:
            return None
        value = response.headers.get(self._remaining_header, "").strip()
        return int(value) if value.isdigit() else None

    def same_origin(self, path: str) -> bool:
        """Whether a URL a vendor handed back (a next page) is on the API's own origin."""
        return self._same_origin(path)

    def _same_origin(self, path: str) -> bool:
        if "://" not in path:
            return True
        base = self._client.base_url
        url = httpx.URL(path)
        return (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)

    def download(self, url: str) -> Reply:
        """Fetch a file (bytes), with the same retries and limits as any read."""
        return self.request("GET", url, raw=True)

    def get(self, path: str, *, params: Mapping[str, Any] | None = None,
            allow: frozenset[int] = frozenset()) -> Reply:
        return self.request("GET", path, params=params, allow=allow)

    def _json_or_none(self, response: _Received, call: str) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        return read_json(response.content, self.vendor, call, self.limits,
                         response.headers.get("content-type", "?"))

    # -- paging -----------------------------------------------------------------

    def page_guard(self, call: str) -> PageGuard:
        """The paging guard for one listing of this vendor (a connector that pages by hand, e.g. by
        following next links, asks for one and tells it each request and page)."""
        return PageGuard(self.vendor, call, self.limits.max_pages, self.limits.where)

    def pages(self, path: str, style: PageStyle, params: Mapping[str, Any] | None = None
              ) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
        """Every page of a list (its body and its items), each believed only while the paging makes
        sense (``paging.PageGuard``). The next page is asked for as soon as this one names it, while
        the caller reads this one: at the vendor's ceiling, a lane that parsed a page before asking
        for the next lost a slot of the window per page. So at most two pages are in memory."""
        guard = self.page_guard(f"GET {path}")
        current = style.first(dict(params or {}))
        guard.request(current)
        ahead: _ReadAhead | None = None
        reply = self.get(path, params=current)
        try:
            while True:
                body = reply.body
                items = style.items(body)
                guard.received(items, style.totals(body))
                following = style.next(body, current)
                if following is None:
                    yield body, items
                    return
                guard.request(following)
                ahead = self._read_ahead(path, following)
                yield body, items
                reply, ahead, current = ahead.future.result(), None, following
        finally:
            if ahead is not None:  # nobody will read it (the caller stopped, or was stopped)
                ahead.abandon()

    def _read_ahead(self, path: str, params: Mapping[str, Any]) -> _ReadAhead:
        """GET ``path`` in this client's reader thread, its record in the caller's recordings."""
        recordings = list(self._recorders.__dict__.get("stack", ()))
        abandoned = threading.Event()
        caller = waits.origin()

        def read() -> Reply:
            self._recorders.stack = recordings
            try:
                # a wait (the limiter's, a retry's) ends unsent once abandoned; its waits are its caller's
                with waits.working_for(caller), waits.stopped_by(abandoned):
                    return self.get(path, params=params)
            finally:
                del self._recorders.stack
        with self._reader_lock:
            if self._reader is None:
                self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.vendor}-pages")
            return _ReadAhead(self._reader.submit(read), abandoned)

    def paginate(self, path: str, style: PageStyle, params: Mapping[str, Any] | None = None
                 ) -> Iterator[dict[str, Any]]:
        """Stream every item of a list, one page in memory at a time."""
        for _, items in self.pages(path, style, params):
            yield from items


def _sleep(seconds: float) -> None:
    waits.sleep(seconds)  # time.sleep looked up at call time, so tests can replace it; Ctrl-C wakes it


def _unresolved(exc: BaseException) -> bool:
    """A connection that failed because the host name has no address (DNS), not because the host
    refused or timed out. The resolver's own error is in the exception's chain; its words are the
    fallback when a transport re-raises without the chain."""
    if not isinstance(exc, httpx.ConnectError):
        return False
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, socket.gaierror):
            return True
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    text = str(exc).lower()
    return any(words in text for words in _UNRESOLVED_WORDS)


def _reason(exc: BaseException) -> str:
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, socket.gaierror) and link.strerror:
            return link.strerror
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return REDACTOR.text(str(exc)) or "no address"


def _host_of(exc: httpx.TransportError) -> str | None:
    try:
        return exc.request.url.host or None
    except RuntimeError:  # raised without its request (e.g. by a test transport)
        return None


def _server_date(value: str | None) -> datetime | None:
    """A reply's ``Date`` header as an aware UTC time; None when absent or not a date."""
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.astimezone(UTC) if when.tzinfo is not None else None
