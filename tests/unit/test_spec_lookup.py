"""The one place contract tests find the vendors' specs (tests/specs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import specs


def test_the_environment_variable_names_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "huntress-openapi.json").write_text("{}")
    monkeypatch.setenv(specs.ENV, str(tmp_path))
    assert specs.spec_path("huntress-openapi.json") == tmp_path / "huntress-openapi.json"
    assert specs.spec_path("blumira-openapi.json") is None
    assert str(tmp_path) in specs.missing_reason("blumira-openapi.json")


def test_without_it_the_specs_are_read_beside_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(specs.ENV, raising=False)
    assert specs.specs_dir() == specs.REPO.parent / "shared" / "vendor-specs"
    assert (specs.REPO / "pyproject.toml").is_file()


def test_a_missing_spec_skips_unless_specs_are_required(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(specs.ENV, str(tmp_path))  # an empty directory: no spec in it
    monkeypatch.delenv(specs.REQUIRE, raising=False)
    mark = specs.needs_spec("huntress-openapi.json")
    assert mark.args[0] is True and "not found" in mark.kwargs["reason"]
    monkeypatch.setenv(specs.REQUIRE, "1")
    with pytest.raises(pytest.UsageError, match="OFFBOARD_REQUIRE_SPECS is set"):
        specs.needs_spec("huntress-openapi.json")
