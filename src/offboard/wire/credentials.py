"""Credentials: the OS keyring first, environment variables second; never printed.

Values are kept as ``SecretStr`` so a repr, a log line or an exception shows
``**********`` and every value read is registered with the redactor, which the
audit log and the error printer run over everything they write.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import keyring.core
import keyring.errors
from pydantic import SecretStr

from offboard.errors import BadInput
from offboard.wire.redact import REDACTOR

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

SERVICE_PREFIX = "offboard"

# keyring's own first use imports and probes every backend it ships (macOS and Windows ones
# included, on any machine); offboard asks only this platform's, in keyring's preference order.
PLATFORM_BACKENDS = {
    "darwin": ("keyring.backends.macOS:Keyring",),
    "win32": ("keyring.backends.Windows:WinVaultKeyring",),
}
OTHER_BACKENDS = ("keyring.backends.SecretService:Keyring", "keyring.backends.libsecret:Keyring",
                  "keyring.backends.kwallet:DBusKeyring")
_choice = threading.Lock()
_chosen = False


def _platform_backend() -> KeyringBackend:
    from keyring.backends import fail

    for spec in PLATFORM_BACKENDS.get(sys.platform, OTHER_BACKENDS):
        module, name = spec.split(":")
        try:
            cls = getattr(importlib.import_module(module), name)
            if cls.priority > 0:  # keyring's viability test: raises or is 0 when unusable here
                backend: KeyringBackend = cls()
                return backend
        except Exception:
            continue
    return fail.Keyring()  # type: ignore[no-untyped-call]


def ring() -> KeyringBackend:
    """The keyring offboard uses: one set by the user (PYTHON_KEYRING_BACKEND, keyringrc.cfg) or by
    a test, else the first usable one of this platform's backends."""
    global _chosen
    with _choice:
        if not _chosen:
            _chosen = True
            if getattr(keyring.core, "_keyring_backend", None) is None:
                keyring.core.set_keyring(keyring.core.load_env() or keyring.core.load_config()
                                         or _platform_backend())
    return keyring.core.get_keyring()


@dataclass(frozen=True)
class CredentialField:
    name: str  # e.g. "api_key"
    prompt: str  # what `auth set` asks for


def env_var(vendor: str, field: str) -> str:
    return f"OFFBOARD_{vendor.upper()}_{field.upper()}"


def _service(vendor: str) -> str:
    return f"{SERVICE_PREFIX}:{vendor}"


def _from_keyring(vendor: str, field: str) -> str | None:
    try:
        return ring().get_password(_service(vendor), field)
    except keyring.errors.KeyringError:
        # No usable backend (a headless server): the environment is the fallback.
        return None


def load(
    vendor: str,
    display_name: str,
    fields: tuple[CredentialField, ...],
    environ: Mapping[str, str] | None = None,
) -> dict[str, SecretStr]:
    """All of a vendor's fields, each from the keyring or else the environment."""
    environ = os.environ if environ is None else environ
    found: dict[str, SecretStr] = {}
    missing: list[str] = []
    for f in fields:
        value = _from_keyring(vendor, f.name) or environ.get(env_var(vendor, f.name), "")
        value = value.strip()
        if not value:
            missing.append(f.name)
            continue
        REDACTOR.register(value)
        found[f.name] = SecretStr(value)
    if missing:
        names = " and ".join(env_var(vendor, m) for m in missing)
        raise BadInput(
            f"no {display_name} credentials ({', '.join(missing)} missing): "
            f"run `offboard auth set {vendor}` or set {names}"
        )
    return found


def store(vendor: str, values: Mapping[str, str]) -> None:
    try:
        for name, value in values.items():
            ring().set_password(_service(vendor), name, value)
    except keyring.errors.KeyringError as exc:
        raise BadInput(
            f"cannot store credentials: no usable OS keyring on this machine ({type(exc).__name__}); "
            f"set the OFFBOARD_{vendor.upper()}_* environment variables instead"
        ) from None


def keyring_available() -> bool:
    try:
        ring().get_password(_service("probe"), "probe")
    except keyring.errors.KeyringError:
        return False
    return True


def stored_fields(vendor: str, fields: tuple[CredentialField, ...]) -> list[str]:
    """Names of the fields the keyring holds (never the values)."""
    return [f.name for f in fields if _from_keyring(vendor, f.name)]
