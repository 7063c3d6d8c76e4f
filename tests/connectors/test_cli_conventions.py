"""CLI conventions (issue 15, friction 8): help for bare groups, `-h`, `--version`, shell completion,
one spelling for run ids, tables that keep ids whole when not a terminal, NO_COLOR, `-q` and `-v`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from offboard.connectors.sandboxing import serve
from offboard_huntress.sandbox import DEMO_KEY, DEMO_SECRET, HuntressSandbox
from tests.conftest import write_config

SCALE = 0.002


def offboard_exe() -> list[str]:
    script = Path(sys.executable).parent / "offboard"
    found = str(script) if script.exists() else shutil.which("offboard")
    assert found, "the offboard console script is not installed (pip install -e .)"
    return [found]


@pytest.mark.parametrize("group", [(), ("audit",), ("keys",), ("auth",)])
def test_a_bare_group_prints_its_help_and_exits_0(cli: Any, group: tuple[str, ...]) -> None:
    result = cli(*group)
    assert result.code == 0, result.err  # the old code: exit 2 and the usage squashed into one error line
    assert result.err == ""
    assert result.out.startswith(f"Usage: {' '.join(('offboard', *group))} [OPTIONS] COMMAND")
    assert "\nCommands:\n" in result.out


@pytest.mark.parametrize("args", [("-h",), ("plan", "-h"), ("audit", "verify", "-h"), ("keys", "init", "-h")])
def test_dash_h_is_help_everywhere(cli: Any, args: tuple[str, ...]) -> None:
    result = cli(*args)
    assert result.code == 0 and result.out.startswith("Usage: offboard"), result.err
    assert result.out == cli(*args[:-1], "--help").out


def test_version(cli: Any) -> None:
    from importlib.metadata import version

    result = cli("--version")
    assert result.code == 0, result.err
    assert result.out.strip() == f"offboard {version('offboard')} (connectors: blumira, huntress)"


def test_shell_completion_is_offered_and_completes_commands(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OFFBOARD_", "_OFFBOARD"))}
    shown = subprocess.run([*offboard_exe(), "--show-completion", "bash"], env=env, capture_output=True, text=True,
                           timeout=60, check=False)
    assert shown.returncode == 0 and "_OFFBOARD_COMPLETE=complete_bash" in shown.stdout, shown.stderr
    assert "--install-completion" in subprocess.run([*offboard_exe(), "--help"], env=env, capture_output=True,
                                                    text=True, timeout=60, check=False).stdout
    completed = subprocess.run([*offboard_exe()], capture_output=True, text=True, timeout=60, check=False,
                               env={**env, "_OFFBOARD_COMPLETE": "complete_bash", "COMP_WORDS": "offboard audit ",
                                    "COMP_CWORD": "2"})
    assert completed.stdout.split() == ["verify"], completed.stderr


# -- against a sandbox ------------------------------------------------------------------------------


@dataclass
class Exit:
    sandbox: HuntressSandbox
    config: Path


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Exit]:
    sandbox = HuntressSandbox(time_scale=SCALE)
    with serve(sandbox.app) as url:
        monkeypatch.setenv("OFFBOARD_HUNTRESS_API_KEY", DEMO_KEY)
        monkeypatch.setenv("OFFBOARD_HUNTRESS_API_SECRET", DEMO_SECRET)
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("FORCE_COLOR", raising=False)
        monkeypatch.delenv("NO_COLOR", raising=False)
        yield Exit(sandbox, write_config(tmp_path, url, window=60 * SCALE))


@pytest.fixture
def applied(cli: Any, served: Exit) -> str:
    """A run with manual items pending; its id."""
    assert cli("plan", "-c", str(served.config), "-o", "exit.plan.json").code == 0
    result = cli("apply", "exit.plan.json", "-c", str(served.config), "--override-preflight", "lab", "--unattended")
    assert result.code == 3, result.out + result.err
    return sorted((served.config.parent / "runs").iterdir())[-1].name


def test_run_ids_are_given_with_run_and_the_old_positional_spelling_still_works(cli: Any, served: Exit,
                                                                               applied: str) -> None:
    config = str(served.config)
    by_option = cli("status", "--run", applied, "-c", config)
    assert by_option.code == 3 and f"Run {applied}" in by_option.out and by_option.err == ""
    old = cli("status", applied, "-c", config)
    assert old.code == 3 and old.out == by_option.out
    assert f"`offboard status {applied}` is deprecated; use `offboard status --run {applied}`" in old.err
    both = cli("status", applied, "--run", "20260101T000000000Z-abcdef", "-c", config)
    assert both.code == 2 and "two run ids given" in both.err
    assert "RUN_ID" not in cli("status", "-h").out.split("\n")[0]  # usage names only --run

    for args in (("status",), ("confirm", "x", "--by", "me"), ("verify",), ("bundle",)):
        assert "--run RUN_ID" in cli(*args, "--help").out, args
    missing = cli("status", "--run", "20260101T000000000Z-abcdef", "-c", config)
    assert missing.code == 2 and f"its latest runs: {applied}" in missing.err  # not "status --all lists the runs"


def test_tables_keep_ids_whole_when_not_a_terminal(cli: Any, served: Exit) -> None:
    long_name = "ACME-RECEPTION-WORKSTATION-WITH-A-VERY-LONG-HOSTNAME-0001"
    agent = served.sandbox.agents_of(42)[0]
    agent["hostname"] = long_name
    result = cli("plan", "-c", str(served.config), "-o", "exit.plan.json")
    assert result.code == 0, result.err
    actions = [a for v in json.loads(Path("exit.plan.json").read_text())["vendors"] for s in v["steps"]
               for a in s["actions"]]
    lines = result.out.splitlines()
    for a in actions[:80]:
        # A manual item by the one id `confirm` takes (issue 22); an object by its name and the vendor's id.
        whole = a["id"] if a["kind"] == "manual" else f"{a['target']['name']} ({a['target']['id']})"
        assert any(whole in line for line in lines), whole  # the old code folded them at 80 columns
    assert any(long_name in line and f"DELETE /v1/agents/{agent['id']}" in line for line in lines)
    # ... and no line carries padding to its end (review at 120x40: a table's title and caption were padded
    # to the table's width, hundreds of spaces in a file); the lines stay as wide as their content.
    padded = [line for line in lines if line != line.rstrip()]
    assert padded == [], padded[:3]
    assert max(len(line) for line in lines) > 120  # as wide as the content: nothing folded to fit


def test_no_piped_line_ends_in_padding(cli: Any, served: Exit, applied: str) -> None:
    for args in (("status", "--run", applied), ("verify", "--run", applied)):
        shown = cli(*args, "-c", str(served.config))
        lines = shown.out.splitlines()
        assert lines and [line for line in lines if line != line.rstrip()] == [], (args, lines[:5])
        assert any(line.startswith(("┏", "┌")) for line in lines), args  # tables are there, only unpadded


def test_colour_follows_no_color(cli: Any, served: Exit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # as on a terminal
    coloured = cli("verify", "-c", str(served.config))
    assert coloured.code == 1 and "\x1b[1;31m" in coloured.out  # FAILED in bold red
    monkeypatch.setenv("NO_COLOR", "1")
    plain = cli("verify", "-c", str(served.config))
    assert plain.code == 1 and "Service NOT stopped" in plain.out
    assert "\x1b[31m" not in plain.out and "\x1b[1;31m" not in plain.out and "\x1b[32m" not in plain.out


def test_quiet_prints_nothing_but_errors_and_verbose_shows_each_call(cli: Any, served: Exit) -> None:
    # What blocks apply (the sandbox's open incident and isolated host) is a warning: said under -q too.
    gates = ("Blocks apply: huntress: #503 sent LOW - Incident on ACME-SRV-01 (Acme Dental); huntress: ACME-SRV-01 "
             "(Isolated) — once handled, pass them with --override-preflight REASON\n")
    quiet = cli("-q", "plan", "-c", str(served.config), "-o", "exit.plan.json")
    assert quiet.code == 0 and quiet.out == "" and quiet.err == gates, quiet.err
    assert Path("exit.plan.json").exists()
    assert cli("-q", "plan", "-c", "nope.toml").err.startswith("error: config file")
    after = cli("plan", "-c", str(served.config), "-o", "after.plan.json", "--quiet")  # after the command too
    assert after.code == 0 and after.out == "" and after.err == gates and Path("after.plan.json").exists()
    assert cli("plan", "-c", "nope.toml", "-q").err.startswith("error: config file")

    loud = cli("-v", "verify", "-c", str(served.config))
    calls = [line for line in loud.err.splitlines() if "HTTP Request: GET" in line]
    assert loud.code == 1 and calls and all(str(served.config) not in c for c in calls)
    assert "/v1/organizations/42" in loud.err
    assert DEMO_SECRET not in loud.err + loud.out and DEMO_KEY not in loud.err + loud.out
    assert "HTTP Request" not in cli("verify", "-c", str(served.config)).err  # off again without -v
