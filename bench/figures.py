"""The benchmark's figures as the docs show them: written by the benchmark, never by hand.

The block between ``BEGIN`` and ``END`` in a page holds the command that measured it, when, at
which commit, on what machine (CPU, cores, load average at the start), with which Python and
dependency versions, the table, and a digest over all of it. ``check`` recomputes the digest: a
figure edited by hand, or a table pasted from elsewhere, no longer matches.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

BEGIN = "<!-- bench.performance: begin (written by the benchmark; do not edit) -->"
END = "<!-- bench.performance: end -->"
DIGEST = "<!-- digest sha256:"
# What sets the figures besides offboard's own code: the HTTP stack, the models, the output.
DEPENDENCIES = ("httpx", "httpcore", "h11", "pydantic", "pydantic-core", "pydantic-settings", "typer", "rich",
                "structlog", "tenacity", "starlette", "uvicorn", "cryptography", "filelock")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _commit() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{head}{' with uncommitted changes' if dirty else ''}"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def environment() -> list[str]:
    """What a reader needs to reproduce the figures, read when the benchmark starts."""
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    deps = ", ".join(f"{name} {_version(name)}" for name in DEPENDENCIES)
    return [
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC at commit {_commit()}.",
        f"Machine: {_cpu()}, {os.cpu_count()} cores, {platform.system()} {platform.release()} "
        f"({platform.machine()}); load average at the start {load} (1, 5, 15 min).",
        f"Python {platform.python_version()}; offboard {_version('offboard')}; {deps}.",
    ]


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def block(command: str, environment: list[str], table: list[str]) -> str:
    body = [f"    .venv/bin/{command}", "", *table, "", *environment]
    return "\n".join([BEGIN, *body, f"{DIGEST}{_digest(body)} -->", END])


def write(page: Path, command: str, environment: list[str], table: list[str]) -> None:
    text = page.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{page} has no block to write into: add the lines {BEGIN!r} and {END!r}")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    page.write_text(head + block(command, environment, table) + tail, encoding="utf-8")


def check(page: Path) -> str | None:
    """None when the page's block is the benchmark's own, else what is wrong with it."""
    text = page.read_text(encoding="utf-8")
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        return f"{page} must hold exactly one benchmark block ({BEGIN})"
    lines = text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n").split("\n")
    if not lines or not lines[-1].startswith(DIGEST):
        return f"{page}'s benchmark block has no digest line: it was not written by the benchmark"
    body, stated = lines[:-1], lines[-1][len(DIGEST):].removesuffix(" -->").strip()
    if _digest(body) != stated:
        return f"{page}'s benchmark block was edited after the benchmark wrote it (its digest no longer matches)"
    return None
