"""Output a reader may stop reading (`offboard apply … | head`, an RMM that closes its capture).

A run must not die half-way because nobody reads its progress any more: the audit log, the
report and the checklist hold everything it would have shown. Once a stream's reader is gone,
what would have been written there is dropped and the command goes on; its exit code is unchanged.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from typing import TextIO


class ReaderGone(io.TextIOBase):
    """A text stream that drops its output once the pipe behind it is closed."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._lost()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._lost()

    def _lost(self) -> None:
        self.gone = True
        # The interpreter flushes the real stream again at exit; pointed at /dev/null, that flush
        # succeeds instead of printing "Exception ignored … BrokenPipeError".
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self.stream.fileno())
            os.close(null)

    def isatty(self) -> bool:
        return not self.gone and self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"

    def writable(self) -> bool:
        return True


@contextlib.contextmanager
def readers_may_leave() -> Iterator[None]:
    """stdout and stderr, for the length of a command, as ``ReaderGone`` streams."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = ReaderGone(saved[0]), ReaderGone(saved[1])
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
