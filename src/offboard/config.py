"""The exit definition: config.toml plus OFFBOARD_… environment overrides.

The core knows the ``[customer]`` and ``[run]`` sections; each vendor section
(``[<connector name>]``) is validated by that connector's own settings model.
A vendor section being present is what puts that vendor in the exit. An optional
``[psa]`` section names the PSA holding the exit's ticket (its ``kind``: an installed
PSA connector, whose settings model validates the rest).
Environment variables win over the file: ``OFFBOARD_CUSTOMER__NAME``,
``OFFBOARD_<VENDOR>__<FIELD>``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import tomllib
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from offboard.errors import BadInput, read_input
from offboard.plan import canonical_json

PSA = "psa"  # the optional section naming the PSA that holds the exit's ticket


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

    @field_validator("*", mode="before")
    @classmethod
    def _strict_flags(cls, value: Any, info: ValidationInfo) -> Any:
        """A yes/no setting is true or false, nothing else: pydantic would read "yes", "on" or 1 as
        true, and a flag such as deleting a whole organization must not be switched on by a guess.
        The environment's text "true"/"false" is the same value."""
        declared = cls.model_fields.get(info.field_name or "")
        if declared is None or declared.annotation is not bool or isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise PydanticCustomError("bool_strict", "must be true or false")

    # The vendor account's rate window in seconds, for a section with a ``rate_window_seconds``
    # field (``rate_window(full_window)``); a shorter window is only for the vendor's sandbox on
    # 127.0.0.1, whose clock runs fast: the time scale is their ratio.
    full_window: ClassVar[float] = 0.0

    @model_validator(mode="after")
    def _sandbox_window_only(self) -> Self:
        if self._window() < self.full_window and not is_loopback_url(str(getattr(self, "base_url", ""))):
            raise ValueError(f"rate_window_seconds below {self.full_window:g} is only for the sandbox on 127.0.0.1: "
                             f"the vendor counts a {self.full_window:g} s window")
        return self

    def _window(self) -> float:
        return float(getattr(self, "rate_window_seconds", self.full_window))

    @property
    def time_scale(self) -> float:
        return self._window() / self.full_window if self.full_window else 1.0

    def scope_key(self) -> dict[str, Any]:
        """The fields that say *whose* exit this is; a plan belongs to them. Tuning fields
        (rate limits, timeouts) are left out so changing them does not orphan a plan."""
        return self.model_dump(mode="json")

    def exit_identity(self) -> dict[str, Any]:
        """The vendor account this section exits, as the config names it (e.g. an organization id
        and the API it lives on): a batch refuses two exits naming one account. (The machine-wide
        exit lock is keyed on what the vendor itself answers: ``VendorSession.exit_identity``.)
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


# What offboard reads of one vendor's replies (wire.replies.ReplyLimits): far above any real reply, so
# only a vendor answering nonsense meets them. The largest real page (500 endpoint agents) is about
# 1 MiB, 16 times under the limit; a PDF report is a few MiB.
MAX_REPLY_MIB = 16.0
MAX_DOWNLOAD_MIB = 256.0
# One listing of an exit: 50,000 agents are 100 pages of 500. 10,000 pages is 100 times that, and
# stops a listing whose paging never ends after about 3 hours at 60 calls a minute.
MAX_PAGES = 10_000


class VendorSettings(SectionSettings):
    """Base of every vendor's and PSA's section: the limits on what offboard reads from its replies.
    Tuning, not scope: a connector's ``scope_key`` leaves them out."""

    max_reply_mib: float = Field(
        MAX_REPLY_MIB, gt=0, le=1024,
        description="the largest reply offboard reads from this vendor, in MiB; a larger one is refused")
    max_download_mib: float = Field(
        MAX_DOWNLOAD_MIB, gt=0, le=4096,
        description="the largest file (e.g. a PDF report) offboard downloads from this vendor, in MiB")
    max_pages: int = Field(
        MAX_PAGES, ge=1, le=1_000_000,
        description="the most pages offboard reads of one listing before it calls the paging endless")


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
    if where:
        _refuse_unknown_env(model, env_prefix, where)
    else:
        for name, sub in _sections_of(model).items():
            _refuse_unknown_env(sub, f"{env_prefix}{name.upper()}__", name)
    try:
        return model(**data)
    except ValidationError as exc:
        raise BadInput(_explain(model, exc.errors(), where, env_prefix)) from None


def _sections_of(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """The nested sections of a model (the core's [customer], [run], [signing])."""
    return {name: f.annotation for name, f in model.model_fields.items()
            if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)}


def _did_you_mean(name: str, known: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(name.lower(), list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def _refuse_unknown_env(model: type[BaseModel], prefix: str, where: str) -> None:
    """An OFFBOARD_<SECTION>__<FIELD> variable whose field does not exist would be ignored without
    a word, and the setting it meant left at its default: refused, naming the variable (never its
    value, which may be anything)."""
    fields = list(model.model_fields)
    for var in sorted(os.environ):
        if not var.upper().startswith(prefix.upper()):
            continue
        name = var[len(prefix):].split("__")[0].lower()
        if name in fields:
            continue
        guess = _did_you_mean(name, fields)
        hint = f"did you mean {prefix}{guess.upper()}?" if guess else f"[{where}] has no setting {name!r}"
        raise BadInput(f"config: environment variable {var} names no setting of [{where}]; {hint} "
                       "Unset it or correct its name")


def _field_path(model: type[BaseModel], loc: Sequence[str]) -> tuple[tuple[str, ...], Any]:
    """The part of an error's location that names settings (e.g. ``customer.name``, ``products``),
    and the annotation of the last one; what follows is pydantic's inside (list indexes, union
    branches) and names nothing a person can set."""
    path: list[str] = []
    annotation: Any = None
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None) if isinstance(current, type) else None
        if not fields or part not in fields:
            break
        path.append(part)
        annotation = fields[part].annotation
        current = annotation
    return tuple(path), annotation


def _is_literal(annotation: Any) -> bool:
    origin: Any = get_origin(annotation)
    return bool(origin is Literal)


def _literal_words(values: Sequence[Any]) -> str:
    return ", ".join(json.dumps(v) if isinstance(v, str) else str(v) for v in values)


def _words(annotation: Any) -> str:
    """A setting's type in the words of the config file: "all", or a list of some of "edr", …"""
    origin = get_origin(annotation)
    if _is_literal(annotation):
        values = get_args(annotation)
        return _literal_words(values) if len(values) == 1 else f"one of {_literal_words(values)}"
    if origin in (Union, types.UnionType):
        parts = [a for a in get_args(annotation) if a is not type(None)]
        parts.sort(key=lambda a: not _is_literal(a))  # the named values first
        return ", or ".join(_words(a) for a in parts)
    if origin is list:
        (inner,) = get_args(annotation) or (Any,)
        if _is_literal(inner):
            return f"a list of some of {_literal_words(get_args(inner))}"
        return f"a list of {_words(inner)} values"
    simple = {bool: "true or false", int: "a whole number", float: "a number", str: "text in quotes",
              date: "a date such as 2026-12-31", Path: "a path in quotes"}
    return simple.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _has_choices(annotation: Any) -> bool:
    """Whether pydantic's own message would speak its internals (union branches, literal lists)."""
    if annotation is bool or _is_literal(annotation):
        return True
    return any(_has_choices(a) for a in get_args(annotation))


def _explain(model: type[BaseModel], errors: list[ErrorDetails], where: str, env_prefix: str) -> str:
    here = f"[{where}]" if where else "the config file"
    # An unknown key first: a misspelt key also leaves the setting it meant "missing".
    extra = [e for e in errors if e["type"] == "extra_forbidden"]
    err = extra[0] if extra else errors[0]
    loc = tuple(str(p) for p in err["loc"])
    path, annotation = _field_path(model, loc)
    def setting(e: ErrorDetails) -> tuple[str, ...]:
        where_ = tuple(str(p) for p in e["loc"])
        named = _field_path(model, where_)[0]
        return named if named and e["type"] != "extra_forbidden" else where_

    # Settings in error, not pydantic's errors: a union setting fails once per branch.
    more = len({setting(e) for e in errors} - {setting(err)})
    if err["type"] == "extra_forbidden":
        owner, _ = _field_path(model, loc[:-1])
        known = list(_model_at(model, owner).model_fields)
        guess = _did_you_mean(loc[-1], known)
        missing = {tuple(str(p) for p in e["loc"]) for e in errors if e["type"] == "missing"}
        if guess is not None and (*owner, guess) in missing:
            more -= 1  # the missing setting is the one this key misspells: one mistake, said once
        dotted = ".".join(filter(None, (where, *loc)))
        # An unknown key's value is never echoed: it may be a credential under an unexpected name.
        fix = (f"did you mean {guess}?" if guess else "remove it or check its spelling") + " (see config.example.toml)"
        return f"config: {dotted}: unknown setting; {fix}" + (f" (and {more} more)" if more > 0 else "")
    message = str(err["msg"]).removeprefix("Value error, ")
    if not path:  # a rule across settings (a model validator): no single field or variable names it
        rule = f"[{'.'.join(filter(None, (where, *loc)))}]" if loc else here
        return f"config: {rule}: {message}; fix it in the config file" + (f" (and {more} more)" if more > 0 else "")
    dotted = ".".join(filter(None, (where, *path)))
    got = ""
    if err["type"] != "value_error" and _has_choices(annotation):
        message = f"must be {_words(annotation)}"
        # The wrong item itself (e.g. one product of a list), not pydantic's view of each union branch.
        items = [e["input"] for e in errors if tuple(str(p) for p in e["loc"])[:len(path)] == path
                 and not isinstance(e.get("input"), list | dict)]
        value = items[0] if items else err.get("input")
        got = f" (got {value!r})"
    elif err["type"] != "missing" and "input" in err and not isinstance(err["input"], dict):
        got = f" (got {err['input']!r})"
    env = env_prefix + "__".join(path).upper()
    if any(var.upper() == env for var in os.environ):
        fix = f"the value comes from the environment variable {env}: correct it or unset it"
        if get_origin(annotation) is list or any(get_origin(a) is list for a in get_args(annotation)):
            fix += " (a list is written there as JSON, e.g. [\"a\", \"b\"])"
    else:
        fix = f"set it in the config file or {env}"
    return f"config: {dotted}: {message}{got}; {fix}" + (f" (and {more} more)" if more > 0 else "")


def _model_at(model: type[BaseModel], path: Sequence[str]) -> type[BaseModel]:
    current: type[BaseModel] = model
    for part in path:
        sub = current.model_fields[part].annotation
        if not (isinstance(sub, type) and issubclass(sub, BaseModel)):
            break
        current = sub
    return current


@dataclass(frozen=True)
class ExitConfig:
    path: Path
    core: CoreSettings
    vendors: dict[str, SectionSettings] = field(default_factory=dict)
    psa: SectionSettings | None = None  # the [psa] section, validated by its connector's model

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

    def definition(self) -> dict[str, Any]:
        """The exit a plan belongs to: the customer and each vendor's scope (kept in the plan, so a
        refusal can name the setting that changed)."""
        data: dict[str, Any] = {
            "customer": self.customer.name,
            "vendors": {n: s.scope_key() for n, s in sorted(self.vendors.items())},
        }
        if self.psa is not None:  # the plan records the scope in this ticket: another ticket, another plan
            data["psa"] = self.psa.scope_key()
        return data

    def fingerprint(self) -> str:
        """Identifies the exit a plan belongs to (a digest of ``definition``)."""
        return hashlib.sha256(canonical_json(self.definition()).encode()).hexdigest()


def load_config(path: Path, connector_models: Mapping[str, type[SectionSettings]],
                psa_models: Mapping[str, type[SectionSettings]] | None = None) -> ExitConfig:
    raw = read_input(path, "config file", f"copy config.example.toml to {path} and fill it in")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"config file {path} is not valid TOML: {exc}") from None

    psa_model = _psa_model(data.get(PSA), psa_models or {})
    _refuse_credentials(data, {**connector_models, **({PSA: psa_model} if psa_model else {})})
    psa_data = data.pop(PSA, None)
    vendor_data = {k: data.pop(k) for k in list(data) if k in connector_models}
    unknown = [k for k in data if k not in CoreSettings.model_fields]
    if unknown:
        sections = sorted([*CoreSettings.model_fields, *connector_models])
        guess = _did_you_mean(unknown[0], sections)
        homes = sorted(n for n, m in {**_sections_of(CoreSettings), **connector_models}.items()
                       if unknown[0] in m.model_fields)
        hint = (f"did you mean [{guess}]?" if guess else
                f"it belongs inside [{homes[0]}]" if homes else f"known sections: {', '.join(sections)}")
        raise BadInput(f"config: unknown section or key {unknown[0]!r} in {path}; {hint}")
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
    psa = None
    if psa_model is not None:
        assert isinstance(psa_data, dict)
        body = dict(psa_data)
        if "ticket_id" not in body and core.customer.ticket:
            body["ticket_id"] = core.customer.ticket  # [customer] ticket is the ticket's reference
        psa = section(psa_model, body, PSA, "OFFBOARD_PSA__")
    return ExitConfig(path=path, core=core, vendors=vendors, psa=psa)


def _psa_model(body: Any, psa_models: Mapping[str, type[SectionSettings]]) -> type[SectionSettings] | None:
    """The settings model of the PSA that ``[psa] kind`` names (the environment may name it too)."""
    if body is None:
        return None
    if not isinstance(body, dict):
        raise BadInput("config: psa must be a table ([psa]), not a value")
    kind = os.environ.get("OFFBOARD_PSA__KIND") or body.get("kind")
    known = ", ".join(sorted(psa_models)) or "none installed"
    if not isinstance(kind, str) or not kind:
        raise BadInput(f"config: psa.kind is missing; name the PSA that holds the exit's ticket ({known})")
    if kind not in psa_models:
        raise BadInput(f"config: psa.kind {kind!r} is not an installed PSA connector ({known}); check its spelling")
    return psa_models[kind]


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


# A vendor's API URL in a settings model: verified HTTPS, or plain HTTP to a sandbox on this machine.
VendorUrl = Annotated[str, AfterValidator(check_vendor_url)]


def rate_window(full: float) -> Any:
    """The ``rate_window_seconds`` field of a section whose vendor counts requests in a window of
    ``full`` seconds (set ``full_window`` to the same): shorter only against the sandbox."""
    return Field(full, gt=0, le=full, description="the rate-limit window; shorter only against the sandbox, "
                                                  "whose clock runs fast")


def url_identity(url: str) -> str:
    """A vendor URL as an identity: scheme and host lower-cased, a default port and a trailing
    slash dropped — spellings of one API must name one exit."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    default = {"https": 443, "http": 80}.get(parts.scheme.lower())
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme.lower()}://{host}{port}{parts.path.rstrip('/')}"
