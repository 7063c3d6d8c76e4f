"""The sandbox toolkit's faults that strike after the vendor acted: the write lands, then the
client gets a 5xx, a cut connection, or nothing until a test lets the reply go. The fault
matrix and the kill scenarios rely on each one really doing what it says."""

from __future__ import annotations

import threading

import httpx
import pytest

from offboard.connectors.sandboxing import Fault, InProcessTransport, serve
from offboard_huntress.sandbox import CUSTOMER_ORG, DEMO_KEY, DEMO_SECRET, HuntressSandbox

AUTH = (DEMO_KEY, DEMO_SECRET)


def an_agent(sandbox: HuntressSandbox) -> int:
    return int(sandbox.agents_of(CUSTOMER_ORG)[-1]["id"])


def test_a_5xx_after_acting_lands_the_write_and_logs_what_the_route_answered() -> None:
    sandbox = HuntressSandbox()
    agent = an_agent(sandbox)
    sandbox.faults.append(Fault(method="DELETE", path_prefix="/v1/agents/", status=502, acted=True))
    with httpx.Client(transport=InProcessTransport(sandbox.app), base_url="http://sandbox", auth=AUTH) as c:
        reply = c.delete(f"/v1/agents/{agent}")
        again = c.get(f"/v1/agents/{agent}")
    assert reply.status_code == 502
    assert agent not in sandbox.agents and again.status_code == 404  # the vendor did act
    logged = sandbox.requests[0]
    assert (logged.method, logged.status, logged.acted, logged.gated) == ("DELETE", 502, 204, False)


def test_a_fault_after_acting_is_taken_only_by_a_request_the_route_would_carry_out() -> None:
    sandbox = HuntressSandbox()
    agent = an_agent(sandbox)
    fault = Fault(method="DELETE", path_prefix="/v1/agents/", status=503, acted=True)
    sandbox.faults.append(fault)
    with httpx.Client(transport=InProcessTransport(sandbox.app), base_url="http://sandbox",
                      auth=(DEMO_KEY, "wrong")) as c:
        assert c.delete(f"/v1/agents/{agent}").status_code == 401
    assert fault.times == 1 and not fault.reached.is_set() and agent in sandbox.agents


@pytest.mark.parametrize("transport", ["in-process", "http"])
def test_a_dropped_connection_after_acting_is_a_transport_error_and_the_write_landed(transport: str) -> None:
    sandbox = HuntressSandbox()
    agent = an_agent(sandbox)
    sandbox.faults.append(Fault(method="DELETE", path_prefix="/v1/agents/", acted=True, drop=True))

    def delete(c: httpx.Client) -> None:
        with pytest.raises(httpx.RemoteProtocolError):
            c.delete(f"/v1/agents/{agent}")

    if transport == "http":
        with serve(sandbox.app) as url, httpx.Client(base_url=url, auth=AUTH) as c:
            delete(c)
    else:
        with httpx.Client(transport=InProcessTransport(sandbox.app), base_url="http://sandbox", auth=AUTH) as c:
            delete(c)
    assert agent not in sandbox.agents
    assert (sandbox.requests[0].status, sandbox.requests[0].acted) == (0, 204)


@pytest.mark.parametrize("acted", [False, True])
def test_a_held_write_waits_for_the_test_and_lands_whether_or_not_the_client_is_still_there(acted: bool) -> None:
    sandbox = HuntressSandbox()
    agent = an_agent(sandbox)
    hold = threading.Event()
    fault = Fault(method="DELETE", path_prefix="/v1/agents/", status=None, acted=acted, hold=hold)
    sandbox.faults.append(fault)
    with serve(sandbox.app) as url:
        with httpx.Client(base_url=url, auth=AUTH, timeout=0.5) as c, pytest.raises(httpx.ReadTimeout):
            c.delete(f"/v1/agents/{agent}")  # the client gives up (as a killed one would) while it is held
        assert fault.reached.is_set()
        assert (agent in sandbox.agents) is not acted  # held before the route, or after it acted
        hold.set()
        for _ in range(400):
            if sandbox.requests:
                break
            threading.Event().wait(0.005)
    assert agent not in sandbox.agents and sandbox.requests[0].method == "DELETE"
    assert sandbox.requests[0].acted == (204 if acted else None)
