"""A vendor's strings as text a document can carry: one line, nothing invisible.

A vendor string (a sub-account's name, a hostname, an incident's subject, an error body) is
hostile input: a line break in it would end an email header (header injection), forge a line of
a report, a note or the manual checklist, or split a table's row; a bidi override would reorder
what a person reads; a terminal escape would rewrite the screen. Everything that renders a
vendor string passes it through ``one_line``; ``oddities`` names what was there, so ``plan``
can tell a person which object to look at.
"""

from __future__ import annotations

# Line and paragraph breaks (CR, LF, NEL, U+2028/2029), tabs and form feeds: whitespace to a reader,
# structure to a document. Each becomes one space.
BREAKS = "\r\n\t\v\f\x85\u2028\u2029"
_NAMES = {"\r": "CR", "\n": "LF", "\t": "TAB", "\v": "VT", "\f": "FF", "\x85": "NEL", "\u2028": "U+2028",
          "\u2029": "U+2029", "\x1b": "ESC", "\x00": "NUL", "\x7f": "DEL"}


def _odd(c: str) -> bool:
    return c in BREAKS or not (c.isprintable() or c == " ")


def one_line(value: object) -> str:
    """``value`` as one line of visible text: line breaks and tabs become spaces; other invisible
    characters (controls, bidi overrides, escapes) become their code point, visibly (``U+202E``)."""
    text = str(value)
    if text.isprintable():  # the usual case, in C: nothing to change (every odd character is unprintable)
        return text
    return "".join(" " if c in BREAKS else f"U+{ord(c):04X}" if _odd(c) else c for c in text)


def oddities(value: object) -> list[str]:
    """The invisible characters ``value`` holds, named once each in order (e.g. ``["CR", "LF"]``)."""
    text = str(value)
    if text.isprintable():
        return []
    return list(dict.fromkeys(_NAMES.get(c, f"U+{ord(c):04X}") for c in text if _odd(c)))
