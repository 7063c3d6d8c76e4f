"""A closed run's audit log is its proof (issue 22's review): `apply --resume` of a run that already
closed re-verified every vendor and appended to its log, so a bundle made earlier was older than the
log, without a word. Now the resume is refused (exit 2, nothing added, no vendor called) and names
`verify --run`, which re-reads, appends after the close, and says a bundle made before it lacks them."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from offboard.connectors.sandboxing import serve
from offboard.proof import signing
from offboard_huntress.sandbox import DEMO_KEY, DEMO_SECRET, HuntressSandbox
from tests.conftest import write_config

SCALE = 0.002
PORTAL = ("itdr.unmap-tenant", "siem.disconnect-sources", "sat.close-campaigns")


@pytest.fixture
def closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Any) -> Iterator[tuple[HuntressSandbox, Path, str]]:
    """A signed Huntress exit, applied and every manual item confirmed: the run is closed."""
    sandbox = HuntressSandbox(time_scale=SCALE)
    with serve(sandbox.app) as url:
        monkeypatch.setenv("OFFBOARD_HUNTRESS_API_KEY", DEMO_KEY)
        monkeypatch.setenv("OFFBOARD_HUNTRESS_API_SECRET", DEMO_SECRET)
        monkeypatch.chdir(tmp_path)
        config = write_config(tmp_path, url, window=60 * SCALE)
        key = signing.generate()
        signing.write_key_file(key, tmp_path / "msp-key.pem")
        (tmp_path / "msp.pub").write_bytes(signing.public_pem(key.public_key()))
        config.write_text(config.read_text().replace("[run]", '[signing]\nkey_file = "msp-key.pem"\n\n[run]'))
        c = str(config)
        assert cli("plan", "-c", c, "-o", "exit.plan.json").code == 0
        applied = cli("apply", "exit.plan.json", "-c", c, "--override-preflight", "lab", "--unattended")
        assert applied.code == 3, applied.out + applied.err
        run_id = cli("status", "--last-run", "-c", c).out.strip()
        for item in PORTAL:
            httpx.post(f"{url}/_sandbox/portal/{item}")
        for item in cli("status", "--pending", "--run", run_id, "-c", c).out.split():
            done = cli("confirm", item, "--run", run_id, "-c", c, "--by", "J. Doe", "--note", "done in the portal")
            assert done.code == 0, done.out + done.err
        assert cli("status", "--run", run_id, "-c", c).code == 0
        assert '"event":"run.closed"' in (tmp_path / "runs" / run_id / "audit.jsonl").read_text()
        yield sandbox, config, run_id


def test_resuming_a_closed_run_is_refused_and_adds_nothing_to_its_proof(
        cli: Any, closed: tuple[HuntressSandbox, Path, str]) -> None:
    sandbox, config, run_id = closed
    log = config.parent / "runs" / run_id / "audit.jsonl"
    sigs = log.parent / "signatures.jsonl"
    before, signed, calls = log.read_bytes(), sigs.read_bytes(), len(sandbox.requests)

    resumed = cli("apply", "--resume", run_id, "-c", str(config), "--unattended")

    assert resumed.code == 2, resumed.out + resumed.err
    said = " ".join(resumed.err.split())
    assert f"run {run_id} is closed (every action done and every manual item confirmed)" in said
    assert "nothing was added to it" in said and "Traceback" not in resumed.err
    assert said.endswith(f"To re-check the vendors: offboard verify --run {run_id} -c {config}")
    assert log.read_bytes() == before and sigs.read_bytes() == signed  # the proof is as it was
    assert len(sandbox.requests) == calls  # refused before any vendor call


def test_verify_of_a_closed_run_says_an_earlier_bundle_lacks_its_re_reads_and_prints_the_bundle_command(
        cli: Any, closed: tuple[HuntressSandbox, Path, str]) -> None:
    _, config, run_id = closed
    log = config.parent / "runs" / run_id / "audit.jsonl"
    assert cli("bundle", "--run", run_id, "-c", str(config), "-o", "early.tar.gz").code == 0
    lines = log.read_bytes().count(b"\n")

    checked = cli("verify", "--run", run_id, "-c", str(config))

    assert checked.code == 0, checked.out + checked.err
    assert log.read_bytes().count(b"\n") > lines  # verify --run appends its re-reads: its documented job
    said = " ".join(checked.err.split())
    assert f"Run {run_id} was closed: these re-reads were added to its audit log after its close" in said
    assert "A bundle of this run made before now, if one was, still verifies but does not hold them" in said
    command = said.rsplit("make it again: ", 1)[1]
    # into the exit's folder beside its config, not wherever the person stands (a repository's root)
    assert command == f"offboard bundle --run {run_id} -c {config} -o {config.parent / run_id}.tar.gz"
    # The earlier bundle still verifies (the log only grew); the command printed runs as printed.
    assert cli("bundle", "verify", "early.tar.gz", "--public-key", "msp.pub").code == 0
    remade = cli(*shlex.split(command)[1:])
    assert remade.code == 0, remade.out + remade.err
    assert cli("bundle", "verify", str(config.parent / f"{run_id}.tar.gz"), "--public-key", "msp.pub").code == 0


def test_verify_of_a_run_still_open_says_nothing_of_a_close(cli: Any, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox = HuntressSandbox(time_scale=SCALE)
    with serve(sandbox.app) as url:
        monkeypatch.setenv("OFFBOARD_HUNTRESS_API_KEY", DEMO_KEY)
        monkeypatch.setenv("OFFBOARD_HUNTRESS_API_SECRET", DEMO_SECRET)
        monkeypatch.chdir(tmp_path)
        c = str(write_config(tmp_path, url, window=60 * SCALE))
        assert cli("plan", "-c", c, "-o", "exit.plan.json").code == 0
        assert cli("apply", "exit.plan.json", "-c", c, "--override-preflight", "lab", "--unattended").code == 3
        run_id = cli("status", "--last-run", "-c", c).out.strip()
        checked = cli("verify", "--run", run_id, "-c", c)
        assert "was closed" not in checked.err
        resumed = cli("apply", "--resume", run_id, "-c", c, "--unattended")  # an open run still resumes
        assert resumed.code == 3 and "is closed" not in resumed.err
