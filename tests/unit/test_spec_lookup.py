"""The one place contract tests find the vendors' specs (tests/specs.py)."""

from __future__ import annotations

import os
import subprocess
import sys
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


def test_the_vendor_notes_are_found_beside_the_specs_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    (tmp_path / "vendor-specs").mkdir()
    (tmp_path / "vendor-notes").mkdir()
    (tmp_path / "vendor-notes" / "blumira-api.md").write_text("# notes")
    monkeypatch.setenv(specs.ENV, str(tmp_path / "vendor-specs"))
    assert specs.notes_path("blumira-api.md") == tmp_path / "vendor-notes" / "blumira-api.md"
    assert specs.notes_path("psa-apis.md") is None
    monkeypatch.delenv(specs.ENV)
    assert specs.notes_dir() == (specs.REPO.parent / "shared" / "vendor-notes").resolve()


# Every module that reads a spec or the notes (besides the Huntress spec every test's sandbox needs).
DEPENDENT = ["tests/contract/test_blumira_notes.py", "tests/contract/test_blumira_operations.py",
             "tests/contract/test_halopsa_spec.py"]
HUNTRESS = ["tests/contract/test_huntress_spec.py", "tests/contract/test_huntress_reads_the_spec.py",
            "tests/contract/test_huntress_sandbox_replies.py"]


def pytest_in_a_subprocess(modules: list[str], env: dict[str, str], cache: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in (specs.ENV, specs.REQUIRE, "PYTEST_ADDOPTS")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *modules],
                          cwd=specs.REPO, env={**clean, "XDG_CACHE_HOME": str(cache), **env},
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A specs directory with nothing in it, and an empty vendor-notes/ beside it."""
    bogus = tmp_path / "elsewhere" / "vendor-specs"
    bogus.mkdir(parents=True)
    (bogus.parent / "vendor-notes").mkdir()
    return bogus


@pytest.mark.skipif(specs.spec_path("huntress-openapi.json") is None, reason="needs the Huntress spec to lend")
def test_with_specs_required_each_module_whose_spec_or_notes_are_missing_fails_and_never_skips(
        elsewhere: Path, tmp_path: Path) -> None:
    # The Huntress spec is there (tests/conftest.py needs it for every test): what fails is each
    # module's own lookup of its spec or notes, named in its own collection error.
    (elsewhere / "huntress-openapi.json").symlink_to(specs.spec_path("huntress-openapi.json"))  # type: ignore[arg-type]
    required = pytest_in_a_subprocess(DEPENDENT, {specs.ENV: str(elsewhere), specs.REQUIRE: "1"}, tmp_path / "c1")
    out = required.stdout + required.stderr
    assert required.returncode != 0 and "skipped" not in out, out[-3000:]
    for module in DEPENDENT:
        assert f"ERROR collecting {module}" in out, out[-3000:]
    assert out.count(f"{specs.REQUIRE} is set") >= len(DEPENDENT)
    assert f"halopsa-openapi.json not found in {elsewhere}" in out
    assert f"blumira-api.md not found in {elsewhere.parent / 'vendor-notes'}" in out

    relaxed = pytest_in_a_subprocess(DEPENDENT, {specs.ENV: str(elsewhere)}, tmp_path / "c2")  # the control
    assert relaxed.returncode == 0 and "passed" not in relaxed.stdout, relaxed.stdout[-3000:]
    for module in DEPENDENT:  # each of them skipped, saying where it looked
        assert "SKIPPED [" in relaxed.stdout and f"{module}:" in relaxed.stdout, relaxed.stdout[-3000:]


def test_with_specs_required_and_no_huntress_spec_the_huntress_modules_fail(elsewhere: Path, tmp_path: Path) -> None:
    required = pytest_in_a_subprocess(HUNTRESS, {specs.ENV: str(elsewhere), specs.REQUIRE: "1"}, tmp_path / "c")
    out = required.stdout + required.stderr
    assert required.returncode != 0 and "skipped" not in out and "passed" not in out, out[-3000:]
    assert f"huntress-openapi.json not found in {elsewhere}" in out and f"{specs.REQUIRE} is set" in out
