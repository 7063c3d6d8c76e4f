"""`offboard keys` and `offboard audit verify --public-key` at the command line."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest

from offboard.proof import signing
from offboard.proof.audit import AuditLog
from tests.conftest import CliResult, MemoryKeyring


def test_keys_init_keeps_the_key_in_the_keyring_writes_the_public_key_and_never_shows_the_private_one(
        cli: Callable[..., CliResult], tmp_path: Path, memory_keyring: MemoryKeyring,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    made = cli("keys", "init")
    assert made.code == 0, made.err
    stored = memory_keyring.store[(signing.KEYRING_SERVICE, signing.KEYRING_FIELD)]
    public = signing.load_public(tmp_path / "msp.pub")
    signer = signing.load_signer(None)
    assert signer is not None and signing.fingerprint(public) == signer.fingerprint
    assert signer.fingerprint in made.out and stored not in made.out + made.err
    again = cli("keys", "init")
    assert again.code == 2 and "already holds a signing key" in again.err  # never replaced by accident
    exported = cli("keys", "export", "-o", "copy.pub")
    assert exported.code == 0 and (tmp_path / "copy.pub").read_bytes() == (tmp_path / "msp.pub").read_bytes()


def test_keys_init_to_a_file_is_private_and_never_overwrites(cli: Callable[..., CliResult], tmp_path: Path) -> None:
    key = tmp_path / "keys" / "msp.pem"
    made = cli("keys", "init", "--key-file", str(key), "-o", str(tmp_path / "msp.pub"))
    assert made.code == 0 and key.stat().st_mode & 0o077 == 0
    assert "[signing] key_file" in made.out
    again = cli("keys", "init", "--key-file", str(key))
    assert again.code == 2 and "never overwritten" in again.err


def test_audit_verify_with_the_public_key_checks_the_signed_heads(cli: Callable[..., CliResult],
                                                                  tmp_path: Path) -> None:
    signer = signing.Signer(signing.generate(), "test")
    (tmp_path / "msp.pub").write_bytes(signing.public_pem(signer.public))
    log = AuditLog(tmp_path / "audit.jsonl", "r")
    log.emit("run.started", outcome="success")
    log.close()
    unsigned = cli("audit", "verify", str(tmp_path / "audit.jsonl"), "--public-key", str(tmp_path / "msp.pub"))
    assert unsigned.code == 1 and "never signed" in unsigned.err
    signer.sign_head(tmp_path, "r", len(log.records), log.last_hash)
    started = cli("audit", "verify", str(tmp_path / "audit.jsonl"), "--public-key", str(tmp_path / "msp.pub"))
    assert started.code == 1 and "POSSIBLY CUT" in started.err  # signed, but the run never reached its end
    log = AuditLog(tmp_path / "audit.jsonl", "r")
    log.emit("run.closed", outcome="success")
    log.close()
    signer.sign_head(tmp_path, "r", len(log.records), log.last_hash)
    ok = cli("audit", "verify", str(tmp_path / "audit.jsonl"), "--public-key", str(tmp_path / "msp.pub"))
    assert ok.code == 0 and "covers all 2 events; the record reaches the run's end (line 2, `run.closed`" in ok.out
    raw = base64.b64encode(signer.private.private_bytes_raw()).decode()
    assert raw not in ok.out and raw not in (tmp_path / signing.SIGNATURES).read_text()
    missing = cli("audit", "verify", str(tmp_path / "audit.jsonl"), "--public-key", str(tmp_path / "nope.pub"))
    assert missing.code == 2 and "does not exist" in missing.err


@pytest.mark.parametrize("mode, who", [(0o666, "its group and others"), (0o640, "its group"), (0o604, "others"),
                                       (0o620, "its group"), (0o602, "others"), (0o601, "others")])
def test_a_signing_key_file_others_may_read_or_write_is_refused_with_the_chmod_that_fixes_it(
        cli: Callable[..., CliResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int, who: str) -> None:
    from tests.conftest import write_config

    key = tmp_path / "msp key.pem"  # a space: the command printed must run as printed
    assert cli("keys", "init", "--key-file", str(key), "-o", str(tmp_path / "msp.pub")).code == 0
    assert key.stat().st_mode & 0o777 == 0o600  # keys init writes it 0600, whatever the umask
    config = write_config(tmp_path, extra="")
    config.write_text(config.read_text().replace('[run]\n', f'[signing]\nkey_file = "{key}"\n\n[run]\n'))
    key.chmod(mode)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exit.plan.json").write_text("{}")

    refused = cli("apply", "exit.plan.json", "--require-signature", "-c", str(config))

    assert refused.code == 2, refused.out + refused.err
    assert refused.err.strip().count("\n") == 0 and "Traceback" not in refused.err
    assert f"`chmod 600 '{key}'`" in refused.err
    assert f"the signing key {key} may be read or written by {who} (mode {mode:04o})" in refused.err
    assert not (tmp_path / "runs").exists()  # nothing was started
    key.chmod(0o600)  # the printed fix is what makes it usable again
    assert signing.load_signer(key) is not None
