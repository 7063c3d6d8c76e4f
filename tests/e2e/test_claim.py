"""One exit, one writer across machines (issue 20): `offboard apply` claims the exit in its PSA ticket,
through the CLI in subprocesses, the Huntress and ConnectWise sandboxes over real HTTP. Two "machines"
are two invocations with their own machine lock folder (OFFBOARD_LOCK_DIR) and host name
(OFFBOARD_CLAIM_HOST): the machine lock cannot see across them, only the ticket can."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from offboard import engine
from offboard.connectors.sandboxing import serve
from offboard.engine.claim import exit_key
from offboard_connectwise import sandbox as cw
from offboard_huntress.sandbox import Fault, HuntressSandbox
from tests.conftest import load, write_config
from tests.connectors.psa_harness import CLAIM, CW
from tests.e2e.test_cli_over_http import CANARY_KEY, CANARY_SECRET, SCALE, offboard_exe
from tests.polling import until

pytestmark = pytest.mark.e2e
OVERRIDE = ("--override-preflight", "incident 503 handled by phone")
TAG = re.compile(r"\[offboard-claim exit=(\w+) run=(\S+) host=(\S+) user=(\S+) expires=(\S+) state=(\w+)\]")


@dataclass
class World:
    huntress: HuntressSandbox
    psa: cw.ConnectWiseSandbox
    dir: Path
    config: Path

    def run(self, *args: str, host: str = "machine-a", popen: bool = False) -> Any:
        """``offboard ARGS`` as run on ``host``: its own machine lock folder, its own host name."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OFFBOARD_")}
        locks = self.dir / f"locks-{host}"
        locks.mkdir(exist_ok=True)
        env.update(OFFBOARD_HUNTRESS_API_KEY=CANARY_KEY, OFFBOARD_HUNTRESS_API_SECRET=CANARY_SECRET,
                   OFFBOARD_PSA_PUBLIC_KEY=cw.DEMO_PUBLIC, OFFBOARD_PSA_PRIVATE_KEY=cw.DEMO_PRIVATE,
                   OFFBOARD_PSA_CLIENT_ID=cw.DEMO_CLIENT_ID, OFFBOARD_LOCK_DIR=str(locks),
                   OFFBOARD_CLAIM_HOST=host, PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring", COLUMNS="200")
        argv = [*offboard_exe(), *args]
        if popen:
            return subprocess.Popen(argv, cwd=self.dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
        return subprocess.run(argv, cwd=self.dir, env=env, capture_output=True, text=True, timeout=180, check=False)

    def huntress_writes(self, since: int = 0) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.huntress.requests[since:]
                if r.method != "GET" and not r.path.startswith("/_sandbox")]

    def claim_notes(self) -> list[dict[str, Any]]:
        return [n for n in self.psa.ticket_notes() if CLAIM in n["text"]]

    def audit(self, run: str) -> list[dict[str, Any]]:
        path = self.dir / "runs" / run / "audit.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]

    def runs(self) -> list[str]:
        return sorted(p.name for p in (self.dir / "runs").iterdir())


def seed_claim(world: World, run: str, host: str, expires: str, *, exit_key: str | None = None) -> None:
    """Another machine's claim note, as offboard writes it (the exit's key taken from a claim of our own)."""
    world.psa.notes.append({"id": 60000 + len(world.psa.notes), "ticketId": cw.EXIT_TICKET,
                            "text": f"offboard is running this exit\n[offboard-claim exit={exit_key} run={run} "
                                    f"host={host} user=tech2 expires={expires} state=live]",
                            "internalAnalysisFlag": True, "detailDescriptionFlag": False, "resolutionFlag": False})


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    huntress = HuntressSandbox(time_scale=SCALE, customer_agents=4, neighbour_agents=2,
                               extra_credentials={CANARY_KEY: CANARY_SECRET})
    psa = cw.ConnectWiseSandbox(time_scale=SCALE)
    with serve(huntress.app) as hurl, serve(psa.app) as purl:
        config = write_config(tmp_path, hurl, window=60 * SCALE, extra='products = ["edr"]\n')
        config.write_text(config.read_text() + "\n" + CW.section(purl))
        w = World(huntress, psa, tmp_path, config)
        planned = w.run("plan", "-o", "exit.plan.json")
        assert planned.returncode == 0, planned.stdout + planned.stderr
        yield w


def exit_key_of(world: World) -> str:
    """The exit's key as offboard names it in its claims: the vendors' own names of the exit, hashed."""
    creds = {"huntress": {"api_key": SecretStr(CANARY_KEY), "api_secret": SecretStr(CANARY_SECRET)},
             "psa": {k: SecretStr(v) for k, v in CW.creds.items()}}
    with engine.open_sessions(load(world.config), creds=creds) as s:
        return exit_key([v.exit_identity() for v in s.by_vendor.values()])


def test_a_second_machine_refuses_while_the_first_holds_the_claim_and_writes_nothing(world: World) -> None:
    hold = threading.Event()
    fault = Fault(method="DELETE", path_prefix="/v1/agents/", status=None, hold=hold)
    world.huntress.faults.append(fault)
    first = world.run("apply", "exit.plan.json", *OVERRIDE, host="machine-a", popen=True)
    try:
        assert fault.reached.wait(120), "the first apply never reached its first write"
        before = len(world.huntress.requests)

        second = world.run("apply", "exit.plan.json", *OVERRIDE, host="machine-b")

        assert second.returncode == 2, second.stdout + second.stderr
        first_run = world.runs()[0]
        line = second.stderr + second.stdout
        assert "host machine-a" in line and f"run {first_run}" in line and "claimed until" in line
        assert "(the PSA's clock)" in line  # timed by the PSA's Date header, not by either machine's clock
        assert f"offboard apply --resume {world.runs()[1]}" in line and "--take-over-claim REASON" in line
        assert world.huntress_writes(before) == []  # the second machine wrote nothing to the vendor
        refused = [e for e in world.audit(world.runs()[1]) if e["event"] == "claim.refused"]
        assert refused and refused[0]["detail"]["run"] == first_run and refused[0]["detail"]["host"] == "machine-a"
    finally:
        hold.set()
        out, err = first.communicate(timeout=180)
    assert first.returncode == 3, out + err
    # The first machine's claim: one note, released by editing it at the end (no note per renewal or release).
    notes = world.claim_notes()
    assert len(notes) == 1 and "state=released" in notes[0]["text"] and "host=machine-a" in notes[0]["text"]
    edits = [r for r in world.psa.requests if r.method == "PATCH" and r.path.endswith(f"/notes/{notes[0]['id']}")]
    assert edits and json.loads(edits[-1].body)[0]["path"] == "text"
    for secret in (CANARY_SECRET, CANARY_KEY, cw.DEMO_PRIVATE, cw.DEMO_PUBLIC):
        assert all(secret not in n["text"] for n in world.psa.ticket_notes())


def test_an_expired_claim_is_taken_without_a_flag_and_audited(world: World) -> None:
    key = exit_key_of(world)
    seed_claim(world, "20261101T000000000Z-dead00", "crashed-box", "2020-01-01T00:00:00Z", exit_key=key)

    applied = world.run("apply", "exit.plan.json", *OVERRIDE, host="machine-b")

    assert applied.returncode in (0, 3), applied.stdout + applied.stderr
    run = world.runs()[-1]
    expired = [e for e in world.audit(run) if e["event"] == "claim.expired"]
    assert len(expired) == 1 and expired[0]["detail"]["host"] == "crashed-box"
    assert expired[0]["detail"]["expired"] == "2020-01-01T00:00:00Z"
    assert [e["event"] for e in world.audit(run) if e["event"].startswith("claim.")][-2:] == [
        "claim.taken", "claim.released"]


def test_a_live_claim_is_refused_then_taken_over_with_an_audited_reason_and_a_note(world: World) -> None:
    key = exit_key_of(world)
    seed_claim(world, "20261101T000000000Z-ghost0", "ghost-box", "2999-01-01T00:00:00Z", exit_key=key)
    before = len(world.huntress.requests)

    refused = world.run("apply", "exit.plan.json", *OVERRIDE, host="machine-b")

    assert refused.returncode == 2, refused.stdout + refused.stderr
    line = refused.stderr + refused.stdout
    assert "host ghost-box" in line and "run 20261101T000000000Z-ghost0" in line and "2999-01-01T00:00:00Z" in line
    assert world.huntress_writes(before) == []
    command = re.search(r"(offboard apply --resume \S+(?: -c \S+)? --take-over-claim REASON)", " ".join(line.split()))
    assert command is not None, line
    argv = shlex.split(command.group(1).replace("REASON", "'ghost-box died, checked with Sam'"))[1:]

    taken = world.run(*argv, *OVERRIDE, host="machine-b")

    assert taken.returncode in (0, 3), taken.stdout + taken.stderr
    assert world.huntress_writes(before)  # the run went on once the claim was taken over
    over = [e for e in world.audit(world.runs()[-1]) if e["event"] == "claim.taken_over"]
    assert len(over) == 1 and over[0]["detail"]["host"] == "ghost-box"
    assert over[0]["detail"]["run"] == "20261101T000000000Z-ghost0"
    assert over[0]["detail"]["reason"] == "ghost-box died, checked with Sam"
    note = next(n["text"] for n in world.claim_notes() if "took over" in n["text"])
    assert "from run 20261101T000000000Z-ghost0 on host ghost-box" in note and "checked with Sam" in note
    assert "run=20261101T000000000Z-ghost0 host=ghost-box user=tech2" in note and "state=released" in note


def test_a_race_is_won_by_the_earlier_claim_in_the_tickets_order(world: World) -> None:
    key = exit_key_of(world)
    rival = "20261101T000000000Z-rival0"

    def rival_posted_at_the_same_time(note: dict[str, Any]) -> None:
        # Another machine's claim, posted while ours was in flight: earlier in the ticket's order (its id).
        if CLAIM in note["text"] and "host=machine-b" in note["text"] and world.psa.on_note is not None:
            world.psa.on_note = None
            world.psa.notes.insert(0, {"id": note["id"] - 1000, "ticketId": cw.EXIT_TICKET,
                                       "text": f"[offboard-claim exit={key} run={rival} host=machine-c user=tech3 "
                                               "expires=2999-01-01T00:00:00Z state=live]",
                                       "internalAnalysisFlag": True})

    world.psa.on_note = rival_posted_at_the_same_time
    before = len(world.huntress.requests)

    lost = world.run("apply", "exit.plan.json", *OVERRIDE, host="machine-b")

    assert lost.returncode == 2, lost.stdout + lost.stderr
    assert "host machine-c" in lost.stderr + lost.stdout and rival in lost.stderr + lost.stdout
    assert world.huntress_writes(before) == []
    events = world.audit(world.runs()[-1])
    assert [e["event"] for e in events if e["event"].startswith("claim.")] == ["claim.lost", "claim.released"]
    assert not [e for e in events if e["event"] in ("run.started", "action.started")]
    ours = next(n for n in world.claim_notes() if "host=machine-b" in n["text"])
    assert "state=released" in ours["text"]  # the loser's claim says so in the ticket


def test_renewal_edits_the_claim_note_instead_of_posting(world: World) -> None:
    world.config.write_text(world.config.read_text() + "claim_minutes = 0.1\n")  # renewed every 2 s
    assert world.run("plan", "-o", "exit.plan.json").returncode == 0
    hold = threading.Event()
    fault = Fault(method="DELETE", path_prefix="/v1/agents/", status=None, hold=hold)
    world.huntress.faults.append(fault)
    first = world.run("apply", "exit.plan.json", *OVERRIDE, popen=True)
    try:
        assert fault.reached.wait(120)
        def renewals() -> list[Any]:
            return [r for r in world.psa.requests if r.method == "PATCH" and "/notes/" in r.path
                    and "state=live" in r.body]

        until(renewals, what="a renewal of the claim (a PATCH of its note, state=live)", tries=2400, step=0.05)
    finally:
        hold.set()
        out, err = first.communicate(timeout=180)
    assert first.returncode == 3, out + err
    claim_posts = [r for r in world.psa.requests if r.method == "POST" and CLAIM in r.body]
    assert len(claim_posts) == 1  # one note, however many renewals
    note_id = world.claim_notes()[0]["id"]
    renewal = renewals()[0]
    assert renewal.path == f"{cw.PREFIX}/service/tickets/{cw.EXIT_TICKET}/notes/{note_id}"
    body = json.loads(renewal.body)
    assert [(op["op"], op["path"]) for op in body] == [("replace", "text")]
    assert TAG.search(body[0]["value"]) is not None and "state=live" in body[0]["value"]
    events = [e["event"] for e in world.audit(world.runs()[-1])]
    assert "claim.renewed" in events and events.index("claim.taken") < events.index("claim.renewed")


def test_without_a_ticket_no_claim_is_made(tmp_path: Path) -> None:
    huntress = HuntressSandbox(time_scale=SCALE, customer_agents=2, neighbour_agents=1,
                               extra_credentials={CANARY_KEY: CANARY_SECRET})
    with serve(huntress.app) as hurl:
        config = write_config(tmp_path, hurl, window=60 * SCALE, extra='products = ["edr"]\n')
        w = World(huntress, cw.ConnectWiseSandbox(), tmp_path, config)
        assert w.run("plan", "-o", "exit.plan.json").returncode == 0
        applied = w.run("apply", "exit.plan.json", *OVERRIDE)
    assert applied.returncode == 3, applied.stdout + applied.stderr
    assert not [e for e in w.audit(w.runs()[-1]) if e["event"].startswith("claim.")]
    concepts = " ".join((Path(__file__).parents[2] / "docs" / "concepts.md").read_text().split())
    assert "Without a PSA ticket, two machines are not kept apart" in concepts


def test_a_ticket_that_cannot_be_read_leaves_the_run_unclaimed_and_warned_or_refused_with_require_claim(
        world: World) -> None:
    notes = f"{cw.PREFIX}/service/tickets/{cw.EXIT_TICKET}/notes"
    world.psa.faults.append(cw.Fault(method="GET", path_prefix=notes, status=503, times=10_000))
    before = len(world.huntress.requests)

    required = world.run("apply", "exit.plan.json", *OVERRIDE, "--require-claim", host="machine-b")

    assert required.returncode == 2, required.stdout + required.stderr
    said = " ".join((required.stderr + required.stdout).split())
    assert "the exit's claim could not be read" in said and "503" in said and "--require-claim" in said
    assert world.huntress_writes(before) == []  # refused before any vendor write
    assert [e["event"] for e in world.audit(world.runs()[-1]) if e["event"].startswith("claim.")] == ["claim.failed"]

    unclaimed = world.run("apply", "exit.plan.json", *OVERRIDE, host="machine-b")

    assert unclaimed.returncode in (1, 3), unclaimed.stdout + unclaimed.stderr
    said = " ".join((unclaimed.stderr + unclaimed.stdout).split())
    assert "NOT claimed in the ticket" in said and "not kept apart" in said
    assert world.huntress_writes(before)  # the ticket is never in the exit's way: the run went on
    failed = [e for e in world.audit(world.runs()[-1]) if e["event"] == "claim.failed"]
    assert failed and failed[0]["outcome"] == "failure" and "503" in failed[0]["detail"]["reason"]


def test_a_holder_whose_claim_was_taken_over_sends_no_further_write(world: World) -> None:
    # A person took the claim over believing machine-a dead; machine-a was only slow. Its next renewal reads
    # the take-over note, and it writes nothing more: the exit never has two writers.
    world.config.write_text(world.config.read_text() + "claim_minutes = 0.1\n")  # renewed every 2 s
    assert world.run("plan", "-o", "exit.plan.json").returncode == 0
    key = exit_key_of(world)
    hold = threading.Event()
    fault = Fault(method="DELETE", path_prefix="/v1/agents/", status=None, hold=hold)
    world.huntress.faults.append(fault)
    first = world.run("apply", "exit.plan.json", *OVERRIDE, host="machine-a", popen=True)
    try:
        assert fault.reached.wait(120)
        run = world.runs()[-1]
        user = TAG.search(world.claim_notes()[-1]["text"]).group(4)  # type: ignore[union-attr]
        world.psa.notes.append({"id": 99000, "ticketId": cw.EXIT_TICKET, "internalAnalysisFlag": True,
                                "text": f"taken over\n[offboard-claim exit={key} run={run} host=machine-a "
                                        f"user={user} expires=2026-01-01T00:00:00Z state=released]"})
        until(lambda: [e for e in world.audit(run) if e["event"] == "claim.lapsed"],
              what="a claim.lapsed line in the run's audit log", tries=2400, step=0.05)
    finally:
        hold.set()
        out, err = first.communicate(timeout=180)
    assert first.returncode == 1, out + err
    assert "was taken over" in " ".join((out + err).split())
    deletes = [p for m, p in world.huntress_writes() if m == "DELETE" and p.startswith("/v1/agents/")
               and not p.endswith("/isolation")]
    assert len(deletes) == 1  # the one already in flight; none after the claim lapsed
    events = [e["event"] for e in world.audit(run)]
    assert events.count("action.started") == events[:events.index("claim.lapsed")].count("action.started")
