"""The attacks of issue 14 as fault-matrix rows: what an attacker with the files, or a second
offboard process, tries; counted the same way as the faults.

- Edited plans: the plan file edited and its checksum recomputed (an action added for the
  neighbour's agent; a removal marked ``destructive: false``; an organization deletion added
  with ``confirm: null``). `offboard apply` must refuse each (exit 2, naming the action) before
  a single write.
- Two processes: the same plan applied from two runs folders at once, and two configs naming
  the same organization at once. The first write is held at the vendor until the contest is
  settled, so the two really overlap; one must be refused, nothing sent twice.
- Forged bundles: a genuine signed bundle of a finished exit, then the crafted ones (a
  duplicate member with the forged copy first, a FORGED-RUN/ folder beside the run's, a
  RUN/./report.md alias, the whole bundle re-signed with another key and checked with the
  MSP's public key, a member declaring 100 GiB, a 600 MiB compression bomb). `offboard bundle
  verify --public-key` must accept the genuine one and none of the others.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import random
import shutil
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from offboard.connectors.sandboxing import Fault
from offboard.errors import ExitCode
from offboard.plan import Plan, canonical_json, read_plan
from offboard.proof import signing
from offboard_huntress.sandbox import CUSTOMER_ORG, NEIGHBOUR_ORG

from .matrix_world import HA, Row, World, config_text, exit_in_process, finish, measure, route_writes, world

OVERRIDE = ("--override-preflight", "fault matrix")


# -- edited plans -------------------------------------------------------------------------------


def reseal(data: dict[str, Any]) -> str:
    """What an attacker with the file does after editing it: recompute its checksum."""
    data["checksum"] = Plan.model_validate({**data, "checksum": ""}).compute_checksum()
    return json.dumps(data, indent=2)


def _huntress_steps(data: dict[str, Any]) -> list[dict[str, Any]]:
    return list(next(v for v in data["vendors"] if v["vendor"] == "huntress")["steps"])


def _uninstall_step(data: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in _huntress_steps(data) if any(a["operation"] == "uninstall_agent" for a in s["actions"]))


def _first_uninstall(data: dict[str, Any]) -> dict[str, Any]:
    return dict(next(a for a in _uninstall_step(data)["actions"] if a["operation"] == "uninstall_agent"))


def _neighbours_agent(w: World) -> Callable[[dict[str, Any]], str]:
    victim = w.h.agents_of(NEIGHBOUR_ORG)[0]

    def edit(data: dict[str, Any]) -> str:
        action = _first_uninstall(data)
        action.update(id=f"huntress.uninstall_agent.{victim['id']}", owner=f"organization:{NEIGHBOUR_ORG}",
                      call=f"DELETE {HA}/agents/{victim['id']}",
                      target={"type": "agent", "id": str(victim["id"]), "name": victim["hostname"]})
        _uninstall_step(data)["actions"].append(action)
        return str(action["id"])
    return edit


def _as_a_read(data: dict[str, Any]) -> str:
    step = _uninstall_step(data)
    action = next(a for a in step["actions"] if a["operation"] == "uninstall_agent")
    action["destructive"] = False
    return str(action["id"])


def _org_deletion(data: dict[str, Any]) -> str:
    action_id = f"huntress.delete_organization.{CUSTOMER_ORG}"
    data["vendors"][[v["vendor"] for v in data["vendors"]].index("huntress")]["steps"].append({
        "id": "delete-organization", "vendor": "huntress", "title": "Delete the organization", "phase": "removal",
        "why": "", "stops_updating": [], "actions": [{
            "id": action_id, "vendor": "huntress", "step": "delete-organization", "kind": "api",
            "operation": "delete_organization",
            "target": {"type": "organization", "id": str(CUSTOMER_ORG), "name": "Acme Dental"},
            "summary": "delete the organization", "call": f"DELETE {HA}/organizations/{CUSTOMER_ORG}",
            "owner": f"organization:{CUSTOMER_ORG}", "manual": None, "destructive": True, "confirm": None}]})
    return action_id


def edited_plans(path: Path, agents: int, rng: random.Random, row: Row) -> None:
    with world(path, agents) as w:
        genuine_plan = w.plan()
        genuine = json.loads(w.plan_file.read_text())
        edits = [("an added action for the neighbour's agent", _neighbours_agent(w)),
                 ("a removal marked destructive: false", _as_a_read),
                 ("an organization deletion added with confirm: null", _org_deletion)]
        rng.shuffle(edits)
        for what, edit in edits:
            data = json.loads(json.dumps(genuine))
            action_id = edit(data)
            edited = w.path / "edited.plan.json"
            edited.write_text(reseal(data))
            before = sum(len(route_writes(s)) for s in (w.h, w.b))
            code, said = w.offboard("apply", str(edited), *OVERRIDE)
            row.faults += 1
            row.kinds[what] += 1
            # Any write by the apply of an edited plan is outside what was approved.
            row.outside += sum(len(route_writes(s)) for s in (w.h, w.b)) - before
            if code != ExitCode.BAD_INPUT or action_id not in said:
                row.notes.append(f"{what}: apply exited {code}, not 2 naming {action_id}: {said.strip()[-300:]}")
        if w.run_folders():
            row.notes.append("a refused plan left a run folder")
        measure(w, genuine_plan, row, count_lost=False)


# -- two processes ------------------------------------------------------------------------------


def two_processes(path: Path, agents: int, rng: random.Random, row: Row) -> None:
    for variant in ("the same plan from two runs folders", "two configs naming the same organization",
                    "two spellings of one account (127.0.0.1 / localhost)", "two cache folders (two users' shells)"):
        environ: dict[str, str] = {}
        with world(path / variant.split(" (")[0].replace(" ", "-"), agents) as w:
            if variant.startswith("the same plan"):
                second = w.write_config(w.path / "elsewhere")  # same exit; runs in elsewhere/runs
                second_plan = w.plan_file
            elif variant.startswith("two spellings"):  # the vendors' addresses spelled another way
                second = w.write_config(w.path / "spelled")
                second.write_text(config_text(w.hurl.replace("127.0.0.1", "localhost"),
                                              w.burl.replace("127.0.0.1", "localhost")))
                second_plan = second.parent / "exit.plan.json"
                w.plan(second, second_plan)
            elif variant.startswith("two cache folders"):  # one config, another user's XDG_CACHE_HOME
                second = w.write_config(w.path / "other-user")
                second_plan = w.plan_file
                environ = {"XDG_CACHE_HOME": str(w.path / "other-user-cache")}
            else:
                second = w.write_config(w.path / "old-contract", customer="Acme Dental (old contract)")
                second_plan = second.parent / "exit.plan.json"
                w.plan(second, second_plan)
            w.plan()
            contenders = [(w.config, w.plan_file), (second, second_plan)]
            rng.shuffle(contenders)
            # The first removal waits at the vendor until the contest is settled: the two overlap.
            hold = Fault(method="DELETE", path_prefix=f"{HA}/agents/", status=None, hold=threading.Event())
            w.h.faults.append(hold)
            procs = [w.popen("apply", str(plan), *OVERRIDE, config=config,
                             environ=environ if config == second else None) for config, plan in contenders]
            deadline = time.monotonic() + 120
            while all(p.poll() is None for p in procs) and time.monotonic() < deadline:
                time.sleep(0.005)
            hold.hold.set()  # type: ignore[union-attr]
            codes = [w.collect(p, "apply (one of two at once)") for p in procs]
            said = [text for _, text in w.outputs[-2:]]
            row.faults += 1
            row.kinds[variant] += 1
            refused = [i for i, c in enumerate(codes) if c == ExitCode.BAD_INPUT and "already being worked on"
                       in said[i]]
            if len(refused) != 1 or not hold.reached.is_set():
                last = " | ".join((s.strip().splitlines() or [""])[-1][:200] for s in said)
                row.notes.append(f"{variant}: exits {codes}; the exit lock did not refuse exactly one: {last}")
                measure(w, read_plan(contenders[0][1]), row)
                continue
            winner = 1 - refused[0]
            config, plan = contenders[winner]
            runs = [r for r in w.run_folders() if r.parent == config.parent / "runs"]
            finish(w, runs[-1], config, row, codes[winner])
            measure(w, read_plan(plan), row)


# -- forged bundles -----------------------------------------------------------------------------

FORGED = b"# Proof of service stop\n\nEverything was removed. (forged)\n"
END = b"\0" * 1024


def _members(bundle: Path) -> tuple[str, list[tuple[str, bytes]]]:
    """The run folder's name and every member (relative name, bytes) of a genuine bundle, in order."""
    with tarfile.open(bundle, "r:gz") as tar:
        infos = tar.getmembers()
        out = []
        for info in infos:
            data = tar.extractfile(info)
            assert data is not None
            out.append((info.name.split("/", 1)[1], data.read()))
        return infos[0].name.split("/")[0], out


def _entry(name: str, data: bytes = b"", size: int | None = None) -> bytes:
    """One raw tar member, byte by byte, so it can say what a header can (a size it does not carry)."""
    info = tarfile.TarInfo(name)
    info.size = len(data) if size is None else size
    info.mode = 0o600
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape") + data + b"\0" * (-len(data) % 512)


def _write(dst: Path, *pieces: bytes) -> Path:
    with dst.open("wb") as fh:
        for piece in pieces:
            fh.write(gzip.compress(piece, mtime=0))
    return dst


def _with(genuine: Path, dst: Path, before: tuple[bytes, ...] = (), after: tuple[bytes, ...] = ()) -> Path:
    prefix, members = _members(genuine)
    return _write(dst, b"".join([*before, *(_entry(f"{prefix}/{n}", d) for n, d in members), *after]) + END)


def _resigned(genuine: Path, dst: Path) -> Path:
    """report.md forged, then every head and the manifest re-signed with the forger's key (put inside)."""
    prefix, listed = _members(genuine)
    members = dict(listed)
    members["report.md"] = FORGED
    key = signing.generate()
    fp = signing.fingerprint(key.public_key())
    heads = []
    for line in members[signing.SIGNATURES].split(b"\n"):
        if line:
            head = {k: v for k, v in json.loads(line).items() if k != "signature"} | {"key": fp}
            heads.append(json.dumps({**head, "signature": base64.b64encode(
                key.sign(canonical_json(head).encode())).decode()}, sort_keys=True) + "\n")
    members[signing.SIGNATURES] = "".join(heads).encode()
    members["msp.pub"] = signing.public_pem(key.public_key())
    manifest = json.loads(members["BUNDLE.json"]) | {"key": fp}
    manifest["members"] = {n: {"sha256": hashlib.sha256(members[n]).hexdigest(), "bytes": len(members[n])}
                           for n in manifest["members"]}
    members["BUNDLE.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    members["BUNDLE.sig"] = base64.b64encode(key.sign(members["BUNDLE.json"])) + b"\n"
    return _write(dst, b"".join(_entry(f"{prefix}/{n}", d) for n, d in members.items()) + END)


def _bomb(genuine: Path, dst: Path, mib: int) -> Path:
    """The genuine members, then one of ``mib`` MiB of zeros: well under a MiB on disk."""
    prefix, members = _members(genuine)
    chunk = gzip.compress(b"\0" * 2**20, mtime=0)
    with dst.open("wb") as fh:
        fh.write(gzip.compress(b"".join(_entry(f"{prefix}/{n}", d) for n, d in members)
                               + _entry(f"{prefix}/evidence/bomb.bin", size=mib * 2**20), mtime=0))
        for _ in range(mib):
            fh.write(chunk)
        fh.write(gzip.compress(END, mtime=0))
    return dst


def _verify(w: World, bundle: Path, public_key: Path) -> int:
    return w.offboard("bundle", "verify", str(bundle), "--public-key", str(public_key))[0]


def forged_bundles(path: Path, agents: int, rng: random.Random, row: Row) -> None:
    with world(path, agents) as w:
        key = signing.generate()
        signing.write_key_file(key, w.path / "msp-key.pem")
        public = w.path / "msp.pub"
        public.write_bytes(signing.public_pem(key.public_key()))
        w.write_config(signing="msp-key.pem")
        plan = w.plan()
        exit_in_process(w, plan, row)
        run = w.run_folders()[-1]
        genuine = w.path / "acme-exit.tar.gz"
        made, said = w.offboard("bundle", run.name, "-o", str(genuine))
        row.forged_accepted = row.forged_accepted or 0
        if made != ExitCode.OK or _verify(w, genuine, public) != ExitCode.OK:
            row.notes.append(f"the genuine bundle was not made or does not verify: {said.strip()[-300:]}")
            measure(w, plan, row)
            return
        prefix, _ = _members(genuine)
        forged = w.path / "forged"  # the attacker's files: checked, then removed (not offboard's output)
        forged.mkdir()
        attacks: list[tuple[str, Callable[[Path], Path]]] = [
            ("a duplicate member, the forged copy first",
             lambda d: _with(genuine, d, before=(_entry(f"{prefix}/report.md", FORGED),))),
            ("a FORGED-RUN/ folder beside the run's", lambda d: _with(genuine, d, before=(
                _entry("FORGED-RUN/report.md", FORGED),))),
            ("a RUN/./report.md alias", lambda d: _with(genuine, d, before=(
                _entry(f"{prefix}/./report.md", FORGED),))),
            ("re-signed whole with another key", lambda d: _resigned(genuine, d)),
            ("a member declaring 100 GiB", lambda d: _with(genuine, d, after=(
                _entry(f"{prefix}/evidence/huge.bin", size=100 * 2**30),))),
            ("a 600 MiB compression bomb", lambda d: _bomb(genuine, d, 600)),
        ]
        rng.shuffle(attacks)
        for n, (what, craft) in enumerate(attacks):
            code = _verify(w, craft(forged / f"forged-{n}.tar.gz"), public)
            row.faults += 1
            row.kinds[what] += 1
            if code == ExitCode.OK:
                row.forged_accepted += 1
                row.notes.append(f"forged bundle accepted: {what}")
            elif code != ExitCode.FAILED:
                row.notes.append(f"{what}: bundle verify exited {code}, not 1")
        shutil.rmtree(forged)
        measure(w, plan, row)
