"""`offboard watch --schedule`: a ready entry for the MSP's own scheduler (no daemon of ours).

Each entry runs ``offboard -q watch --once`` at an interval; ``--until`` ends the watch period
(a run after it checks nothing and says to remove the entry). ``-q``: a scheduler mails or logs
only what came back (warnings) and errors; the exit code says the rest (5: something came back).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from offboard.errors import BadInput

KINDS = ("systemd", "cron", "windows")
HOURS = (1, 2, 3, 4, 6, 8, 12, 24)  # intervals every scheduler can say the same way
MINUTE, HOUR = 17, 6  # off the hour: many jobs start at :00, and the vendors' rate windows are shared
FILE_MARK = "### file: "  # before each file of a systemd entry (the unit, the timer)


@dataclass(frozen=True)
class Watch:
    exe: str
    folder: Path  # absolute: where the job starts (the config's or the batch plan's folder)
    command: tuple[str, ...]  # what follows `offboard -q`, up to `--until`, every path absolute
    label: str  # names the unit, the task (a run id, a batch plan's name)
    what: str  # e.g. "the exit of Acme Dental (run …)"
    until: date
    every_hours: int

    def args(self) -> list[str]:
        return [self.exe, "-q", *self.command, "--until", self.until.isoformat()]

    @property
    def name(self) -> str:
        return "offboard-watch-" + re.sub(r"[^A-Za-z0-9_.-]", "-", self.label)

    def cadence(self) -> str:
        return "daily" if self.every_hours == 24 else f"every {self.every_hours} h"


def until_after(days: int) -> date:
    return datetime.now(UTC).date() + timedelta(days=days)


def check_interval(every_hours: int) -> None:
    if every_hours not in HOURS:
        raise BadInput(f"--every-hours {every_hours}: give one of {', '.join(map(str, HOURS))} (hours that divide "
                       "a day, so every scheduler runs it at the same times)")


def render(kind: str, w: Watch) -> str:
    check_interval(w.every_hours)
    if kind == "systemd":
        return systemd(w)
    if kind == "cron":
        return cron(w)
    if kind == "windows":
        return windows(w)
    raise BadInput(f"--schedule {kind!r}: give one of {', '.join(KINDS)}")


def _systemd_quote(arg: str) -> str:
    arg = arg.replace("%", "%%")  # systemd expands % specifiers in ExecStart
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd(w: Watch) -> str:
    when = f"*-*-* {HOUR:02d}:{MINUTE:02d}:00" if w.every_hours == 24 else f"*-*-* 00/{w.every_hours}:{MINUTE:02d}:00"
    what = f"offboard: watch {w.what} {w.cadence()} until {w.until}"
    folder = "~/.config/systemd/user"
    return "\n".join([
        f"# {what}.",
        f"# Save the two files below in {folder}/, then:",
        f"#   systemctl --user daemon-reload && systemctl --user enable --now {w.name}.timer",
        "# A run that finds something came back exits 5: the unit shows as failed (systemctl --user --failed)",
        f"# and its lines are in: journalctl --user -u {w.name}.service",
        f"# After {w.until} each run checks nothing and says so: then disable the timer.",
        f"{FILE_MARK}{folder}/{w.name}.service",
        "[Unit]",
        f"Description={what}",
        "",
        "[Service]",
        "Type=oneshot",
        f"WorkingDirectory={_systemd_quote(str(w.folder))}",
        "ExecStart=" + " ".join(_systemd_quote(a) for a in w.args()),
        "",
        f"{FILE_MARK}{folder}/{w.name}.timer",
        "[Unit]",
        f"Description={what}",
        "",
        "[Timer]",
        f"OnCalendar={when}",
        "Persistent=true",
        "RandomizedDelaySec=10min",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ])


def _sh_quote(arg: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_@+=:,./-]+", arg):
        return arg
    return "'" + arg.replace("'", "'\\''") + "'"


def cron(w: Watch) -> str:
    hour = str(HOUR) if w.every_hours == 24 else f"*/{w.every_hours}"
    # cron runs the line with /bin/sh; % ends a crontab command unless escaped.
    line = " ".join(_sh_quote(a) for a in w.args()).replace("%", "\\%")
    return "\n".join([
        f"# offboard: watch {w.what} {w.cadence()} until {w.until}.",
        "# Add the line with `crontab -e`. cron mails what a run prints: with -q only what came back (and",
        "# errors). Credentials come from the keyring of the user whose crontab this is, else from",
        "# OFFBOARD_<VENDOR>_* variables set above the line.",
        f"{MINUTE} {hour} * * * cd {_sh_quote(str(w.folder))} && {line}",
        "",
    ])


def _win_quote(arg: str) -> str:
    return f'\\"{arg}\\"' if re.search(r'[\s"]', arg) else arg


def windows(w: Watch) -> str:
    schedule = "/SC DAILY" if w.every_hours == 24 else f"/SC HOURLY /MO {w.every_hours}"
    inner = " ".join(_win_quote(a) for a in w.args())
    return "\n".join([
        f"REM offboard: watch {w.what} {w.cadence()} until {w.until}.",
        "REM Run in a Command Prompt as the user whose keyring holds the credentials; after the last day,",
        f"REM delete it with: schtasks /Delete /TN \"offboard\\{w.name}\" /F",
        f'schtasks /Create /TN "offboard\\{w.name}" {schedule} /ST {HOUR:02d}:{MINUTE:02d} /TR "{inner}" /F',
        "",
    ])
