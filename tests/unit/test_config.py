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
     "config: huntress.org_name: Extra inputs are not permitted; remove it or check its spelling"),
    ('[customer]\nname = "A"\n[huntress]\norganization_id = 42\nbase_url = "http://api.huntress.io"\n',
     "config: huntress.base_url: Value error, must be an https:// URL"),
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
     "config: blumira.keep_users: Value error, 'ada' is not an email address"),
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
