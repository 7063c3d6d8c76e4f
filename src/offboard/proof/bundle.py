"""The evidence bundle: one signed .tar.gz that answers "when was the service stopped, by
whom, on which systems, and how do you know?" — and that anyone can check offline with
only the MSP's public key.

Members: the plan, the audit log and its signed chain heads, the evidence exports and
their manifest, the documents (report, closure note, checklist, the vendors' notification drafts),
views extracted from the log (snapshots before and after, every verification re-read,
every manual confirmation), the public key, and ``BUNDLE.json`` listing every member's
SHA-256, signed as ``BUNDLE.sig``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from offboard.errors import BadInput
from offboard.plan import Plan, now_iso
from offboard.proof import signing
from offboard.proof.audit import read_records
from offboard.rundir import RunDir

FORMAT = "offboard-bundle/1"
MANIFEST = "BUNDLE.json"
SIGNATURE = "BUNDLE.sig"
PUBLIC_KEY = "msp.pub"
RUN_FILES = ("plan.json", "audit.jsonl", signing.SIGNATURES, "report.md", "report.html", "closure-note.md",
             "manual-checklist.md")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def proof_views(plan: Plan, records: list[dict[str, Any]]) -> dict[str, bytes]:
    """What an auditor looks for first, pulled out of the audit log (which stays the source)."""
    keep = ("ts", "seq", "vendor", "step", "action_id", "target", "http", "outcome", "detail")

    def pick(events: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{k: r.get(k) for k in ("event", *keep)} for r in records if r["event"] in events]

    after = {r["vendor"]: {"at": r["ts"], **(r.get("detail") or {}).get("snapshot", {})} for r in records
             if r["event"] == "snapshot.taken"}
    snapshots = {vp.vendor: {"before": {"at": plan.created_at, **vp.snapshot}, "after": after.get(vp.vendor)}
                 for vp in plan.vendors}
    return {
        "proof/snapshots.json": _json(snapshots),
        "proof/verifications.json": _json(pick(("verify.passed", "verify.failed"))),
        "proof/confirmations.json": _json(pick(("manual.confirmed", "manual.rejected"))),
    }


def create(run: RunDir, signer: signing.Signer, out: Path) -> dict[str, Any]:
    """Write the bundle of ``run``, signed with ``signer``; returns its manifest."""
    members: dict[str, bytes] = {}
    for name in RUN_FILES:
        path = run.path / name
        if path.exists():
            members[name] = path.read_bytes()
    if signing.SIGNATURES not in members:
        raise BadInput(f"run {run.run_id} was never signed (no {signing.SIGNATURES}); it was made before the MSP had "
                       "a signing key: re-run `offboard verify --run RUN_ID` to sign its chain head, then bundle")
    for folder in ("evidence", "documents"):
        for path in sorted(p for p in (run.path / folder).rglob("*") if p.is_file()):
            members[path.relative_to(run.path).as_posix()] = path.read_bytes()
    records = list(read_records(run.audit_path))
    members.update(proof_views(Plan.model_validate_json(members["plan.json"]), records))
    members[PUBLIC_KEY] = signing.public_pem(signer.public)
    manifest = {
        "format": FORMAT,
        "run_id": run.run_id,
        "customer": json.loads(members["plan.json"])["customer"],
        "created_at": now_iso(),
        "key": signer.fingerprint,
        "audit": {"lines": len(records), "last_hash": records[-1]["hash"] if records else None},
        "members": {name: {"sha256": _sha(data), "bytes": len(data)} for name, data in sorted(members.items())},
    }
    manifest_bytes = _json(manifest)
    members[MANIFEST] = manifest_bytes
    members[SIGNATURE] = base64.b64encode(signer.private.sign(manifest_bytes)) + b"\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with tarfile.open(tmp, "w:gz") as tar:
        for name in sorted(members):
            info = tarfile.TarInfo(f"{run.run_id}/{name}")
            info.size = len(members[name])
            info.mtime = 0  # the content is what is signed; dates are inside it
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(members[name]))
    tmp.replace(out)
    return manifest


# -- verification -----------------------------------------------------------------------


@dataclass
class BundleCheck:
    problems: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    key: str = ""
    key_source: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def _read(path: Path) -> dict[str, bytes]:
    if not path.exists():
        raise BadInput(f"bundle {path} does not exist")
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for info in tar:
                parts = PurePosixPath(info.name).parts
                if not info.isfile() or info.name.startswith("/") or ".." in parts or len(parts) < 2:
                    raise BadInput(f"{path}: member {info.name!r} is not a plain file inside the run's folder; "
                                   "this is not a bundle offboard made")
                fh = tar.extractfile(info)
                assert fh is not None
                members[PurePosixPath(*parts[1:]).as_posix()] = fh.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BadInput(f"{path} is not a readable .tar.gz bundle, or it is damaged ({exc})") from None
    return members


def verify(path: Path, public_key: Path | None = None) -> BundleCheck:
    """Check a bundle whole, offline: signature, every member's hash, the audit chain and its
    signed heads, the evidence manifest, the plan's checksum."""
    members = _read(path)
    result = BundleCheck()
    if MANIFEST not in members or SIGNATURE not in members:
        raise BadInput(f"{path} has no {MANIFEST} and {SIGNATURE}; it is not an offboard bundle")
    try:
        manifest = json.loads(members[MANIFEST])
        listed: dict[str, dict[str, Any]] = manifest["members"]
    except (ValueError, KeyError, TypeError):
        result.problems.append(f"{MANIFEST} is not a bundle manifest (it was changed)")
        return result
    result.manifest = manifest
    public = _public_key(members, public_key, result)
    if public is None:
        return result
    try:
        public.verify(base64.b64decode(members[SIGNATURE].strip(), validate=True), members[MANIFEST])
    except (InvalidSignature, ValueError):
        result.problems.append(f"{SIGNATURE} does not verify {MANIFEST} with key {result.key} ({result.key_source}): "
                               "the manifest or the signature was changed, or another key signed it")
    for name, entry in sorted(listed.items()):
        data = members.get(name)
        if data is None:
            result.problems.append(f"member {name} is listed in {MANIFEST} but missing from the bundle (removed)")
        elif _sha(data) != entry.get("sha256"):
            result.problems.append(f"member {name} does not match its SHA-256 in {MANIFEST} (changed)")
    for name in sorted(set(members) - set(listed) - {MANIFEST, SIGNATURE}):
        result.problems.append(f"member {name} is not listed in {MANIFEST} (added after signing)")
    _check_audit(members, manifest, public, result)
    _check_evidence(members, result)
    _check_plan(members, result)
    return result


def _public_key(members: dict[str, bytes], given: Path | None, result: BundleCheck) -> Ed25519PublicKey | None:
    inside = members.get(PUBLIC_KEY)
    if given is not None:
        public = signing.load_public(given)
        result.key, result.key_source = signing.fingerprint(public), f"the given {given}"
        if inside is not None and signing.public_pem(public) != inside:
            result.problems.append(f"the bundle's {PUBLIC_KEY} is not the given public key {given}: it was signed "
                                   "by another key, or its key was swapped")
        return public
    if inside is None:
        result.problems.append(f"no {PUBLIC_KEY} in the bundle and no --public-key given")
        return None
    public = signing.parse_public(inside, f"the bundle's {PUBLIC_KEY}")
    result.key, result.key_source = signing.fingerprint(public), f"the bundle's own {PUBLIC_KEY}"
    return public


def _check_audit(members: dict[str, bytes], manifest: dict[str, Any], public: Ed25519PublicKey,
                 result: BundleCheck) -> None:
    if "audit.jsonl" not in members:
        return  # already named as missing
    with tempfile.TemporaryDirectory() as tmp:
        audit = Path(tmp) / "audit.jsonl"
        audit.write_bytes(members["audit.jsonl"])
        (Path(tmp) / signing.SIGNATURES).write_bytes(members.get(signing.SIGNATURES, b""))
        heads = signing.verify_heads(audit, Path(tmp) / signing.SIGNATURES, public)
    if not heads.ok:
        result.problems.append(f"audit.jsonl: {heads.reason}")
    elif heads.last is not None and heads.last["last_hash"] != (manifest.get("audit") or {}).get("last_hash"):
        result.problems.append(f"{MANIFEST} names another audit chain head than audit.jsonl's")


def _check_evidence(members: dict[str, bytes], result: BundleCheck) -> None:
    raw = members.get("evidence/manifest.json")
    if raw is None:
        return
    try:
        files = json.loads(raw)["files"]
    except (ValueError, KeyError, TypeError):
        result.problems.append("evidence/manifest.json is not an evidence manifest")
        return
    for rel, entry in sorted(files.items()):
        data = members.get(f"evidence/{rel}")
        if data is None or _sha(data) != entry.get("sha256"):
            result.problems.append(f"evidence/{rel} does not match evidence/manifest.json")


def _check_plan(members: dict[str, bytes], result: BundleCheck) -> None:
    raw = members.get("plan.json")
    if raw is None:
        return
    try:
        plan = Plan.model_validate_json(raw)
    except ValueError:
        result.problems.append("plan.json is not a plan file")
        return
    if plan.checksum != plan.compute_checksum():
        result.problems.append("plan.json does not match its own checksum (changed)")

