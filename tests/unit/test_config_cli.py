"""Config errors a person can act on (issue 15, friction 7), as `offboard plan` shows them: one line,
exit 2, the key named with a suggestion, choices in plain words, a variable that exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_config


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    # Were a bad value accepted, plan would go on to a vendor that is not there: fail fast.
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_KEY", "hk_test")
    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_SECRET", "hs_test")


def refused(cli: Any, config: Path) -> str:
    result = cli("plan", "-c", str(config))
    assert result.code == 2, result.err
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    assert "Input should" not in lines[0] and "literal[" not in lines[0].lower() and "Value error" not in lines[0]
    return lines[0]


def test_a_misspelt_key_is_named_with_what_it_probably_means(cli: Any, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[customer]\nname = "Acme"\n[huntress]\norganisation_id = 42\n')
    line = refused(cli, config)
    assert line == ("error: config: huntress.organisation_id: unknown setting; did you mean organization_id? "
                    "(see config.example.toml)")


def test_a_bad_product_lists_the_allowed_values_and_a_variable_that_exists(cli: Any, tmp_path: Path) -> None:
    config = write_config(tmp_path, extra='products = ["edr", "xdr"]\n')
    line = refused(cli, config)
    assert 'must be "all", or a list of some of "edr", "itdr", "sat", "siem", "psa", "api" (got \'xdr\')' in line
    assert line.endswith("set it in the config file or OFFBOARD_HUNTRESS__PRODUCTS")


def test_yes_is_not_true(cli: Any, tmp_path: Path) -> None:
    config = write_config(tmp_path, extra='delete_organization = "yes"\n')
    line = refused(cli, config)
    assert "huntress.delete_organization: must be true or false (got 'yes')" in line
