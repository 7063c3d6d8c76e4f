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


def test_a_config_path_one_slip_from_an_existing_one_is_suggested(cli: Any, tmp_path: Path) -> None:
    """A typo in the file's name, or in its folder's: the line names the file meant, not advice to
    create a new config under the mistyped name."""
    (tmp_path / "rehearsal").mkdir()
    config = write_config(tmp_path / "rehearsal")
    line = one_line_error(cli("plan", "-c", str(tmp_path / "rehearsal" / "confg.toml")))
    assert line == f"error: config file {tmp_path}/rehearsal/confg.toml does not exist; did you mean {config}?"
    line = one_line_error(cli("plan", "-c", str(tmp_path / "rehersal" / "config.toml")))
    assert line.endswith(f"does not exist; did you mean {config}?"), line
    line = one_line_error(cli("plan", "-c", str(tmp_path / "rehearsal" / "other.toml")))  # nothing near it
    assert "did you mean" not in line and "copy config.example.toml" in line


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


QUIET_COMMANDS = [("plan",), ("apply",), ("verify",), ("confirm",), ("status",), ("bundle",), ("watch",),
                  ("audit", "verify"), ("keys", "init"), ("keys", "export"), ("batch", "plan"), ("batch", "apply"),
                  ("batch", "status"), ("batch", "verify"), ("batch", "confirm"), ("batch", "watch"),
                  ("batch", "bundle")]


@pytest.mark.parametrize("command", QUIET_COMMANDS, ids=" ".join)
def test_quiet_is_taken_after_the_command_too(cli: Any, command: tuple[str, ...]) -> None:
    """`offboard apply … -q` as `offboard -q apply …` (issue 22): the help says what it keeps."""
    helptext = " ".join(cli(*command, "--help").out.split())
    assert "-q, --quiet Print only errors and warnings" in helptext, helptext


def test_auth_set_on_a_machine_without_a_keyring_says_what_to_do(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from keyring.backends import fail

    keyring.set_keyring(fail.Keyring())
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("typer.prompt", lambda *a, **k: "hs_value_typed")
    line = one_line_error(cli("auth", "set", "huntress"))
    assert "no usable OS keyring" in line and "OFFBOARD_HUNTRESS_*" in line
    assert "OS keyring: not available" in cli("auth", "status").out


CONFIG_SECRET = "hs_config_canary_7d1e90"


@pytest.mark.parametrize(("section", "expected"), [
    ('[huntress]\norganization_id = 42\napi_secret = "{v}"\n', "huntress.api_secret"),
    ('[huntress]\norganization_id = 42\napi_key = "{v}"\n', "huntress.api_key"),
    ('[huntress]\norganization_id = 42\nPassword = "{v}"\n', "huntress.Password"),
    ('[huntress]\norganization_id = 42\n[huntress.auth]\ntoken = "{v}"\n', "huntress.auth"),
    ('[blumira]\naccount_id = "x"\nclient_secret = "{v}"\n', "blumira.client_secret"),
    ('[blumira]\naccount_id = "x"\nclient_id = "{v}"\n', "blumira.client_id"),
    ('[blumira]\naccount_id = "x"\naccess-token = "{v}"\n', "blumira.access-token"),
])
def test_a_credential_in_the_config_file_is_refused_and_never_echoed(
        cli: Any, tmp_path: Path, section: str, expected: str, caplog: pytest.LogCaptureFixture) -> None:
    vendor = expected.split(".")[0]
    config = tmp_path / "config.toml"
    config.write_text('[customer]\nname = "Acme Dental"\n\n[run]\nruns_dir = "runs"\n\n'
                      + section.format(v=CONFIG_SECRET))
    result = cli("plan", "-c", str(config))
    line = one_line_error(result)
    assert f"config: {expected} looks like a credential" in line
    assert f"`offboard auth set {vendor}`" in line and f"OFFBOARD_{vendor.upper()}_*" in line
    assert CONFIG_SECRET not in result.out + result.err + caplog.text
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != config]
    assert not any(CONFIG_SECRET in p.read_text(errors="replace") for p in written)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("body", [
    'api_secret = "{v}"\n[customer]\nname = "A"\n[huntress]\norganization_id = 42\n',  # top level
    '[customer]\nname = "A"\npassword = "{v}"\n[huntress]\norganization_id = 42\n',  # a core section
    '[customer]\nname = "A"\n[huntress]\norganization_id = 42\norg_name = "{v}"\n',  # any unknown key
])
def test_no_value_of_an_unknown_config_key_is_echoed(cli: Any, tmp_path: Path, body: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(body.format(v=CONFIG_SECRET))
    result = cli("plan", "-c", str(config))
    line = one_line_error(result)
    assert line.startswith("error: config: ")
    assert CONFIG_SECRET not in result.out + result.err


def test_a_signing_key_pasted_into_the_config_points_to_keys_init(cli: Any, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[customer]\nname = "A"\n[signing]\nprivate_key = "{CONFIG_SECRET}"\n'
                      '[huntress]\norganization_id = 42\n')
    result = cli("plan", "-c", str(config))
    line = one_line_error(result)
    assert "signing.private_key looks like a credential" in line and "`offboard keys init`" in line
    assert CONFIG_SECRET not in result.out + result.err
