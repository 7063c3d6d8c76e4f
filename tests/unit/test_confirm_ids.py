"""`offboard confirm` given a word that several item ids end with: every one is suggested."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from offboard.engine.confirm import manual_item_id
from offboard.errors import BadInput

IDS = ("blumira.sensors.remove", "blumira.cloud-connectors.remove", "blumira.users.remove", "huntress.psa.webhooks")
PLAN = SimpleNamespace(actions=lambda: [SimpleNamespace(id=i, manual=object()) for i in IDS])
CFG = SimpleNamespace(path="exit.toml")


def refusal(given: str) -> str:
    with pytest.raises(BadInput) as refused:
        manual_item_id(PLAN, given, "run-1", CFG)  # type: ignore[arg-type]
    return str(refused.value)


def test_a_last_word_several_items_share_suggests_them_all() -> None:
    assert refusal("remove") == (
        "'remove' is not a manual item of run run-1; did you mean blumira.sensors.remove, "
        "blumira.cloud-connectors.remove or blumira.users.remove? "
        "its manual items are listed by: offboard status --pending --run run-1 -c exit.toml")


def test_an_id_without_its_vendor_is_taken_and_a_typo_gets_the_nearest() -> None:
    assert manual_item_id(PLAN, "psa.webhooks", "run-1", CFG) == "huntress.psa.webhooks"  # type: ignore[arg-type]
    assert "did you mean blumira.users.remove? " in refusal("blumira.usrs.remove")
    assert "did you mean" not in refusal("zzz")
