"""The fault matrix's hostile replies (issue 20, findings 4-6): at offboard's own httpx seam, the
Huntress API answers one kind of nonsense to the exit's first apply — a listing whose page token
cycles 7 -> 14 -> 7, an organization reply of 64 MiB with no length declared, an organization
reply nested 200,000 deep. Each must stop that apply with one "the vendor's reply ..." error
(VendorReplyRefused, exit 1) having read no more than its limit, before any write; the vendor then
answers sense again and the exit is applied and finished as any other, counted as every row is."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import httpx

from offboard.errors import VendorReplyRefused

from .matrix_world import HA, Row, World, exit_in_process, measure, route_writes, world

KINDS = ("looping pages", "oversized reply", "deep reply")
CHUNK = 64 * 1024
OVERSIZED = 64 * 1024 * 1024  # four times the default limit


class HostileHuntress(httpx.BaseTransport):
    """The real sandbox behind it, except the replies of one kind of nonsense."""

    def __init__(self, kind: str) -> None:
        self.inner = httpx.HTTPTransport()
        self.kind = kind
        self.served = 0  # nonsense replies sent
        self.streamed = 0  # bytes of the oversized reply offboard asked for

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if self.kind == "looping pages" and path == f"{HA}/agents":
            self.served += 1
            after = {None: "7", "7": "14", "14": "7"}[request.url.params.get("page_token")]
            return httpx.Response(200, json={"agents": [], "pagination": {"next_page_token": after}})
        if path.startswith(f"{HA}/organizations/") and request.method == "GET" and self.kind != "looping pages":
            self.served += 1
            if self.kind == "deep reply":
                return httpx.Response(200, content=b"[" * 200_000 + b"]" * 200_000,
                                      headers={"content-type": "application/json"})
            return httpx.Response(200, content=self._endless(), headers={"content-type": "application/json"})
        return self.inner.handle_request(request)

    def _endless(self) -> Iterator[bytes]:
        for _ in range(OVERSIZED // CHUNK):
            self.streamed += CHUNK
            yield b" " * CHUNK

    def close(self) -> None:
        self.inner.close()


def hostile_replies(path: Path, agents: int, rng: random.Random, row: Row) -> None:
    for kind in KINDS:
        with world(path / kind.replace(" ", "-"), agents) as w:
            _one(w, kind, row)


def _one(w: World, kind: str, row: Row) -> None:
    plan = w.plan()
    hostile = HostileHuntress(kind)
    refused: list[BaseException] = []
    opened = [0]
    writes = [_writes(w)]  # before the hostile apply, then once it is over

    def transports() -> dict[str, httpx.BaseTransport] | None:
        opened[0] += 1
        if opened[0] == 2:  # the hostile apply is over: the vendor answers sense again
            writes.append(_writes(w))
        return {"huntress": hostile} if opened[0] == 1 else None

    try:
        code = exit_in_process(w, plan, row, transports, on_error=refused.append)
    finally:
        hostile.close()
    row.faults += hostile.served
    if not hostile.served:
        row.notes.append(f"{kind}: no nonsense was served")
    if not any(isinstance(e, VendorReplyRefused) and "the vendor's reply" in str(e) for e in refused):
        row.notes.append(f"{kind}: the first apply did not stop on 'the vendor's reply …' ({refused})")
    elif len(writes) < 2 or writes[1] != writes[0]:
        row.notes.append(f"{kind}: writes went out during the hostile apply")
    if kind == "looping pages" and hostile.served > 3:
        row.notes.append(f"looping pages: {hostile.served} pages read (at most 3)")
    if kind == "oversized reply" and hostile.streamed > 17 * 1024 * 1024:
        row.notes.append(f"oversized reply: {hostile.streamed:,} bytes read past the 16 MiB limit")
    if code not in (0, 3):
        row.notes.append(f"{kind}: ended with exit {code}")
    measure(w, plan, row)


def _writes(w: World) -> int:
    return len(route_writes(w.h)) + len(route_writes(w.b))
