"""The MSP's Ed25519 signature over the audit log's chain head.

Each line of the audit log carries the hash of the one before it, so whoever can
rewrite the whole file can forge a whole new chain. A signature over the chain head
(its line count and last hash), made with a key only the MSP holds, closes that gap:
``signatures.jsonl`` beside the log keeps one signed head per run, resume, manual
confirmation and verification, so the record is contemporaneous, not made after the
fact. Anyone with the public key (``msp.pub``) can check it offline.

The private key lives in the OS keyring, or in a file named by ``[signing] key_file``.
The crypto is the ``cryptography`` package's; nothing here is hand-rolled.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keyring.errors
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from offboard.errors import BadInput, read_input
from offboard.lifecycle import RunEnd, run_end
from offboard.plan import canonical_json, now_iso
from offboard.proof.audit import VerifyResult, loads_strict, repair_torn_tail, split_lines, verify_bytes
from offboard.rundir import make_private_dirs, open_append
from offboard.wire.credentials import ring
from offboard.wire.redact import REDACTOR

SIGNATURES = "signatures.jsonl"
FORMAT = "offboard-chain-head/1"
KEYRING_SERVICE = "offboard:signing"
KEYRING_FIELD = "ed25519_private_key"


def fingerprint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:32]


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class Signer:
    private: Ed25519PrivateKey
    where: str  # "the OS keyring" or the key file's path, for messages

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public)

    def sign_head(self, run_path: Path, run_id: str, lines: int, last_hash: str) -> dict[str, Any]:
        """Append a signed chain head to the run's signatures.jsonl (fsynced). The caller repairs
        and records a torn last line first (``repair_torn_tail``); one left is dropped here, so a
        head is never glued onto a fragment."""
        head = {"format": FORMAT, "run_id": run_id, "audit_lines": lines, "last_hash": last_hash,
                "signed_at": now_iso(), "key": self.fingerprint}
        signature = self.private.sign(canonical_json(head).encode())
        record = {**head, "signature": base64.b64encode(signature).decode()}
        path = run_path / SIGNATURES
        repair_torn_tail(path)
        with open_append(path) as fh:  # 0600, never through a link
            fh.write(json.dumps(record, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return record


# -- keys ----------------------------------------------------------------------------


def generate() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _raw_private(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def store_in_keyring(key: Ed25519PrivateKey) -> None:
    try:
        ring().set_password(KEYRING_SERVICE, KEYRING_FIELD, base64.b64encode(_raw_private(key)).decode())
    except keyring.errors.KeyringError as exc:
        raise BadInput(f"cannot store the signing key: no usable OS keyring on this machine "
                       f"({type(exc).__name__}); use `offboard keys init --key-file PATH` and set "
                       "[signing] key_file") from None


def write_key_file(key: Ed25519PrivateKey, path: Path) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    make_private_dirs(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others
    try:
        os.fchmod(fd, 0o600)  # whatever the umask: exactly what load_signer accepts
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        path.unlink(missing_ok=True)  # half a key is worse than none: `keys init` can be run again
        raise


def _from_keyring() -> Ed25519PrivateKey | None:
    try:
        value = ring().get_password(KEYRING_SERVICE, KEYRING_FIELD)
    except keyring.errors.KeyringError:
        return None
    if not value:
        return None
    REDACTOR.register(value)
    try:
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(value))
    except ValueError:
        raise BadInput("the signing key in the OS keyring is not an Ed25519 key; make a new one with "
                       "`offboard keys init --force`") from None


class ExposedKeyFile(BadInput):
    """A private key file others may read or write: refused before anything is signed (as ssh does)."""


def check_key_file_mode(path: Path) -> None:
    """Any local user who may write the key file could swap the key the proof rests on, and one who
    may read it could sign as the MSP: a key file with any group or other permission is refused,
    with the command that fixes it."""
    if os.name != "posix":
        return  # no POSIX mode bits to check; the folder's ACL is the user's to keep
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return  # read_input says what is wrong with a path that cannot be read
    if mode & 0o077:
        who = " and ".join(w for w, bits in (("its group", 0o070), ("others", 0o007)) if mode & bits)
        raise ExposedKeyFile(f"the signing key {path} may be read or written by {who} (mode {mode:04o}): anyone "
                             f"with that access could sign as the MSP or swap the key; fix it with "
                             f"`chmod 600 {shlex.quote(str(path))}`")


def _from_file(path: Path) -> Ed25519PrivateKey:
    data = read_input(path, "[signing] key_file", f"make one with `offboard keys init --key-file {path}`")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise BadInput(f"{path} is not an unencrypted PEM private key; make one with "
                       "`offboard keys init --key-file PATH`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BadInput(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    check_key_file_mode(path)
    return key


def load_signer(key_file: Path | None) -> Signer | None:
    """The configured key file, else the keyring's key, else None (runs are then unsigned)."""
    if key_file is not None:
        return Signer(_from_file(key_file), str(key_file))
    key = _from_keyring()
    return None if key is None else Signer(key, "the OS keyring")


def load_public(path: Path) -> Ed25519PublicKey:
    return parse_public(read_input(path, "public key", f"export it with `offboard keys export -o {path}`"), str(path))


def parse_public(data: bytes, where: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise BadInput(f"{where} is not a PEM public key (-----BEGIN PUBLIC KEY-----)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BadInput(f"{where} holds a {type(key).__name__}, not an Ed25519 public key")
    return key


# -- verification ---------------------------------------------------------------------


@dataclass(frozen=True)
class SignatureCheck:
    ok: bool
    reason: str
    heads: int = 0
    last: dict[str, Any] | None = None
    end: RunEnd | None = None  # where the run's record stands at the last signed head


HEAD_FIELDS = ("format", "run_id", "audit_lines", "last_hash", "signed_at", "key")


def verify_heads(audit: Path, signatures: Path, public: Ed25519PublicKey) -> SignatureCheck:
    """Every signed head verifies with ``public`` and names a line of the chain whose hash it
    quotes; the newest covers the whole log. The chain itself is checked first."""
    chain = verify_bytes(read_input(audit, "audit log"))
    if not chain.ok:
        return SignatureCheck(False, f"audit chain broken at line {chain.bad_line}: {chain.reason}")
    return check_heads_file(chain, signatures, public)


def check_heads_file(chain: VerifyResult, signatures: Path, public: Ed25519PublicKey) -> SignatureCheck:
    """``check_heads`` with the signatures read from ``signatures``."""
    try:
        raw = signatures.read_bytes()
    except FileNotFoundError:
        return SignatureCheck(False, f"no {signatures.name} beside the audit log: the run was never signed")
    except OSError as exc:
        raise BadInput(f"cannot read {signatures}: {exc.strerror}") from None
    return check_heads(chain, raw, public, signatures.name)


def check_heads(chain: VerifyResult, raw: bytes, public: Ed25519PublicKey, name: str = SIGNATURES
                ) -> SignatureCheck:
    """``verify_heads`` over a chain already verified (``chain.ok``) and the signatures' bytes."""
    lines, torn = split_lines(raw)
    run_id = chain.records[0].get("run_id") if chain.records else None
    if torn:
        return SignatureCheck(False, f"{name} line {len(lines) + 1} is incomplete (a torn write, e.g. a crash while "
                              f"signing); the next `offboard verify --run {run_id or '<its run id>'}` repairs it, "
                              "records the repair and signs the head again")
    hashes = [r["hash"] for r in chain.records]
    key = fingerprint(public)
    last: dict[str, Any] | None = None
    for n, line in enumerate(lines, start=1):
        try:
            record = loads_strict(line)
            head = {k: record[k] for k in HEAD_FIELDS}
            signature = base64.b64decode(record["signature"], validate=True)
        except (ValueError, KeyError, TypeError):  # JSON, UTF-8, base64, a list for an object
            return SignatureCheck(False, f"{name} line {n} is not a signed chain head")
        if head["key"] != key:
            return SignatureCheck(False, f"{name} line {n} was signed by key {head['key']}, "
                                  f"not by this public key ({key})")
        try:
            public.verify(signature, canonical_json(head).encode())
        except InvalidSignature:
            return SignatureCheck(False, f"{name} line {n}: the signature does not verify with this "
                                  "public key (the head or the signature was changed)")
        count = head["audit_lines"]
        if (type(count) is not int or not 1 <= count <= len(hashes) or hashes[count - 1] != head["last_hash"]
                or head["run_id"] != run_id):
            return SignatureCheck(False, f"{name} line {n}: the signed head (line {count}, hash "
                                  f"{str(head['last_hash'])[:12]}…) is not in this audit log (it was rewritten)")
        last = head
    if last is None:
        return SignatureCheck(False, f"{name} is empty: the run was never signed")
    if last["audit_lines"] != len(hashes):
        return SignatureCheck(False, f"audit lines {last['audit_lines'] + 1} to {len(hashes)} were added after "
                              "the last signature (unsigned)", len(lines), last)
    return SignatureCheck(True, "", len(lines), last, run_end(chain.records))
