"""Where a single exit's vendor lane sits idle while the rate limit would let it call.

    .venv/bin/python -m bench.lane --agents 2000 [--trust-listing]

A diagnosis, not a figure for the docs' table (that is ``bench.performance``): it runs one exit the
way the benchmark does (the sandbox in its own process, the window compressed x100) and reads the
sandbox's request log. Before each call, the lane could have sent it from the later of

- the previous call's reply (one call at a time per lane), and
- the vendor's own window (the call a limit earlier, plus the window),

so the time from there to the call's arrival was lost. It is split in two: the part offboard's
limiter held on purpose (it counts each call from its reply, over a window 0.5 % longer, so its
window never ends before the vendor's: a safety rule, kept) and the rest, which the lane spent on
something else. That rest is told by what the run was doing then: the engine's phases are timed
here by wrapping them (``PHASES``), the innermost one running at the lost moment named.

A delay is counted where the window notices it, often many calls later (the start's CPU shows as
the first removals "waiting for a reply"), so the exit is also split in three stretches, each
against its calls at the vendor's rate (``stretches``): the start, the writes, the tail.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from bench import performance as perf
from offboard.connectors.sandboxing import SandboxBase

# (module, attribute path, label): what the lane may be doing between two calls.
PHASES: list[tuple[str, str, str]] = [
    ("offboard.engine.planner", "make_plan", "plan"),
    ("offboard.engine.apply", "discover_timed", "apply: re-plan discovery"),
    ("offboard.engine.apply", "check_not_stale", "apply: stale-plan check"),
    ("offboard.engine.apply", "vendor_plans", "apply: re-plan"),
    ("offboard.engine.apply", "check_matches_replan", "apply: plan = re-plan check"),
    ("offboard.engine.apply", "write_plan", "apply: plan.json written"),
    ("offboard.engine.apply", "_open_run", "apply: run opened (action.planned lines)"),
    ("offboard.engine.execute", "_run_read", "evidence export"),
    ("offboard.engine.execute", "_run_action", "write (owner read + write + audit)"),
    ("offboard.engine.execute", "verify_run", "verification"),
    ("offboard.engine.execute", "write_documents", "documents"),
    ("offboard.engine.listings", "Listings.current", "--trust-listing: listing re-taken"),
    ("offboard_huntress.session", "HuntressSession.discover", "discovery (connector)"),
    ("offboard_huntress.session", "HuntressSession.owners", "--trust-listing: owners re-read (connector)"),
]


@dataclass
class Span:
    label: str
    start: float
    end: float
    depth: int


class Timeline:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._depth = threading.local()

    def wrap(self, fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            depth = getattr(self._depth, "n", 0)
            self._depth.n = depth + 1
            start = time.monotonic()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth.n = depth
                self.spans.append(Span(label, start, time.monotonic(), depth))
        return timed

    def at(self, moment: float) -> str:
        inside = [s for s in self.spans if s.start <= moment <= s.end]
        return max(inside, key=lambda s: s.depth).label if inside else "outside every phase"


@contextmanager
def timed_phases(timeline: Timeline) -> Iterator[None]:
    undo: list[tuple[Any, str, Any]] = []
    try:
        for module, path, label in PHASES:
            owner: Any = importlib.import_module(module)
            *parents, name = path.split(".")
            for p in parents:
                owner = getattr(owner, p)
            before = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
            undo.append((owner, name, before))
            setattr(owner, name, timeline.wrap(before, label))
        yield
    finally:
        for owner, name, before in reversed(undo):
            setattr(owner, name, before)


def lost(log: list[dict[str, Any]], limit: int, window: float, margin: float = 0.005
         ) -> list[tuple[float, float, float, float, str]]:
    """Per call: (its arrival, and how late it was against the vendor's window, in three parts:
    the limiter holding it on purpose, the lane waiting for the previous call's reply, the lane
    elsewhere; its method and path).

    The vendor's window lets call i arrive a window after call i-limit, so the time taken is the
    calls of one window's worth times the window, plus the lateness summed along each chain of
    calls a limit apart: averaged over the ``limit`` chains, the lateness / limit is what the run lost."""
    calls = sorted((r for r in log if not r["path"].startswith(SandboxBase.CONTROL) and r["arrived"]),
                   key=lambda r: r["arrived"])
    first = calls[0]["arrived"]
    out = []
    for i, r in enumerate(calls):
        allowed = calls[i - limit]["arrived"] + window if i >= limit else first
        late = max(0.0, r["arrived"] - allowed)
        ours = calls[i - limit]["at"] + window * (1 + margin) if i >= limit else first
        held = min(late, max(0.0, ours - allowed))
        prev = calls[i - 1]["at"] if i else first
        busy = min(late - held, max(0.0, prev - max(allowed, ours)))
        out.append((r["arrived"], held, busy, late - held - busy, f"{r['method']} {r['path']}"))
    return out


@dataclass(frozen=True)
class Stretch:
    name: str
    calls: int
    seconds: float  # from its first call's arrival to its last call's reply (the next stretch's first arrival)
    at_ceiling: float  # its calls at the vendor's rate (limit a window), with no burst allowance

    @property
    def lost(self) -> float:
        return self.seconds - self.at_ceiling


def stretches(log: list[dict[str, Any]], limit: int, window: float) -> list[Stretch]:
    """The exit in three stretches, each against its calls at the vendor's rate: the start (every
    call before the first write: discoveries, gates, exports), the writes (first write to last, the
    listings re-taken between them included) and the tail (verification). The lateness split above
    counts a delay where the window notices it, often many calls later; this says where the time went."""
    calls = sorted((r for r in log if not r["path"].startswith(SandboxBase.CONTROL) and r["arrived"]),
                   key=lambda r: r["arrived"])
    writes = [i for i, r in enumerate(calls) if r["method"] != "GET"]
    if not writes:
        return [Stretch("reads only", len(calls), calls[-1]["at"] - calls[0]["arrived"], len(calls) * window / limit)]
    first, last = writes[0], writes[-1]
    bounds = [("start (before the first write)", 0, first, calls[first]["arrived"]),
              ("writes (first to last, re-listings included)", first, last + 1, calls[last]["at"]),
              ("tail (after the last write)", last + 1, len(calls), calls[-1]["at"])]
    out, begun = [], calls[0]["arrived"]
    for name, a, b, end in bounds:
        out.append(Stretch(name, b - a, end - begun, (b - a) * window / limit))
        begun = end
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=2_000)
    parser.add_argument("--trust-listing", action="store_true")
    parser.add_argument("--top", type=int, default=12, help="the largest single losses to list")
    parser.add_argument("--switch-interval", type=float, help="the interpreter's thread switch interval (s)")
    args = parser.parse_args(argv)
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    timeline = Timeline()
    spec = perf.huntress(args.agents)
    urls: list[str] = []
    served = perf._served

    @contextmanager
    def keep_url(*specs: Any) -> Iterator[Any]:
        with served(*specs) as got:
            urls.extend(u for u in got if u)
            yield got
            log.extend(httpx.get(f"{urls[0]}{SandboxBase.CONTROL}log", timeout=60).json())

    log: list[dict[str, Any]] = []
    perf._served = keep_url  # type: ignore[assignment]
    try:
        with timed_phases(timeline):
            wall, timing, _ = perf.exit_run(spec, None, trust_listing=args.trust_listing)
    finally:
        perf._served = served  # type: ignore[assignment]
    assert timing is not None
    print(f"{args.agents:,} agents, {'--trust-listing' if args.trust_listing else 'each object read before its write'}"
          f": {timing.calls:,} calls, minimum {timing.minimum:.2f} s, taken {timing.seconds:.2f} s, "
          f"ratio {timing.ratio:.3f}, 429s {timing.throttled}; whole run {wall:.2f} s")
    for st in stretches(log, spec.limit, spec.window):
        print(f"  {st.name}: {st.calls:,} calls in {st.seconds:.3f} s, {st.at_ceiling:.3f} s at the vendor's rate: "
              f"{st.lost:+.3f} s")
    per_call = lost(log, spec.limit, spec.window)
    n = spec.limit
    print(f"lost: {timing.seconds - timing.minimum:.3f} s; the lateness summed over the calls / {n}: "
          f"limiter's reply rule and margin {sum(c[1] for c in per_call) / n:.3f} s, the lane waiting for a "
          f"reply {sum(c[2] for c in per_call) / n:.3f} s, the lane elsewhere {sum(c[3] for c in per_call) / n:.3f} s")
    by_phase: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0])
    for arrived, held, busy, gone, _ in per_call:
        row = by_phase[timeline.at(arrived - gone / 2)]
        row[0] += held / n
        row[1] += busy / n
        row[2] += gone / n
        row[3] += 1
    print("| phase at the late moment | limiter held (s) | waiting for a reply (s) | lane elsewhere (s) | calls |")
    print("|---|---|---|---|---|")
    for label, (held, busy, gone, calls) in sorted(by_phase.items(), key=lambda kv: -kv[1][2]):
        print(f"| {label} | {held:.3f} | {busy:.3f} | {gone:.3f} | {calls:,} |")
    spans: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for s in timeline.spans:
        spans[s.label][0] += s.end - s.start
        spans[s.label][1] += 1
    print("\nphase durations (s, count):", ", ".join(f"{k} {v[0]:.3f} ({v[1]})" for k, v in spans.items()))
    print("\nthe latest calls (s late, elsewhere part):")
    for arrived, held, busy, gone, what in sorted(per_call, key=lambda x: -x[3])[:args.top]:
        print(f"  {held + busy + gone:.3f} {gone:.3f}  {what}  [{timeline.at(arrived - gone / 2)}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
