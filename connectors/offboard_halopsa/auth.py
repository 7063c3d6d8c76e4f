"""HaloPSA's OAuth2 client credentials (notes §3): the core's ``wire.oauth`` with Halo's token
endpoint — ``POST {auth_url}/token[?tenant=…]``, form-encoded, ``scope=all``."""

from __future__ import annotations

from offboard.wire.oauth import ClientCredentials, TokenEndpoint


def halo_token(auth_url: str, tenant: str, client_id: str, client_secret: str) -> ClientCredentials:
    endpoint = TokenEndpoint(
        "HaloPSA", auth_url.rstrip("/") + "/token", fields={"scope": "all"},
        params={"tenant": tenant} if tenant else {},
        refused="check them with `offboard auth set psa` or OFFBOARD_PSA_CLIENT_ID/_CLIENT_SECRET",
        # A 500 here usually means the application has no agent bound to it (notes §3).
        failed="a 500 usually means the API application has no agent with login type Agent")
    return ClientCredentials(endpoint, client_id, client_secret)
