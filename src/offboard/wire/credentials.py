"""Credentials: the OS keyring first, environment variables second; never printed.

Values are kept as ``SecretStr`` so a repr, a log line or an exception shows
``**********`` and every value read is registered with the redactor, which the
audit log and the error printer run over everything they write.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import keyring
import keyring.errors
from pydantic import SecretStr

from offboard.errors import BadInput
from offboard.wire.redact import REDACTOR

SERVICE_PREFIX = "offboard"


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
        return keyring.get_password(_service(vendor), field)
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
            keyring.set_password(_service(vendor), name, value)
    except keyring.errors.KeyringError as exc:
        raise BadInput(
            f"cannot store credentials: no usable OS keyring on this machine ({type(exc).__name__}); "
            f"set the OFFBOARD_{vendor.upper()}_* environment variables instead"
        ) from None


def keyring_available() -> bool:
    try:
        keyring.get_password(_service("probe"), "probe")
    except keyring.errors.KeyringError:
        return False
    return True


def stored_fields(vendor: str, fields: tuple[CredentialField, ...]) -> list[str]:
    """Names of the fields the keyring holds (never the values)."""
    return [f.name for f in fields if _from_keyring(vendor, f.name)]
