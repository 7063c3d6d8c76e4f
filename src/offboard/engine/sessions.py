"""The exit's vendor sessions: each connector opened once with its credentials, closed together.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from offboard import connectors as registry
from offboard.config import ExitConfig
from offboard.connectors import Connector, ExitContext, VendorSession
from offboard.wire import credentials


@dataclass
class Sessions:
    """The exit's vendors, each opened once and closed together."""

    by_vendor: dict[str, VendorSession]
    connectors: dict[str, Connector]


@contextmanager
def open_sessions(
    cfg: ExitConfig,
    available: Mapping[str, Connector] | None = None,
    *,
    transports: Mapping[str, Any] | None = None,
    creds: Mapping[str, Mapping[str, Any]] | None = None,
) -> Iterator[Sessions]:
    """``transports``/``creds`` let tests and the demo bypass the network and the keyring."""
    available = registry.installed() if available is None else available
    opened: dict[str, VendorSession] = {}
    conns: dict[str, Connector] = {}
    c = cfg.customer
    context = ExitContext(c.name, c.end_of_service, c.ticket, c.approved_by)
    try:
        for name, settings in cfg.vendors.items():
            conn = registry.get(name, available)
            secret = (creds or {}).get(name)
            if secret is None:
                secret = credentials.load(name, conn.display_name, conn.credential_fields)
            opened[name] = conn.open(settings, secret, transport=(transports or {}).get(name), context=context)
            conns[name] = conn
        yield Sessions(opened, conns)
    finally:
        for s in opened.values():
            s.close()
