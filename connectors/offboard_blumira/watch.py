"""After the exit: what would show Blumira's service came back (`offboard watch`).

Five reads, more only when a list runs over a page: the sub-account (its name, for the webhooks
that mention it), its agent devices and agent keys (a device enrolled again with a key nobody
removed), its users (beyond those kept), and the MSP's webhook endpoints (the customer's own
endpoint configured again). Blumira's API has no log query by time: a sensor still sending
shows in the portal only, and the watch says so.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from offboard.connectors import Watched
from offboard.plan import InventoryItem
from offboard.wire.http import VendorHttp

from .client import BlumiraClient
from .models import Account
from .ownership import UNKNOWN
from .settings import BlumiraSettings


class BlumiraSession(Protocol):
    """What a watch reads through (the opened session; named here so this module does not import it)."""

    http: VendorHttp
    client: BlumiraClient
    s: BlumiraSettings
    owner: str

    def account(self) -> Account: ...

    def _listed(self, kind: str) -> list[InventoryItem]: ...

    def _webhooks(self, name: str) -> tuple[list[InventoryItem], int]: ...

DEVICES = "4. Remove agent devices and keys"
USERS = "6. Remove users who do not need access"
WEBHOOKS = "7. Remove webhooks that point at the customer"
# kind -> (the check, the runbook step that removes it, the plan operations that do, the list's path)
CHECKS = {
    "device": ("no agent device listed", f"{DEVICES}: remove the device in the portal (Agents → Devices)",
               ("agents.remove-devices", "uninstall_device"), "agents/devices"),
    "agent_key": ("no agent key listed", f"{DEVICES}: delete the installation key (Agents → Keys), so no device "
                  "enrols with it", ("agents.remove-keys",), "agents/keys"),
    "user": ("only the users to keep remain", f"{USERS} (Settings → Users)", ("users.remove",), "users"),
}


def watch(session: BlumiraSession, since: datetime) -> list[Watched]:
    account = session.account()
    name = account.name or session.s.account_id
    out: list[Watched] = []
    for kind, (check, remedy, ops, sub) in CHECKS.items():
        listed = session._listed(kind)
        call = f"GET {session.client.path(sub)}"
        back = [i for i in listed if kind != "user" or i.owner == UNKNOWN
                or i.attrs.get("email") not in session.s.keep_users]
        for item in back:
            out.append(Watched(check, True, f"{_label(kind)} {_describe(item)} is listed under sub-account {name!r} "
                               f"again ({call})", key=f"{kind}:{item.target.id}", target=item.target,
                               remedy=remedy, removed_by=ops, http=session.http.last_call))
        if not back:
            out.append(Watched(check, False, f"{call} lists {len(listed)} {_label(kind)}(s)"
                               + (", all in keep_users" if kind == "user" and listed else ""),
                               http=session.http.last_call))
    hooks, _others = session._webhooks(name)
    mine = [h for h in hooks if h.owner == session.owner]  # shared endpoints were left on purpose
    call = "GET /msp/webhooks"
    for h in mine:
        out.append(Watched("no webhook endpoint of the customer's", True,
                           f"webhook endpoint {h.target.name} (id {h.target.id}) for sub-account {name!r} is "
                           f"configured again ({call})", key=f"webhook:{h.target.id}", target=h.target,
                           remedy=f"{WEBHOOKS}: delete it (offboard watch --plan-out, then offboard apply)",
                           removed_by=("delete_webhook",), http=session.http.last_call))
    if not mine:
        out.append(Watched("no webhook endpoint of the customer's", False, f"{call} lists none for {name!r}",
                           http=session.http.last_call))
    return out


def _label(kind: str) -> str:
    return {"device": "agent device", "agent_key": "agent key", "user": "user"}[kind]


def _describe(item: InventoryItem) -> str:
    shown = str(item.attrs.get("email") or item.target.name)
    unknown = f" (owner unknown: {item.attrs.get('why_unknown', 'not attributed')})" if item.owner == UNKNOWN else ""
    return f"{shown} (id {item.target.id}){unknown}"
