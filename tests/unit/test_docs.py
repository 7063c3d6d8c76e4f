"""The docs as a reader meets them: the command reference is the CLI's own help (regenerated, not
edited), the README stays short and links only to pages that exist."""

from __future__ import annotations

import re
from pathlib import Path

from offboard.cli.app import app
from offboard.cli.reference import reference_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_the_command_reference_is_what_the_cli_says_now() -> None:
    page = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    assert page == reference_markdown(app), (
        "docs/commands.md is out of date: run `.venv/bin/python -m offboard.cli.reference docs/commands.md`")


def test_the_reference_names_every_command_and_its_options() -> None:
    page = reference_markdown(app)
    for command in ("offboard plan", "offboard apply", "offboard confirm", "offboard batch apply",
                    "offboard audit verify", "offboard sandbox serve"):
        assert f"## `{command}`" in page
    assert "`--override-preflight REASON`" in page


def test_the_readme_is_short_and_every_local_link_resolves() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for target in re.findall(r"\]\(([^)#]+?)(?:#[^)]*)?\)", path.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            assert (path.parent / target).exists(), f"{path.relative_to(ROOT)} links to {target}, which does not exist"


def test_the_performance_figures_are_the_benchmarks_own() -> None:
    # The table, its environment lines and their digest are written by `bench.performance --write`;
    # a figure typed or pasted by hand no longer matches the digest.
    from bench import figures

    assert figures.check(ROOT / "docs" / "performance.md") is None


def test_the_figures_check_catches_a_hand_edit(tmp_path: Path) -> None:
    from bench import figures

    page = tmp_path / "performance.md"
    page.write_text(f"# P\n\n{figures.BEGIN}\n{figures.END}\n")
    figures.write(page, "python -m bench.performance", ["Measured now."], ["| a | 0.97 |"])
    assert figures.check(page) is None
    page.write_text(page.read_text().replace("0.97", "0.99"))
    assert figures.check(page) is not None and "edited" in str(figures.check(page))
