"""The [psa] section, PSA credentials, and the commands that use them: one line of bad input (exit 2)
for each mistake, credentials from the keyring or OFFBOARD_PSA_*, and `plan -o` / `apply` telling what
reached the ticket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from offboard import engine
from offboard.connectors.sandboxing import serve
from offboard.errors import BadInput
from offboard_halopsa import sandbox as halo
from offboard_huntress.sandbox import HuntressSandbox
from tests.conftest import FAST, load, write_config

HALO = ('[psa]\nkind = "halopsa"\nticket_id = "4711"\nbase_url = "http://127.0.0.1:9/api"\n'
        'auth_url = "http://127.0.0.1:9/auth"\n')


def config(tmp_path: Path, psa: str) -> Path:
    path = write_config(tmp_path)
    path.write_text(path.read_text() + "\n" + psa)
    return path


@pytest.mark.parametrize(("section", "message"), [
    ('[psa]\nticket_id = "4711"\n', "psa.kind is missing"),
    ('[psa]\nkind = "zendesk"\nticket_id = "1"\n', "'zendesk' is not an installed PSA connector (autotask, "
                                                   "connectwise, halopsa)"),
    (HALO.replace('"4711"', '"PSA-4711"'), "psa.ticket_id: a HaloPSA ticket id is a number"),
    (HALO.replace("http://127.0.0.1:9/api", "http://halo.example/api"), "must be an https:// URL"),
    (HALO + 'client_secret = "s3cr3t-value"\n', "psa.client_secret looks like a credential"),
    (HALO + "colour = 3\n", "psa.colour: unknown setting"),
    ('[psa]\nkind = "autotask"\nticket_id = "T20261124.0001"\nbase_url = "https://webservices5.autotask.net/ats"\n',
     "not its number T2026"),
])
def test_a_bad_psa_section_is_one_line_naming_the_field(tmp_path: Path, section: str, message: str) -> None:
    with pytest.raises(BadInput, match=None) as err:
        load(config(tmp_path, section))
    assert message in str(err.value)
    assert "s3cr3t-value" not in str(err.value)
    assert "\n" not in str(err.value)


def test_a_credential_in_psa_points_to_auth_set_psa(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as err:
        load(config(tmp_path, HALO + 'client_secret = "x"\n'))
    assert "`offboard auth set psa`" in str(err.value) and "OFFBOARD_PSA_*" in str(err.value)


def test_the_customer_ticket_is_the_psa_ticket_when_psa_names_none(tmp_path: Path) -> None:
    path = config(tmp_path, HALO.replace('ticket_id = "4711"\n', ""))
    path.write_text(path.read_text().replace('ticket = "PSA-4711"', 'ticket = "4711"'))
    cfg = load(path)
    assert cfg.psa is not None and getattr(cfg.psa, "ticket_id", None) == "4711"


def test_a_plan_belongs_to_its_ticket(tmp_path: Path) -> None:
    without = load(write_config(tmp_path))
    (tmp_path / "with").mkdir()
    with_psa = load(config(tmp_path / "with", HALO))
    other = load(config(tmp_path / "with", HALO.replace("4711", "4712")))
    assert len({without.fingerprint(), with_psa.fingerprint(), other.fingerprint()}) == 3


def test_psa_credentials_come_from_the_environment_or_say_where_to_put_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load(config(tmp_path, HALO))
    huntress = {"huntress": {}}  # never reached: the PSA's credentials are looked up first
    with pytest.raises(BadInput) as err, engine.open_sessions(cfg, creds=huntress):
        pass
    assert str(err.value) == ("no HaloPSA credentials (client_id, client_secret missing): run `offboard auth set psa` "
                              "or set OFFBOARD_PSA_CLIENT_ID and OFFBOARD_PSA_CLIENT_SECRET")
    monkeypatch.setenv("OFFBOARD_PSA_CLIENT_ID", halo.DEMO_CLIENT_ID)
    monkeypatch.setenv("OFFBOARD_PSA_CLIENT_SECRET", halo.DEMO_SECRET)
    from tests.conftest import DEMO_CREDS

    with engine.open_sessions(cfg, creds={"huntress": DEMO_CREDS["huntress"]}) as s:
        assert s.ticket is not None and s.ticket.ref == "HaloPSA ticket 4711"


def test_auth_set_psa_names_the_psa_variables_and_auth_status_lists_them(cli: Any, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = config(tmp_path, HALO)
    result = cli("auth", "set", "psa", "-c", str(path))
    assert result.code == 2
    assert "OFFBOARD_PSA_CLIENT_ID and OFFBOARD_PSA_CLIENT_SECRET" in result.err
    result = cli("auth", "set", "psa", "--kind", "connectwise")
    assert result.code == 2 and "OFFBOARD_PSA_PUBLIC_KEY" in result.err
    result = cli("auth", "set", "psa", "-c", str(tmp_path / "none.toml"))
    assert result.code == 2 and "offboard auth set psa --kind KIND (autotask, connectwise, halopsa)" in result.err
    monkeypatch.setenv("OFFBOARD_PSA_USERNAME", "api@msp.example")
    status = cli("auth", "status")
    assert "psa (autotask): keyring has nothing; environment has ['username']" in status.out
    assert "psa (halopsa): keyring has nothing; environment has nothing" in status.out


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, halo.HaloSandbox]]:
    hunt = HuntressSandbox(time_scale=FAST, customer_agents=3, neighbour_agents=1)
    sb = halo.HaloSandbox(time_scale=FAST)
    with serve(hunt.app) as h_url, serve(sb.app) as p_url:
        path = write_config(tmp_path, h_url, extra='products = ["edr"]\n')
        path.write_text(path.read_text() + "\n" + HALO.replace("http://127.0.0.1:9", p_url)
                        + f"rate_window_seconds = {300 * FAST}\n")
        from offboard_huntress.sandbox import DEMO_KEY, DEMO_SECRET

        for var, value in (("OFFBOARD_HUNTRESS_API_KEY", DEMO_KEY), ("OFFBOARD_HUNTRESS_API_SECRET", DEMO_SECRET),
                           ("OFFBOARD_PSA_CLIENT_ID", halo.DEMO_CLIENT_ID),
                           ("OFFBOARD_PSA_CLIENT_SECRET", halo.DEMO_SECRET)):
            monkeypatch.setenv(var, value)
        yield path, sb


def test_plan_o_records_the_scope_and_apply_says_what_reached_the_ticket(
        cli: Any, served: tuple[Path, halo.HaloSandbox]) -> None:
    path, sb = served
    plan_file = path.parent / "exit.plan.json"
    planned = cli("plan", "-c", str(path), "-o", str(plan_file))
    assert planned.code in (0, 10), planned.err  # 10 "has removals" here; 0 once plan exits 0 by convention
    assert "HaloPSA ticket 4711 now holds the exit scope and the plan summary (note 90002)." in planned.out
    again = cli("plan", "-c", str(path), "-o", str(plan_file))
    assert "HaloPSA ticket 4711 already holds the exit scope" in again.out  # the same scope: not posted twice
    applied = cli("apply", str(plan_file), "-c", str(path), "--unattended", "--override-preflight", "test")
    assert applied.code == 3, applied.err
    assert "HaloPSA ticket 4711: 3 note(s) or file(s) posted, 1 already there (not posted again)." in applied.out
    # The ticket's own, scope, start, Huntress done, checklist; and apply's claim of the exit and its release
    # (HaloPSA documents no edit of an action: released by a note of its own).
    assert len(sb.ticket_actions()) == 7
    assert sum("offboard-claim" in str(a.get("note_html")) for a in sb.ticket_actions()) == 2


def test_plan_o_with_the_psa_down_saves_the_plan_and_says_apply_tries_again(
        cli: Any, served: tuple[Path, halo.HaloSandbox]) -> None:
    path, sb = served
    sb.faults.append(halo.Fault(status=503, times=10**6))
    plan_file = path.parent / "exit.plan.json"
    planned = cli("plan", "-c", str(path), "-o", str(plan_file))
    assert planned.code in (0, 10) and plan_file.exists()  # the ticket never fails the plan
    assert "HaloPSA ticket 4711: the exit scope was not recorded" in planned.out
    assert "apply tries again" in planned.out


def test_the_claims_floor_applies_exactly_where_renewal_posts_a_new_note(tmp_path: Path) -> None:
    from offboard.connectors.psa import NoteEditor
    from offboard_autotask.session import AutotaskTicketSession
    from offboard_autotask.settings import AutotaskSettings
    from offboard_connectwise.session import ConnectWiseTicketSession
    from offboard_connectwise.settings import ConnectWiseSettings
    from offboard_halopsa.session import HaloTicketSession
    from offboard_halopsa.settings import HaloSettings
    for settings, session in ((AutotaskSettings, AutotaskTicketSession), (HaloSettings, HaloTicketSession),
                              (ConnectWiseSettings, ConnectWiseTicketSession)):
        assert settings.claim_renewed_by_new_note is not issubclass(session, NoteEditor), settings.__name__
    with pytest.raises(BadInput) as err:
        load(config(tmp_path, HALO + "claim_minutes = 1\n"))
    assert "psa.claim_minutes: at least 10 with this PSA" in str(err.value) and "\n" not in str(err.value)
