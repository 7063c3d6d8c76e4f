"""The exit definition: config.toml plus OFFBOARD_… environment overrides.

The core knows the ``[customer]`` and ``[run]`` sections; each vendor section
(``[<connector name>]``) is validated by that connector's own settings model.
A vendor section being present is what puts that vendor in the exit.
Environment variables win over the file: ``OFFBOARD_CUSTOMER__NAME``,
``OFFBOARD_<VENDOR>__<FIELD>``.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from offboard.errors import BadInput, read_input
from offboard.plan import canonical_json


class SectionSettings(BaseSettings):
    """Base for every config section: the environment overrides the file."""

    model_config = SettingsConfigDict(extra="forbid", env_nested_delimiter="__", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)

    def scope_key(self) -> dict[str, Any]:
        """The fields that say *whose* exit this is; a plan belongs to them. Tuning fields
        (rate limits, timeouts) are left out so changing them does not orphan a plan."""
        return self.model_dump(mode="json")

    def exit_identity(self) -> dict[str, Any]:
        """The vendor account this section exits, and nothing else (e.g. an organization id and
        the API it lives on): two exits with the same identity never run at once, whatever their
        other settings, config files or runs folders (the machine-wide exit lock is keyed on it).
        A connector narrows it to its account; this default, the whole vendor, is the safe side:
        it only ever excludes more."""
        return {}

    def rate_limit(self) -> tuple[int, float] | None:
        """The vendor account's request limit as (calls, window seconds), when the connector knows
        it: a batch's plan estimates its wall time from it."""
        return None

    def account_identity(self) -> dict[str, Any]:
        """The vendor account whose rate limit this section's calls draw on. Exits of a batch use
        one credential per vendor, so by default one API is one account."""
        return {}


class CustomerSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="the customer leaving, as it appears in reports")
    end_of_service: date | None = None
    approved_by: str = ""
    ticket: str = ""
    monitoring_after_exit: str = ""  # who watches the customer's systems after the exit date


class RunSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    runs_dir: Path = Path("offboard-runs")


class SigningSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # The MSP's Ed25519 private key as a PEM file; unset: the OS keyring's (`offboard keys init`).
    key_file: Path | None = None


class CoreSettings(SectionSettings):
    model_config = SettingsConfigDict(env_prefix="OFFBOARD_")

    customer: CustomerSection
    run: RunSection = RunSection()
    signing: SigningSection = SigningSection()


S = TypeVar("S", bound=SectionSettings)


def section(model: type[S], data: Mapping[str, Any], where: str, env_prefix: str) -> S:
    """Validate one section; any error becomes one line naming the field and the fix."""
    try:
        return model(**data)
    except ValidationError as exc:
        errors = exc.errors()
        err = errors[0]
        loc = ".".join(str(p) for p in err["loc"])
        dotted = f"{where}.{loc}" if where and not loc.startswith(where) else loc
        env = env_prefix + "__".join(str(p).upper() for p in err["loc"])
        got = ""
        # An unknown key's value is never echoed: it may be a credential under an unexpected name.
        if err["type"] not in ("missing", "extra_forbidden") and "input" in err and not isinstance(err["input"], dict):
            got = f" (got {err['input']!r})"
        if err["type"] == "extra_forbidden":
            fix = "remove it or check its spelling (see config.example.toml)"
        else:
            fix = f"set it in the config file or {env}"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise BadInput(f"config: {dotted}: {err['msg']}{got}; {fix}{more}") from None


@dataclass(frozen=True)
class ExitConfig:
    path: Path
    core: CoreSettings
    vendors: dict[str, SectionSettings] = field(default_factory=dict)

    @property
    def customer(self) -> CustomerSection:
        return self.core.customer

    @property
    def runs_dir(self) -> Path:
        runs = self.core.run.runs_dir
        return runs if runs.is_absolute() else self.path.parent / runs

    @property
    def signing_key_file(self) -> Path | None:
        key = self.core.signing.key_file
        if key is None:
            return None
        return key if key.is_absolute() else self.path.parent / key

    def fingerprint(self) -> str:
        """Identifies the exit a plan belongs to: the customer and each vendor's scope."""
        data = {
            "customer": self.customer.name,
            "vendors": {n: s.scope_key() for n, s in sorted(self.vendors.items())},
        }
        return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def load_config(path: Path, connector_models: Mapping[str, type[SectionSettings]]) -> ExitConfig:
    raw = read_input(path, "config file", f"copy config.example.toml to {path} and fill it in")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"config file {path} is not valid TOML: {exc}") from None

    _refuse_credentials(data, connector_models)
    vendor_data = {k: data.pop(k) for k in list(data) if k in connector_models}
    unknown = [k for k in data if k not in CoreSettings.model_fields]
    if unknown:
        known = ", ".join(sorted([*CoreSettings.model_fields, *connector_models]))
        raise BadInput(f"config: unknown section or key {unknown[0]!r} in {path}; known sections: {known}")
    core = section(CoreSettings, data, "", "OFFBOARD_")
    vendors: dict[str, SectionSettings] = {}
    for name, body in vendor_data.items():
        if not isinstance(body, dict):
            raise BadInput(f"config: {name} must be a table ([{name}]), not a value")
        model = connector_models[name]
        vendors[name] = section(model, body, name, f"OFFBOARD_{name.upper()}__")
    if not vendors:
        names = ", ".join(f"[{n}]" for n in sorted(connector_models)) or "(no connector installed)"
        raise BadInput(f"config file {path} names no vendor: add a section for one of {names}")
    return ExitConfig(path=path, core=core, vendors=vendors)


# Key names that hold a credential, whatever the vendor: api_key, api_secret, client_secret,
# password, token, private_key, … (matched on whole words of the snake_case name).
_CREDENTIAL_NAME = re.compile(
    r"(^|_)(secret|secrets|password|passwd|passphrase|pwd|token|tokens|key|apikey|credential|credentials|auth|"
    r"authorization|bearer|client_id|api_id|access_id)($|_)")


def _refuse_credentials(data: Mapping[str, Any], connector_models: Mapping[str, type[SectionSettings]]) -> None:
    """A credential written into the config file is refused before anything reads it, naming
    the key only (never its value) and where credentials go instead. A section's own declared
    fields (e.g. a ``token_url``) are not credentials."""
    sections: dict[str, set[str]] = {
        "customer": set(CustomerSection.model_fields), "run": set(RunSection.model_fields),
        "signing": set(SigningSection.model_fields),
        **{name: set(model.model_fields) for name, model in connector_models.items()},
    }

    def declared(where: tuple[str, ...], key: str) -> bool:
        return key in sections if not where else len(where) == 1 and key in sections.get(where[0], set())

    def walk(node: Mapping[str, Any], where: tuple[str, ...]) -> tuple[str, ...] | None:
        for key, value in node.items():
            here = (*where, str(key))
            if not declared(where, str(key)) and _CREDENTIAL_NAME.search(str(key).lower().replace("-", "_")):
                return here
            children = value if isinstance(value, list) else [value]
            for child in children:
                found = walk(child, here) if isinstance(child, Mapping) else None
                if found:
                    return found
        return None

    found = walk(data, ())
    if found is None:
        return
    vendor = found[0] if found[0] in connector_models and len(found) > 1 else None
    where = ".".join(found)
    if found[0] == "signing":
        instead = ("the MSP's signing key lives in the OS keyring (`offboard keys init`) or in a file that "
                   "[signing] key_file names")
    elif vendor is not None:
        instead = (f"`offboard auth set {vendor}` stores it in the OS keyring (or set the "
                   f"OFFBOARD_{vendor.upper()}_* environment variables; `offboard auth status` names them)")
    else:
        instead = ("`offboard auth set VENDOR` stores a vendor's credentials in the OS keyring (or set its "
                   "OFFBOARD_VENDOR_* environment variables; `offboard auth status` names them)")
    raise BadInput(f"config: {where} looks like a credential, and credentials never go in the config file: "
                   f"remove it from the file; {instead}")


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def check_vendor_url(url: str) -> str:
    """Real vendors only over verified HTTPS; plain HTTP only to a sandbox on this machine."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url.rstrip("/")
    if parts.scheme == "http" and is_loopback_url(url):
        return url.rstrip("/")
    raise ValueError("must be an https:// URL (plain http is allowed only for a sandbox on 127.0.0.1)")


def url_identity(url: str) -> str:
    """A vendor URL as an identity: scheme and host lower-cased, a default port and a trailing
    slash dropped — spellings of one API must name one exit."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    default = {"https": 443, "http": 80}.get(parts.scheme.lower())
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme.lower()}://{host}{port}{parts.path.rstrip('/')}"
