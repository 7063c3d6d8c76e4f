"""The rehearsal and the batch rehearsal exit the same Acme Dental (issue 22's review at 120x40): the
single sandbox isolated ACME-SRV-01 and the batch sandbox (`sandbox serve --customers 3`) ACME-WS-01,
for one organization, so the docs' "Acme Dental's open incident and isolated host" named two hosts.
Served as `offboard sandbox serve` serves them, Acme Dental's agents are one set in both."""

from __future__ import annotations

from typing import Any

import httpx

from offboard import connectors
from offboard.connectors.sandboxing import serve
from offboard_huntress.sandbox import CUSTOMER_ORG, DEMO_KEY, DEMO_SECRET


def agents_of(app: Any, org: int) -> list[tuple[str, str, str]]:
    """What the vendor's API lists for an organization: each agent's hostname, firewall status, last callback day."""
    with serve(app) as url:
        reply = httpx.get(f"{url}/v1/agents", params={"organization_id": org, "limit": 500},
                          auth=(DEMO_KEY, DEMO_SECRET))
    reply.raise_for_status()
    return sorted((a["hostname"], a["firewall_status"], a["last_callback_at"][:10]) for a in reply.json()["agents"])


def test_the_batch_sandbox_serves_the_single_sandboxs_acme_dental() -> None:
    kit = connectors.installed()["huntress"].sandbox()
    assert kit is not None and kit.make_app_for is not None
    alone = agents_of(kit.make_app(1.0), CUSTOMER_ORG)
    in_a_batch = agents_of(kit.make_app_for(1.0, 3), CUSTOMER_ORG)
    isolated = [host for host, status, _ in alone if status == "Isolated"]
    assert isolated == ["ACME-SRV-01"]  # the host docs/rehearsal.md's plan names, as the incident does
    assert in_a_batch == alone
    assert agents_of(kit.make_app_for(1.0, 3), CUSTOMER_ORG + 2)  # the batch's other customers are still served
