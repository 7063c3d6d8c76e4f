"""The MSP's signature over the audit chain: a rewritten log, a swapped signature, another key
or unsigned lines appended after the last signature are each named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offboard.errors import BadInput
from offboard.proof import signing
from offboard.proof.audit import AuditLog, seal, verify_bytes


def a_run(tmp_path: Path, signer: signing.Signer, events: int = 5) -> Path:
    log = AuditLog(tmp_path / "audit.jsonl", "run-1")
    for n in range(events):
        log.emit("action.succeeded", vendor="v", action_id=f"v.a.{n}", outcome="success", detail={"n": n})
        if n in (1, events - 1):
            signer.sign_head(tmp_path, "run-1", len(log.records), log.last_hash)
    log.close()
    return tmp_path / "audit.jsonl"


def check(audit: Path, key: signing.Signer) -> signing.SignatureCheck:
    return signing.verify_heads(audit, audit.parent / signing.SIGNATURES, key.public)


@pytest.fixture
def signer() -> signing.Signer:
    return signing.Signer(signing.generate(), "test")


def test_an_untouched_signed_run_verifies(tmp_path: Path, signer: signing.Signer) -> None:
    result = check(a_run(tmp_path, signer), signer)
    assert result.ok and result.heads == 2 and result.last is not None and result.last["audit_lines"] == 5


def test_a_whole_rewritten_chain_is_caught_though_every_hash_is_recomputed(
        tmp_path: Path, signer: signing.Signer) -> None:
    audit = a_run(tmp_path, signer)
    records: list[dict[str, Any]] = [json.loads(line) for line in audit.read_bytes().split(b"\n") if line]
    prev = "0" * 64
    lines = []
    for r in records:  # a forger who rewrites a detail and recomputes the whole chain
        if r["seq"] == 1:
            r["detail"] = {"n": 999}
        r["prev_hash"] = prev
        lines.append(seal(r))
        prev = json.loads(lines[-1])["hash"]
    audit.write_text("".join(line + "\n" for line in lines))
    result = check(audit, signer)
    assert not result.ok and "is not in this audit log (it was rewritten)" in result.reason


def test_another_key_or_a_swapped_signature_is_named(tmp_path: Path, signer: signing.Signer) -> None:
    audit = a_run(tmp_path, signer)
    other = signing.Signer(signing.generate(), "other")
    assert "not by this public key" in check(audit, other).reason
    sigs = tmp_path / signing.SIGNATURES
    lines = [json.loads(line) for line in sigs.read_text().splitlines()]
    lines[0]["signature"], lines[1]["signature"] = lines[1]["signature"], lines[0]["signature"]
    sigs.write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert "the signature does not verify" in check(audit, signer).reason


def test_lines_appended_after_the_last_signature_are_unsigned(tmp_path: Path, signer: signing.Signer) -> None:
    audit = a_run(tmp_path, signer)
    log = AuditLog(audit, "run-1")
    log.emit("manual.confirmed", vendor="v", action_id="v.m", outcome="success", detail={"by": "forger"})
    log.close()
    result = check(audit, signer)
    assert not result.ok and "audit lines 6 to 6 were added after the last signature" in result.reason


def test_a_run_never_signed_says_so(tmp_path: Path, signer: signing.Signer) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", "run-1")
    log.emit("run.started", outcome="success")
    log.close()
    assert "never signed" in check(tmp_path / "audit.jsonl", signer).reason


def test_key_files_are_private_and_bad_keys_are_one_clear_line(tmp_path: Path) -> None:
    key = signing.generate()
    path = tmp_path / "k.pem"
    signing.write_key_file(key, path)
    assert path.stat().st_mode & 0o077 == 0
    loaded = signing.load_signer(path)
    assert loaded is not None and loaded.fingerprint == signing.fingerprint(key.public_key())
    (tmp_path / "bad.pem").write_text("not a key")
    with pytest.raises(BadInput, match="not an unencrypted PEM private key"):
        signing.load_signer(tmp_path / "bad.pem")
    with pytest.raises(BadInput, match="does not exist"):
        signing.load_signer(tmp_path / "missing.pem")
    with pytest.raises(BadInput, match="not a PEM public key"):
        signing.load_public(tmp_path / "bad.pem")


def test_a_new_key_file_is_private_from_the_moment_it_exists_not_only_once_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Permissions are checked when a file is opened: a key file created readable for an instant
    could be opened then by another user, who reads the key once it is written."""
    import os

    seen: list[int] = []
    fchmod = os.fchmod

    def mode_before_fchmod(fd: int, mode: int) -> None:
        seen.append(os.fstat(fd).st_mode & 0o777)
        fchmod(fd, mode)

    monkeypatch.setattr(os, "fchmod", mode_before_fchmod)
    old_umask = os.umask(0)  # no umask to hide what the file was created with
    try:
        signing.write_key_file(signing.generate(), tmp_path / "msp-key.pem")
    finally:
        os.umask(old_umask)
    assert seen == [0o600] and (tmp_path / "msp-key.pem").stat().st_mode & 0o777 == 0o600


def test_the_keyring_keeps_the_key_when_no_file_is_configured() -> None:
    assert signing.load_signer(None) is None  # the test keyring starts empty
    key = signing.generate()
    signing.store_in_keyring(key)
    loaded = signing.load_signer(None)
    assert loaded is not None and loaded.fingerprint == signing.fingerprint(key.public_key())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.sampled_from(["audit.jsonl", signing.SIGNATURES]), st.floats(0, 1, exclude_max=True),
                                st.sampled_from([0x0A, 0x22, 0x7B, 0x2C, 0x5C, 0x85, 0xE2, 0xFF, 0x30, 0x20])),
                      min_size=1, max_size=3))
def test_any_damaged_log_or_signatures_is_a_verdict(tmp_path: Path, signer: signing.Signer,
                                                    flips: list[tuple[str, float, int]]) -> None:
    """Lines split, joined, cut or made invalid UTF-8 anywhere: a reason, never an exception."""
    folder = tmp_path / "run"
    if not folder.exists():
        folder.mkdir()
        a_run(folder, signer)
    raw = {name: bytearray((folder / name).read_bytes()) for name in ("audit.jsonl", signing.SIGNATURES)}
    for name, where, value in flips:
        raw[name][int(where * len(raw[name]))] = value
    chain = verify_bytes(bytes(raw["audit.jsonl"]))
    if chain.ok:
        result = signing.check_heads(chain, bytes(raw[signing.SIGNATURES]), signer.public)
        assert result.ok or result.reason
    else:
        assert chain.bad_line is not None and chain.reason
