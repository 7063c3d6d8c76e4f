"""`offboard audit verify` on what is not an audit log, and on a log nobody signed (issue 15, friction 11):
an empty file or a config is bad input (exit 2, one line), not "intact, 0 events" or "BROKEN"; an
unsigned log's verdict says that its tail cannot be proven and how to sign."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from offboard.proof import signing
from offboard.proof.audit import AuditLog
from tests.conftest import CliResult

Cli = Callable[..., CliResult]
REPO = Path(__file__).parents[2]


def one_line(result: CliResult, code: int) -> str:
    assert result.code == code, (result.out, result.err)
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.err + result.out, result.err
    return lines[0]


def a_log(folder: Path, *events: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    log = AuditLog(folder / "audit.jsonl", "20261123T101500123Z-a1b2c3")
    for event in events:
        log.emit(event, outcome="success")
    log.close()
    return folder / "audit.jsonl"


def test_an_empty_log_is_bad_input_not_an_intact_chain(cli: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "audit.jsonl"
    empty.write_bytes(b"")
    line = one_line(cli("audit", "verify", str(empty)), 2)  # the old code: "chain intact, 0 events", exit 0
    assert line == (f"error: {empty} is not an audit log: it is empty (an audit log holds at least its run's first "
                    "event); give the audit.jsonl of a run folder")
    empty.write_bytes(b"\n\n")
    assert "it is empty" in one_line(cli("audit", "verify", str(empty)), 2)


def test_a_config_a_plan_or_binary_bytes_given_as_a_log_are_bad_input(cli: Cli, tmp_path: Path) -> None:
    toml = tmp_path / "config.toml"
    toml.write_bytes((REPO / "config.example.toml").read_bytes())
    line = one_line(cli("audit", "verify", str(toml)), 2)  # the old code: "chain BROKEN at line 1", exit 1
    assert f"{toml} is not an audit log: none of its lines is an audit event" in line
    plan = tmp_path / "exit.plan.json"
    plan.write_text('{\n  "format": 1,\n  "plan_id": "p"\n}\n')
    assert "is not an audit log" in one_line(cli("audit", "verify", str(plan)), 2)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 4)
    assert "is not an audit log" in one_line(cli("audit", "verify", str(junk)), 2)


def test_a_real_log_with_damaged_lines_is_still_broken_not_bad_input(cli: Cli, tmp_path: Path) -> None:
    log = a_log(tmp_path / "run", "run.started", "action.started", "run.finished")
    lines = log.read_bytes().split(b"\n")
    log.write_bytes(b"\n".join([b"[customer]", *lines[1:]]))  # its first line overwritten: an attack, not a typo
    line = one_line(cli("audit", "verify", str(log)), 1)
    assert "chain BROKEN at line 1" in line
    log.write_bytes(lines[0][:30])  # torn while its first line was written
    assert "last line is incomplete" in one_line(cli("audit", "verify", str(log)), 1)


def test_an_empty_log_beside_signed_heads_was_cut(cli: Cli, tmp_path: Path) -> None:
    log = a_log(tmp_path / "run", "run.started", "run.closed")
    signer = signing.Signer(signing.generate(), "test")
    signer.sign_head(log.parent, "20261123T101500123Z-a1b2c3", 2, log.read_text().splitlines()[-1][-66:-2])
    log.write_bytes(b"")
    line = one_line(cli("audit", "verify", str(log)), 1)
    assert "BROKEN: the log is empty, but signatures.jsonl beside it holds signed chain heads" in line


def test_an_unsigned_logs_verdict_says_its_tail_cannot_be_proven_and_how_to_sign(cli: Cli, tmp_path: Path) -> None:
    log = a_log(tmp_path / "run", "run.started", "action.started", "action.succeeded", "run.closed")
    whole = cli("audit", "verify", str(log))
    assert whole.code == 0, whole.err
    said = " ".join(whole.out.split())
    assert f"{log}: chain intact, 4 events" in said
    assert "UNSIGNED" in said and "its tail cannot be proven" in said
    assert "offboard keys init" in said and "offboard verify --run 20261123T101500123Z-a1b2c3" in said

    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:2]))  # its last two lines cut
    cut = cli("audit", "verify", str(log))
    assert cut.code == 0 and "chain intact, 2 events" in cut.out and "its tail cannot be proven" in cut.out

    pub = tmp_path / "msp.pub"
    pub.write_bytes(signing.public_pem(signing.generate().public_key()))
    asked = one_line(cli("audit", "verify", str(log), "--public-key", str(pub)), 1)
    assert "UNSIGNED" in asked and "never signed" in asked and "offboard keys init" in asked
