"""The architecture in ARCHITECTURE.md, checked: import-linter's contracts in pyproject.toml
(layers, a vendor-free core, plugins that stay plugins, no cycles), and what a command loads."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]


def _lint(config: Path, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.chdir(cwd)
    return lint_imports(config_filename=str(config), no_cache=True, no_logo=True)


def test_the_project_keeps_its_import_contracts(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code = _lint(ROOT / "pyproject.toml", ROOT, monkeypatch)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "5 kept, 0 broken" in out


def test_the_cycle_contract_catches_two_modules_importing_each_other(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # The same contract type as the project's, on a package with the cycle report.py and
    # report_html.py once had: it must break, or the project's contract proves nothing.
    pkg = tmp_path / "cyclic"
    (pkg / "proof").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "proof" / "__init__.py").write_text("")
    (pkg / "proof" / "report.py").write_text("from cyclic.proof import report_html\n")
    (pkg / "proof" / "report_html.py").write_text("from cyclic.proof import report\n")
    config = tmp_path / "contracts.toml"
    config.write_text(textwrap.dedent("""
        [tool.importlinter]
        root_packages = ["cyclic"]
        [[tool.importlinter.contracts]]
        name = "no cycles"
        type = "acyclic_siblings"
        ancestors = ["cyclic"]
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _lint(config, tmp_path, monkeypatch) == 1
    assert "BROKEN" in capsys.readouterr().out


def test_a_command_loads_no_sandbox_and_probes_only_this_platforms_keyring() -> None:
    # What `offboard plan` loads before its first vendor call: the CLI, every connector, the keyring.
    probe = textwrap.dedent("""
        import sys
        import offboard.cli.app
        from offboard.connectors import installed, psa
        from offboard.wire import credentials
        installed()
        psa.installed()
        credentials.ring()
        loaded = [m for m in sys.modules if m.split(".")[0] in ("starlette", "uvicorn", "anyio")
                  or m.startswith(("offboard_huntress.sandbox", "offboard_blumira.sandbox",
                                   "offboard_halopsa.sandbox", "offboard_connectwise.sandbox",
                                   "offboard_autotask.sandbox", "offboard.connectors.sandboxing"))]
        other = {"linux": ("macOS", "Windows"), "darwin": ("Windows", "SecretService", "kwallet", "libsecret"),
                 "win32": ("macOS", "SecretService", "kwallet", "libsecret")}.get(sys.platform, ("macOS", "Windows"))
        loaded += [m for m in sys.modules if m.startswith("keyring.backends.") and m.split(".")[2] in other]
        print(sorted(loaded))
    """)
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}  # no PYTHON_KEYRING_BACKEND: the default choice
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"


def test_the_core_names_no_vendor() -> None:
    """The core is vendor-neutral (ARCHITECTURE.md): no vendor's name in src/offboard, code or comment;
    a vendor's knowledge lives in its connector package. (Two slipped into comments unnoticed.)"""
    names = re.compile(r"huntress|blumira|connectwise|autotask|halo", re.IGNORECASE)
    core = Path(__file__).resolve().parents[2] / "src" / "offboard"
    found = [f"{p.relative_to(core)}:{n}" for p in sorted(core.rglob("*.py"))
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if names.search(line)]
    assert found == []
