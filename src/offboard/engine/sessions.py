"""The exit's vendor sessions: each connector opened once with its credentials, closed together.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from offboard import connectors as registry
from offboard.config import ExitConfig
from offboard.connectors import Connector, ExitContext, VendorSession
from offboard.connectors import psa as psa_registry
from offboard.engine.ticket import Ticket, TicketAware, open_ticket
from offboard.errors import BadInput
from offboard.wire import credentials


@dataclass
class Sessions:
    """The exit's vendors, each opened once and closed together; and the exit's PSA ticket, when
    the config names one."""

    by_vendor: dict[str, VendorSession]
    connectors: dict[str, Connector]
    ticket: Ticket | None = None
    config: Path | None = None  # the exit's config file, so every printed command carries it
    # The exit as its vendors name it (``VendorSession.exit_identity``), once the exit lock asked them:
    # the machine lock's keys, and the key of the exit's claim in its PSA ticket.
    identities: tuple[str, ...] = ()
    # The run's claim of the exit in its PSA ticket while it holds one (engine/claim.py): checked before
    # each vendor write.
    claim: WriteGate | None = None


class WriteGate(Protocol):
    def check(self) -> None:
        """Raise when this run may send no more vendor writes."""
        ...


# What a session must answer before offboard sends it a write: the object's owner read alone,
# and the exit as the vendor names it (the machine-wide lock's key).
SAFETY_METHODS = ("owner_now", "exit_identity")


@contextmanager
def open_sessions(
    cfg: ExitConfig,
    available: Mapping[str, Connector] | None = None,
    *,
    transports: Mapping[str, Any] | None = None,
    creds: Mapping[str, Mapping[str, Any]] | None = None,
    psa_available: Mapping[str, psa_registry.PsaConnector] | None = None,
) -> Iterator[Sessions]:
    """``transports``/``creds`` let tests and the demo bypass the network and the keyring (the
    PSA's under the key ``psa``)."""
    available = registry.installed() if available is None else available
    opened: dict[str, VendorSession] = {}
    conns: dict[str, Connector] = {}
    c = cfg.customer
    context = ExitContext(c.name, c.end_of_service, c.ticket, c.approved_by)
    ticket: Ticket | None = None
    try:
        if cfg.psa is not None:
            kind = psa_registry.get(str(getattr(cfg.psa, "kind", "")), psa_available)
            secret = (creds or {}).get(psa_registry.SECTION)
            if secret is None:
                secret = credentials.load(psa_registry.SECTION, kind.display_name, kind.credential_fields)
            assert isinstance(cfg.psa, psa_registry.PsaSettings)
            transport = (transports or {}).get(psa_registry.SECTION)
            ticket = open_ticket(cfg, kind.open(cfg.psa, secret, transport=transport))
        for name, settings in cfg.vendors.items():
            conn = registry.get(name, available)
            secret = (creds or {}).get(name)
            if secret is None:
                secret = credentials.load(name, conn.display_name, conn.credential_fields)
            session = conn.open(settings, secret, transport=(transports or {}).get(name), context=context)
            missing = [m for m in SAFETY_METHODS if not callable(getattr(session, m, None))]
            if missing:  # a connector written for an older seam: no write may rest on what it cannot say
                session.close()
                raise BadInput(f"the {conn.display_name} connector does not provide {', '.join(missing)}, which "
                               "this offboard needs before any write (the scope guard and the exit lock): "
                               f"upgrade the connector package that provides '{name}'")
            opened[name] = session if ticket is None else TicketAware(session, ticket)
            conns[name] = conn
        yield Sessions(opened, conns, ticket, cfg.path)
    finally:
        for s in opened.values():
            s.close()
        if ticket is not None:
            ticket.close()
