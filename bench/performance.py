"""Performance: does an exit run at the vendor's rate-limit ceiling without tripping it?

    .venv/bin/python -m bench.performance [--quick] [--only single]

The wall time of an exit is set by the vendor's limit (Huntress: 60 requests in any 60 s per
account), so the physical minimum is a window for each limit's worth of calls after the first
(``ceiling_span``: the calls in bursts of the limit, a window apart). The
sandboxes enforce that sliding window on a compressed clock (``SCALE``: 60 s lasts 0.6 s) and
offboard's limiter is given the same compressed window, so the ratio of the minimum to the
time taken means the same as it would against the real API, where the same exit takes
1/SCALE times longer.

Printed, each figure the median of ``--runs`` runs (3) with the minimum beside it: a batch of 50
customers x 100 agents on one account, in one `offboard batch apply` process and split over two
started side by side (ratio to the account's ceiling, 429s); an exit while another client takes up
to a third of the account's limit (429s as a share of the calls); single exits of 100, 2,000 and
10,000 agents in both owner-confirmation modes, each against its own floor of calls (ratio, goal
>= 0.97; ``--only single`` runs just these); `offboard plan` of 10,000 and 50,000 agents as a whole process
(wall time and peak RSS); and a Huntress + Blumira exit run at once against each alone.

It exits 1 when a figure misses its goal, each missed one named on stderr: a single exit's median
ratio under 0.97 (0.95 under 1,000 agents) or any run under 0.95; a batch's under 0.97 (0.95 in two
processes); a 429 while offboard is alone on the account, or more than 1 % of the calls beside
another client; `offboard plan` of 10,000 agents over 1.0 s or 100 MiB.

``--write docs/performance.md`` puts the table in the docs between the page's markers, with what a
reader needs to reproduce it (date, commit, machine, load average at the start, Python and the
resolved versions of the main dependencies, runs per figure) and a digest over all of it: a test
fails when the block is edited by hand (bench/figures.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx
from pydantic import SecretStr

from bench import figures
from offboard import batch as batches
from offboard import connectors, engine
from offboard.config import ExitConfig, load_config
from offboard.connectors.sandboxing import SandboxBase, serve_process
from offboard.engine import listings
from offboard_blumira.sandbox import API_PREFIX, CUSTOMER_ACCOUNT, KEEP_USER, TOKEN_PATH, BlumiraSandbox
from offboard_blumira.sandbox import DEMO_CLIENT_ID as B_ID
from offboard_blumira.sandbox import DEMO_SECRET as B_SECRET
from offboard_huntress.sandbox import DEMO_KEY, DEMO_SECRET, HuntressSandbox

SCALE = 0.01  # Huntress's 60 s window lasts 0.6 s: 2,000 agents take seconds, not half an hour
BLUMIRA_SCALE = 0.1  # Blumira's 1 s window lasts 0.1 s (100 calls/s: what loopback HTTP sustains)
LAB = engine.Overrides(preflight="benchmark: the sandbox's isolated host is part of the exercise")
CREDS = {"huntress": {"api_key": SecretStr(DEMO_KEY), "api_secret": SecretStr(DEMO_SECRET)},
         "blumira": {"client_id": SecretStr(B_ID), "client_secret": SecretStr(B_SECRET)}}


@dataclass
class Timing:
    calls: int
    seconds: float
    minimum: float
    throttled: int

    @property
    def ratio(self) -> float:
        return self.minimum / self.seconds if self.seconds else 1.0


def _config(directory: Path, hurl: str | None, burl: str | None, scale: float = SCALE) -> ExitConfig:
    text = '[customer]\nname = "Acme Dental"\n\n[run]\nruns_dir = "runs"\n\n'
    if hurl:
        text += (f'[huntress]\norganization_id = 42\nbase_url = "{hurl}"\n'
                 f"rate_window_seconds = {60 * scale}\n\n")
    if burl:
        text += (f'[blumira]\naccount_id = "{CUSTOMER_ACCOUNT}"\nbase_url = "{burl}{API_PREFIX}"\n'
                 f'token_url = "{burl}{TOKEN_PATH}"\nrate_window_seconds = {BLUMIRA_SCALE}\n'
                 f'keep_users = ["{KEEP_USER}"]\n')
    path = directory / "config.toml"
    path.write_text(text)
    return load_config(path, {n: c.settings_model for n, c in connectors.installed().items()})


@dataclass(frozen=True)
class Spec:
    """A sandbox to serve in its own process: its class and its settings."""

    factory: type[SandboxBase]
    kwargs: dict[str, Any]
    share: float = 0.0  # another client's part of the account's limit

    @property
    def window(self) -> float:
        return float(self.factory.base_window) * float(self.kwargs["time_scale"])

    @property
    def limit(self) -> int:
        return int(self.kwargs.get("rate_limit") or (60 if self.factory is HuntressSandbox else 10))


def huntress(agents: int, share: float = 0.0, scale: float = SCALE) -> Spec:
    return Spec(HuntressSandbox, {"time_scale": scale, "customer_agents": agents}, share)


def blumira(findings: int) -> Spec:
    return Spec(BlumiraSandbox, {"time_scale": BLUMIRA_SCALE, "customer_findings": findings})


def ceiling_span(calls: int, limit: int, window: float) -> float:
    """The shortest time from the first of ``calls`` to the last that "``limit`` requests in any
    ``window``" allows: the calls go in bursts of ``limit`` a window apart, so call k+limit comes a
    window after call k at the earliest, and the last one ``(calls - 1) // limit`` windows after the
    first. (Spreading ``calls - limit`` evenly, ``(calls - limit) / limit`` windows, is less than the
    limit allows by up to a window: 134 calls at 60 a window need 2 windows, not 1.23.)"""
    return (calls - 1) // limit * window if calls > 0 else 0.0


def _timing(url: str, spec: Spec, since: float) -> Timing:
    return _timing_of(url, spec.limit, spec.window, since)


@contextmanager
def _served(*specs: Spec | None) -> Iterator[list[str | None]]:
    with ExitStack() as stack:
        urls: list[str | None] = []
        for spec in specs:
            if spec is None:
                urls.append(None)
                continue
            url = stack.enter_context(serve_process(spec.factory, **spec.kwargs))
            if spec.share:
                httpx.post(f"{url}{SandboxBase.CONTROL}share", params={"fraction": spec.share}, timeout=10)
            urls.append(url)
        yield urls


def exit_run(h: Spec | None, b: Spec | None, *, trust_listing: bool = False
             ) -> tuple[float, Timing | None, Timing | None]:
    """Plan and apply a whole exit; returns the wall time and each vendor's timing. ``trust_listing``:
    the scope guard's listing mode, its listing believed for MAX_AGE_S on the sandbox's clock (so it
    is re-taken as often as it would be against the real API), else each object read before its write."""
    scale = float(h.kwargs["time_scale"]) if h else SCALE
    with _served(h, b) as (hurl, burl), TemporaryDirectory() as tmp, _listing_clock(scale):
        cfg = _config(Path(tmp), hurl, burl, scale)
        since = time.monotonic()
        with engine.open_sessions(cfg, creds=CREDS) as sessions:
            plan = engine.make_plan(cfg, sessions)
            result = engine.apply(plan, cfg, sessions, overrides=replace(LAB, trust_listing=trust_listing))
        wall = time.monotonic() - since
        if result.exit_code not in (0, 3):
            raise RuntimeError(f"the exit ended with {result.exit_code}: {result.message}")
        return (wall, _timing(hurl, h, since) if h and hurl else None, _timing(burl, b, since) if b and burl else None)


@contextmanager
def _listing_clock(scale: float) -> Iterator[None]:
    """The listing's age counted on the sandbox's compressed clock (its 300 s last 300 x scale s)."""
    before = listings.now
    listings.now = lambda: time.monotonic() / scale
    try:
        yield
    finally:
        listings.now = before


def plan_cost(agents: int) -> tuple[float, float, float]:
    """Seconds to plan (discovery over HTTP included), and the MiB allocated while planning: at the
    peak, and still held once the plan is made (what a run keeps: the plan, the inventory, the
    session's records for the export)."""
    with _served(Spec(HuntressSandbox, {"time_scale": SCALE, "customer_agents": agents})) as (hurl,), \
            TemporaryDirectory() as tmp:
        cfg = _config(Path(tmp), hurl, None)
        with engine.open_sessions(cfg, creds=CREDS) as sessions:
            started = time.monotonic()
            engine.make_plan(cfg, sessions)
            seconds = time.monotonic() - started
            tracemalloc.start()
            plan = engine.make_plan(cfg, sessions)
            held, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            del plan
    return seconds, peak / 2**20, held / 2**20


def _timing_of(url: str, limit: int, window: float, since: float) -> Timing:
    log = httpx.get(f"{url}{SandboxBase.CONTROL}log", timeout=30).json()
    if os.environ.get("OFFBOARD_BENCH_DUMP"):
        Path(os.environ["OFFBOARD_BENCH_DUMP"]).write_text(json.dumps(log))
    # The calls the vendor answered (not the sandbox's control calls nor token mints), first to last.
    calls = [r for r in log if not r["path"].startswith(SandboxBase.CONTROL) and r["path"] != TOKEN_PATH
             and r["at"] >= since]
    span = calls[-1]["at"] - calls[0]["at"] if len(calls) > 1 else 0.0
    return Timing(len(calls), span, ceiling_span(len(calls), limit, window),
                  sum(1 for r in calls if r["status"] == 429))


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFBOARD_")}
    env.update(OFFBOARD_HUNTRESS_API_KEY=DEMO_KEY, OFFBOARD_HUNTRESS_API_SECRET=DEMO_SECRET,
               PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring", XDG_CACHE_HOME=str(cache),
               OFFBOARD_LOCK_DIR=str(cache / "locks"))  # the benchmark's sandbox exits, not the machine's
    return env


def batch_run(customers: int, agents: int, processes: int = 1, parallel: int = batches.PARALLEL) -> Timing:
    """A batch of ``customers`` of one Huntress account, ``agents`` each, applied by ``processes``
    `offboard batch apply` processes started side by side (the customers split between them)."""
    orgs = {1000 + n: agents for n in range(customers)}
    spec = Spec(HuntressSandbox, {"time_scale": SCALE, "customer_agents": 0, "neighbour_agents": 0,
                                  "more_customers": orgs})
    models = {n: c.settings_model for n, c in connectors.installed().items()}
    with _served(spec) as (url,), TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "template.toml").write_text(
            f'[customer]\nname = "-"\n\n[huntress]\norganization_id = 1\nbase_url = "{url}"\n'
            f"rate_window_seconds = {60 * SCALE}\n")
        ids = sorted(orgs)
        plans = []
        for p in range(processes):
            part = ids[p::processes]
            listing = base / f"part{p}.csv"
            listing.write_text("customer,huntress.organization_id\n" + "".join(f"Customer {o},{o}\n" for o in part))
            out = base / f"part{p}.plan.json"
            specs = batches.load_source(listing, models, template=base / "template.toml",
                                        expand_into=base / f"part{p}")
            opener: Callable[[ExitConfig], Any] = lambda cfg: engine.open_sessions(cfg, creds=CREDS)  # noqa: E731
            batches.write_batch_plan(batches.plan_batch(specs, base, str(listing), opener=opener), out)
            plans.append(out)
        time.sleep(spec.window * 2)  # the plans' calls leave the window
        since = time.monotonic()
        procs = [subprocess.Popen([sys.executable, "-m", "offboard.cli.app", "batch", "apply", str(p),
                                   "--override-preflight", "benchmark", "--parallel", str(parallel)],
                                  cwd=base, env=_env(base / "cache"),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for p in plans]
        for proc in procs:
            _, err = proc.communicate(timeout=3600)
            if proc.returncode not in (0, 3):
                raise RuntimeError(f"batch apply ended with {proc.returncode}: {err[-500:]}")
        return _timing_of(url, spec.limit, spec.window, since)


def plan_process(agents: int) -> tuple[float, float]:
    """`offboard plan` of ``agents`` as a whole process: its wall time and its peak RSS (MiB).

    The peak is the process's own: read by GNU time from a small parent (Linux carries a parent's
    high-water mark into a child it forks, so this benchmark's own size would show otherwise), or
    sampled from /proc when GNU time is not there."""
    with _served(Spec(HuntressSandbox, {"time_scale": SCALE, "customer_agents": agents})) as (hurl,), \
            TemporaryDirectory() as tmp:
        cfg = _config(Path(tmp), hurl, None)
        command = [sys.executable, "-m", "offboard.cli.app", "plan", "-c", str(cfg.path)]
        gnu_time = Path("/usr/bin/time")
        peak_file = Path(tmp) / "peak"
        if gnu_time.exists():
            command = [str(gnu_time), "-f", "%M", "-o", str(peak_file), *command]
        started = time.monotonic()
        proc = subprocess.Popen(command, cwd=tmp, env=_env(Path(tmp) / "cache"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        sampled = 0
        while proc.poll() is None:
            with contextlib.suppress(OSError, ValueError, StopIteration):
                status = Path(f"/proc/{proc.pid}/status").read_text()
                sampled = max(sampled, int(next(x for x in status.splitlines() if x.startswith("VmHWM:")).split()[1]))
            time.sleep(0.005)
        wall = time.monotonic() - started
        if proc.returncode not in (0, 10):
            raise RuntimeError(f"offboard plan ended with {proc.returncode}")
        kib = int(peak_file.read_text().split()[-1]) if peak_file.exists() else sampled
        return wall, kib / 1024


class _Rows(list[str]):
    """The table, each row printed as soon as it is measured (a full run takes a quarter of an hour)."""

    def __init__(self, header: list[str]) -> None:
        super().__init__()
        for row in header:
            self.append(row)

    def append(self, row: str) -> None:
        super().append(row)
        print(row, flush=True)


def _median_min(values: Sequence[float], fmt: str) -> str:
    """The median, and the spread of the runs beside it (min to max; one run has none)."""
    median = format(statistics.median(values), fmt)
    if len(values) < 2:
        return median
    return f"{median} ({format(min(values), fmt)} to {format(max(values), fmt)})"


def single_scale(agents: int) -> float:
    """The window's compression for a single exit of ``agents``. offboard spends about half a second of
    its own between calls in any exit (planning, the plan file, the run folder, evidence files), a
    fixed cost the window's compression does not shrink: against the real window (60 s) it is under
    1 % of even a 100-agent exit, at x100 it would be most of one. So a small exit gets a window long
    enough for that cost to weigh what it weighs against the real API: x5 (12 s) below 1,000 agents."""
    return SCALE if agents >= 1_000 else 0.2


def _own_process(spec: Spec, trust_listing: bool) -> Timing | None:
    """One exit in a process of its own, as a technician runs one (nothing a previous run left in the
    interpreter, its heap or its threads, is in this one's way)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(exit_run, spec, None, trust_listing=trust_listing).result()[1]


def _single_exits(rows: _Rows, sizes: Sequence[int], runs: int) -> bool:
    """Single Huntress exits in both owner-confirmation modes: each object read alone before its write
    (two calls a write), and --trust-listing (its listing re-taken as often as against the real API);
    each run in its own process."""
    ok = True
    for trust_listing in (False, True):
        mode = "--trust-listing" if trust_listing else "each object read before its write"
        for n in sizes:
            scale = single_scale(n)
            ts = [t for t in (_own_process(huntress(n, scale=scale), trust_listing) for _ in range(runs))
                  if t is not None]
            ratios = [t.ratio for t in ts]
            t = sorted(ts, key=lambda t: t.ratio)[len(ts) // 2]
            window = "" if scale == SCALE else f" (window x{1 / scale:g})"
            rows.append(f"| Huntress exit ({mode}){window} | {n:,} | {t.calls:,} | {t.minimum:.2f} s | "
                        f"{t.seconds:.2f} s | {_median_min(ratios, '.3f')} | {max(x.throttled for x in ts)} |")
            ok &= _goal(statistics.median(ratios) >= (0.97 if n >= 1_000 else 0.95) and min(ratios) >= 0.95
                        and all(x.throttled == 0 for x in ts),
                        f"a single exit of {n:,} agents ({mode}): median >= {0.97 if n >= 1_000 else 0.95}, "
                        "every run >= 0.95, no 429")
    return ok


def _goal(met: bool, goal: str) -> bool:
    """A figure's goal; one missed is named (the benchmark then exits 1)."""
    if not met:
        print(f"goal missed: {goal}", file=sys.stderr)
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one run each")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (the median is shown, and the spread)")
    parser.add_argument("--only", choices=["single"],
                        help="only these rows: single, the single Huntress exits in both owner-confirmation modes")
    parser.add_argument("--write", type=Path, metavar="PAGE",
                        help="write the table and its environment into PAGE between its markers "
                             "(docs/performance.md); refused with --quick")
    args = parser.parse_args(argv)
    if args.write and (args.quick or args.runs < 3 or args.only):
        parser.error("--write publishes figures: a full run of at least 3 runs per figure (no --quick, no --only)")
    environment = figures.environment()  # the load average before the benchmark adds to it
    cache = TemporaryDirectory(prefix="offboard-bench-cache-")
    os.environ["XDG_CACHE_HOME"] = cache.name  # the accounts' budget files: never the user's
    os.environ["OFFBOARD_LOCK_DIR"] = str(Path(cache.name) / "locks")  # the sandbox exits' locks: not the machine's
    runs = 1 if args.quick else args.runs
    customers, per = (6, 20) if args.quick else (50, 100)
    sizes = (100, 500) if args.quick else (100, 2_000, 10_000)
    plan_sizes = (2_000,) if args.quick else (10_000, 50_000)
    rows = _Rows(["| measure | agents | calls | minimum at the ceiling | time taken | ratio (median, min to max) "
                  "| 429s |",
                  "|---|---|---|---|---|---|---|"])
    ok = True
    if args.only == "single":
        ok = _single_exits(rows, sizes, runs)
        print("\n" + "\n".join(environment))
        return 0 if ok else 1
    for processes in (1, 2):
        ts = [batch_run(customers, per, processes) for _ in range(runs)]
        ratios = [t.ratio for t in ts]
        what = "one `offboard batch apply`" if processes == 1 else "two processes side by side"
        t = sorted(ts, key=lambda t: t.ratio)[len(ts) // 2]
        rows.append(f"| batch of {customers} customers x {per} agents, {what} | {customers * per:,} | {t.calls:,} | "
                    f"{t.minimum:.2f} s | {t.seconds:.2f} s | {_median_min(ratios, '.3f')} | "
                    f"{max(x.throttled for x in ts)} |")
        ok &= _goal(statistics.median(ratios) >= (0.97 if processes == 1 else 0.95)
                    and all(x.throttled == 0 for x in ts),
                    f"a batch, {what}: median >= {0.97 if processes == 1 else 0.95}, no 429")
    shared_n = sizes[1]
    shared = [exit_run(huntress(shared_n, share=1 / 3), None)[1] for _ in range(runs)]
    shares = [x.throttled / x.calls for x in shared if x is not None]
    done = [x for x in shared if x is not None]
    rows.append(f"| an exit while another client takes up to 1/3 of the limit | {shared_n:,} | "
                f"{statistics.median(x.calls for x in done):,.0f} | (shared) | "
                f"{_median_min([x.seconds for x in done], '.2f')} s | finished | "
                f"{statistics.median(x.throttled for x in done):.0f} = {100 * statistics.median(shares):.2f} % "
                f"(max {100 * max(shares):.2f} %) |")
    ok &= _goal(max(shares) <= 0.01, "an exit beside another client: at most 1 % of its calls meet a 429")
    ok &= _single_exits(rows, sizes, runs)
    for n in plan_sizes:
        measured = [plan_process(n) for _ in range(runs)]
        walls, rss = [w for w, _ in measured], [r for _, r in measured]
        rows.append(f"| `offboard plan`, whole process: peak RSS {_median_min(rss, '.0f')} MiB | {n:,} | | | "
                    f"{_median_min(walls, '.2f')} s | | |")
        ok &= _goal(n != 10_000 or (statistics.median(walls) <= 1.0 and statistics.median(rss) <= 100),
                    f"`offboard plan` of {n:,} agents: at most 1.0 s and 100 MiB")
    n = plan_sizes[0]
    peak, held = zip(*[plan_cost(n)[1:] for _ in range(runs)], strict=True)
    per_agent = [1024 * x / n for x in held], [1024 * x / n for x in peak]
    rows.append(f"| `offboard plan`'s own allocations (tracemalloc): held {_median_min(per_agent[0], '.2f')} KiB, "
                f"peak {_median_min(per_agent[1], '.2f')} KiB per agent | {n:,} | | | | | |")
    h_agents, b_findings = (300, 60) if args.quick else (1_000, 250)
    h_alone, _, _ = exit_run(huntress(h_agents), None)
    b_alone, _, _ = exit_run(None, blumira(b_findings))
    both, th, tb = exit_run(huntress(h_agents), blumira(b_findings))
    slower = max(h_alone, b_alone)
    calls = (th.calls if th else 0) + (tb.calls if tb else 0)
    throttled = (th.throttled if th else 0) + (tb.throttled if tb else 0)
    rows.append(f"| Huntress ({h_agents:,} agents) alone | | | | {h_alone:.2f} s | | |")
    rows.append(f"| Blumira ({b_findings} findings) alone | | | | {b_alone:.2f} s | | |")
    rows.append(f"| both at once (the slower alone ÷ both) | | {calls:,} | | {both:.2f} s | {slower / both:.3f} | "
                f"{throttled} |")
    scales = (f"Huntress window {60 * SCALE:g} s for 60 calls (x{1 / SCALE:g}), Blumira {BLUMIRA_SCALE:g} s "
              f"for 10 calls (x{1 / BLUMIRA_SCALE:g}); {runs} run(s) per figure, each the median with the "
              "spread of the runs (min to max).")
    print("\n" + "\n".join(environment) + "\n" + scales)
    if args.write:
        command = f"python -m bench.performance --runs {runs} --write {args.write}"
        figures.write(args.write, command, environment, [*rows, "", scales])
        print(f"written to {args.write}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
