"""What a technician sees at a 120-column terminal (issue 22's "done when"): the demo, and a
rehearsal's plan, apply and confirm, each run on a pseudo-terminal of 120x40 and read back as the
screen shows it (a VT100 emulator: live bars redrawn in place count once). Every manual item id
stands whole on one row; every command printed stands whole (a row wrapped by the terminal is
still one line to copy); the plan's last lines name what blocks apply; the line budgets hold.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import shlex
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pyte
import pytest

from offboard.hints import PLACEHOLDERS
from tests.e2e.test_printed_commands import printed_commands
from tests.e2e.test_rehearsal import environment, stop, wait_for
from tests.polling import until

pytestmark = pytest.mark.e2e

COLUMNS, ROWS = 120, 40
DEMO_BUDGET = 200  # rows at 120 columns
CONFIRM_BUDGET = 10  # rows at 120 columns: what it confirmed, the counts, and where the list is
CONFIG = "rehearsal/config.toml"


def on_a_terminal(command: str, cwd: Path, env: dict[str, str]) -> tuple[int, list[str]]:
    """Run ``command`` (bash) on a 120x40 pseudo-terminal; the rows it leaves on the screen, and
    its logical lines (rows the terminal wrapped joined back): what a person copies."""
    code, chunks = _on_a_pty(command, cwd, env)
    return code, _lines(b"".join(chunks))


def frames_on_a_terminal(command: str, cwd: Path, env: dict[str, str], *, ctrl_c_after: bytes | None = None
                         ) -> tuple[int, list[list[str]], list[str]]:
    """As ``on_a_terminal``, and the screen of 120x40 as it stood after each write: a live
    display's frames, drawn over each other in place, each as a person saw it. ``ctrl_c_after``: the
    operator presses Ctrl-C on the terminal (its driver echoes "^C") once the output shows that."""
    code, chunks = _on_a_pty(command, cwd, env, ctrl_c_after)
    screen = pyte.Screen(COLUMNS, ROWS)
    stream = pyte.ByteStream(screen)
    frames: list[list[str]] = []
    for chunk in chunks:
        stream.feed(chunk.replace(b"\n", b"\r\n"))
        frame = [row.rstrip() for row in screen.display]
        if not frames or frame != frames[-1]:
            frames.append(frame)
    return code, frames, _lines(b"".join(chunks))


def _on_a_pty(command: str, cwd: Path, env: dict[str, str], ctrl_c_after: bytes | None = None
              ) -> tuple[int, list[bytes]]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env={**env, "TERM": "xterm-256color"},
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal closed
            break
        if not chunk:
            break
        chunks.append(chunk)
        if ctrl_c_after is not None and ctrl_c_after in b"".join(chunks[-8:]):
            os.write(master, b"\x03")  # the terminal's Ctrl-C: SIGINT to its process group, "^C" echoed
            ctrl_c_after = None
    os.close(master)
    return proc.wait(timeout=600), chunks


def _lines(raw: bytes) -> list[str]:
    screen = _Screen(COLUMNS, 5000)  # tall: nothing scrolls away
    stream = pyte.ByteStream(screen)
    stream.feed(bytes(raw).replace(b"\n", b"\r\n"))  # the pty's ONLCR, which pyte does not apply
    rows = [line.rstrip() for line in screen.display]
    while rows and not rows[-1]:
        rows.pop()
    lines: list[str] = []
    for n, row in enumerate(rows):  # a row the terminal wrapped continues the line above it
        if lines and n - 1 in screen.wrapped:
            lines[-1] = screen.display[n - 1] + row
        else:
            lines.append(row)
    return lines


class _Screen(pyte.Screen):  # type: ignore[misc]
    """Remembers which rows the terminal wrapped (text running past the last column), as against
    rows ended by a newline: a wrapped row and the next are one line to a person copying it."""

    def __init__(self, columns: int, lines: int) -> None:
        super().__init__(columns, lines)
        self.wrapped: set[int] = set()
        self._drawing = False

    def draw(self, data: str) -> None:
        self._drawing = True
        try:
            super().draw(data)
        finally:
            self._drawing = False

    def linefeed(self) -> None:
        if self._drawing:
            self.wrapped.add(self.cursor.y)
        else:
            self.wrapped.discard(self.cursor.y)
        super().linefeed()


def whole(ids: set[str], lines: list[str]) -> set[str]:
    """The ids that stand whole in some line (never folded across rows of a table)."""
    return {i for i in ids if any(i in line for line in lines)}


def test_the_demo_tells_its_story_in_200_rows_at_120_columns(tmp_path: Path) -> None:
    env = environment(tmp_path / "home")
    code, lines = on_a_terminal("offboard demo", tmp_path, env)
    assert code == 0, "\n".join(lines)
    assert len(lines) <= DEMO_BUDGET, f"{len(lines)} lines"
    plan = (tmp_path / "offboard-demo" / "exit.plan.json").read_text()
    import json

    manual = {a["id"] for v in json.loads(plan)["vendors"] for s in v["steps"] for a in s["actions"]
              if a["kind"] == "manual"}
    # Each manual item by the one id confirm takes, whole, at least once (the steps' outline folds the
    # longest lists with a count; every item is then confirmed by name).
    assert whole(manual, lines) == manual
    for command in printed_commands("\n".join(lines)):
        assert any(command in line for line in lines)
        assert "\n" not in command


def fits_and_runs(lines: list[str], run: Callable[[str], subprocess.CompletedProcess[str]] | None = None) -> None:
    """No line wider than the terminal (a line the terminal wrapped counts as one: wider), and every command
    printed whole on a line of its own or at a line's end; with ``run``, each one without a placeholder run as
    printed (none a usage error)."""
    assert max(map(len, lines), default=0) <= COLUMNS, "\n".join(line for line in lines if len(line) > COLUMNS)
    for command in printed_commands("\n".join(lines)):
        assert any(line == f"  {command}" or line.endswith(command) or f"`{command}`" in line for line in lines)
        if run is not None and not set(shlex.split(command)) & PLACEHOLDERS:
            done = run(command)
            assert done.returncode != 2 and "does not exist" not in done.stdout + done.stderr, (command, done)


def test_plan_apply_and_confirm_at_120_columns(tmp_path: Path) -> None:
    """What a technician sees at 120 columns (the terminal's own width: no COLUMNS), and that each
    closing message (plan's, apply's, confirm's, status's, a resume's, an error's) fits it, its commands
    whole on their own lines, each running as printed."""
    folder = tmp_path / "work"
    folder.mkdir()
    env = environment(tmp_path / "home")
    del env["COLUMNS"]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        serve = subprocess.Popen(["offboard", "sandbox", "serve", "--fast"], cwd=folder, env=env, stdout=out,
                                 stderr=subprocess.STDOUT)
    try:
        wait_for(folder / "rehearsal" / "sandbox.env", serve, log)
        time.sleep(0.5)

        def run(command: str) -> tuple[int, list[str]]:
            return on_a_terminal(f". rehearsal/sandbox.env && {command}", folder, env)

        def sh(command: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["bash", "-c", f". rehearsal/sandbox.env && {command}"], cwd=folder, env=env,
                                  capture_output=True, text=True, timeout=600, check=False)

        assert run("offboard keys init --key-file rehearsal/signing-key.pem --public-key rehearsal/msp.pub")[0] == 0
        code, plan_lines = run(f"offboard plan -c {CONFIG} -o rehearsal/exit.plan.json")
        assert code == 0, "\n".join(plan_lines)
        import json

        saved = json.loads((folder / "rehearsal" / "exit.plan.json").read_text())
        manual = {a["id"] for v in saved["vendors"] for s in v["steps"] for a in s["actions"] if a["kind"] == "manual"}
        assert whole(manual, plan_lines) == manual
        last = "\n".join(plan_lines[-4:])
        assert "Blocks apply:" in last and "Incident on" in last and "(Isolated)" in last, last
        # the apply as its gates let it run: their override in it, the reason for the person to give
        assert plan_lines[-2].startswith("Saved to rehearsal/exit.plan.json") and plan_lines[-2].endswith("run:")
        assert plan_lines[-1] == f"  offboard apply rehearsal/exit.plan.json -c {CONFIG} --override-preflight REASON"
        fits_and_runs(plan_lines)

        code, apply_lines = run(f"offboard apply rehearsal/exit.plan.json -c {CONFIG} --unattended "
                                "--override-preflight rehearsal")
        assert code == 3, "\n".join(apply_lines)
        listing = f". rehearsal/sandbox.env && offboard status --pending -c {CONFIG}"
        pending = set(subprocess.run(["bash", "-c", listing],
                                     cwd=folder, env=env, capture_output=True, text=True, check=True).stdout.split())
        # The checklist table: the ids it shows whole; a long list folds with a count and the listing command.
        assert pending and len(whole(pending, apply_lines)) == min(len(pending), 10), apply_lines
        if len(pending) > 10:
            assert (f"… and {len(pending) - 10} more manual item(s); all of them:\n  offboard status --pending --run "
                    in "\n".join(apply_lines)), apply_lines
        hints = printed_commands("\n".join(apply_lines))
        assert any(h.startswith("offboard confirm ITEM --by NAME --note NOTE --run ") and h.endswith(f"-c {CONFIG}")
                   for h in hints), hints

        fits_and_runs(apply_lines)
        assert "  offboard confirm ITEM --by NAME --note NOTE --run " in "\n".join(apply_lines)

        code, confirm_lines = run(f"offboard confirm huntress.psa.webhooks -c {CONFIG} --by Tester --note gone")
        assert code == 0, "\n".join(confirm_lines)
        assert len(confirm_lines) <= CONFIRM_BUDGET, "\n".join(confirm_lines)
        said = " ".join(confirm_lines)
        assert "Confirmed huntress.psa.webhooks by Tester" in said and "Manual items" not in said
        remain = re.search(r"(\d+) manual item\(s\) of this run remain", said)
        # What is still pending, and the items not reached yet (Blumira's wait for notify.sent).
        assert remain and int(remain.group(1)) >= len(pending) - 1, said
        fits_and_runs(confirm_lines, sh)
        assert any(line.startswith("  offboard status --pending --run ") for line in confirm_lines), confirm_lines

        code, status_lines = run(f"offboard status -c {CONFIG}")
        assert code == 3, "\n".join(status_lines)
        fits_and_runs(status_lines, sh)
        run_id = sh(f"offboard status --last-run -c {CONFIG}").stdout.strip()
        code, resume_lines = run(f"offboard apply --resume {run_id} -c {CONFIG} --unattended")
        assert code == 3, "\n".join(resume_lines)
        fits_and_runs(resume_lines, sh)
        code, error_lines = run("offboard keys export -c rehearsal/elsewhere/config.toml -o rehearsal/x.pub")
        assert code == 2 and error_lines[0].startswith("error: no signing key"), error_lines
        fits_and_runs(error_lines)
        assert "  offboard keys init --key-file PATH" in error_lines, error_lines
    finally:
        stop(serve)


BATCH = "rehearsal-batch/batch.plan.json"
SLUGS = ("acme-dental", "customer-2", "customer-3")


def test_batch_apply_on_a_terminal_is_a_live_table_and_in_a_log_a_line_per_step(tmp_path: Path) -> None:
    """Issue 22: `batch apply` said "starting" and then nothing for a minute. On a terminal: a live
    table, a row per exit (its short name whole, never wrapped at 120 columns), each vendor lane
    with its own step, the exit's state (a gate named), then each exit's end; into a log: a line
    per exit per step. Every command the batch prints runs as printed."""
    folder = tmp_path / "work"
    folder.mkdir()
    env = environment(tmp_path / "home")
    del env["COLUMNS"]  # the terminal's own width, as a shell at 120 columns has it
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        serve = subprocess.Popen(["offboard", "sandbox", "serve", "--dir", "rehearsal-batch", "--customers", "3",
                                  "--fast"], cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
    ran: dict[str, int] = {}

    def sh(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", f". rehearsal-batch/sandbox.env && {command}"], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=600, check=False)

    def runs_as_printed(said: str) -> None:
        for printed in printed_commands(said):
            words = shlex.split(printed)
            if set(words) & PLACEHOLDERS or printed in ran:
                continue
            done = sh(printed)
            ran[printed] = done.returncode
            assert done.returncode != 2 and "does not exist" not in done.stdout + done.stderr, (printed, done)

    try:
        wait_for(folder / "rehearsal-batch" / "sandbox.env", serve, log)
        until(lambda: "Ctrl-C stops them" in log.read_text(), what="the sandboxes' announcement")
        # where the customers' configs are, and the batch's first command
        assert f"plan them as one batch with: offboard batch plan rehearsal-batch/exits -o {BATCH}" in " ".join(
            log.read_text().split()), log.read_text()
        assert sh("offboard keys init --key-file rehearsal-batch/signing-key.pem "
                  "--public-key rehearsal-batch/msp.pub").returncode == 0
        planned = sh(f"offboard batch plan rehearsal-batch/exits -o {BATCH}")
        assert planned.returncode == 0, planned.stderr
        printed_apply = f"offboard batch apply {BATCH}"
        assert planned.stdout.rstrip().endswith(f"then run: {printed_apply}"), planned.stdout
        assert "(acme-dental: stopped by the gates above, exit 4," in " ".join(planned.stdout.split())

        # As printed: no override, so Acme Dental's open incident and isolated host stop it (exit 4).
        code, frames, lines = frames_on_a_terminal(f". rehearsal-batch/sandbox.env && {printed_apply}", folder, env)
        assert code == 4, "\n".join(lines)
        # The frames drawn whole (a write may end mid-table): the title and a row of each exit.
        live = [f for f in frames if any(row.startswith("Batch: 3 exit(s)") for row in f)
                and all(any(row.split()[:1] == [slug] for row in f) for slug in SLUGS)]
        assert live, "\n\n".join("\n".join(f) for f in frames[-3:])
        for frame in live:
            header = next(n for n, row in enumerate(frame) if row.lstrip().startswith("Customer"))
            rows = [row for row in frame[header + 2:header + 5]]
            # A row per exit, in the batch's order, its short name whole; nothing wrapped onto a next row.
            assert [row.split()[0] for row in rows] == list(SLUGS), frame
            assert not frame[header + 5].strip(), frame
            cols = frame[header]
            blumira, huntress = cols.index("Blumira"), cols.index("Huntress")
            assert blumira < huntress < cols.index("Done") < cols.index("State") < cols.index("ETA")
            for row in rows:  # each lane its own vendor's step, never the other's
                assert "endpoint" not in row[blumira:huntress], frame
        acme = [f[next(n for n, r in enumerate(f) if r.split()[:1] == ["acme-dental"])] for f in live]
        assert any("stopped by gate huntress" in row for row in acme), acme
        assert any(any(r.split()[:1] in (["customer-2"], ["customer-3"]) and ("running" in r or "re-reading" in r
                                                                       or "budget" in r or "verifying" in r)
                   for r in f) for f in live)
        # The end: each exit's state, its name and run id whole, the gates named.
        said = "\n".join(lines)
        for slug in SLUGS:  # the short name `--customer` takes, as the live table shows it (the full name beside)
            row = next(line for line in lines if line.lstrip("│ ").split(" ")[0] == slug)
            assert ("stopped by a gate" if slug.startswith("acme") else "waiting for a person") in row, said
        detail = " ".join(line.split("│")[-2].strip() for line in lines if line.count("│") == 7)  # its last column
        assert "stopped before any removal by huntress: #503 sent LOW - Incident on ACME-SRV-01" in detail, said
        runs_as_printed(said)

        # Ctrl-C on the terminal while Acme Dental runs: where each exit stopped, and what to run next, stay;
        # nothing of the live table does (its top line stayed: the terminal's "^C" wrapped past its last column).
        code, frames, _ = frames_on_a_terminal(f". rehearsal-batch/sandbox.env && offboard batch apply --resume "
                                               f"{BATCH} --override-preflight rehearsal", folder, env,
                                               ctrl_c_after=b"Batch: 3 exit(s)")
        end = frames[-1]
        assert code == 130, "\n".join(end)
        assert not any(row.startswith(("Batch: 3 exit(s)", "Stopping:")) for row in end), "\n".join(end)
        assert any(row.startswith(f"Next: offboard batch apply --resume {BATCH} --override-preflight rehearsal")
                   for row in end), "\n".join(end)

        # Into a log (not a terminal): a line per exit per step, as before.
        resumed = sh(f"offboard batch apply --resume {BATCH} --override-preflight rehearsal 2>&1 | cat; "
                     "exit ${PIPESTATUS[0]}")
        assert resumed.returncode == 3, resumed.stdout
        assert "acme-dental: Huntress: 3. Remove endpoint coverage (EDR agents)" in resumed.stdout
        assert "acme-dental: Blumira: 0. Notify Blumira first" in resumed.stdout, resumed.stdout
        assert "Batch: 3 exit(s)" not in resumed.stdout
        runs_as_printed(resumed.stdout)
        confirmed = sh(f"offboard batch confirm blumira.notify.sent --plan {BATCH} --by Tester --note sent")
        assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
        # What the status table's details name is printed whole after it (a table cell folds a command).
        status = sh(f"offboard batch status {BATCH}")
        assert f"Next: offboard batch apply --resume {BATCH}" in status.stdout, status.stdout
        runs_as_printed(confirmed.stdout + confirmed.stderr)
        assert f"offboard batch apply --resume {BATCH}" in ran, ran
    finally:
        stop(serve)
