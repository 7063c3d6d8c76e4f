"""Security properties a reviewer would ask about: TLS is verified for real vendors, secrets
never show in a repr, and plain HTTP is accepted only for a sandbox on this machine."""

from __future__ import annotations

import http.server
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from offboard.config import check_vendor_url
from offboard.errors import VendorError
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


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no trust store holds, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def impostor(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """An https "vendor" on 127.0.0.1 with a self-signed certificate that answers every request
    200 {}; the paths it served (a request it saw got past the TLS handshake)."""
    cert, key = self_signed(tmp_path)
    served: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            served.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert, served
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("session", [
    lambda url: huntress.open(HuntressSettings(organization_id=42, base_url=url),
                              {"api_key": SecretStr("k" * 8), "api_secret": SecretStr("s" * 8)}),
    lambda url: blumira.open(BlumiraSettings(account_id="a", base_url=url, token_url=f"{url}/oauth/token"),
                             {"client_id": SecretStr("i" * 8), "client_secret": SecretStr("s" * 8)}),
], ids=["huntress", "blumira"])
def test_a_vendor_whose_certificate_nothing_trusts_is_refused_before_any_request(
        impostor: tuple[str, Path, list[str]], session: Any) -> None:
    url, cert, served = impostor
    with httpx.Client(verify=ssl.create_default_context(cafile=str(cert))) as trusting:  # the control
        assert trusting.get(f"{url}/probe").status_code == 200 and served == ["/probe"]
    opened = session(url)
    opened.http._sleep = lambda seconds: None  # the retries' backoff: not waited out here
    try:
        with pytest.raises(VendorError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            opened.http.get("/v1/actor")
    finally:
        opened.close()
    assert served == ["/probe"]  # nothing of offboard's got past the handshake: no credential was sent


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
