"""Security properties a reviewer would ask about: TLS is verified for real vendors, secrets
never show in a repr, and plain HTTP is accepted only for a sandbox on this machine."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import SecretStr

from offboard.config import check_vendor_url
from offboard.wire import credentials
from offboard.wire.credentials import CredentialField
from offboard_blumira import BlumiraSettings
from offboard_blumira import connector as blumira
from offboard_huntress import HuntressSettings
from offboard_huntress import connector as huntress

SRC = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("session", [
    lambda: huntress.open(HuntressSettings(organization_id=42), {"api_key": SecretStr("k" * 8),
                                                                 "api_secret": SecretStr("s" * 8)}),
    lambda: blumira.open(BlumiraSettings(account_id="a"), {"client_id": SecretStr("i" * 8),
                                                          "client_secret": SecretStr("s" * 8)}),
])
def test_real_vendors_are_reached_only_with_tls_verification_on(session: object) -> None:
    opened = session()  # type: ignore[operator]
    try:
        context = opened.http._client._transport._pool._ssl_context
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        assert str(opened.http._client.base_url).startswith("https://")
    finally:
        opened.close()


def test_nothing_turns_tls_verification_off() -> None:
    for path in [*(SRC / "src").rglob("*.py"), *(SRC / "connectors").rglob("*.py")]:
        text = path.read_text()
        assert "verify=False" not in text and "CERT_NONE" not in text, path


@pytest.mark.parametrize("url, ok", [
    ("https://api.huntress.io", True), ("http://127.0.0.1:8080", True), ("http://localhost:1", True),
    ("http://api.huntress.io", False), ("http://10.0.0.5:8080", False), ("ftp://127.0.0.1", False),
])
def test_plain_http_only_for_a_sandbox_on_loopback(url: str, ok: bool) -> None:
    if ok:
        assert check_vendor_url(url)
    else:
        with pytest.raises(ValueError):
            check_vendor_url(url)


def test_credentials_never_show_in_a_repr_or_str() -> None:
    found = credentials.load("huntress", "Huntress", (CredentialField("api_key", "k"),
                                                      CredentialField("api_secret", "s")),
                             environ={"OFFBOARD_HUNTRESS_API_KEY": "hk_repr_canary_1",
                                      "OFFBOARD_HUNTRESS_API_SECRET": "hs_repr_canary_2"})
    shown = repr(found) + str(found) + f"{found}"
    assert "hk_repr_canary_1" not in shown and "hs_repr_canary_2" not in shown and "**********" in shown
