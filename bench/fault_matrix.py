"""Fault matrix: whole two-vendor exits (Huntress + Blumira) against the sandboxes over real
HTTP on 127.0.0.1, each under one kind of fault or attack, resumed until done, then counted.

    .venv/bin/python -m bench.fault_matrix [--runs N] [--agents N] [--seed S] [--only TEXT]

Faults come from the sandboxes (429 storms with and without Retry-After, 5xx bursts answered
before the vendor acts, slow replies, a vendor that stays down; and 5xx replies or cut
connections *after* the vendor carried the write out), from a chaos transport at offboard's
httpx seam (replies lost after the request was sent, connections refused before it was), and
from SIGKILL: `offboard apply` killed while a write of each kind is in flight (a Huntress agent
DELETE, PATCH, membership or rule DELETE; a Blumira webhook DELETE or uninstall dispatch),
then resumed. The attacks of issue 14 are rows too: edited and re-checksummed plans, two
processes on one exit, forged bundles (bench/matrix_attacks.py); and issue 20's: an agent moved to
the neighbour mid-run, a listing that lies about an agent's owner (bench/matrix_moves.py), two
spellings of one account and two cache folders (two processes on one exit).

Counted, per scenario: runs, resumes, faults injected, writes that reached a vendor's handler
more than once for the same object, planned removals not done at the end, writes that reached
a vendor for anything offboard's own plan does not hold (for edited plans: any write at all),
audit chains broken, credentials found (every form: key, secret, Basic header value, client
id and secret, every OAuth token issued) in any file of the run's folder or any output, and
forged bundles accepted. Each must be 0.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from offboard.connectors.sandboxing import Fault
from offboard.errors import ExitCode
from offboard_blumira.sandbox import API_PREFIX

from .matrix_attacks import edited_plans, forged_bundles, two_processes
from .matrix_kills import AFTER, BEFORE, KillPoint, killed_then_resumed
from .matrix_moves import lying_listing, moved_owner
from .matrix_replies import hostile_replies
from .matrix_world import CREDENTIAL_FORMS, DEVICES, HA, SCALE, WEBHOOKS, Row, exit_in_process, measure, world

MUST_BE_ZERO = ("sent_twice", "lost", "outside", "chains_broken", "secrets_leaked", "forged_accepted")


class ChaosTransport(httpx.BaseTransport):
    """At offboard's transport seam: refuse some connections before sending (safe to resend),
    and lose some replies after the vendor got the request (a read timeout, a reset)."""

    def __init__(self, rng: random.Random, before: float, after: float) -> None:
        self.inner = httpx.HTTPTransport()
        self.rng = rng
        self.before = before
        self.after = after
        self.injected = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.rng.random() < self.before:
            self.injected += 1
            raise httpx.ConnectError("chaos: connection refused", request=request)
        response = self.inner.handle_request(request)
        if self.rng.random() < self.after:
            response.read()
            response.close()
            self.injected += 1
            if self.rng.random() < 0.5:
                raise httpx.ReadTimeout("chaos: the reply never came", request=request)
            raise httpx.RemoteProtocolError("chaos: connection reset by peer", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


Attack = Callable[[Path, int, random.Random, Row], None]


@dataclass
class Scenario:
    name: str
    huntress: Callable[[random.Random], list[Fault]] = lambda _r: []
    blumira: Callable[[random.Random], list[Fault]] = lambda _r: []
    chaos: tuple[float, float] | None = None  # (before, after) probabilities per request
    down_after: int | None = None  # both vendors answer 503 to everything after this many requests
    kill: tuple[KillPoint, ...] = ()  # SIGKILL while a write of each of these kinds is in flight
    attack: Attack | None = None  # an attack of issue 14, which makes its own worlds
    retry_after: bool = True


def _storm(method: str, prefix: str, status: int, rng: random.Random, retry_after: str | None = None,
           times: int = 4, spread: int = 12) -> Fault:
    """Answered in front of the vendor's handler (nothing done), from a seeded one of the first
    ``spread`` + 1 matching requests (keep it within how many an exit sends)."""
    return Fault(method=method, path_prefix=prefix, status=status, times=times, retry_after=retry_after,
                 after=rng.randint(0, spread))


def _acted(method: str, prefix: str, rng: random.Random, times: int = 1, *, drop: bool = False,
           spread: int = 0) -> Fault:
    """The vendor carries the write out, then the client gets a 5xx (or the connection is cut)."""
    return Fault(method=method, path_prefix=prefix, status=None if drop else rng.choice([500, 502, 503, 504]),
                 acted=True, drop=drop, times=times, after=rng.randint(0, spread))


AGENT_DELETE = KillPoint("a Huntress agent DELETE",
                         (("huntress", "DELETE", f"{HA}/agents/", 4),))
HUNTRESS_PATCH = KillPoint("a Huntress PATCH",
                           (("huntress", "PATCH", f"{HA}/organizations/", 1),
                            ("huntress", "PATCH", "/v1/reseller/subscriptions/", 1)))
MEMBERSHIP_DELETE = KillPoint("a Huntress membership or rule DELETE",
                              (("huntress", "DELETE", f"{HA}/memberships/", 2),
                               ("huntress", "DELETE", "/v1/unwanted_access_rules/", 2)))
WEBHOOK_DELETE = KillPoint("a Blumira webhook DELETE", (("blumira", "DELETE", WEBHOOKS, 1),))
DISPATCH = KillPoint("a Blumira uninstall dispatch", (("blumira", "POST", DEVICES, 4),))
EVERY_WRITE = (AGENT_DELETE, HUNTRESS_PATCH, MEMBERSHIP_DELETE, DISPATCH, WEBHOOK_DELETE)

SCENARIOS = [
    Scenario("429 storm with Retry-After",
             huntress=lambda r: [_storm("GET", "/v1/", 429, r, "0.05"),
                                 _storm("DELETE", f"{HA}/agents/", 429, r, "0.05")],
             blumira=lambda r: [_storm("GET", API_PREFIX, 429, r, "0.02")]),
    Scenario("429 storm without Retry-After",
             huntress=lambda r: [_storm("GET", "/v1/", 429, r), _storm("DELETE", f"{HA}/agents/", 429, r)],
             blumira=lambda r: [_storm("GET", API_PREFIX, 429, r)], retry_after=False),
    Scenario("500/502/503 before the vendor acted",
             huntress=lambda r: [_storm("GET", "/v1/", r.choice([500, 502, 503]), r, times=3),
                                 _storm("DELETE", f"{HA}/agents/", r.choice([500, 502, 503]), r, times=3),
                                 _storm("DELETE", f"{HA}/memberships/", 502, r, times=1, spread=1),
                                 _storm("PATCH", "/v1/", 503, r, times=1, spread=1)],
             blumira=lambda r: [_storm("GET", API_PREFIX, 503, r, times=3),
                                _storm("DELETE", WEBHOOKS, 502, r, times=1, spread=0),
                                _storm("POST", DEVICES, 500, r, times=1, spread=3)]),
    Scenario("5xx or a cut connection after the vendor acted",
             huntress=lambda r: [_acted("DELETE", f"{HA}/agents/", r, times=1, drop=True, spread=2),
                                 _acted("DELETE", f"{HA}/agents/", r, times=2, spread=2),
                                 _acted("PATCH", "/v1/", r, times=2),
                                 _acted("DELETE", f"{HA}/memberships/", r, spread=1),
                                 _acted("DELETE", "/v1/unwanted_access_rules/", r, spread=1)],
             blumira=lambda r: [_acted("DELETE", WEBHOOKS, r),
                                _acted("POST", DEVICES, r, times=1, drop=True, spread=2),
                                _acted("POST", DEVICES, r, times=2, spread=2)]),
    Scenario("slow replies",
             huntress=lambda r: [Fault(path_prefix="/v1/", status=None, delay=0.02, times=40, after=r.randint(0, 9))],
             blumira=lambda r: [Fault(path_prefix=API_PREFIX, status=None, delay=0.02, times=20)]),
    Scenario("replies lost (read timeouts, resets)", chaos=(0.0, 0.06)),
    Scenario("connections refused and reset", chaos=(0.05, 0.03)),
    Scenario("vendor down, resumed later", down_after=60),
    *[Scenario(f"kill -9 during {point.label}, resumed", kill=(point,)) for point in EVERY_WRITE],
    Scenario("edited plan, re-checksummed (3 edits)", attack=edited_plans),
    Scenario("two processes on one exit (two runs folders; two configs; two spellings of one account; two "
             "cache folders)", attack=two_processes),
    Scenario("an agent moved to the neighbour mid-run", attack=moved_owner),
    Scenario("a listing naming a neighbour's agent as the customer's", attack=lying_listing),
    Scenario("forged bundles (6 crafted)", attack=forged_bundles),
    Scenario("hostile replies: looping pages, 64 MiB, 200,000 deep (3 exits)", attack=hostile_replies),
]


def run_once(sc: Scenario, seed: int, agents: int, workdir: Path) -> Row:
    rng = random.Random(seed)
    row = Row(sc.name, runs=1)
    if sc.attack is not None:
        sc.attack(workdir, agents, rng, row)
        return row
    with world(workdir, agents) as w:
        w.h.send_retry_after = w.b.send_retry_after = sc.retry_after
        plan = w.plan()
        w.h.faults += sc.huntress(rng)
        w.b.faults += sc.blumira(rng)
        if sc.down_after is not None:
            after = sc.down_after + rng.randint(0, 40)
            w.outage += [Fault(path_prefix="/v1/", status=503, times=10**6, after=after),
                         Fault(path_prefix=API_PREFIX, status=503, times=10**6, after=after // 2)]
            w.h.faults.append(w.outage[0])
            w.b.faults.append(w.outage[1])
        injected = [(f, f.times) for f in (*w.h.faults, *w.b.faults)]
        if sc.kill:
            code = killed_then_resumed(w, sc.kill, rng, row)
        else:
            chaos: list[ChaosTransport] = []

            def transports() -> dict[str, httpx.BaseTransport] | None:
                if sc.chaos is None:
                    return None
                made = {n: ChaosTransport(random.Random(rng.random()), *sc.chaos) for n in ("huntress", "blumira")}
                chaos.extend(made.values())
                return dict(made)

            code = exit_in_process(w, plan, row, transports)
            row.faults += sum(c.injected for c in chaos)
        row.faults += sum(before - f.times for f, before in injected)
        if code not in (ExitCode.OK, ExitCode.MANUAL_PENDING):
            row.notes.append(f"ended with exit {code}")
        measure(w, plan, row)
    return row


def run_matrix(runs: int, agents: int, seed: int, scenarios: list[Scenario] | None = None) -> list[Row]:
    rows = []
    for n, sc in enumerate(scenarios or SCENARIOS):
        total = Row(sc.name)
        for i in range(runs):
            workdir = Path(tempfile.mkdtemp(prefix="offboard-matrix-"))
            try:
                total.add(run_once(sc, seed * 1000 + n * 100 + i, agents, workdir))
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
        rows.append(total)
    return rows


COLUMNS = (("runs", "runs"), ("resumes", "resumes"), ("faults", "faults injected"),
           ("sent_twice", "writes sent twice"), ("lost", "lost"), ("outside", "writes outside the exit"),
           ("chains_broken", "chains broken"), ("secrets_leaked", "secrets leaked"),
           ("forged_accepted", "forged bundles accepted"))


def table(rows: list[Row]) -> str:
    def cells(r: Row) -> str:
        return " | ".join("-" if getattr(r, name) is None else str(getattr(r, name)) for name, _ in COLUMNS)

    total = Row("**all**")
    for r in rows:
        total.add(r)
    head = "| fault | " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|---" * (len(COLUMNS) + 1) + "|"
    return "\n".join([head, rule, *(f"| {r.scenario} | {cells(r)} |" for r in rows), f"| **all** | {cells(total)} |"])


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
    load = f"; load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (f"Machine: {platform.machine()}, {os.cpu_count()} cores{f' ({model})' if model else ''}, Python "
            f"{platform.python_version()}, {platform.system()} {platform.release()}{load}; sandbox clock "
            f"x{1 / SCALE:g} (Huntress window {60 * SCALE:g} s for 60 calls, Blumira {SCALE:g} s for 10).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per fault (default 3)")
    parser.add_argument("--agents", type=int, default=36, help="the customer's Huntress agents (default 36)")
    parser.add_argument("--seed", type=int, default=1, help="seed for fault placement (default 1)")
    parser.add_argument("--only", default="", help="only the scenarios whose name contains this text")
    args = parser.parse_args(argv)
    started = time.monotonic()
    chosen = [s for s in SCENARIOS if args.only.lower() in s.name.lower()]
    rows = run_matrix(args.runs, args.agents, args.seed, chosen)
    print(table(rows))
    print(f"\n{sum(r.runs for r in rows)} runs in {time.monotonic() - started:.0f} s "
          f"(seed {args.seed}, {args.agents} agents); "
          f"{sum(r.tokens for r in rows)} OAuth tokens and {len(CREDENTIAL_FORMS)} other credential forms searched "
          f"in {sum(r.searched for r in rows) / 2**20:.1f} MiB of files and outputs.")
    print(machine())
    acted = [r for r in rows if r.acted]
    if acted:
        done = sum(sum(r.acted.values()) for r in acted)
        print(f"\nAfter the vendor acted: {done} writes carried out by the vendor while offboard got a 5xx or a cut "
              f"connection ({', '.join(f'{k} x{n}' for r in acted for k, n in sorted(r.acted.items()))}); "
              f"{sum(r.acted_landed for r in acted)} of them in effect at the end.")
    handed = sum(r.to_person for r in rows)
    if handed:
        print(f"Left to a person: {handed} uninstall dispatch(es) offboard could not settle (a 5xx in front of the "
              "vendor looks the same as an agent that has not uninstalled yet), recorded `unknown` and never resent; "
              "the technician removed each device in the portal and the resume's re-read settled it.")
    kills = Counter[str]()
    for r in rows:
        kills.update({k: n for k, n in r.kinds.items() if k in (BEFORE, AFTER)})
    if kills:
        print(f"Kills: {kills[BEFORE]} with the write {BEFORE}, {kills[AFTER]} with the write {AFTER}.")
    for r in rows:
        for note in r.notes:
            print(f"note: {r.scenario}: {note}")
    bad = [r for r in rows if r.notes or any(getattr(r, f) for f in MUST_BE_ZERO)]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
