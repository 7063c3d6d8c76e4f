"""A test double of Example Backup's API (a Starlette app), built on offboard's sandbox toolkit.

It follows the vendor's published spec (spec/example-backup-openapi.json), not this connector's
assumptions: bearer token auth; ``GET /v1/customers/{id}``; ``GET /v1/devices?customer_id=``;
``GET`` and ``DELETE /v1/devices/{id}`` (204, then 404); 120 requests in any 60 s, 429 after.
The toolkit's gate adds what every sandbox has: injected faults (before the route, or after it
acted: a 5xx or a cut connection in place of its reply), the request log and the rate window.

Seeded with the customer leaving (three devices, an active plan) and a neighbour with two
devices that an exit of the customer must never touch. ``/_sandbox/portal/cancel-plan`` stands
in for the person who cancels the plan in the portal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from offboard.connectors.sandboxing import Fault, Logged, SandboxBase

__all__ = ["CUSTOMER", "DEMO_TOKEN", "NEIGHBOUR", "ExampleSandbox", "Fault", "Logged"]

PREFIX = "/v1"
DEMO_TOKEN = "exb_sandbox_token_not_real"
CUSTOMER = "cust-acme"
NEIGHBOUR = "cust-globex"


@dataclass
class ExampleSandbox(SandboxBase):
    time_scale: float = 1.0
    rate_limit: int = 120
    send_retry_after: bool = True
    requests: list[Logged] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)

    base_window = 60.0

    def __post_init__(self) -> None:
        self._init_gate()
        self.customers: dict[str, dict[str, Any]] = {
            CUSTOMER: {"id": CUSTOMER, "name": "Acme Dental", "plan_status": "active"},
            NEIGHBOUR: {"id": NEIGHBOUR, "name": "Globex Logistics", "plan_status": "active"},
        }
        self.devices: dict[str, dict[str, Any]] = {}
        for customer, hosts in ((CUSTOMER, ("acme-fs01", "acme-pc07", "acme-pc12")),
                                (NEIGHBOUR, ("globex-dc01", "globex-pc02"))):
            for host in hosts:
                device_id = f"dev-{len(self.devices) + 101}"
                self.devices[device_id] = {"id": device_id, "hostname": host, "customer_id": customer}
        self.app = self.gated(Starlette(routes=[
            Route(PREFIX + "/customers/{id}", self._customer),
            Route(PREFIX + "/devices", self._devices),
            Route(PREFIX + "/devices/{id}", self._device, methods=["GET", "DELETE"]),
            Route(self.CONTROL + "portal/{item}", self._portal, methods=["POST"]),
            *self.control_routes(),
        ]))

    # -- the gate's hooks ----------------------------------------------------------------------

    def authorize(self, request: Request) -> str | None:
        return "token" if request.headers.get("authorization") == f"Bearer {DEMO_TOKEN}" else None

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    # -- what tests look at --------------------------------------------------------------------

    def devices_of(self, customer: str) -> list[dict[str, Any]]:
        return [d for d in self.devices.values() if d["customer_id"] == customer]

    # -- routes --------------------------------------------------------------------------------

    async def _customer(self, request: Request) -> Response:
        customer = self.customers.get(request.path_params["id"])
        return JSONResponse(customer) if customer else self.error(404, "no such customer")

    async def _devices(self, request: Request) -> Response:
        wanted = request.query_params.get("customer_id")
        if wanted is None:
            return self.error(400, "customer_id is required")
        return JSONResponse({"devices": self.devices_of(wanted)})

    async def _device(self, request: Request) -> Response:
        device = self.devices.get(request.path_params["id"])
        if device is None:
            return self.error(404, "no such device")
        if request.method == "DELETE":
            del self.devices[device["id"]]
            return Response(status_code=204)
        return JSONResponse(device)

    async def _portal(self, request: Request) -> Response:
        """The person at the portal: cancel the customer's plan (the one manual item)."""
        if request.path_params["item"] != "cancel-plan":
            return JSONResponse({"done": False})
        self.customers[CUSTOMER]["plan_status"] = "cancelled"
        return JSONResponse({"done": True})
