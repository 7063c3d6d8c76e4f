"""`offboard apply` killed with SIGKILL while one of its writes is in flight, then resumed.

The vendor holds the chosen write (the n-th of its kind, seeded): either before its handler
runs, so the write lands after the process died, or after it, so the write landed and the
reply never reaches anyone. The process is killed then, the write let go, and the run resumed
(`apply --resume`, the notification to Blumira confirmed when the run waits for it) until it
ends. A resumed run must re-read before it sends anything again.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from dataclasses import dataclass

from offboard.connectors.sandboxing import Fault, SandboxBase
from offboard.errors import ExitCode

from .matrix_world import Row, World, to_person, unconfirmed_gates

OVERRIDE = ("--override-preflight", "fault matrix")
BEFORE = "held before the vendor's handler (it acted after the kill)"
AFTER = "held after the vendor acted (its reply went nowhere)"


@dataclass(frozen=True)
class KillPoint:
    """Kill during one kind of write: one of ``targets`` (vendor, method, path prefix, how many
    such writes an exit sends at least) is chosen per run, then which of them, both seeded."""

    label: str
    targets: tuple[tuple[str, str, str, int], ...]


@dataclass
class _Armed:
    point: KillPoint
    vendor: str
    fault: Fault
    struck: bool = False


def _arm(w: World, point: KillPoint, rng: random.Random, acted: bool) -> _Armed:
    vendor, method, prefix, count = rng.choice(point.targets)
    fault = Fault(method=method, path_prefix=prefix, status=None, acted=acted,
                  hold=threading.Event(), after=rng.randrange(max(1, count)))
    (w.h if vendor == "huntress" else w.b).faults.append(fault)
    return _Armed(point, vendor, fault)


def _wait(proc: subprocess.Popen[str], armed: list[_Armed], deadline: float) -> _Armed | None:
    """The armed write that reached its vendor, or None once the process ended by itself."""
    while time.monotonic() < deadline:
        hit = next((a for a in armed if not a.struck and a.fault.reached.is_set()), None)
        if hit is not None or proc.poll() is not None:
            return hit
        time.sleep(0.002)
    return None


def _let_go(sandbox: SandboxBase, fault: Fault, before: int) -> None:
    """Release the held write and wait until the vendor has answered it (into a dead socket)."""
    assert fault.hold is not None
    fault.hold.set()
    deadline = time.monotonic() + 30
    while len(sandbox.requests) <= before and time.monotonic() < deadline:
        time.sleep(0.002)


def killed_then_resumed(w: World, points: tuple[KillPoint, ...], rng: random.Random, row: Row) -> int:
    first = rng.random() < 0.5  # then alternate: several points strike both before and after the handler
    armed = [_arm(w, p, rng, acted=(first + n) % 2 == 1) for n, p in enumerate(points)]
    args: tuple[str, ...] = ("apply", str(w.plan_file), *OVERRIDE)
    code = -1
    try:
        for _ in range(4 + 2 * len(points)):
            proc = w.popen(*args)
            hit = _wait(proc, armed, time.monotonic() + 240)
            if hit is not None and proc.poll() is None:
                sandbox = w.h if hit.vendor == "huntress" else w.b
                before = len(sandbox.requests)
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                hit.struck = True
                row.faults += 1
                row.kinds[hit.point.label] += 1
                row.kinds[AFTER if hit.fault.acted else BEFORE] += 1
                _let_go(sandbox, hit.fault, before)
            code = w.collect(proc, args[0] + (" --resume" if "--resume" in args else ""))
            run = w.run_folders()[-1]
            if code == ExitCode.FAILED:
                to_person(w, run, row)
            gates = unconfirmed_gates(run / "audit.jsonl")
            for item in gates:  # the technician sent the notification the vendor asks for first
                w.offboard("confirm", item, "--by", "fault matrix", "--note", "sent", "--run", run.name)
            if hit is None and not gates and code != ExitCode.FAILED:
                break
            row.resumes += 1
            args = ("apply", "--resume", run.name, *OVERRIDE)
    finally:
        for a in armed:  # never leave a request of a sandbox waiting
            assert a.fault.hold is not None
            a.fault.hold.set()
    missed = [a.point.label for a in armed if not a.struck]
    if missed:
        row.notes.append(f"no kill during {', '.join(missed)} (the write never came)")
    return code
