"""Running a connector's sandbox: over real HTTP on 127.0.0.1, or in-process; and the
machinery every vendor's test double shares (faults, request log, rate window, gate).

Vendor-neutral: it serves whatever ASGI app a connector's ``SandboxKit`` makes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio.from_thread
import httpx
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from offboard.plan import Action


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ConnectionDropped(Exception):
    """Raised by the gate to cut a connection after the reply's head was sent (``Fault.drop``)."""


class _QuietDrops(logging.Filter):
    """uvicorn logs every exception of an app; a drop the test asked for is not one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionDropped))


@contextlib.contextmanager
def serve(app: Any, *, startup_timeout: float = 10.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    quiet = _QuietDrops()
    logging.getLogger("uvicorn.error").addFilter(quiet)  # after Config, which sets uvicorn's loggers up
    thread = threading.Thread(target=server.run, name=f"sandbox:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the sandbox did not start on 127.0.0.1:{port}")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        logging.getLogger("uvicorn.error").removeFilter(quiet)


def _serve_forever(factory: Callable[..., SandboxBase], kwargs: dict[str, Any], port: int) -> None:
    sandbox = factory(**kwargs)
    uvicorn.run(sandbox.app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")


@contextlib.contextmanager
def serve_process(factory: Callable[..., SandboxBase], startup_timeout: float = 20.0,
                  **kwargs: Any) -> Iterator[str]:
    """Serve a sandbox from its own process, so its work does not compete with the client's
    for one interpreter (the benchmark measures offboard, not the test double)."""
    import multiprocessing

    port = free_port()
    proc = multiprocessing.get_context("spawn").Process(target=_serve_forever, args=(factory, kwargs, port),
                                                        daemon=True)
    proc.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + startup_timeout
    try:
        while True:
            try:
                httpx.get(f"{url}{SandboxBase.CONTROL}log", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if not proc.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"the sandbox did not start on {url}") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.join(timeout=5)


class InProcessTransport(httpx.BaseTransport):
    """A sync httpx transport that hands each request to an ASGI app in this process."""

    def __init__(self, app: Any) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._portal_cm = anyio.from_thread.start_blocking_portal()
        self._portal = self._portal_cm.__enter__()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def call() -> httpx.Response:
            inner = httpx.Request(request.method, request.url, headers=request.headers, content=body)
            response = await self._inner.handle_async_request(inner)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content,
                                  request=request)

        try:
            return self._portal.call(call)
        except ConnectionDropped:  # what a client sees over a socket the server cut mid-reply
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body",
                                            request=request) from None

    def close(self) -> None:
        self._portal_cm.__exit__(None, None, None)


def portal(base_url: str, action: Action) -> bool:
    """Stand in for the person at the vendor's portal: ask a sandbox to do a manual item
    (or an API action that fell back to a person). Demo and tests only; never a vendor endpoint."""
    params = {"target": action.target.id} if action.kind == "api" else {}
    reply = httpx.post(f"{base_url}{SandboxBase.CONTROL}portal/{action.operation}", params=params, timeout=10)
    return bool(reply.status_code == 200 and reply.json().get("done"))


# -- what every vendor's test double shares: faults, a request log, a sliding-window
# limit, and the ASGI gate that applies them in front of the vendor's routes. ----------


@dataclass
class Fault:
    """Answer matching requests with ``status`` (or delay them) ``times`` times.

    By default the gate answers before the vendor's route sees the request (nothing is done).
    With ``acted`` the request first passes auth and the rate limit and the route carries it
    out (the write lands); then ``status`` replaces the route's reply, or with ``drop`` the
    connection is cut after the reply's head: the vendor acted, the client cannot know it.
    ``hold`` keeps the request waiting (before the route, or after it with ``acted``) until the
    event is set, so a test can kill the client while its write is in flight."""

    method: str = "*"
    path_prefix: str = "/"
    status: int | None = 500  # None: the route's own reply (after any delay or hold)
    times: int = 1
    retry_after: str | None = None
    delay: float = 0.0  # seconds before answering (slow replies)
    after: int = 0  # let this many matching requests through first
    acted: bool = False  # the route acts first; status (or drop) replaces its reply
    drop: bool = False  # with acted: cut the connection instead of replying
    hold: threading.Event | None = None  # wait until set before answering
    reached: threading.Event = field(default_factory=threading.Event, repr=False)  # set when a request takes it

    async def wait(self) -> None:
        self.reached.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        while self.hold is not None and not self.hold.is_set():
            await asyncio.sleep(0.005)


@dataclass
class Logged:
    method: str
    path: str
    query: str
    status: int
    body: str = ""
    authorized: bool = False  # whether an Authorization header came with it
    gated: bool = False  # answered by the gate (a fault, refused auth, the rate limit): no route saw it
    at: float = field(default_factory=time.monotonic)  # when it was answered
    acted: int | None = None  # the route's own status, when a fault replaced its reply (``Fault.acted``)
    arrived: float = 0.0  # when the rate window counted it (0: it was not counted)


class SandboxBase:
    """State every test double keeps: its request log, injected faults and rate window.

    A subclass sets ``rate_limit``, ``base_window`` (seconds, before time scaling),
    ``time_scale`` and ``send_retry_after``, and implements ``authorize`` and ``error``."""

    rate_limit: int
    base_window: float
    time_scale: float
    send_retry_after: bool
    requests: list[Logged]
    faults: list[Fault]
    app: Any  # the gated ASGI app
    CONTROL = "/_sandbox/"  # not the vendor's: the demo's and tests' handles on the double

    rate_headers: tuple[str, str] | None = None  # (limit, remaining) header names, if the vendor sends them

    def _init_gate(self) -> None:
        self._lock = threading.Lock()
        self._arrivals: deque[float] = deque()
        self._sharing: threading.Event | None = None

    def share_budget(self, fraction: float) -> None:
        """Simulate another tool on the same account using ``fraction`` of the rate limit."""
        self.stop_sharing()
        stop = self._sharing = threading.Event()
        interval = self.window() / max(1.0, self.rate_limit * fraction)

        def consume() -> None:
            while not stop.wait(interval):
                self.admit()

        threading.Thread(target=consume, name="sandbox-other-client", daemon=True).start()

    def stop_sharing(self) -> None:
        if self._sharing is not None:
            self._sharing.set()
            self._sharing = None

    def remaining(self) -> int:
        with self._lock:
            return max(0, self.rate_limit - len(self._arrivals))

    def authorize(self, request: Request) -> str | None:
        """The credential a request carries, if the vendor would accept it."""
        raise NotImplementedError

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        raise NotImplementedError

    def unauthenticated(self, path: str) -> bool:
        """Paths served without a credential or the rate limit (e.g. a token endpoint)."""
        return path.startswith(self.CONTROL)

    def window(self) -> float:
        return self.base_window * self.time_scale

    def admit(self, now: float | None = None) -> float | None:
        """Sliding window per credential holder; returns seconds to wait if over the limit."""
        with self._lock:
            now = time.monotonic() if now is None else now
            while self._arrivals and now - self._arrivals[0] >= self.window():
                self._arrivals.popleft()
            if len(self._arrivals) >= self.rate_limit:
                return self.window() - (now - self._arrivals[0])
            self._arrivals.append(now)
            return None

    def take_fault(self, method: str, path: str, *, acted: bool = False) -> Fault | None:
        """The next fault for this request: those that answer before the route (``acted``
        False), or, once auth and the rate limit let it through, those that follow the route."""
        if path.startswith(self.CONTROL):
            return None
        with self._lock:
            for f in self.faults:
                if (f.times > 0 and f.acted == acted and f.method in ("*", method)
                        and path.startswith(f.path_prefix)):
                    if f.after > 0:
                        f.after -= 1
                        continue
                    f.times -= 1
                    return f
        return None

    def deletes(self) -> list[str]:
        return [r.path for r in self.requests if r.method == "DELETE" and r.status < 400]

    def writes(self) -> list[Logged]:
        return [r for r in self.requests if r.method not in ("GET", "HEAD") and not r.path.startswith(self.CONTROL)]

    def gated(self, app: Any) -> Any:
        return Gate(app, self)

    def control_routes(self) -> list[Route]:
        """For a sandbox served in another process (the benchmark): read its request log, and
        start or stop the simulated other client on the same account."""

        async def log(_request: Request) -> Response:
            return JSONResponse([{"method": r.method, "path": r.path, "status": r.status, "gated": r.gated,
                                  "acted": r.acted, "at": r.at, "arrived": r.arrived} for r in self.requests])

        async def share(request: Request) -> Response:
            fraction = float(request.query_params.get("fraction", "0"))
            if fraction > 0:
                self.share_budget(fraction)
            else:
                self.stop_sharing()
            return JSONResponse({"sharing": fraction})

        return [Route(self.CONTROL + "log", log), Route(self.CONTROL + "share", share, methods=["POST"])]


class Gate:
    """ASGI middleware: faults, then auth, then the rate limit, then the route (and the faults
    that follow it); every request logged."""

    def __init__(self, app: Any, sandbox: SandboxBase) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:  # read the body once, keep it for the log, hand it on
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)

        async def replay() -> Any:
            return {"type": "http.request", "body": body, "more_body": False}

        sb = self.sandbox
        arrived = 0.0
        request = Request(scope, replay)
        method, path = request.method, request.url.path
        status_box: dict[str, int] = {}

        async def logging_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status_box["status"] = message["status"]
                if sb.rate_headers is not None and not path.startswith(sb.CONTROL):
                    limit, left = sb.rate_headers
                    message = {**message, "headers": [*message.get("headers", []),
                                                      (limit.encode(), str(sb.rate_limit).encode()),
                                                      (left.encode(), str(sb.remaining()).encode())]}
            await send(message)

        def log(gated: bool, acted: int | None = None, cut: bool = False) -> None:
            status = 0 if cut else status_box.get("status", 0)  # a cut reply: the client got no status
            sb.requests.append(Logged(method, path, request.url.query, status,
                                      body.decode(errors="replace"), "authorization" in request.headers,
                                      gated=gated, acted=acted, arrived=arrived))

        response: Response | None = None
        fault = sb.take_fault(method, path)
        if fault is not None:
            await fault.wait()
            if fault.status is not None:
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
                response = sb.error(fault.status, "injected fault", headers)
        if response is None and not sb.unauthenticated(path):
            key = sb.authorize(request)
            if key is None:
                response = sb.error(401, "Invalid or missing credentials")
            else:
                arrived = time.monotonic()
                wait = sb.admit(arrived)
                if wait is not None:
                    retry = {"Retry-After": f"{wait:.3f}"} if sb.send_retry_after else None
                    response = sb.error(429, "Rate limit exceeded", retry)
                else:
                    scope.setdefault("state", {})["key"] = key
        if response is not None:
            await response(scope, replay, logging_send)
            log(gated=True)
            return
        after = sb.take_fault(method, path, acted=True)
        if after is None:
            await self.app(scope, replay, logging_send)
            log(gated=False)
            return
        await self._acted(after, scope, replay, logging_send, log)

    async def _acted(self, fault: Fault, scope: Any, replay: Any, send: Any, log: Callable[..., None]) -> None:
        """The route carries the request out; its reply is then replaced, cut, or held back."""
        reply: list[Any] = []

        async def keep(message: Any) -> None:
            reply.append(message)

        await self.app(scope, replay, keep)
        acted = next((int(m["status"]) for m in reply if m["type"] == "http.response.start"), 0)
        await fault.wait()
        if fault.drop:  # logged with status 0: no whole reply reached the client
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")]})
            log(gated=False, acted=acted, cut=True)
            raise ConnectionDropped("injected fault: the connection drops after the vendor acted")
        if fault.status is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            await self.sandbox.error(fault.status, "injected fault after the request was carried out",
                                     headers)(scope, replay, send)
        else:
            for message in reply:
                await send(message)
        log(gated=False, acted=acted)
