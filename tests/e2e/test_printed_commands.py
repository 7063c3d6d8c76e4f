"""Every command offboard prints runs as printed (issue 22).

A rehearsal against `offboard sandbox serve` in its own process, driven as a technician would from
the folder above `rehearsal/`: each step's output (stdout and stderr) is scanned for the commands it
tells the user to run next, and each is run at once, as printed, from the same folder. Only the
placeholders a person fills in (ITEM, NAME, NOTE) are replaced. A printed command that cannot run
(a config that "does not exist", a usage error: exit 2) fails the test.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from offboard.cli.app import app
from offboard.hints import PLACEHOLDERS
from tests.e2e.test_rehearsal import environment, stop, wait_for

pytestmark = pytest.mark.e2e

COMMANDS = sorted({c.name for c in app.registered_commands if c.name} | {g.name for g in app.registered_groups
                                                                           if g.name}
                  | {"plan", "apply", "verify", "bundle", "demo"})
# A printed command is shown between backticks, or ends its line after a colon ("then run: offboard …"),
# or, on a terminal too narrow for its message, stands on a line of its own, indented two spaces.
NAMES = "|".join(COMMANDS)
BACKTICKED = re.compile(rf"`(offboard (?:{NAMES})\b[^`]*)`")
LINE_END = re.compile(rf"(?:(?<=: )|^  )(offboard (?:{NAMES})(?: [^`\n]*)?)$", re.MULTILINE)
FILLED = {"NAME": "Rehearsal Tester", "NOTE": "rehearsal: done in the sandbox"}
CONFIG = "rehearsal/config.toml"


def printed_commands(text: str) -> list[str]:
    text = re.sub(r" \\\n +", " ", text)  # a command continued on the next line, as the shell reads it
    found = [m.group(1) for m in BACKTICKED.finditer(text)]
    found += [m.group(1).rstrip(".") for m in LINE_END.finditer(BACKTICKED.sub("", text))]
    return list(dict.fromkeys(found))


def test_the_scanner_finds_commands_in_backticks_and_at_line_ends() -> None:
    text = ("Saved to x.json. Review it, then run: offboard apply x.json -c 'a b/config.toml'\n"
            "do each, then `offboard confirm ITEM --by NAME --note NOTE --run R1` and so on\n"
            "offboard plans now differ; offboard never sends mail\n"
            "run R1 stopped before its end; continue it with:\n  offboard apply --resume R1 -c x.toml\n"
            "First, the key:\n  offboard keys init --key-file k.pem \\\n      -c x.toml\n")
    assert printed_commands(text) == ["offboard confirm ITEM --by NAME --note NOTE --run R1",
                                      "offboard apply x.json -c 'a b/config.toml'",
                                      "offboard apply --resume R1 -c x.toml",
                                      "offboard keys init --key-file k.pem -c x.toml"]


def test_every_command_printed_in_a_rehearsal_runs_as_printed(tmp_path: Path) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    subprocess.run(["git", "init", "-q", str(folder)], check=True)  # the rehearsal run inside someone's repository
    env = environment(tmp_path / "home")
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        serve = subprocess.Popen(["offboard", "sandbox", "serve", "--fast"], cwd=folder, env=env, stdout=out,
                                 stderr=subprocess.STDOUT)
    ran: dict[str, int] = {}
    outputs: list[str] = []

    def sh(command: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["bash", "-c", f". rehearsal/sandbox.env && {command}"], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=600, check=False)
        outputs.append(f"$ {command}\n{done.stdout}{done.stderr}")
        return done

    def fill(command: str) -> str | None:
        words = shlex.split(command)
        if "ITEM" in words:
            pending = sh(f"offboard status --pending -c {CONFIG}").stdout.split()
            if not pending:
                return None
            words = [pending[0] if w == "ITEM" else w for w in words]
        words = [FILLED.get(w, w) for w in words]
        if PLACEHOLDERS & set(words):
            return None  # a template (FILE, PATH, ...) for the person to complete: not run here
        return shlex.join(words)

    def follow(output: str, depth: int = 0) -> None:
        """Run each command the output prints, as printed; then the commands those print, once."""
        for printed in printed_commands(output):
            command = fill(printed)
            if command is None or command in ran or depth > 1:
                continue
            done = sh(command)
            ran[command] = done.returncode
            said = done.stdout + done.stderr
            assert done.returncode != 2 and "does not exist" not in said, f"printed {printed!r}, ran it: {said}"
            follow(said, depth + 1)

    def step(command: str, expected: int) -> str:
        done = sh(command)
        said = done.stdout + done.stderr
        assert done.returncode == expected, f"{command}: {said}"
        follow(said)
        return said

    try:
        wait_for(folder / "rehearsal" / "sandbox.env", serve, log)
        for _ in range(600):  # its announcement follows the env file
            if "Ctrl-C stops them" in log.read_text():
                break
            time.sleep(0.1)
        follow(log.read_text())  # the signing key the config names: `offboard keys init ...`
        assert any(c.startswith("offboard keys init") for c in ran), log.read_text()
        assert (folder / "rehearsal" / "signing-key.pem").exists()
        planned = step(f"offboard plan -c {CONFIG} -o rehearsal/exit.plan.json", 0)
        # its gates (an open incident, an isolated host) refuse a plain apply: the override is in the command
        assert (f"once the gates above are handled, run: offboard apply "
                f"rehearsal/exit.plan.json -c {CONFIG} --override-preflight REASON") in " ".join(planned.split())
        step(f"offboard apply rehearsal/exit.plan.json -c {CONFIG} --unattended --override-preflight rehearsal", 3)
        assert "huntress.psa.webhooks" in sh(f"offboard status --pending -c {CONFIG}").stdout.split()
        said = sh(f"offboard confirm huntress.psa.webhoks -c {CONFIG} --by Tester").stderr
        assert "did you mean huntress.psa.webhooks?" in said
        said = step(f"offboard confirm psa.webhooks -c {CONFIG} --by Tester --note gone", 0)  # the short spelling
        assert "Confirmed huntress.psa.webhooks" in said
        step(f"offboard apply --resume $(offboard status --last-run -c {CONFIG}) -c {CONFIG} --unattended", 3)
        for vendor, items in (("HUNTRESS", "itdr.unmap-tenant siem.disconnect-sources sat.close-campaigns"),
                              ("BLUMIRA", "sensors.remove cloud-connectors.remove agents.remove-devices "
                                          "agents.remove-keys reports.delete-scheduled users.remove")):
            sh(f"for i in {items}; do curl -fsS -o /dev/null -X POST \"$SANDBOX_{vendor}_URL/_sandbox/portal/$i\"; "
               "done")  # the person at the portal
        for item in sh(f"offboard status --pending -c {CONFIG}").stdout.split():
            sh(f"offboard confirm {item} -c {CONFIG} --by Tester --note done")
        step(f"offboard verify -c {CONFIG} --run $(offboard status --last-run -c {CONFIG})", 0)
        bundled = step(f"offboard bundle -c {CONFIG} -o rehearsal/acme-exit.tar.gz", 0)
        assert "offboard bundle verify rehearsal/acme-exit.tar.gz --public-key rehearsal/msp.pub" in bundled
    finally:
        stop(serve)
    # Nothing the rehearsal wrote (its signing key, runs, evidence, bundle) is offered to a commit.
    untracked = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=folder,
                               capture_output=True, text=True, check=True).stdout
    assert untracked == "", untracked
    kinds = {" ".join(c.split()[:2]) for c in ran}
    assert {"offboard keys", "offboard apply", "offboard confirm", "offboard bundle", "offboard status"} <= kinds, (
        ran, "\n".join(outputs)[-6000:])
