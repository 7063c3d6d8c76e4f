"""A message laid out for a terminal's width: what a person reads and copies at 120 columns.

A message is one line (scripts and logs grep it whole). When it is wider than the terminal, the
terminal would wrap it mid-word, ids, paths and commands included: laid out here instead, its
prose is wrapped at spaces only (an id or a path is never split) and each command it tells the
person to run (`offboard.hints.shown`) stands on a line of its own, indented two spaces, with
nothing else on it, so it is read, and copied, whole. The demo's "Check it yourself:" line was
the model: this is that rule, for every message the screen prints.
"""

from __future__ import annotations

import re

from rich.cells import cell_len

from offboard import hints

INDENT = "  "  # before a command on its line of its own
GOES_ON = " \\"  # a command wider than the screen, continued on the next line as a shell reads it
MORE = INDENT + "    "  # before the rest of such a command
Piece = tuple[int, int, str, str]  # (start, end) of a slice of the message, what goes before it, and after it
_WORD = re.compile(r"\S+")
_LEAD = " ,;"  # what a sentence's remainder after a command starts with, left out on its own line


def lay_out(line: str, width: int) -> list[Piece]:
    """The lines ``line`` is shown as at ``width`` columns, as slices of it: itself when it fits."""
    if cell_len(line) <= width:
        return [(0, len(line), "", "")]
    pieces: list[Piece] = []
    start = 0
    commands = hints.shown(line)
    for n, (begin, end) in enumerate(commands):
        before = _trim(line, start, _open(line, begin))
        after_end = _after(line, end, commands[n + 1][0] if n + 1 < len(commands) else len(line))
        paren = before[1] > before[0] and line[before[1] - 1] == "(" and line[end:after_end].lstrip("`").startswith(")")
        if paren:  # "(`offboard …`)": no parenthesis left alone on a line
            before = _trim(line, before[0], before[1] - 1)
        pieces += _prose(line, *before, width)
        pieces += _command(line, begin, end, width)
        start = end + (1 if line[end:end + 1] == "`" else 0)
        rest = line[start + 1 if paren else start:after_end].lstrip(_LEAD)
        start = after_end - len(rest)
        if rest and not any(c.isalnum() for c in rest):
            start = after_end  # ")." or ".": the end of the sentence, said by the line break
    pieces += _prose(line, *_trim(line, start, len(line)), width)
    return pieces or [(0, len(line), "", "")]


def _open(line: str, begin: int) -> int:
    return begin - 1 if begin and line[begin - 1] == "`" else begin


def _after(line: str, end: int, next_begin: int) -> int:
    return _open(line, next_begin) if next_begin < len(line) else len(line)


def _trim(line: str, start: int, end: int) -> tuple[int, int]:
    while start < end and line[start] == " ":
        start += 1
    while end > start and line[end - 1] == " ":
        end -= 1
    return start, end


def _prose(line: str, start: int, end: int, width: int) -> list[Piece]:
    """``line[start:end]`` wrapped at spaces; a word wider than the screen stands whole on its own line."""
    pieces: list[Piece] = []
    first = last = -1
    for word in _WORD.finditer(line, start, end):
        if first >= 0 and cell_len(line[first:word.end()]) > width:
            pieces.append((first, last, "", ""))
            first = -1
        if first < 0:
            first = word.start()
        last = word.end()
    if first >= 0:
        pieces.append((first, last, "", ""))
    return pieces


def _command(line: str, begin: int, end: int, width: int) -> list[Piece]:
    """A command on a line of its own; wider than the screen, cut at spaces outside quotes, each line
    but the last ending in a backslash: pasted whole, the shell reads it as the one command it is."""
    if cell_len(INDENT + line[begin:end]) <= width:
        return [(begin, end, INDENT, "")]
    cuts, quote = [], ""
    for n in range(begin, end):
        c = line[n]
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == " ":
            cuts.append(n)
    pieces: list[Piece] = []
    start, before = begin, INDENT
    for n, cut in enumerate(cuts):
        following = cuts[n + 1] if n + 1 < len(cuts) else end
        if cell_len(before + line[start:following] + GOES_ON) > width and cut > start:
            pieces.append((start, cut, before, GOES_ON))
            start, before = cut + 1, MORE
    pieces.append((start, end, before, ""))
    return pieces
