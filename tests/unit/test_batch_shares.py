"""The batch plan's per-exit time is its share of its busiest account's wall time, so the exits of
one account add up to that account's figure (the reviewer saw one exit "1 min 49 s" beside its only
account's "1 min 30 s")."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from offboard.batch.planfile import AccountLoad, Estimate, VendorLoad, share_of_account_time


def exit_with(*loads: VendorLoad) -> object:
    return SimpleNamespace(estimate=Estimate(removals=0, exports=0, manual=0, gates=0, loads=loads))


def test_an_exit_alone_in_its_account_takes_the_accounts_time_and_shares_add_up() -> None:
    acct = AccountLoad(vendor="h", account="a", exits=2, calls=150, limit=60, window_seconds=60)
    alone = AccountLoad(vendor="h", account="a", exits=1, calls=150, limit=60, window_seconds=60)
    only = exit_with(VendorLoad(vendor="h", account="a", calls=150, limit=60, window_seconds=60))
    assert share_of_account_time(only, (alone,)) == pytest.approx(alone.seconds_at_ceiling)  # type: ignore[arg-type]
    one = exit_with(VendorLoad(vendor="h", account="a", calls=100, limit=60, window_seconds=60))
    two = exit_with(VendorLoad(vendor="h", account="a", calls=50, limit=60, window_seconds=60),
                    VendorLoad(vendor="b", account="x", calls=5, limit=10, window_seconds=1))
    other = AccountLoad(vendor="b", account="x", exits=1, calls=5, limit=10, window_seconds=1)
    shares = [share_of_account_time(e, (acct, other)) for e in (one, two)]  # type: ignore[arg-type]
    assert sum(shares) == pytest.approx(acct.seconds_at_ceiling) and shares[0] == pytest.approx(2 * shares[1])


def test_an_accounts_calls_that_fit_one_window_are_said_to_not_a_zero_wall_time() -> None:
    """Review at 120x40: an account of 50 calls at 60 a minute read "0.0 s" at the ceiling."""
    from rich.console import Console

    from offboard.cli.batch_cmd import accounts_table

    small = AccountLoad(vendor="h", account="huntress a", exits=2, calls=50, limit=60, window_seconds=60)
    large = AccountLoad(vendor="b", account="blumira x", exits=2, calls=150, limit=60, window_seconds=60)
    console = Console(width=120, record=True, color_system=None)
    console.print(accounts_table(SimpleNamespace(accounts=(small, large))))  # type: ignore[arg-type]
    shown = console.export_text()
    assert "0 s: one window holds them" in shown and "0.0 s" not in shown
    assert "1 min 30 s" in shown  # more than a window's worth: its time at the ceiling
