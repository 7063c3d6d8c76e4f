"""Config: TOML + OFFBOARD_ env overrides; every bad field is one line naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from offboard.errors import BadInput
from tests.conftest import load, write_config


def test_a_valid_config_loads_with_env_overriding_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path)
    monkeypatch.setenv("OFFBOARD_HUNTRESS__ORGANIZATION_ID", "77")
    monkeypatch.setenv("OFFBOARD_CUSTOMER__NAME", "Acme (renamed)")
    cfg = load(path)
    assert cfg.vendors["huntress"].organization_id == 77  # type: ignore[attr-defined]
    assert cfg.customer.name == "Acme (renamed)"
    assert str(cfg.customer.end_of_service) == "2026-12-31"
    assert cfg.runs_dir == tmp_path / "runs"


@pytest.mark.parametrize(("body", "expected"), [
    ('[customer]\n[huntress]\norganization_id = 42\n',
     "config: customer.name: Field required; set it in the config file or OFFBOARD_CUSTOMER__NAME"),
    ('[customer]\nname = "A"\n[huntress]\norganization_id = "forty-two"\n',
     "config: huntress.organization_id: Input should be a valid integer, unable to parse string as an integer "
     "(got 'forty-two'); set it in the config file or OFFBOARD_HUNTRESS__ORGANIZATION_ID"),
    ('[customer]\nname = "A"\n[huntress]\norganization_id = 42\norg_name = "x"\n',
     "config: huntress.org_name: unknown setting; remove it or check its spelling"),
    ('[customer]\nname = "A"\n[huntress]\norganization_id = 42\nbase_url = "http://api.huntress.io"\n',
     "config: huntress.base_url: must be an https:// URL"),
    ('[customer]\nname = "A"\n[huntress]\norganization_id = 42\nrate_window_seconds = 1\n',
     "rate_window_seconds below 60 is only for the sandbox"),
    ('[customer]\nname = "A"\n[huntress]\norganization_id = 42\nrequests_per_minute = 100\n',
     "config: huntress.requests_per_minute: Input should be less than or equal to 60"),
    ('[customer]\nname = "A"\n[hunters]\norganization_id = 42\n',
     "config: unknown section or key 'hunters'"),
    ('[customer]\nname = "A"\n[blumira]\naccount_id = "x"\naccount_moves_to = "self"\n',
     'account_moves_to = "self" needs new_administrators'),
    ('[customer]\nname = "A"\n[blumira]\naccount_id = "x"\naccount_moves_to = "msp"\n'
     'incoming_msp_contact = "N <n@x.example>"\nend_client_contact = "C <c@x.example>"\ndelete_data = true\n',
     "delete_data must be false when the account moves"),
    ('[customer]\nname = "A"\n[blumira]\naccount_id = "x"\nkeep_users = ["ada"]\n',
     "config: blumira.keep_users: 'ada' is not an email address"),
    ('[customer]\nname = "A"\n[blumira]\naccount_id = "x"\npage_size = 500\n',
     "config: blumira.page_size: Input should be less than or equal to 200"),
    ('[customer]\nname = "A"\n[blumira]\naccount_id = "x"\nrate_window_seconds = 0.1\n',
     "rate_window_seconds below 1 is only for the sandbox"),
    ('[customer]\nname = "A"\n[blumira]\naccount_id = ""\n',
     "config: blumira.account_id: String should have at least 1 character"),
    ('[customer]\nname = "A"\n', "names no vendor: add a section for one of [blumira], [huntress]"),
    ('[customer\nname = "A"\n', "is not valid TOML"),
])
def test_bad_config_is_one_line_naming_the_field(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(body)
    with pytest.raises(BadInput) as info:
        load(path)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_a_missing_config_file_says_how_to_start(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"copy config\.example\.toml"):
        load(tmp_path / "nope.toml")


def test_the_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load(Path(__file__).resolve().parents[2] / "config.example.toml")
    assert cfg.vendors["huntress"].base_url == "https://api.huntress.io"  # type: ignore[attr-defined]
    assert cfg.vendors["blumira"].token_url == "https://auth.blumira.com/oauth/token"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("body", "expected"), [
    # A misspelt key is named with the setting it probably means, not reported as the missing one.
    ('[customer]\nname = "A"\n[huntress]\norganisation_id = 42\n',
     "config: huntress.organisation_id: unknown setting; did you mean organization_id? (see config.example.toml)"),
    ('[customer]\nnmae = "A"\n[huntress]\norganization_id = 42\n',
     "config: customer.nmae: unknown setting; did you mean name?"),
    ('[customer]\nname = "A"\n[runs]\nruns_dir = "x"\n[huntress]\norganization_id = 42\n',
     "config: unknown section or key 'runs'"),
    ('organization_id = 42\n[customer]\nname = "A"\n[huntress]\n', "it belongs inside [huntress]"),
    # Choices in plain words, the wrong item named, the variable that really exists.
    ('[customer]\nname = "A"\n[huntress]\norganization_id = 42\nproducts = ["edr", "xdr"]\n',
     'config: huntress.products: must be "all", or a list of some of "edr", "itdr", "sat", "siem", "psa", "api" '
     "(got 'xdr'); set it in the config file or OFFBOARD_HUNTRESS__PRODUCTS"),
    ('[customer]\nname = "A"\n[huntress]\norganization_id = 42\nproducts = "everything"\n',
     "(got 'everything'); set it in the config file or OFFBOARD_HUNTRESS__PRODUCTS"),
    ('[customer]\nname = "A"\n[blumira]\naccount_id = "x"\naccount_moves_to = "yes"\n',
     'config: blumira.account_moves_to: must be one of "no", "self", "msp", "unknown" (got \'yes\')'),
    # Yes/no settings are true or false, never a guess.
    ('[customer]\nname = "A"\n[huntress]\norganization_id = 42\ndelete_organization = "yes"\n',
     "config: huntress.delete_organization: must be true or false (got 'yes'); set it in the config file or "
     "OFFBOARD_HUNTRESS__DELETE_ORGANIZATION"),
    ('[customer]\nname = "A"\n[huntress]\norganization_id = 42\ndelete_organization = 1\n',
     "config: huntress.delete_organization: must be true or false (got 1)"),
    ('[customer]\nname = "A"\n[blumira]\naccount_id = "x"\ndelete_data = "on"\n',
     "config: blumira.delete_data: must be true or false (got 'on')"),
    # A rule across settings names its section, and no variable that does not exist.
    ('[customer]\nname = "A"\n[huntress]\norganization_id = 42\nstop_renewing_subscriptions = [1]\n',
     "config: [huntress]: stop_renewing_subscriptions needs account_id"),
])
def test_config_errors_a_person_can_act_on(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(body)
    with pytest.raises(BadInput) as info:
        load(path)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message and "literal[" not in message.lower() and "Input should" not in message
    assert "(and " not in message  # one mistake is reported once, not once per union branch
    assert "OFFBOARD_HUNTRESS__." not in message and not message.endswith("__")


def test_environment_values_are_held_to_the_same_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path)
    monkeypatch.setenv("OFFBOARD_HUNTRESS__DELETE_ORGANIZATION", "yes")
    with pytest.raises(BadInput, match=r"must be true or false \(got 'yes'\); the value comes from the "
                                       r"environment variable OFFBOARD_HUNTRESS__DELETE_ORGANIZATION"):
        load(path)
    monkeypatch.setenv("OFFBOARD_HUNTRESS__DELETE_ORGANIZATION", "false")
    assert load(path).vendors["huntress"].delete_organization is False  # type: ignore[attr-defined]
    monkeypatch.setenv("OFFBOARD_HUNTRESS__PRODUCTS", "edr")
    with pytest.raises(BadInput, match=r"a list is written there as JSON"):
        load(path)
    monkeypatch.setenv("OFFBOARD_HUNTRESS__PRODUCTS", '["edr"]')
    assert load(path).vendors["huntress"].products == ["edr"]  # type: ignore[attr-defined]


def test_a_misspelt_environment_variable_is_refused_not_ignored(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path)
    monkeypatch.setenv("OFFBOARD_HUNTRESS__ORGANISATION_ID", "4711")
    with pytest.raises(BadInput) as info:
        load(path)
    assert str(info.value) == ("config: environment variable OFFBOARD_HUNTRESS__ORGANISATION_ID names no setting "
                               "of [huntress]; did you mean OFFBOARD_HUNTRESS__ORGANIZATION_ID? Unset it or "
                               "correct its name")
    assert "4711" not in str(info.value)
    monkeypatch.delenv("OFFBOARD_HUNTRESS__ORGANISATION_ID")
    monkeypatch.setenv("OFFBOARD_CUSTOMER__NAMME", "x")
    with pytest.raises(BadInput, match="did you mean OFFBOARD_CUSTOMER__NAME"):
        load(path)
