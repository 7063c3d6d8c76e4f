"""The evidence bundle: one signed .tar.gz that answers "when was the service stopped, by whom,
on which systems, and how do you know?" — and that anyone can check offline with only the
MSP's public key.

Members, all under one folder named after the run: the plan, the audit log and its signed
chain heads, the evidence exports and their manifest, the documents (report, closure note,
checklist, the vendors' notification drafts), views extracted from the log (snapshots before
and after, every verification re-read, every manual confirmation), the public key, and
``BUNDLE.json`` listing every member's SHA-256, signed as ``BUNDLE.sig``.

A bundle is read as hostile input (``tarsafe``: one run folder, one spelling per member name,
plain files only, sizes bounded and checked from each tar header before its member is read,
members hashed as they stream); then nothing but what ``BUNDLE.json`` lists may be in it.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from offboard.errors import BadInput, OffboardError
from offboard.lifecycle import RunEnd
from offboard.plan import Plan, now_iso
from offboard.proof import signing
from offboard.proof.audit import VerifyResult, loads_strict, verify_bytes
from offboard.proof.tarsafe import CHUNK, Limits, Member, MiB, Refused, human, read_members
from offboard.rundir import RUN_ID_RE, RunDir, atomic_writer, check_output_path

FORMAT: Literal["offboard-bundle/1"] = "offboard-bundle/1"
MANIFEST = "BUNDLE.json"
SIGNATURE = "BUNDLE.sig"
PUBLIC_KEY = "msp.pub"
AUDIT = "audit.jsonl"
PLAN = "plan.json"
EVIDENCE_MANIFEST = "evidence/manifest.json"
RUN_FILES = (PLAN, AUDIT, signing.SIGNATURES, "report.md", "report.html", "closure-note.md", "manual-checklist.md")
REQUIRED = (PLAN, AUDIT, signing.SIGNATURES, PUBLIC_KEY)

# Generous for a real exit's evidence (an exit's exports are megabytes; its audit log a few kB per
# object), small enough that checking a crafted bundle never exhausts memory or disk time. The
# members parsed in memory are capped tighter. ``create`` refuses a run over them, so every
# bundle offboard makes also verifies.
LIMITS = Limits(parsed_bytes=(
    (AUDIT, 64 * MiB), (PLAN, 64 * MiB), (signing.SIGNATURES, 16 * MiB), (MANIFEST, 16 * MiB),
    (EVIDENCE_MANIFEST, 16 * MiB), (PUBLIC_KEY, 16 * 1024), (SIGNATURE, 16 * 1024)))


# -- the manifest -------------------------------------------------------------------------

_SHA256 = r"^[0-9a-f]{64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class MemberEntry(_Strict):
    sha256: str = Field(pattern=_SHA256)
    bytes: int = Field(ge=0)


class AuditHead(_Strict):
    lines: int = Field(ge=1)
    last_hash: str = Field(pattern=_SHA256)


class Manifest(_Strict):
    """``BUNDLE.json``: what the MSP's signature vouches for."""

    format: Literal["offboard-bundle/1"]
    run_id: str = Field(pattern=RUN_ID_RE.pattern)
    customer: str
    created_at: str
    key: str
    audit: AuditHead
    members: dict[str, MemberEntry]

    @field_validator("members")
    @classmethod
    def _holds_the_record(cls, members: dict[str, MemberEntry]) -> dict[str, MemberEntry]:
        missing = [name for name in REQUIRED if name not in members]
        if missing:  # without them the bundle proves nothing, however well it is signed
            raise ValueError(f"lists no {', '.join(missing)}")
        return members


class _EvidenceFile(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)
    sha256: str = Field(pattern=_SHA256)


class _EvidenceManifest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)
    files: dict[str, _EvidenceFile]


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "the document"
    return f"{where}: {err['msg']}"


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def proof_views(plan: Plan, records: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> dict[str, bytes]:
    """What an auditor looks for first, pulled out of the audit log (which stays the source)."""
    keep = ("ts", "seq", "vendor", "step", "action_id", "target", "http", "outcome", "detail")

    def pick(events: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{k: r.get(k) for k in ("event", *keep)} for r in records if r["event"] in events]

    after = {r["vendor"]: {"at": r["ts"], **(r.get("detail") or {}).get("snapshot", {})} for r in records
             if r["event"] == "snapshot.taken"}
    snapshots = {vp.vendor: {"before": {"at": plan.created_at, **vp.snapshot}, "after": after.get(vp.vendor)}
                 for vp in plan.vendors}
    # The exit's PSA ticket: each note and file posted (or found already there) with its id in the
    # PSA, so an auditor can match the ticket to the signed log; and what was left to paste by hand.
    ticket = pick(("ticket.posted", "ticket.found", "ticket.attached", "ticket.linked", "ticket.status",
                   "ticket.failed", "ticket.pasted"))
    return {
        "proof/snapshots.json": _json(snapshots),
        "proof/verifications.json": _json(pick(("verify.passed", "verify.failed"))),
        "proof/confirmations.json": _json(pick(("manual.confirmed", "manual.rejected"))),
        **({"proof/ticket.json": _json(ticket)} if ticket else {}),
    }


# -- making a bundle ----------------------------------------------------------------------


class NotBundled(OffboardError):
    """The run is not fit to be vouched for (its chain or signatures do not verify); nothing was written."""


@dataclass(frozen=True)
class _Source:
    """One member to pack: bytes already read, or a file hashed once and re-hashed as it is packed."""

    sha256: str
    size: int
    data: bytes | None = None
    path: Path | None = None


def _open_plain(path: Path) -> IO[bytes]:
    """A regular file of the run folder, never through a symbolic link (one planted there could
    pull any file of this machine into a bundle signed by the MSP)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise NotBundled(f"cannot read {path} ({exc.strerror}); it is not a plain file offboard wrote") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotBundled(f"{path} is not a plain file; offboard writes only plain files in a run folder")
    return os.fdopen(fd, "rb")


def _read_small(path: Path, cap: int) -> bytes:
    with _open_plain(path) as fh:
        data = fh.read(cap + 1)
    if len(data) > cap:
        raise NotBundled(f"{path} is over {human(cap)}, the bundle's limit for it")
    return data


def _hash_file(path: Path, cap: int) -> _Source:
    digest, size = hashlib.sha256(), 0
    with _open_plain(path) as fh:
        while chunk := fh.read(CHUNK):
            size += len(chunk)
            if size > cap:
                raise NotBundled(f"{path} is over {human(cap)}, the bundle's limit per member")
            digest.update(chunk)
    return _Source(digest.hexdigest(), size, path=path)


def _run_files(run_path: Path, folder: str) -> Iterator[Path]:
    root = run_path / folder
    if not root.exists():
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames):
            if (Path(dirpath) / name).is_symlink():
                raise NotBundled(f"{Path(dirpath) / name} is a symbolic link; offboard never writes one in a "
                                 "run folder")
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def _refuse_unless_verified(run: RunDir, signer: signing.Signer, audit_raw: bytes, sigs_raw: bytes
                            ) -> VerifyResult:
    """A bundle vouches for the run with the MSP's key: a broken, unsigned or cut log never gets it."""
    chain = verify_bytes(audit_raw)
    where = f"refusing to bundle run {run.run_id}"
    if not chain.ok:
        raise NotBundled(f"{where}: its audit log is broken at line {chain.bad_line} ({chain.reason}); keep the run "
                         "folder as evidence of what happened to it")
    heads = signing.check_heads(chain, sigs_raw, signer.public)
    if not heads.ok:
        raise NotBundled(f"{where}: its signatures do not verify with this MSP key ({heads.reason})")
    try:
        state = json.loads(run.state_path.read_bytes())
        recorded = state.get("audit_lines") if isinstance(state, dict) else None
        recorded_hash = state.get("audit_last_hash") if isinstance(state, dict) else None
    except (OSError, ValueError):
        recorded = recorded_hash = None
    # state.json is rewritten as the run goes: a log shorter than it, or with another line there, was cut.
    if type(recorded) is int and recorded > 0 and (recorded > chain.lines or (
            recorded_hash is not None and chain.records[recorded - 1]["hash"] != recorded_hash)):
        raise NotBundled(f"{where}: {run.state_path.name} records {recorded} audit lines ending in "
                         f"{str(recorded_hash)[:12]}…, and the audit log does not have that line: it was cut back or "
                         "rewritten (or lost in a crash before it reached the disk: resume the run first)")
    return chain


def create(run: RunDir, signer: signing.Signer, out: Path, limits: Limits | None = None) -> Manifest:
    """Write the bundle of ``run``, signed with ``signer``; returns its manifest. Refuses (and
    writes nothing) when the run's chain or signatures do not verify, or it exceeds ``limits``."""
    limits = limits or LIMITS
    dest = _destination(out)
    caps = dict(limits.parsed_bytes)
    sigs_path = run.path / signing.SIGNATURES
    if not sigs_path.exists():
        raise BadInput(f"run {run.run_id} was never signed (no {signing.SIGNATURES}); it was made before the MSP had "
                       f"a signing key: `offboard verify --run {run.run_id}` signs its chain head (with the key of "
                       "`offboard keys init`), then bundle it")
    audit_raw = _read_small(run.audit_path, caps[AUDIT])
    sigs_raw = _read_small(sigs_path, caps[signing.SIGNATURES])
    chain = _refuse_unless_verified(run, signer, audit_raw, sigs_raw)
    plan_raw = _read_small(run.plan_path, caps[PLAN])
    try:
        plan = Plan.model_validate_json(plan_raw)
    except ValueError:
        raise NotBundled(f"refusing to bundle run {run.run_id}: its {PLAN} is not a plan file") from None

    sources: dict[str, _Source] = {}

    def add(name: str, data: bytes) -> None:
        sources[name] = _Source(hashlib.sha256(data).hexdigest(), len(data), data=data)

    add(PLAN, plan_raw)
    add(AUDIT, audit_raw)
    add(signing.SIGNATURES, sigs_raw)
    for name in RUN_FILES:
        if name not in sources and os.path.lexists(run.path / name):
            sources[name] = _hash_file(run.path / name, limits.member_bytes)
    for folder in ("evidence", "documents"):
        for path in _run_files(run.path, folder):
            rel = path.relative_to(run.path).as_posix()
            cap = caps.get(rel, limits.member_bytes)
            sources[rel] = _hash_file(path, cap)
    for name, data in proof_views(plan, chain.records).items():
        add(name, data)
    add(PUBLIC_KEY, signing.public_pem(signer.public))
    total = sum(s.size for s in sources.values())
    if total > limits.total_bytes or len(sources) + 2 > limits.members:
        raise NotBundled(f"run {run.run_id} has {len(sources)} files, {human(total)} in all: over the bundle's "
                         f"limits ({limits.members} members, {human(limits.total_bytes)})")
    manifest = Manifest(
        format=FORMAT, run_id=run.run_id, customer=plan.customer, created_at=now_iso(), key=signer.fingerprint,
        audit=AuditHead(lines=chain.lines, last_hash=chain.last_hash),
        members={name: MemberEntry(sha256=s.sha256, bytes=s.size) for name, s in sorted(sources.items())})
    manifest_bytes = _json(manifest.model_dump(mode="json"))
    add(MANIFEST, manifest_bytes)
    add(SIGNATURE, base64.b64encode(signer.private.sign(manifest_bytes)) + b"\n")
    _write(dest, run.run_id, sources)
    return manifest


def _destination(out: Path) -> Path:
    return check_output_path(out, "bundle", "exit.tar.gz")


def _write(out: Path, run_id: str, sources: dict[str, _Source]) -> None:
    """Through the run files' one writer (an exclusive temp file, 0600, never through a link
    planted at its name, fsynced, renamed over ``out``): readers see no bundle or a whole one."""
    try:
        with atomic_writer(out) as raw, \
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            # mtime 0 and no file name in the gzip header: nothing of the packing itself varies (the manifest
            # still records when the bundle was made, so two bundles of one run differ there and in its signature).
            for name, source in sorted(sources.items()):
                _add(tar, f"{run_id}/{name}", source)
    except OSError as exc:
        raise BadInput(f"cannot write the bundle to {out}: {exc.strerror or exc}; nothing was written") from None


class _HashingReader(io.RawIOBase):
    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self.digest.update(data)
        return data


def _add(tar: tarfile.TarFile, name: str, source: _Source) -> None:
    info = tarfile.TarInfo(name)
    info.size = source.size
    info.mtime = 0  # the content is what is signed; dates are inside it
    info.mode = 0o600  # evidence: readable by whoever unpacks it, not by everyone on their machine
    if source.data is not None:
        tar.addfile(info, io.BytesIO(source.data))
        return
    assert source.path is not None
    with _open_plain(source.path) as fh:
        reader = _HashingReader(fh)
        tar.addfile(info, reader)  # reads exactly info.size bytes
    if reader.digest.hexdigest() != source.sha256:
        raise NotBundled(f"{source.path} changed while it was being bundled; nothing was written, bundle again")


# -- verification -------------------------------------------------------------------------


@dataclass
class BundleCheck:
    problems: list[str] = field(default_factory=list)
    manifest: Manifest | None = None
    key: str = ""
    key_source: str = ""
    authenticated: bool = False  # checked with a public key given by the caller, not the bundle's own
    end: RunEnd | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(path: Path, public_key: Path | None = None, limits: Limits | None = None) -> BundleCheck:
    """Check a bundle whole, offline: its structure, the signature, every member's hash, the
    audit chain and its signed heads, the evidence manifest, the plan's checksum."""
    limits = limits or LIMITS
    given = signing.load_public(public_key) if public_key is not None else None  # a bad key file is bad input
    result = BundleCheck()
    try:
        contents = read_members(path, limits)
    except Refused as exc:
        result.problems.append(f"refused: {exc}")
        return result
    members = contents.members
    if MANIFEST not in members or SIGNATURE not in members:
        raise BadInput(f"{path} has no {MANIFEST} and {SIGNATURE}; it is not an offboard bundle")
    public = _public_key(members, given, public_key, result)
    if public is None:
        return result
    raw_manifest = members[MANIFEST].data or b""
    try:
        public.verify(base64.b64decode((members[SIGNATURE].data or b"").strip(), validate=True), raw_manifest)
    except (InvalidSignature, ValueError):
        result.problems.append(f"{SIGNATURE} does not verify {MANIFEST} with key {result.key} ({result.key_source}): "
                               "the manifest or the signature was changed, or another key signed it")
    try:
        manifest = Manifest.model_validate(loads_strict(raw_manifest))
    except ValidationError as exc:
        result.problems.append(f"{MANIFEST} is not a bundle manifest ({_first_error(exc)})")
        return result
    except ValueError as exc:
        result.problems.append(f"{MANIFEST} is not a bundle manifest ({exc})")
        return result
    result.manifest = manifest
    if contents.folder != manifest.run_id:
        result.problems.append(f"the bundle's folder {contents.folder}/ is not the run {manifest.run_id} its "
                               f"{MANIFEST} names")
    if manifest.key != result.key:
        result.problems.append(f"{MANIFEST} names the signing key {manifest.key}, not {result.key}")
    for name, entry in sorted(manifest.members.items()):
        member = members.get(name)
        if member is None:
            result.problems.append(f"member {name} is listed in {MANIFEST} but missing from the bundle (removed)")
        elif member.sha256 != entry.sha256 or member.size != entry.bytes:
            result.problems.append(f"member {name} does not match its SHA-256 in {MANIFEST} (changed)")
    for name in sorted(set(members) - set(manifest.members) - {MANIFEST, SIGNATURE}):
        result.problems.append(f"member {name} is not listed in {MANIFEST} (added after signing)")
    _check_audit(members, manifest, public, result)
    _check_evidence(members, result)
    _check_plan(members, manifest, result)
    return result


def _public_key(members: dict[str, Member], given: Ed25519PublicKey | None, given_path: Path | None,
                result: BundleCheck) -> Ed25519PublicKey | None:
    inside = members[PUBLIC_KEY].data if PUBLIC_KEY in members else None
    if given is not None:
        result.key, result.key_source = signing.fingerprint(given), f"the given {given_path}"
        result.authenticated = True
        if inside is not None and signing.public_pem(given) != inside:
            result.problems.append(f"the bundle's {PUBLIC_KEY} is not the given public key {given_path}: it was signed "
                                   "by another key, or its key was swapped")
        return given
    if inside is None:
        result.problems.append(f"no {PUBLIC_KEY} in the bundle and no --public-key given")
        return None
    try:
        public = signing.parse_public(inside, f"the bundle's {PUBLIC_KEY}")
    except BadInput as exc:  # the bundle's content, not the caller's input: a verdict
        result.problems.append(str(exc))
        return None
    result.key, result.key_source = signing.fingerprint(public), f"the bundle's own {PUBLIC_KEY}"
    return public


def _check_audit(members: dict[str, Member], manifest: Manifest, public: Ed25519PublicKey,
                 result: BundleCheck) -> None:
    audit = members.get(AUDIT)
    if audit is None or audit.data is None:
        return  # already named as missing
    chain = verify_bytes(audit.data)
    if not chain.ok:
        result.problems.append(f"{AUDIT}: audit chain broken at line {chain.bad_line}: {chain.reason}")
        return
    sigs = members.get(signing.SIGNATURES)
    heads = signing.check_heads(chain, (sigs.data or b"") if sigs else b"", public)
    if not heads.ok:
        result.problems.append(f"{AUDIT}: {heads.reason}")
        return
    if (manifest.audit.lines, manifest.audit.last_hash) != (chain.lines, chain.last_hash):
        result.problems.append(f"{MANIFEST} names another audit chain head than {AUDIT}'s")
    if chain.records[0].get("run_id") != manifest.run_id:
        result.problems.append(f"{AUDIT} is the log of run {chain.records[0].get('run_id')!r}, "
                               f"not of {manifest.run_id}")
    result.end = heads.end


def _check_evidence(members: dict[str, Member], result: BundleCheck) -> None:
    raw = members.get(EVIDENCE_MANIFEST)
    if raw is None or raw.data is None:
        return
    try:
        files = _EvidenceManifest.model_validate(loads_strict(raw.data)).files
    except ValueError:  # JSON, UTF-8 and validation errors alike
        result.problems.append(f"{EVIDENCE_MANIFEST} is not an evidence manifest")
        return
    for rel, entry in sorted(files.items()):
        member = members.get(f"evidence/{rel}")
        if member is None or member.sha256 != entry.sha256:
            result.problems.append(f"evidence/{rel} does not match {EVIDENCE_MANIFEST}")


def _check_plan(members: dict[str, Member], manifest: Manifest, result: BundleCheck) -> None:
    raw = members.get(PLAN)
    if raw is None or raw.data is None:
        return
    try:
        plan = Plan.model_validate_json(raw.data)
    except ValueError:
        result.problems.append(f"{PLAN} is not a plan file")
        return
    if plan.checksum != plan.compute_checksum():
        result.problems.append(f"{PLAN} does not match its own checksum (changed)")
    if plan.customer != manifest.customer:
        result.problems.append(f"{PLAN} is for {plan.customer!r}, not for {manifest.customer!r} as {MANIFEST} says")
