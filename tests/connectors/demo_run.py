"""A demo-like exit in-process: both vendors' sandboxes, the demo's override, a person at each
portal, confirmations and resumes until nothing waits (what `offboard demo` does over HTTP)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from offboard import engine
from offboard.config import ExitConfig
from offboard.connectors.sandboxing import InProcessTransport, SandboxBase
from offboard.plan import Action, Plan
from offboard_blumira.sandbox import BlumiraSandbox
from offboard_huntress.sandbox import HuntressSandbox
from tests.conftest import DEMO_CREDS, FAST, blumira_section, load, write_config

OVERRIDE = engine.Overrides(preflight="demo: the sandbox customer's isolated host is part of the exercise")


@dataclass
class DemoRun:
    huntress: HuntressSandbox
    blumira: BlumiraSandbox
    cfg: ExitConfig
    plan: Plan | None = None
    results: list[engine.RunResult] = field(default_factory=list)

    @property
    def sandboxes(self) -> dict[str, SandboxBase]:
        return {"huntress": self.huntress, "blumira": self.blumira}

    @contextlib.contextmanager
    def sessions(self) -> Iterator[engine.Sessions]:
        transports = {n: InProcessTransport(sb.app) for n, sb in self.sandboxes.items()}
        with engine.open_sessions(self.cfg, transports=transports, creds=DEMO_CREDS) as s:
            yield s

    def at_portal(self, action: Action) -> None:
        """The person at the vendor's portal does the item (the sandboxes' stand-in)."""
        params = {"target": action.target.id} if action.kind == "api" else {}
        sb = self.sandboxes[action.vendor]
        with httpx.Client(transport=InProcessTransport(sb.app), base_url="http://sandbox") as portal:
            portal.post(f"{SandboxBase.CONTROL}portal/{action.operation}", params=params)


def demo_world(directory: Path, *, blumira_extra: str = "") -> DemoRun:
    cfg = load(write_config(directory, blumira=blumira_section(extra=blumira_extra)))
    return DemoRun(HuntressSandbox(time_scale=FAST), BlumiraSandbox(time_scale=FAST), cfg)


def play(demo: DemoRun, *, between: Callable[[DemoRun, str, Any], None] | None = None) -> engine.RunResult:
    """Plan, apply with the demo's override, then each pending item done at the portal and
    confirmed, resuming while actions waited for them. ``between(demo, verb, outcome)`` is called
    after each command, e.g. to compare what every command would print at that moment."""
    with demo.sessions() as s:
        demo.plan = engine.make_plan(demo.cfg, s)
        result = engine.apply(demo.plan, demo.cfg, s, overrides=OVERRIDE)
        demo.results.append(result)
        if between:
            between(demo, "apply", result)
        while result.pending:
            to_resume: list[Any] = []
            for action in result.pending:
                demo.at_portal(action)
                done = engine.confirm(result.run.run_id, action.id, "J. Doe", "done at the portal", demo.cfg, s)
                if between:
                    between(demo, "confirm", done)
                to_resume = done.to_resume
            if not to_resume:
                break
            result = engine.resume(result.run.run_id, demo.cfg, s)
            demo.results.append(result)
            if between:
                between(demo, "resume", result)
    return result
