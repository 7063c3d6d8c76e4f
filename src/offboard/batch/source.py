"""Where a batch's exits come from: a folder of exit configs, or one listing of customers (CSV or
TOML) expanded from a shared template config.

An expanded exit is an ordinary exit config written to ``<batch folder>/<slug>/config.toml``,
with its runs beside it in ``<slug>/runs``: every single-exit command (`offboard status`,
`offboard confirm`, `offboard verify`) works on it with ``-c``. A listing names, per customer,
its name and the ``[customer]`` fields (approval, ticket, end of service), and per vendor the
fields that point at the customer's account there (e.g. an organization id); the template gives
every other field. A vendor is part of a customer's exit when its row names it.
"""

from __future__ import annotations

import copy
import csv
import io
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from offboard.config import CustomerSection, ExitConfig, SectionSettings, load_config
from offboard.errors import BadInput, read_input
from offboard.rundir import atomic_write_text

CUSTOMER_FIELDS = tuple(CustomerSection.model_fields)  # name, end_of_service, approved_by, ticket, …


@dataclass(frozen=True)
class ExitSpec:
    """One exit of a batch: a short name for the customer, and its config."""

    slug: str
    cfg: ExitConfig


def slug_of(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60].strip("-")
    return slug or "customer"


def load_source(source: Path, models: Mapping[str, type[SectionSettings]], *, template: Path | None,
                expand_into: Path) -> list[ExitSpec]:
    """The exits a batch source defines, each checked as `offboard plan` checks one config."""
    if source.is_dir():
        if template is not None:
            raise BadInput(f"--template applies to a listing of customers (CSV or TOML), not to a folder of "
                           f"exit configs ({source}): drop --template, or give the listing")
        files = sorted(p for p in source.glob("*.toml") if p.is_file())
        if not files:
            raise BadInput(f"{source} holds no exit config (*.toml); put one config per customer in it, "
                           "or give a listing of customers (CSV or TOML) and --template")
        _refuse_shared_short_names(files)
        specs = [ExitSpec(slug_of(p.stem), load_config(p, models)) for p in files]
    else:
        suffix = source.suffix.lower()
        if suffix not in (".csv", ".toml"):
            raise BadInput(f"{source}: a batch is a folder of exit configs, a .csv or a .toml listing of customers")
        rows, listed_template = _csv_rows(source) if suffix == ".csv" else _toml_rows(source)
        template = template or listed_template
        if template is None:
            raise BadInput(f"{source} lists customers but names no template config: pass --template "
                           "template.toml (a whole exit config whose values every customer shares)")
        specs = _expand(rows, template, models, expand_into)
    _refuse_shared_accounts(specs)
    return specs


# -- listings ---------------------------------------------------------------------------


def _csv_rows(source: Path) -> tuple[list[dict[str, Any]], Path | None]:
    raw = read_input(source, "customer listing", "one row per customer; see docs/batch.md")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInput(f"{source} is not UTF-8 text; save the listing as UTF-8 CSV") from None
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise BadInput(f"{source} is empty: its first line must name the columns (customer, ticket, "
                       "<vendor>.<field>, …)")
    columns = [c.strip() for c in reader.fieldnames]
    if "customer" not in columns and "name" not in columns:
        raise BadInput(f"{source} has no `customer` column (the customer's name); columns: {', '.join(columns)}")
    rows: list[dict[str, Any]] = []
    for n, raw_row in enumerate(reader, start=2):
        if None in raw_row:
            raise BadInput(f"{source} line {n} has more cells than there are columns")
        row = {(k or "").strip(): (v or "").strip() for k, v in raw_row.items()}
        if not any(row.values()):
            continue
        out: dict[str, Any] = {"_where": f"{source.name} line {n}"}
        for column, cell in row.items():
            if column == "name":
                column = "customer"
            if not cell:
                continue
            if "." in column:
                vendor, _, key = column.partition(".")
                out.setdefault(vendor, {})[key] = _cell(cell, f"{source.name} line {n}, column {column}")
            else:
                out[column] = _cell(cell, f"{source.name} line {n}, column {column}")
        rows.append(out)
    return rows, None


def _cell(cell: str, where: str) -> Any:
    """A cell is text; a list is written as a TOML array, e.g. ["a@x.example", "b@x.example"]."""
    if not cell.startswith("["):
        return cell
    try:
        return tomllib.loads(f"v = {cell}")["v"]
    except tomllib.TOMLDecodeError:
        raise BadInput(f"{where}: {cell!r} starts like a list but is not a TOML array "
                       '(write it as ["a", "b"])') from None


def _typed(model: type[SectionSettings], key: str, value: Any) -> Any:
    """A CSV cell is text: a whole number for a field the vendor's settings hold as one (an organization
    id) is written to the exit's config as a number, as a person would write it."""
    field = model.model_fields.get(key)
    if isinstance(value, str) and field is not None and field.annotation in (int, int | None) \
            and value.isascii() and value.lstrip("-").isdigit():
        return int(value)
    return value


def _toml_rows(source: Path) -> tuple[list[dict[str, Any]], Path | None]:
    raw = read_input(source, "customer listing", "see docs/batch.md")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{source} is not valid TOML: {exc}") from None
    if "customer" in data and "customers" not in data:
        raise BadInput(f"{source} is one exit's config, not a listing: a batch is a folder of exit configs, or a "
                       "listing with template = \"template.toml\" and one [[customers]] table per customer")
    customers = data.pop("customers", None)
    template = data.pop("template", None)
    if data:
        raise BadInput(f"{source}: unknown key {next(iter(data))!r}; a listing holds `template` and [[customers]]")
    if not isinstance(customers, list) or not all(isinstance(c, dict) for c in customers) or not customers:
        raise BadInput(f"{source} lists no customer: add one [[customers]] table per customer")
    if template is not None and not isinstance(template, str):
        raise BadInput(f"{source}: template must be the path of a config file")
    rows = []
    for n, c in enumerate(customers, start=1):
        row = dict(c)
        if "name" in row and "customer" not in row:
            row["customer"] = row.pop("name")
        row["_where"] = f"{source.name} customer {n}"
        rows.append(row)
    return rows, (source.parent / template) if template else None


# -- expansion ----------------------------------------------------------------------------


def _expand(rows: list[dict[str, Any]], template: Path, models: Mapping[str, type[SectionSettings]],
            into: Path) -> list[ExitSpec]:
    raw = read_input(template, "template config", "a whole exit config whose values every customer shares")
    try:
        base = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"template {template} is not valid TOML: {exc}") from None
    signing = base.get("signing")
    if isinstance(signing, dict) and isinstance(signing.get("key_file"), str):
        key = Path(signing["key_file"])
        signing["key_file"] = str(key if key.is_absolute() else (template.parent / key).resolve())
    specs: list[ExitSpec] = []
    seen: dict[str, str] = {}
    for row in rows:
        where = str(row.pop("_where"))
        name = row.pop("customer", None)
        if not isinstance(name, str) or not name.strip():
            raise BadInput(f"{where}: the customer's name is missing")
        slug = slug_of(name)
        if slug in seen:
            raise BadInput(f"{where}: customer {name!r} is listed twice (or shares its short name {slug!r} with "
                           f"{seen[slug]!r}); give each customer one row and a distinct name")
        seen[slug] = name
        data = copy.deepcopy({k: v for k, v in base.items() if k not in models})
        customer = dict(data.get("customer") or {})
        customer["name"] = name.strip()
        for field_name in list(row):
            if field_name in CUSTOMER_FIELDS:
                customer[field_name] = row.pop(field_name)
        data["customer"] = customer
        data["run"] = {**(data.get("run") or {}), "runs_dir": "runs"}
        vendors = {k: row.pop(k) for k in list(row) if k in models}
        if row:
            unknown = next(iter(row))
            raise BadInput(f"{where}: unknown column {unknown!r}; a listing names customer, "
                           f"{', '.join(CUSTOMER_FIELDS[1:])} and <vendor>.<field> for the installed vendors "
                           f"({', '.join(sorted(models))})")
        if not vendors:
            raise BadInput(f"{where}: {name!r} names no vendor; fill at least one <vendor>.<field> cell "
                           f"(e.g. the organization or account id) for {', '.join(sorted(models))}")
        for vendor, fields in vendors.items():
            if not isinstance(fields, dict):
                raise BadInput(f"{where}: {vendor} must be a table of fields")
            data[vendor] = {**(base.get(vendor) or {}), **{k: _typed(models[vendor], k, v) for k, v in fields.items()}}
        path = into / slug / "config.toml"
        atomic_write_text(path, f"# {name}: expanded from {template.name} by `offboard batch plan`; edit the "
                                f"listing or the template, not this file\n" + to_toml(data))
        try:
            cfg = load_config(path, models)
        except BadInput as exc:
            raise BadInput(f"{where} ({name}): {exc}") from None
        specs.append(ExitSpec(slug, cfg))
    return specs


def _refuse_shared_short_names(files: list[Path]) -> None:
    """Each exit of a folder is known by its file's short name (its runs, `batch status`): two files
    that reduce to one (holdout_dental.toml, holdout-dental.toml) would make one customer vanish."""
    seen: dict[str, Path] = {}
    for path in files:
        slug = slug_of(path.stem)
        if slug in seen:
            raise BadInput(f"{seen[slug].name} and {path.name} in {path.parent} share the short name {slug!r}, "
                           "which names each exit's runs and status: rename one of them")
        seen[slug] = path


def _refuse_shared_accounts(specs: list[ExitSpec]) -> None:
    """Two exits of one batch that name one vendor account would exit it twice."""
    owner: dict[str, ExitSpec] = {}
    for spec in specs:
        for vendor, settings in spec.cfg.vendors.items():
            key = f"{vendor} {sorted(settings.exit_identity().items())}"
            other = owner.get(key)
            if other is not None:
                raise BadInput(f"customers {other.cfg.customer.name!r} ({other.cfg.path.name}) and "
                               f"{spec.cfg.customer.name!r} ({spec.cfg.path.name}) both name the same {vendor} "
                               f"account ({', '.join(f'{k} {v}' for k, v in settings.exit_identity().items())}); "
                               "each exit's account must be its own: fix the listing")
            owner[key] = spec


# -- writing TOML (the expanded configs) ---------------------------------------------------


def to_toml(data: Mapping[str, Any]) -> str:
    lines: list[str] = []
    for key, value in data.items():
        if not isinstance(value, dict):
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in data.items():
        if isinstance(value, dict):
            _table(lines, [key], value)
    return "\n".join(lines).lstrip("\n") + "\n"


def _table(lines: list[str], path: list[str], body: Mapping[str, Any]) -> None:
    lines.append("")
    lines.append("[" + ".".join(_key(p) for p in path) + "]")
    for key, value in body.items():
        if not isinstance(value, dict):
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in body.items():
        if isinstance(value, dict):
            _table(lines, [*path, key], value)


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _string(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise BadInput(f"cannot write {type(value).__name__} value {value!r} into a config")


def _string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
