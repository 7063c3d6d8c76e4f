"""A message wider than the terminal (120 columns) is laid out by one rule, not wrapped mid-word by
the terminal: its prose at spaces (no id or path split), each command it tells the person to run on a
line of its own, indented two spaces, whole, as printed. In a log (not a terminal) it stays one line."""

from __future__ import annotations

import io
import shlex
from pathlib import Path

import pytest

from offboard import hints
from offboard.cli import render
from offboard.cli.render import _Screen
from tests.e2e.test_printed_commands import printed_commands

RUN = "20261205T012836979Z-3a4e64"
CONFIG = Path("rehearsal/config.toml")
CHECKLIST = f"rehearsal/runs/{RUN}/manual-checklist.md"
# The closing lines of apply, confirm, status and a resume, built as the commands build them.
MESSAGES = [
    f"21 manual item(s) waiting for a person: the checklist is in {CHECKLIST}; do each, then "
    f"`{hints.confirm(RUN, CONFIG)}`; 8 action(s) wait for blumira.notify.sent, then run with: "
    f"{hints.resume(RUN, CONFIG)}",
    f"20 manual item(s) of this run remain (8 more action(s) wait for blumira.notify.sent and join the checklist "
    f"when the run resumes); they are listed by: {hints.command('status', '--pending', run=RUN, config=CONFIG)}",
    f"run {RUN} stopped before its end; continue it with: {hints.resume(RUN, CONFIG)}",
    f"run {RUN} stopped before its end; once the cause above is fixed, continue it with: {hints.resume(RUN, CONFIG)}",
    f"8 action(s) waited for those confirmations; the run continues (`{hints.resume(RUN, CONFIG)}`).",
    f"Audit log: rehearsal/runs/{RUN}/documents/blumira/blumira-exit-complete.eml  (445 events, chain verified, "
    "last hash 7abcb2b4fa1f41f0…)",
]


def screen(width: int = 120, terminal: bool = True) -> _Screen:
    return _Screen(file=io.StringIO(), width=width, force_terminal=terminal, color_system=None)


def shown(message: str, **kwargs: object) -> list[str]:
    out = screen()
    out.print(message, soft_wrap=True, **kwargs)
    return out.file.getvalue().splitlines()  # type: ignore[attr-defined]


def words(text: str) -> list[str]:
    return text.replace("`", " ").split()


@pytest.mark.parametrize("message", MESSAGES)
def test_a_long_message_fits_120_columns_with_each_command_whole_on_its_own_line(message: str) -> None:
    lines = shown(message, markup=False)
    assert len(message) > 120 and len(lines) > 1
    assert max(len(line) for line in lines) <= 120, lines
    commands = [message[a:b] for a, b in hints.shown(message)]
    found = printed_commands("\n".join(lines))
    for command in commands:  # whole, alone on its line, as printed: the same words as the one-line form
        assert f"  {command}" in lines, lines
        assert command in found and shlex.split(command)[0] == "offboard"
    # Nothing said is lost or split: every word of the message is whole on some line.
    assert set(words(message)) - {"(", ")", ").", ".", ";", ","} <= set(words("\n".join(lines))), lines


def test_a_command_wider_than_the_screen_is_continued_as_the_shell_reads_it() -> None:
    """`sandbox serve --dir rehearsal-batch` printed its first command as one 125-column line, which the
    terminal cut mid-path (review at 120x40): cut at spaces outside quotes, each line ending in a
    backslash, it is pasted and run as the one command it is."""
    key = hints.command("keys", "init", "--key-file", Path("rehearsal batch/signing-key.pem"), "--public-key",
                        Path("rehearsal-batch/msp.pub"), config=Path("rehearsal-batch/a much longer config.toml"))
    message = f"First, the signing key the config names: {key}"
    lines = shown(message, markup=False)
    assert max(len(line) for line in lines) <= 120 and len(lines) == 3, lines
    assert lines[1].startswith("  offboard keys init") and lines[1].endswith(" \\") and not lines[2].endswith("\\")
    assert shlex.split(" ".join(line.removesuffix("\\") for line in lines[1:])) == shlex.split(key)


def test_a_message_that_fits_stays_one_line_and_styles_survive_the_layout() -> None:
    assert shown(f"Saved. Review it, then run: {hints.command('apply', 'x.json')}", markup=False) == [
        "Saved. Review it, then run: offboard apply x.json"]
    out = _Screen(file=io.StringIO(), width=120, force_terminal=True, color_system="standard")
    out.print("[bold]Plan:[/] " + "word " * 40, soft_wrap=True)
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert "\x1b[1mPlan:" in text and "[bold]" not in text


def test_not_on_a_terminal_a_message_stays_one_line_for_grep_and_scripts() -> None:
    out = screen(width=render.PIPE_WIDTH, terminal=False)
    out.print(MESSAGES[0], soft_wrap=True, markup=False)
    assert out.file.getvalue() == MESSAGES[0] + "\n"  # type: ignore[attr-defined]


def test_an_error_naming_a_command_is_laid_out_on_a_terminal(capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    message = f"error: no run in rehearsal/runs; apply a plan first, or continue one with: {hints.resume(RUN, CONFIG)}"
    monkeypatch.setattr(render, "err", screen())
    render.error(message)
    lines = capsys.readouterr().err.splitlines()
    assert max(len(line) for line in lines) <= 120 and f"  {hints.resume(RUN, CONFIG)}" in lines, lines
    monkeypatch.setattr(render, "err", screen(width=render.PIPE_WIDTH, terminal=False))
    render.error(message)
    assert capsys.readouterr().err == message + "\n"  # a log: one line


def test_a_warning_is_laid_out_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = screen()
    monkeypatch.setattr(render, "_console", lambda **_: stderr)
    render.warning(MESSAGES[2])
    lines = stderr.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert lines[-1] == f"  {hints.resume(RUN, CONFIG)}" and max(len(line) for line in lines) <= 120, lines
