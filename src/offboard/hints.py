"""Every command offboard prints for a person to run next, built in one place.

A hint must run as printed from the folder the user is in: it carries the config file
(``-c``), the run (``--run``) and the key paths of the invocation that printed it, and it is
shell-quoted (``shlex.join``), so a path with a space or a name with a quote still pastes whole.
The words in ``PLACEHOLDERS`` are the only parts a person replaces (ITEM, NAME ...).

How a hint is shown, so people and tests find it whole: at the end of its line after a colon
("then run: offboard …"), or between backticks. The lowest layer: errors, the engine, the proof
and the screen all build hints here.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable
from pathlib import Path

PROGRAM = "offboard"
DEFAULT_CONFIG = Path("config.toml")  # what `-c` defaults to: no need to say it
CONFIG_ENV = "OFFBOARD_CONFIG"  # honoured by every command that reads a config, as `-c` is
# The words a person replaces in a printed hint; every other word runs as printed.
PLACEHOLDERS = frozenset({"ITEM", "NAME", "NOTE", "RUN_ID", "FILE", "PATH", "KIND", "VENDOR", "REASON"})


def config_args(config: Path | str | None) -> list[str]:
    """``-c PATH`` unless the config is the default one, or came from OFFBOARD_CONFIG (the shell that
    ran this command has it, e.g. from a sandbox's env file), or is unknown."""
    if config is None or Path(config) == DEFAULT_CONFIG or os.environ.get(CONFIG_ENV) == str(config):
        return []
    return ["-c", str(config)]


def command(*words: str | Path, run: str | None = None, config: Path | str | None = None,
            extra: Iterable[str | Path] = ()) -> str:
    """``offboard WORDS… [--run RUN] [-c CONFIG] [EXTRA…]``, shell-quoted."""
    argv = [PROGRAM, *(str(w) for w in words)]
    if run is not None:
        argv += ["--run", run]
    argv += config_args(config)
    argv += [str(e) for e in extra]
    return shlex.join(argv)


def rebundle(run_id: str, config: Path | str | None = None) -> str:
    """What lines added to a closed run's log mean for a bundle already made of it, and the command
    that makes it again (into the exit's folder, beside its config: not wherever the person stands)."""
    out = Path(config).parent / f"{run_id}.tar.gz" if config is not None else Path(f"{run_id}.tar.gz")
    # offboard keeps no record of the bundles made: said for one, if one was (review10/11: said before any)
    return ("A bundle of this run made before now, if one was, still verifies but does not hold them; to hand "
            "them over, make it again: " + command("bundle", run=run_id, config=config, extra=["-o", out]))


def resume(run_id: str, config: Path | str | None = None) -> str:
    """The command that continues a stopped run."""
    return command("apply", "--resume", run_id, config=config)


def confirm(run_id: str | None, config: Path | str | None = None, *, item: str = "ITEM",
            by: str = "NAME", note: str = "NOTE") -> str:
    """The command that records a manual item (placeholders where the person fills in; some items
    refuse a confirmation without a note, so the hint always carries one)."""
    return command("confirm", item, "--by", by, "--note", note, run=run_id, config=config)


# A hint as a line shows it (see the module's docstring): between backticks anywhere, or last on
# its line after a colon (a full stop after it ends the sentence, not the command).
_SHOWN = re.compile(rf"`({PROGRAM} [^`]+)`|(?<=: )({PROGRAM} [^`]+?)\.?$")


def shown(line: str) -> list[tuple[int, int]]:
    """Where the commands a line of text tells a person to run are: (start, end) of each, backticks
    left out. The screen puts each on a line of its own when the text is wider than the terminal."""
    return [m.span(1) if m.group(1) is not None else m.span(2) for m in _SHOWN.finditer(line)]
