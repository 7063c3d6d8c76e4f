"""The [blumira] section refuses a notification Blumira's document would not accept, through
the CLI a technician runs: one line, exit 2, the field and the fix named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import blumira_section, write_config

MOVING_TO_MSP = 'account_moves_to = "msp"\nincoming_msp_contact = "Nia <nia@next-msp.example>"\n'


def error_line(result: Any) -> str:
    assert result.code == 2, (result.out, result.err)
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.err + result.out, result.err
    return lines[0]


def test_a_move_to_another_msp_without_the_end_clients_contact_is_refused_before_anything_is_read(
        cli: Any, tmp_path: Path) -> None:
    # The document: "CC an admin from the incoming MSP and someone from the end client".
    config = write_config(tmp_path, huntress=False, blumira=blumira_section(extra=MOVING_TO_MSP))
    line = error_line(cli("plan", "-c", str(config)))
    assert "blumira.end_client_contact" in line
    assert 'account_moves_to = "msp"' in line and "someone at the customer" in line
    assert "OFFBOARD_BLUMIRA__END_CLIENT_CONTACT" in line  # how to fix it, besides the file


def test_with_the_end_clients_contact_the_config_is_accepted(cli: Any, tmp_path: Path) -> None:
    extra = MOVING_TO_MSP + 'end_client_contact = "Ada <it-admin@acme.example>"\n'
    config = write_config(tmp_path, huntress=False, blumira=blumira_section(extra=extra))
    line = error_line(cli("plan", "-c", str(config)))
    assert "config:" not in line and "offboard auth set blumira" in line  # past the config: now credentials
