"""The command reference (`docs/commands.md`), generated from the commands themselves as gh's
manual is, so the docs cannot drift from the CLI: `python -m offboard.cli.reference docs/commands.md`
writes it, and a test fails when the file differs from what this module makes now."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

HEADER = """# Command reference

Generated from the commands' own help by `python -m offboard.cli.reference docs/commands.md`;
do not edit by hand (a test compares this file with the CLI). Every command also takes
`-h`/`--help`. The exit codes are in [exit-codes.md](exit-codes.md); how the commands fit together
is in [cli.md](cli.md).
"""

# typer carries its own copy of click, so its commands are reached by what they have, not by class.
Command = Any


def _walk(command: Command, ctx: Any) -> Iterator[tuple[Command, Any]]:
    if not getattr(command, "hidden", False):
        yield command, ctx
    for name in sorted(getattr(command, "commands", {})):
        sub = command.commands[name]
        yield from _walk(sub, sub.context_class(sub, info_name=name, parent=ctx))


def _clean(text: str | None) -> str:
    # click's "\b" marks a block it must not re-flow; Markdown keeps the lines as they are.
    lines = [line for line in (text or "").strip().splitlines() if line.strip() != "\b"]
    return "\n".join(lines).strip()


def _option_row(param: Any, ctx: Any) -> str | None:
    if getattr(param, "hidden", False) or param.name == "help":
        return None
    record = param.get_help_record(ctx) or (param.human_readable_name, "")
    spelling, helptext = record
    helptext = " ".join(_clean(helptext).split()).replace("|", "\\|")
    return f"| `{spelling}` | {helptext} |"


def _section(command: Command, ctx: Any) -> str:
    title = ctx.command_path
    usage = " ".join(command.collect_usage_pieces(ctx))
    lines = [f"## `{title}`", "", "```", f"{title} {usage}".rstrip(), "```", ""]
    helptext = _clean(command.help)
    if helptext:
        lines += [helptext, ""]
    rows = [row for row in (_option_row(param, ctx) for param in command.get_params(ctx)) if row]
    if rows:
        lines += ["| argument or option | what it does |", "|---|---|", *rows, ""]
    return "\n".join(lines)


def reference_markdown(app: typer.Typer) -> str:
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="offboard")
    sections = [_section(command, sub_ctx) for command, sub_ctx in _walk(root, ctx)]
    return HEADER + "\n" + "\n".join(sections).rstrip() + "\n"


def main() -> None:
    from offboard.cli.app import app  # app imports this package; importing it here keeps no cycle at import

    text = reference_markdown(app)
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
