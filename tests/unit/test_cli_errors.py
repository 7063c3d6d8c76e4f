"""Bad input at the CLI: one line on stderr, exit 2, no traceback, nothing done."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_config


def one_line_error(result: Any) -> str:
    assert result.code == 2, (result.out, result.err)
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err + result.out
    return lines[0]


def test_a_missing_config_file(cli: Any, tmp_path: Path) -> None:
    line = one_line_error(cli("plan", "-c", str(tmp_path / "config.toml")))
    assert line.startswith("error: config file") and "config.example.toml" in line


def test_an_unknown_option(cli: Any) -> None:
    line = one_line_error(cli("plan", "--organisation", "42"))
    assert "No such option: --organisation" in line and "offboard plan --help" in line


def test_apply_needs_exactly_one_of_plan_or_resume(cli: Any, tmp_path: Path) -> None:
    write_config(tmp_path)
    line = one_line_error(cli("apply", "-c", str(tmp_path / "config.toml")))
    assert "either a plan file" in line


def test_apply_with_a_plan_file_that_does_not_exist(cli: Any, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    line = one_line_error(cli("apply", str(tmp_path / "nope.json"), "-c", str(config)))
    assert "does not exist" in line


def test_an_empty_override_reason_is_refused(cli: Any, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    line = one_line_error(cli("apply", "x.json", "-c", str(config), "--override-preflight", " "))
    assert "needs a reason" in line


def test_missing_credentials_name_both_ways_to_provide_them(cli: Any, tmp_path: Path) -> None:
    line = one_line_error(cli("plan", "-c", str(write_config(tmp_path))))
    assert "offboard auth set huntress" in line
    assert "OFFBOARD_HUNTRESS_API_KEY and OFFBOARD_HUNTRESS_API_SECRET" in line


def test_resume_of_an_unknown_run(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_KEY", "hk_x")
    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_SECRET", "hs_y")
    line = one_line_error(cli("apply", "--resume", "../../etc", "-c", str(write_config(tmp_path))))
    assert "is not a run id" in line


def test_audit_verify_of_a_missing_file(cli: Any, tmp_path: Path) -> None:
    assert "does not exist" in one_line_error(cli("audit", "verify", str(tmp_path / "audit.jsonl")))


def test_auth_set_without_a_terminal_points_to_environment_variables(cli: Any) -> None:
    line = one_line_error(cli("auth", "set", "huntress"))
    assert "OFFBOARD_HUNTRESS_API_KEY" in line


def test_auth_set_of_an_unknown_vendor(cli: Any) -> None:
    assert "unknown vendor 'acme'" in one_line_error(cli("auth", "set", "acme"))


def test_auth_set_stores_in_the_keyring_and_never_echoes(cli: Any, memory_keyring: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["hk_typed_key", "hs_typed_secret_777"])
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("typer.prompt", lambda *a, **k: next(answers))
    result = cli("auth", "set", "huntress")
    assert result.code == 0, result.err
    assert memory_keyring.store[("offboard:huntress", "api_secret")] == "hs_typed_secret_777"
    assert "hs_typed_secret_777" not in result.out + result.err
    status = cli("auth", "status")
    assert "huntress: keyring has ['api_key', 'api_secret']" in status.out
    assert "hs_typed_secret_777" not in status.out


def test_keyring_credentials_win_over_the_environment(memory_keyring: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from offboard.wire import credentials

    memory_keyring.set_password("offboard:huntress", "api_key", "hk_from_keyring")
    memory_keyring.set_password("offboard:huntress", "api_secret", "hs_from_keyring")
    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_SECRET", "hs_from_env")
    from offboard_huntress import connector

    found = credentials.load("huntress", "Huntress", connector.credential_fields)
    assert found["api_secret"].get_secret_value() == "hs_from_keyring"
    assert "hs_from_keyring" not in repr(found)


def test_help_answers_what_each_command_does(cli: Any) -> None:
    result = cli("--help")
    assert result.code == 0
    for command in ("plan", "apply", "verify", "audit", "auth", "demo"):
        assert command in result.out
    apply_help = cli("apply", "--help").out
    assert "--resume" in apply_help and "--override-preflight" in apply_help


def test_auth_set_on_a_machine_without_a_keyring_says_what_to_do(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from keyring.backends import fail

    keyring.set_keyring(fail.Keyring())
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("typer.prompt", lambda *a, **k: "hs_value_typed")
    line = one_line_error(cli("auth", "set", "huntress"))
    assert "no usable OS keyring" in line and "OFFBOARD_HUNTRESS_*" in line
    assert "OS keyring: not available" in cli("auth", "status").out
