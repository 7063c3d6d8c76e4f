"""An audit log and its signed heads as an attacker or a crash leaves them (issue 14): a vendor
string or a note with a Unicode line separator, a line re-serialised or given a key twice, a
log cut back to an earlier signed head, a torn signature line. Each is checked at the command
line, as a customer or an auditor would."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from offboard import engine
from offboard.config import ExitConfig
from offboard.connectors import Check
from offboard.engine import GuideAnswer
from offboard.errors import ExitCode
from offboard.plan import Action
from offboard.proof import signing
from offboard.proof.audit import read_records
from offboard_blumira.sandbox import CUSTOMER_ACCOUNT
from tests.conftest import BlumiraHarness, CliResult, load
from tests.connectors.test_blumira_exit import PortalGuide

LINE_SEPARATORS = "\u2028\u2029\x85"  # str.splitlines() splits on each; JSON leaves them raw


class Guide(PortalGuide):
    """Does each item in the portal and says so with ``note``; leaves ``leave_pending`` for later."""

    def __init__(self, blumira: BlumiraHarness, note: str, leave_pending: str = "") -> None:
        super().__init__(blumira.sandbox)
        self.note = note
        self.leave_pending = leave_pending

    def ask(self, action: Action, refused: Check | None) -> GuideAnswer:
        if action.id == self.leave_pending:
            return GuideAnswer(done=False)
        super().ask(action, refused)
        return GuideAnswer(done=True, note=self.note)


@pytest.fixture
def signed(blumira: BlumiraHarness, tmp_path: Path) -> ExitConfig:
    """The Blumira exit, signed with the MSP's key (its public key in msp.pub)."""
    key = signing.generate()
    signing.write_key_file(key, tmp_path / "msp-key.pem")
    (tmp_path / "msp.pub").write_bytes(signing.public_pem(key.public_key()))
    path = blumira.cfg.path
    path.write_text(path.read_text().replace("[run]", '[signing]\nkey_file = "msp-key.pem"\n\n[run]'))
    return load(path)


def guided_run(blumira: BlumiraHarness, cfg: ExitConfig, note: str = "done in the portal",
               leave_pending: str = "") -> Path:
    with blumira.sessions(cfg) as s:
        result = engine.apply(engine.make_plan(cfg, s), cfg, s, guide=Guide(blumira, note, leave_pending))
    return result.run.path


def verify_cli(cli: Callable[..., CliResult], run: Path, *key: str) -> CliResult:
    return cli("audit", "verify", str(run / "audit.jsonl"), *(("--public-key", key[0]) if key else ()))


# -- 8: lines are split on "\n" only, and hashed as the bytes they are ---------------------------------------


def test_a_unicode_line_separator_in_a_hostname_or_a_note_verifies_signed(
        blumira: BlumiraHarness, signed: ExitConfig, tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    for device in blumira.sandbox.of(blumira.sandbox.devices, CUSTOMER_ACCOUNT):
        device["hostname"] = f"ACME{LINE_SEPARATORS}{device['hostname']}"
    with blumira.sessions(signed) as s:
        guide = Guide(blumira, note=f"removed{LINE_SEPARATORS}see ticket 4711")
        guide.leave = 1  # the first device re-read lists one left: its hostname goes into the log
        result = engine.apply(engine.make_plan(signed, s), signed, s, guide=guide)
    assert result.exit_code == ExitCode.OK, result.message
    raw = (result.run.path / "audit.jsonl").read_bytes()
    assert all(sep.encode() in raw for sep in LINE_SEPARATORS)  # written raw, as JSON allows
    assert any(f"ACME{LINE_SEPARATORS}" in json.dumps(r, ensure_ascii=False) for r in read_records(
        result.run.path / "audit.jsonl"))
    checked = verify_cli(cli, result.run.path, str(tmp_path / "msp.pub"))
    assert checked.code == 0, checked.err
    assert "covers all" in checked.out and "internal error" not in checked.err
    out = tmp_path / "exit.tar.gz"
    packed = cli("bundle", "--run", result.run.path.name, "-o", str(out), "-c", str(signed.path))
    assert packed.code == 0, packed.err
    assert cli("bundle", "verify", str(out), "--public-key", str(tmp_path / "msp.pub")).code == 0


def _edit_line(log: Path, n: int, edit: Callable[[bytes], bytes]) -> None:
    lines = log.read_bytes().split(b"\n")
    lines[n - 1] = edit(lines[n - 1])
    log.write_bytes(b"\n".join(lines))


@pytest.mark.parametrize("edit, reason", [
    # the parsed record stays the same (JSON keeps the last of two keys): a second reader may keep the first
    (lambda line: b'{"outcome":"failure",' + line[1:], "the key 'outcome' appears twice"),
    # the same record, re-serialised with spaces: other bytes than the ones hashed
    (lambda line: json.dumps(json.loads(line)).encode(), "content does not match its hash"),
    # one character as a JSON escape: parses the same
    (lambda line: line.replace(b'"outcome":"success"', b'"outcome":"succ\\u0065ss"', 1),
     "content does not match its hash"),
])
def test_a_line_that_parses_the_same_but_is_other_bytes_breaks_the_chain(
        blumira: BlumiraHarness, signed: ExitConfig, cli: Callable[..., CliResult],
        edit: Callable[[bytes], bytes], reason: str) -> None:
    run = guided_run(blumira, signed)
    log = run / "audit.jsonl"
    n = next(i for i, r in enumerate(read_records(log), start=1) if r["outcome"] == "success" and i > 1)
    _edit_line(log, n, edit)
    result = verify_cli(cli, run)
    assert result.code == 1 and f"chain BROKEN at line {n}: {reason}" in result.err, result.err


# -- 9 and 10: what a log proves with and without the MSP's key ----------------------------------------------


def two_heads(blumira: BlumiraHarness, cfg: ExitConfig) -> Path:
    """A run signed when it finished with one manual item pending, and again when that was confirmed."""
    run = guided_run(blumira, cfg, leave_pending="blumira.support.confirmation")
    with blumira.sessions(cfg) as s:
        done = engine.confirm(run.name, "blumira.support.confirmation", "J. Doe", "ticket 4711, ends 2026-12-31",
                              cfg, s)
    assert done.accepted and not done.remaining
    assert len((run / "signatures.jsonl").read_bytes().split(b"\n")) == 3
    return run


def cut_back_to_first_head(run: Path) -> int:
    first = (run / "signatures.jsonl").read_bytes().split(b"\n")[0]
    keep = json.loads(first)["audit_lines"]
    lines = (run / "audit.jsonl").read_bytes().split(b"\n")
    (run / "audit.jsonl").write_bytes(b"".join(line + b"\n" for line in lines[:keep]))
    (run / "signatures.jsonl").write_bytes(first + b"\n")
    return int(keep)


def test_a_signed_log_cut_back_to_an_earlier_signed_head_is_possibly_cut(
        blumira: BlumiraHarness, signed: ExitConfig, tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    run = two_heads(blumira, signed)
    whole = verify_cli(cli, run, str(tmp_path / "msp.pub"))
    assert whole.code == 0, whole.err
    assert "the record reaches the run's end" in whole.out and "`run.closed`" in whole.out
    kept = cut_back_to_first_head(run)  # the confirmation, the final verification and run.closed are gone
    result = verify_cli(cli, run, str(tmp_path / "msp.pub"))
    assert result.code == 1 and "POSSIBLY CUT" in result.err and f"covers all {kept} events" in result.err
    assert "`run.finished`: manual items were still pending" in result.err
    assert "covers all" not in result.out


def test_without_the_key_a_verify_says_it_proves_internal_consistency_only(
        blumira: BlumiraHarness, signed: ExitConfig, cli: Callable[..., CliResult]) -> None:
    run = two_heads(blumira, signed)
    cut_back_to_first_head(run)
    result = verify_cli(cli, run)
    assert result.code == 0 and "chain intact" in result.out
    assert "proves only that the log is internally consistent" in result.out
    assert "a log cut short, or rewritten whole with every hash recomputed, passes this check too" in result.out
    # The key it names is the one `keys init` wrote beside the exit (issue 22: it named msp.pub, not there).
    key = run.parent.parent / "msp.pub"
    assert key.is_file()
    assert result.out.rstrip().endswith(f"offboard audit verify {run / 'audit.jsonl'} --public-key {key}"), result.out
    key.unlink()  # no key near: the command that writes it first, then the check
    result = verify_cli(cli, run)
    assert ("(write it with `offboard keys export -o msp.pub` where the signing key is, then run): offboard audit "
            f"verify {run / 'audit.jsonl'} --public-key msp.pub") in result.out, result.out


# -- 16: a torn signature line is repaired like the log's ---------------------------------------------------


def test_a_torn_signature_line_is_named_then_repaired_and_recorded_on_the_next_signing(
        blumira: BlumiraHarness, signed: ExitConfig, tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    run = guided_run(blumira, signed)
    with (run / "signatures.jsonl").open("ab") as fh:
        fh.write(b'{"audit_lines": 99, "format": "offboard-chain-head/1", "key": "ed25')  # a crash while signing
    torn = verify_cli(cli, run, str(tmp_path / "msp.pub"))
    assert torn.code == 1 and "signatures.jsonl line 2 is incomplete (a torn write" in torn.err
    with blumira.sessions(signed) as s:
        engine.verify_recorded(run.name, signed, s)  # what `offboard verify --run RUN_ID` does
    repaired = [r for r in read_records(run / "audit.jsonl") if r["event"] == "signatures.repaired"]
    assert len(repaired) == 1 and "torn last line of 67 bytes" in repaired[0]["detail"]
    result = verify_cli(cli, run, str(tmp_path / "msp.pub"))
    assert result.code == 0, result.err
    assert "signed: 2 chain head(s)" in result.out and "covers all" in result.out
