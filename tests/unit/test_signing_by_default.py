"""Signing on by default for real exits (issue 15, friction 6): the example config has a [signing]
section, the docs' exit steps start with `offboard keys init`, `keys export` finds a key made with
`keys init --key-file`, and no hint prints a placeholder for a run id it knows. (`apply` warning about
an unsigned run and `--require-signature` refusing it: tests/connectors/test_gates_before_run.py.)"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult, write_config

ROOT = Path(__file__).resolve().parents[2]


def test_keys_export_finds_a_key_made_with_keys_init_key_file_by_option_or_config(
        cli: Callable[..., CliResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli("keys", "init", "--key-file", "keys/msp.pem", "-o", "msp.pub").code == 0
    public = (tmp_path / "msp.pub").read_bytes()

    lost = cli("keys", "export", "-o", "lost.pub")  # no config here, nothing in the keyring
    assert lost.code == 2 and len(lost.err.strip().splitlines()) == 1
    assert "pass --key-file PATH" in lost.err and "config.toml does not exist" in lost.err

    by_option = cli("keys", "export", "--key-file", "keys/msp.pem", "-o", "by-option.pub")
    assert by_option.code == 0, by_option.err
    assert (tmp_path / "by-option.pub").read_bytes() == public

    config = write_config(tmp_path)
    config.write_text(config.read_text() + '\n[signing]\nkey_file = "keys/msp.pem"\n')
    by_config = cli("keys", "export", "-c", str(config), "-o", "by-config.pub")
    assert by_config.code == 0, by_config.err
    assert (tmp_path / "by-config.pub").read_bytes() == public


def test_the_example_config_has_a_signing_section_that_loads_as_it_is() -> None:
    text = (ROOT / "config.example.toml").read_text()
    assert "signing" in tomllib.loads(text)
    assert "offboard keys init" in text and '# key_file = "' in text


def test_the_docs_exit_steps_start_with_keys_init() -> None:
    section = (ROOT / "docs" / "huntress.md").read_text()
    first = re.search(r"^\s*\d+\. (.*)$", section, re.MULTILINE)
    assert first is not None and "`offboard keys init`" in first.group(1)
