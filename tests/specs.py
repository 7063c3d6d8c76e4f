"""Where the vendors' published specs are, for contract tests and the sandboxes' reply checks.

The specs are reference data owned by the vendors and are never copied into this repository.
They are looked up, in this order:

1. ``OFFBOARD_VENDOR_SPECS``: a directory holding them (e.g. ``huntress-openapi.json``);
2. ``../shared/vendor-specs/`` beside the repository root (where CI and the developers' machines
   keep them).

The vendor notes (rebuilt from a vendor's docs where no spec file exists, e.g. Blumira's) sit
beside the specs, as ``vendor-specs/SOURCES.md`` says: in ``vendor-notes/`` next to the specs
directory (so ``OFFBOARD_VENDOR_SPECS`` names where both are; there is no second variable).

A test that needs a spec or a notes file is skipped when it is not found, saying where it looked,
except when ``OFFBOARD_REQUIRE_SPECS`` is set, where a missing one fails the run (at collection):
`.ci/run` sets it when the specs are beside the clone, so a skip there cannot hide a broken
lookup (and a clone with no specs anywhere still runs the rest).
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ENV = "OFFBOARD_VENDOR_SPECS"
REQUIRE = "OFFBOARD_REQUIRE_SPECS"
REPO = Path(__file__).resolve().parents[1]
BESIDE_REPO = REPO.parent / "shared" / "vendor-specs"


def specs_dir() -> Path:
    """The directory specs are read from (it may not exist)."""
    configured = os.environ.get(ENV, "").strip()
    return Path(configured).expanduser() if configured else BESIDE_REPO


def spec_path(name: str) -> Path | None:
    """The spec file ``name`` (e.g. "huntress-openapi.json"), or None when it is not there."""
    path = specs_dir() / name
    return path if path.is_file() else None


def missing_reason(name: str) -> str:
    where = specs_dir()
    how = f"${ENV}" if os.environ.get(ENV, "").strip() else f"../shared/vendor-specs (set {ENV} to a directory)"
    return f"vendor spec {name} not found in {where} ({how})"


def needs_spec(name: str) -> pytest.MarkDecorator:
    """Mark a test (or a module, as ``pytestmark``) that reads the spec ``name``."""
    return _needs(spec_path(name), missing_reason(name))


def notes_dir() -> Path:
    """The directory vendor notes are read from: ``vendor-notes`` beside the specs directory."""
    return specs_dir().resolve().parent / "vendor-notes"


def notes_path(name: str) -> Path | None:
    """The vendor notes file ``name`` (e.g. "blumira-api.md"), or None when it is not there."""
    path = notes_dir() / name
    return path if path.is_file() else None


def notes_missing_reason(name: str) -> str:
    how = f"beside ${ENV}" if os.environ.get(ENV, "").strip() else f"beside ../shared/vendor-specs (set {ENV})"
    return f"vendor notes {name} not found in {notes_dir()} ({how})"


def needs_notes(name: str) -> pytest.MarkDecorator:
    """Mark a test (or a module, as ``pytestmark``) that reads the vendor notes ``name``."""
    return _needs(notes_path(name), notes_missing_reason(name))


def _needs(found: Path | None, reason: str) -> pytest.MarkDecorator:
    if found is None and os.environ.get(REQUIRE):
        raise pytest.UsageError(f"{reason}; {REQUIRE} is set: the contract tests must run")
    return pytest.mark.skipif(found is None, reason=reason)


@cache
def load_spec(name: str) -> dict[str, Any]:
    path = spec_path(name)
    if path is None:
        pytest.skip(missing_reason(name), allow_module_level=True)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path} is not a JSON object"
    return data
