"""A table at 120 columns never splits an id, path or call mid-word; prose columns give way."""

from __future__ import annotations

import io

from rich.table import Table

from offboard.cli.render import _Screen

PATH = "GET /msp/accounts/6a1f5c2e-0c1d-4b8e-9d40-acme00000001"
ITEM = "huntress.evidence.billing-detail-report"
PROSE = ("Export the billing detail report from the portal before anything is removed, so the customer's last "
         "invoice can be checked against what was running") * 2


def shown(table: Table, width: int = 120) -> str:
    screen = _Screen(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
    screen.print(table)
    return screen.file.getvalue()  # type: ignore[attr-defined]


def test_ids_and_paths_stay_whole_and_the_prose_wraps() -> None:
    table = Table("#", "Item", "What", "How")
    table.add_row("1", ITEM, PROSE, PATH.split(" ", 1)[1])
    text = shown(table)
    assert ITEM in text and PATH.split(" ", 1)[1] in text, text
    assert max(len(line) for line in text.splitlines()) <= 120


def test_a_word_wider_than_its_share_is_folded_rather_than_pushing_the_table_off_screen() -> None:
    table = Table("Item", "Call", "What")
    table.add_row("Q" * 200, "Z" * 100, PROSE)
    text = shown(table)
    assert max(len(line) for line in text.splitlines()) <= 120
    assert text.count("Q") == 200 and text.count("Z") == 100  # folded, never cropped


def test_a_column_of_long_calls_is_not_the_one_that_gives_way() -> None:
    """plan's evidence tables: the How column holds the most characters (paths), yet the prose
    columns wrap and every path stays whole, and so does a manual item's id."""
    table = Table("#", "Object", "Planned action", "How")
    base = "/msp/accounts/6a1f5c2e-0c1d-4b8e-9d40-acme00000001"
    for n, tail in enumerate(("", "/findings", "/agents/devices", "/agents/keys", "/users", "/detection-rules")):
        table.add_row(str(n), f"export object number {n} with its details ({tail or 'account'})",
                      "export it with every status, its evidence and its comments", f"GET {base}{tail}")
    table.add_row("7", "blumira.support.confirmation", "keep the reply", "MANUAL: the inbox")
    text = shown(table)
    for tail in ("", "/findings", "/agents/devices", "/detection-rules"):  # 66 characters at most
        assert f"{base}{tail} " in text or f"{base}{tail}│" in text, text
    assert "blumira.support.confirmation" in text
    assert max(len(line) for line in text.splitlines()) <= 120


def test_an_id_columns_long_names_wrap_within_it_and_leave_the_other_columns_their_width() -> None:
    """status at 120 columns (issue 22's rehearsal): a folded step's "36 object(s): …" in the Item column
    took the whole width, and Step, State and Detail were squeezed to a letter a row."""
    from rich.text import Text

    from offboard.cli.render import id_column

    table = Table("Step")
    id_column(table, "Item", [ITEM, "blumira.notify.sent"], max_width=30)
    table.add_column("State")
    table.add_column("Detail")
    names = "36 object(s): " + ", ".join(f"ACME-PC{n:02}" for n in range(1, 12)) + " …"
    table.add_row("3. Remove endpoint coverage (EDR agents)", Text(names, no_wrap=False), "verified", "")
    table.add_row("2. Export retained evidence", Text(ITEM), "manual-pending", PROSE)
    text = shown(table)
    assert max(len(line) for line in text.splitlines()) <= 120
    assert all(word in text for word in (ITEM, "manual-pending", "endpoint", "coverage", "retained")), text
    header = next(line for line in text.splitlines() if "Item" in line)
    assert len(header.split("┃")[2]) <= len(ITEM) + 2, header  # the id column: its widest id, no more
