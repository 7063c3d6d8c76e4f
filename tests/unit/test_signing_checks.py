"""Each verdict of the signed chain heads, whole (its ok flag, its exact reason, what it counts),
and each key-handling error as the line a user reads (proof/signing.py)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import keyring.errors
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from offboard.errors import BadInput
from offboard.lifecycle import run_end
from offboard.plan import canonical_json
from offboard.proof import signing
from offboard.proof.audit import AuditLog, verify_bytes
from offboard.proof.signing import SignatureCheck
from tests.conftest import MemoryKeyring
from tests.unit.test_signing import a_run


@pytest.fixture
def signer() -> signing.Signer:
    return signing.Signer(signing.generate(), "test")


def verdict(audit: Path, raw: bytes, public: object, name: str = signing.SIGNATURES) -> SignatureCheck:
    return signing.check_heads(verify_bytes(audit.read_bytes()), raw, public, name)  # type: ignore[arg-type]


def heads(tmp_path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (tmp_path / signing.SIGNATURES).read_text().splitlines()]


def resigned(head: dict[str, object], key: signing.Signer) -> bytes:
    """A head as a holder of the key would sign it, whatever it says."""
    body = {k: head[k] for k in signing.HEAD_FIELDS}
    signature = base64.b64encode(key.private.sign(canonical_json(body).encode())).decode()
    return (json.dumps({**body, "signature": signature}, sort_keys=True) + "\n").encode()


def test_a_whole_signed_run_verifies_counting_its_heads_and_ending_where_the_log_ends(
        tmp_path: Path, signer: signing.Signer) -> None:
    audit = a_run(tmp_path, signer)
    raw = (tmp_path / signing.SIGNATURES).read_bytes()
    chain = verify_bytes(audit.read_bytes())
    assert signing.check_heads(chain, raw, signer.public) == SignatureCheck(
        True, "", 2, {k: heads(tmp_path)[-1][k] for k in signing.HEAD_FIELDS}, run_end(chain.records))
    assert signing.verify_heads(audit, tmp_path / signing.SIGNATURES, signer.public) == signing.check_heads(
        chain, raw, signer.public)


def test_a_torn_last_head_names_its_line_and_the_command_that_repairs_it(tmp_path: Path,
                                                                           signer: signing.Signer) -> None:
    audit = a_run(tmp_path, signer)
    raw = (tmp_path / signing.SIGNATURES).read_bytes()
    assert verdict(audit, raw[:-10], signer.public) == SignatureCheck(
        False, "signatures.jsonl line 2 is incomplete (a torn write, e.g. a crash while signing); the next "
               "`offboard verify --run run-1` repairs it, records the repair and signs the head again")


def test_a_line_that_is_not_a_head_is_named(tmp_path: Path, signer: signing.Signer) -> None:
    audit = a_run(tmp_path, signer)
    first, _ = (tmp_path / signing.SIGNATURES).read_bytes().splitlines(keepends=True)
    for bad in (b"[1, 2]\n", b'{"format": 1}\n', first.replace(b'"signature": "', b'"signature": "!!', 1)):
        assert verdict(audit, first + bad, signer.public, "heads.jsonl") == SignatureCheck(
            False, "heads.jsonl line 2 is not a signed chain head")


def test_a_head_signed_by_another_key_names_both_keys(tmp_path: Path, signer: signing.Signer) -> None:
    audit = a_run(tmp_path, signer)
    other = signing.Signer(signing.generate(), "other")
    raw = (tmp_path / signing.SIGNATURES).read_bytes()
    assert verdict(audit, raw, other.public) == SignatureCheck(
        False, f"signatures.jsonl line 1 was signed by key {signer.fingerprint}, not by this public key "
               f"({other.fingerprint})")


def test_a_changed_head_fails_its_signature(tmp_path: Path, signer: signing.Signer) -> None:
    audit = a_run(tmp_path, signer)
    first, second = (tmp_path / signing.SIGNATURES).read_bytes().splitlines(keepends=True)
    changed = second.replace(b'"signed_at": "', b'"signed_at": "1', 1)
    assert verdict(audit, first + changed, signer.public) == SignatureCheck(
        False, "signatures.jsonl line 2: the signature does not verify with this public key (the head or the "
               "signature was changed)")


@pytest.mark.parametrize("field, value", [("audit_lines", 0), ("audit_lines", 6), ("audit_lines", True),
                                          ("audit_lines", "2"), ("last_hash", "e" * 64), ("run_id", "run-2")])
def test_a_signed_head_that_is_not_in_this_log_is_named(tmp_path: Path, signer: signing.Signer, field: str,
                                                        value: object) -> None:
    """Signed with the right key (a head of another run, or made up), it still names no line of this log."""
    audit = a_run(tmp_path, signer)
    head = {**heads(tmp_path)[0], field: value}
    assert verdict(audit, resigned(head, signer), signer.public) == SignatureCheck(
        False, f"signatures.jsonl line 1: the signed head (line {head['audit_lines']}, hash "
               f"{str(head['last_hash'])[:12]}…) is not in this audit log (it was rewritten)")


def test_every_head_is_checked_not_only_the_last(tmp_path: Path, signer: signing.Signer) -> None:
    audit = a_run(tmp_path, signer)
    first, second = (tmp_path / signing.SIGNATURES).read_bytes().splitlines(keepends=True)
    wrong = resigned({**json.loads(first), "last_hash": "e" * 64}, signer)
    assert verdict(audit, wrong + second, signer.public).reason.startswith("signatures.jsonl line 1: the signed head")


def test_no_head_at_all_means_never_signed(tmp_path: Path, signer: signing.Signer) -> None:
    audit = a_run(tmp_path, signer)
    assert verdict(audit, b"", signer.public) == SignatureCheck(False, "signatures.jsonl is empty: the run was "
                                                                       "never signed")
    (tmp_path / signing.SIGNATURES).unlink()
    assert signing.check_heads_file(verify_bytes(audit.read_bytes()), tmp_path / signing.SIGNATURES,
                                    signer.public) == SignatureCheck(
        False, "no signatures.jsonl beside the audit log: the run was never signed")


def test_the_signatures_file_is_named_as_it_is_called(tmp_path: Path, signer: signing.Signer) -> None:
    audit = a_run(tmp_path, signer)
    elsewhere = tmp_path / "heads.jsonl"
    elsewhere.write_bytes(b"")
    assert signing.check_heads_file(verify_bytes(audit.read_bytes()), elsewhere, signer.public).reason == (
        "heads.jsonl is empty: the run was never signed")
    with pytest.raises(BadInput, match=r"^cannot read .*: Is a directory$"):
        signing.check_heads_file(verify_bytes(audit.read_bytes()), tmp_path, signer.public)


def test_lines_after_the_last_head_are_unsigned_and_the_verdict_keeps_what_was_signed(
        tmp_path: Path, signer: signing.Signer) -> None:
    audit = a_run(tmp_path, signer)
    log = AuditLog(audit, "run-1")
    log.emit("manual.confirmed", outcome="success")
    log.emit("manual.confirmed", outcome="success")
    log.close()
    raw = (tmp_path / signing.SIGNATURES).read_bytes()
    assert verdict(audit, raw, signer.public) == SignatureCheck(
        False, "audit lines 6 to 7 were added after the last signature (unsigned)", 2,
        {k: heads(tmp_path)[-1][k] for k in signing.HEAD_FIELDS})


def test_a_broken_chain_is_named_before_any_signature(tmp_path: Path, signer: signing.Signer) -> None:
    audit = a_run(tmp_path, signer)
    lines = audit.read_text().splitlines()
    lines[2] = lines[2].replace('"seq":3', '"seq":9')
    audit.write_text("\n".join(lines) + "\n")
    chain = verify_bytes(audit.read_bytes())
    assert signing.verify_heads(audit, tmp_path / signing.SIGNATURES, signer.public) == SignatureCheck(
        False, f"audit chain broken at line 3: {chain.reason}")
    with pytest.raises(BadInput, match=r"^audit log .*missing\.jsonl does not exist$"):
        signing.verify_heads(tmp_path / "missing.jsonl", tmp_path / signing.SIGNATURES, signer.public)


def test_a_signed_head_is_one_sorted_json_line(tmp_path: Path, signer: signing.Signer) -> None:
    record = signer.sign_head(tmp_path, "run-9", 3, "a" * 64)
    line = (tmp_path / signing.SIGNATURES).read_text()
    assert line == json.dumps(record, sort_keys=True) + "\n" and list(json.loads(line)) == sorted(record)


# -- keys -------------------------------------------------------------------------------------


def test_a_fingerprint_is_the_first_128_bits_of_the_raw_public_keys_sha256(signer: signing.Signer) -> None:
    raw = signer.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert signer.fingerprint == "ed25519:" + hashlib.sha256(raw).hexdigest()[:32]


def ec_pem(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = tmp_path / "ec.pem", tmp_path / "ec.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def test_each_bad_key_file_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(BadInput) as caught:
        signing.load_signer(missing)
    assert str(caught.value) == (f"[signing] key_file {missing} does not exist; make one with "
                                 f"`offboard keys init --key-file {missing}`")
    (tmp_path / "bad.pem").write_text("not a key")
    with pytest.raises(BadInput) as caught:
        signing.load_signer(tmp_path / "bad.pem")
    assert str(caught.value) == (f"{tmp_path / 'bad.pem'} is not an unencrypted PEM private key; make one with "
                                 "`offboard keys init --key-file PATH`")
    private, public = ec_pem(tmp_path)
    with pytest.raises(BadInput) as caught:
        signing.load_signer(private)
    kind = type(serialization.load_pem_private_key(private.read_bytes(), None)).__name__  # e.g. ECPrivateKey
    assert str(caught.value) == f"{private} holds a {kind}, not an Ed25519 key"
    with pytest.raises(BadInput) as caught:
        signing.load_public(public)
    kind = type(serialization.load_pem_public_key(public.read_bytes())).__name__
    assert str(caught.value) == f"{public} holds a {kind}, not an Ed25519 public key"
    with pytest.raises(BadInput) as caught:
        signing.load_public(missing)
    assert str(caught.value) == (f"public key {missing} does not exist; export it with "
                                 f"`offboard keys export -o {missing}`")
    with pytest.raises(BadInput) as caught:
        signing.load_public(tmp_path / "bad.pem")
    assert str(caught.value) == f"{tmp_path / 'bad.pem'} is not a PEM public key (-----BEGIN PUBLIC KEY-----)"


def test_a_signer_says_where_its_key_came_from(tmp_path: Path) -> None:
    signing.write_key_file(signing.generate(), tmp_path / "k.pem")
    from_file = signing.load_signer(tmp_path / "k.pem")
    assert from_file is not None and from_file.where == str(tmp_path / "k.pem")
    signing.store_in_keyring(signing.generate())
    from_ring = signing.load_signer(None)
    assert from_ring is not None and from_ring.where == "the OS keyring"


def test_a_keyring_value_that_is_not_a_key_is_one_line(memory_keyring: MemoryKeyring) -> None:
    memory_keyring.set_password(signing.KEYRING_SERVICE, signing.KEYRING_FIELD, "AAAA")
    with pytest.raises(BadInput) as caught:
        signing.load_signer(None)
    assert str(caught.value) == ("the signing key in the OS keyring is not an Ed25519 key; make a new one with "
                                 "`offboard keys init --force`")


def test_a_keyring_that_cannot_store_says_how_to_use_a_file_instead(
        memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise keyring.errors.PasswordSetError("locked")

    monkeypatch.setattr(memory_keyring, "set_password", refuse)
    with pytest.raises(BadInput) as caught:
        signing.store_in_keyring(signing.generate())
    assert str(caught.value) == ("cannot store the signing key: no usable OS keyring on this machine "
                                 "(PasswordSetError); use `offboard keys init --key-file PATH` and set "
                                 "[signing] key_file")


def test_a_torn_head_beside_an_empty_log_names_the_run_as_a_placeholder(signer: signing.Signer) -> None:
    empty = verify_bytes(b"")
    assert signing.check_heads(empty, b'{"format": "offboard-chain', signer.public) == SignatureCheck(
        False, "signatures.jsonl line 1 is incomplete (a torn write, e.g. a crash while signing); the next "
               "`offboard verify --run <its run id>` repairs it, records the repair and signs the head again")
