"""An exit with a PSA ticket: the Huntress sandbox for the vendor, one PSA's sandbox for the ticket,
both in-process; the same tests run against each PSA."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from offboard import engine
from offboard.config import ExitConfig
from offboard.connectors.sandboxing import InProcessTransport, SandboxBase
from offboard.errors import BadInput
from offboard_autotask import sandbox as at
from offboard_connectwise import sandbox as cw
from offboard_halopsa import sandbox as halo
from offboard_huntress.sandbox import HuntressSandbox
from tests.conftest import DEMO_CREDS, FAST, load, write_config


@dataclass(frozen=True)
class Psa:
    """One PSA as the tests drive it: its sandbox, its [psa] section, its credentials, and how to
    read the exit ticket's notes and files out of the sandbox."""

    kind: str
    make: Callable[[], SandboxBase]
    section: Callable[[str], str]
    creds: dict[str, str]
    notes: Callable[[Any], list[str]]  # the exit ticket's note bodies, as stored
    files: Callable[[Any], list[tuple[str, bytes]]]
    note_writes: str  # the path (prefix) notes are POSTed to
    file_writes: str  # … and files
    ticket_closed: Callable[[Any], None]
    paste: Callable[[Any, str], None]  # a person pastes a text into the exit ticket
    refuse_file: Callable[[Any, str], None]  # the PSA refuses files whose name ends so
    tokens: Callable[[Any], list[str]]  # every token the sandbox issued
    is_auth: Callable[[str], bool]  # a request path that carries credentials by design
    exit_ticket: str


HALO = Psa(
    kind="halopsa",
    make=lambda: halo.HaloSandbox(time_scale=FAST),
    section=lambda url: (f'[psa]\nkind = "halopsa"\nticket_id = "{halo.EXIT_TICKET}"\nbase_url = "{url}/api"\n'
                         f'auth_url = "{url}/auth"\nrate_window_seconds = {300 * FAST}\n'),
    creds={"client_id": halo.DEMO_CLIENT_ID, "client_secret": halo.DEMO_SECRET},
    notes=lambda sb: [str(a.get("note_html") or a.get("note")) for a in sb.ticket_actions()],
    files=lambda sb: [(a["filename"], sb.files[a["id"]]) for a in sb.ticket_attachments()],
    note_writes="/api/Actions",
    file_writes="/api/Attachment",
    ticket_closed=lambda sb: sb.close_ticket(),
    paste=lambda sb, text: sb.actions.append({"id": 99999, "ticket_id": halo.EXIT_TICKET, "outcome_id": 7,
                                              "note": text, "note_html": f"<p>{text}</p>", "hiddenfromuser": True}),
    refuse_file=lambda sb, suffix: setattr(sb, "refuse_types", (*sb.refuse_types, suffix)),
    tokens=lambda sb: list(sb.tokens),
    is_auth=lambda path: path == "/auth/token",
    exit_ticket=str(halo.EXIT_TICKET),
)
CW = Psa(
    kind="connectwise",
    make=lambda: cw.ConnectWiseSandbox(time_scale=FAST),
    section=lambda url: (f'[psa]\nkind = "connectwise"\nticket_id = "{cw.EXIT_TICKET}"\n'
                         f'base_url = "{url}{cw.PREFIX}"\ncompany_id = "{cw.COMPANY}"\n'
                         f'rate_window_seconds = {60 * FAST}\n'),
    creds={"public_key": cw.DEMO_PUBLIC, "private_key": cw.DEMO_PRIVATE, "client_id": cw.DEMO_CLIENT_ID},
    notes=lambda sb: [str(n["text"]) for n in sb.ticket_notes()],
    files=lambda sb: [(d["fileName"], sb.files[d["id"]]) for d in sb.ticket_documents()],
    note_writes=f"{cw.PREFIX}/service/tickets/{cw.EXIT_TICKET}/notes",
    file_writes=f"{cw.PREFIX}/system/documents",
    ticket_closed=lambda sb: sb.close_ticket(),
    paste=lambda sb, text: sb.notes.append({"id": 79999, "ticketId": cw.EXIT_TICKET, "text": text,
                                            "internalAnalysisFlag": True}),
    refuse_file=lambda sb, suffix: setattr(sb, "refuse_types", (*sb.refuse_types, suffix)),
    tokens=lambda sb: [],
    is_auth=lambda path: False,
    exit_ticket=str(cw.EXIT_TICKET),
)
AT = Psa(
    kind="autotask",
    make=lambda: at.AutotaskSandbox(time_scale=FAST),
    section=lambda url: (f'[psa]\nkind = "autotask"\nticket_id = "{at.EXIT_TICKET}"\n'
                         f'base_url = "{url}{at.PREFIX}"\nrate_window_seconds = {3600 * FAST}\n'),
    creds={"username": at.DEMO_USER, "secret": at.DEMO_SECRET, "integration_code": at.DEMO_CODE},
    notes=lambda sb: [str(n["description"]) for n in sb.ticket_notes()],
    files=lambda sb: [(a["fullPath"], sb.files[a["id"]]) for a in sb.ticket_attachments()],
    note_writes=f"{at.PREFIX}/V1.0/Tickets/{at.EXIT_TICKET}/Notes",
    file_writes=f"{at.PREFIX}/V1.0/Tickets/{at.EXIT_TICKET}/Attachments",
    ticket_closed=lambda sb: sb.close_ticket(),
    paste=lambda sb, text: sb.notes.append({"id": 39999, "ticketID": at.EXIT_TICKET, "title": "pasted",
                                            "description": text, "noteType": 1, "publish": 2}),
    refuse_file=lambda sb, suffix: setattr(sb, "refuse_types", (*sb.refuse_types, suffix)),
    tokens=lambda sb: [],
    is_auth=lambda path: False,
    exit_ticket=str(at.EXIT_TICKET),
)
PSAS = [HALO, CW, AT]
CLAIM = "offboard-claim"  # the tag of apply's claim of the exit (engine/claim.py)


def is_claim(request: Any) -> bool:
    """A request that writes apply's claim of the exit (posted, renewed or released)."""
    return CLAIM in request.body


class LoseReplies(httpx.BaseTransport):
    """The PSA handles the request, and its reply is lost on the way back (a read timeout) for
    the first ``times`` requests matching ``method`` and ``path``."""

    def __init__(self, inner: httpx.BaseTransport, method: str, path: str, times: int = 1) -> None:
        self.inner = inner
        self.method = method
        self.path = path
        self.times = times

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if self.times > 0 and request.method == self.method and request.url.path.startswith(self.path):
            self.times -= 1
            raise httpx.ReadTimeout("the reply was lost", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


@dataclass
class PsaExit:
    psa: Psa
    dir: Path
    huntress: HuntressSandbox = field(default_factory=lambda: HuntressSandbox(time_scale=FAST, customer_agents=4,
                                                                              neighbour_agents=2))
    extra: str = ""  # more of the [psa] section
    huntress_extra: str = 'products = ["edr"]\n'  # a short runbook: few manual items to confirm
    sandbox: Any = None

    def __post_init__(self) -> None:
        if self.sandbox is None:
            self.sandbox = self.psa.make()

    @property
    def cfg(self) -> ExitConfig:
        path = write_config(self.dir, extra=self.huntress_extra)
        path.write_text(path.read_text() + "\n" + self.psa.section("http://127.0.0.1:9") + self.extra)
        return load(path)

    @contextlib.contextmanager
    def sessions(self, psa_transport: httpx.BaseTransport | None = None,
                 cfg: ExitConfig | None = None) -> Iterator[engine.Sessions]:
        creds = {**DEMO_CREDS, "psa": {k: SecretStr(v) for k, v in self.psa.creds.items()}}
        transports = {"huntress": InProcessTransport(self.huntress.app),
                      "psa": psa_transport or InProcessTransport(self.sandbox.app)}
        with engine.open_sessions(cfg or self.cfg, transports=transports, creds=creds) as s:
            yield s

    def notes(self) -> list[str]:
        """The exit ticket's notes, apply's claim notes left out (tests/e2e/test_claim.py is theirs)."""
        return [n for n in self.psa.notes(self.sandbox) if CLAIM not in n]

    def claim_notes(self) -> list[str]:
        return [n for n in self.psa.notes(self.sandbox) if CLAIM in n]

    def note_posts(self) -> list[Any]:
        return [r for r in self.sandbox.requests if r.method == "POST" and r.path.startswith(self.psa.note_writes)
                and not r.gated and not is_claim(r)]


def confirm_all(x: PsaExit, cfg: ExitConfig, s: engine.Sessions, result: engine.RunResult,
                by: str = "J. Doe") -> engine.ConfirmResult | None:
    """The technician does every pending item (in the sandbox where it has a portal) and confirms it."""
    last = None
    portal = httpx.Client(transport=InProcessTransport(x.huntress.app), base_url="http://sandbox")
    with portal:
        for action in result.pending:
            portal.post(f"/_sandbox/portal/{action.operation}")
            last = engine.confirm(result.run.run_id, action.id, by, "done, see the portal", cfg, s)
    return last


def later_occasion(run_id: str, cfg: ExitConfig, s: engine.Sessions, **kwargs: Any) -> engine.RunResult | None:
    """`apply --resume` of a run, as a later posting occasion. A closed run is resumed only for what its
    ticket is still owed; with nothing owed it is refused, naming the run as closed (issue 22: a closed run's
    log is its proof), and None is returned: the ticket heard nothing."""
    try:
        return engine.resume(run_id, cfg, s, **kwargs)
    except BadInput as exc:
        assert f"run {run_id} is closed" in str(exc), exc
        return None
