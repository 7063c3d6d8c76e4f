"""The evidence bundle of a real (sandbox) run: it verifies with only the public key, and a
changed byte in any member, a removed or added member, a swapped signature or another key
each fail verification with a line naming what is wrong."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from offboard import engine
from offboard.proof import bundle, signing
from offboard.rundir import RunDir
from tests.conftest import BlumiraHarness, CliResult, load, past_the_notification


@pytest.fixture
def made(blumira: BlumiraHarness, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A signed Blumira run, its bundle, and the MSP's public key."""
    key = signing.generate()
    signing.write_key_file(key, tmp_path / "msp-key.pem")
    (tmp_path / "msp.pub").write_bytes(signing.public_pem(key.public_key()))
    path = blumira.cfg.path
    path.write_text(path.read_text().replace("[run]", '[signing]\nkey_file = "msp-key.pem"\n\n[run]'))
    cfg = load(path)
    with blumira.sessions(cfg) as s:
        result = past_the_notification(cfg, engine.make_plan(cfg, s), s)
    signer = engine.signer_for(cfg)
    assert signer is not None
    out = tmp_path / "acme-exit.tar.gz"
    bundle.create(RunDir.existing(cfg.runs_dir, result.run.run_id), signer, out)
    return out, tmp_path / "msp.pub", result.run.path


def rewrite(src: Path, dst: Path, change: Callable[[dict[str, bytes]], None]) -> Path:
    with tarfile.open(src, "r:gz") as tar:
        prefix = tar.getnames()[0].split("/")[0]
        members = {info.name.split("/", 1)[1]: tar.extractfile(info).read()  # type: ignore[union-attr]
                   for info in tar if info.isfile()}
    change(members)
    with tarfile.open(dst, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"{prefix}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return dst


def test_a_bundle_verifies_with_only_the_public_key(made: tuple[Path, Path, Path], cli: Callable[..., CliResult],
                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, pub, _ = made
    elsewhere = tmp_path / "auditor"
    elsewhere.mkdir()
    (elsewhere / "acme-exit.tar.gz").write_bytes(out.read_bytes())
    (elsewhere / "msp.pub").write_bytes(pub.read_bytes())
    monkeypatch.chdir(elsewhere)  # no config, no run folder, no private key here
    result = cli("bundle", "verify", "acme-exit.tar.gz", "--public-key", "msp.pub")
    assert result.code == 0, result.err
    assert "verified" in result.out and "Acme Dental" in result.out
    names = set(json.loads(_member(out, "BUNDLE.json"))["members"])
    assert {"plan.json", "audit.jsonl", "signatures.jsonl", "report.md", "closure-note.md", "evidence/manifest.json",
            "evidence/blumira/findings.json", "evidence/blumira/notification-to-blumira.eml", "msp.pub",
            "proof/snapshots.json", "proof/verifications.json", "proof/confirmations.json"} <= names
    snapshots = json.loads(_member(out, "proof/snapshots.json"))
    assert snapshots["blumira"]["before"]["agent_devices"] == 8 and snapshots["blumira"]["after"] is not None


def _member(path: Path, name: str) -> bytes:
    with tarfile.open(path, "r:gz") as tar:
        info = next(i for i in tar if i.name.endswith("/" + name))
        data = tar.extractfile(info)
        assert data is not None
        return data.read()


@pytest.mark.parametrize("change, expected", [
    (lambda m: m.__setitem__("evidence/blumira/users.json", m["evidence/blumira/users.json"].replace(b"a", b"b", 1)),
     "member evidence/blumira/users.json does not match its SHA-256 in BUNDLE.json (changed)"),
    (lambda m: m.__setitem__("report.md", m["report.md"] + b" "),
     "member report.md does not match its SHA-256"),
    (lambda m: m.pop("proof/confirmations.json"),
     "member proof/confirmations.json is listed in BUNDLE.json but missing from the bundle (removed)"),
    (lambda m: m.__setitem__("extra.txt", b"slipped in"), "member extra.txt is not listed in BUNDLE.json"),
    (lambda m: m.__setitem__("BUNDLE.json", m["BUNDLE.json"].replace(b'"run_id"', b'"run_id" ', 1)),
     "BUNDLE.sig does not verify BUNDLE.json"),
])
def test_a_tampered_bundle_fails_naming_what_is_wrong(made: tuple[Path, Path, Path], tmp_path: Path,
                                                      change: Callable[[dict[str, bytes]], None],
                                                      expected: str) -> None:
    out, pub, _ = made
    bad = rewrite(out, tmp_path / "bad.tar.gz", change)
    result = bundle.verify(bad, pub)
    assert not result.ok
    assert any(expected in p for p in result.problems), result.problems


def test_a_swapped_signature_or_another_key_fails(made: tuple[Path, Path, Path], tmp_path: Path,
                                                  cli: Callable[..., CliResult]) -> None:
    out, pub, _ = made
    other = signing.generate()
    (tmp_path / "other.pub").write_bytes(signing.public_pem(other.public_key()))
    swapped = rewrite(out, tmp_path / "swapped.tar.gz", lambda m: m.__setitem__(
        "BUNDLE.sig", base64.b64encode(other.sign(m["BUNDLE.json"])) + b"\n"))
    assert any("BUNDLE.sig does not verify" in p for p in bundle.verify(swapped, pub).problems)
    with_other = bundle.verify(out, tmp_path / "other.pub")
    assert any("is not the given public key" in p for p in with_other.problems)
    # re-signed whole by someone else, with their key put inside: the MSP's public key still refuses it
    forged = rewrite(out, tmp_path / "forged.tar.gz", lambda m: (
        m.__setitem__("msp.pub", signing.public_pem(other.public_key())),
        m.__setitem__("BUNDLE.sig", base64.b64encode(other.sign(m["BUNDLE.json"])) + b"\n")))
    result = cli("bundle", "verify", str(forged), "--public-key", str(pub))
    assert result.code == 1 and "NOT verified" in result.err and "msp.pub is not the given public key" in result.err


def test_a_rewritten_audit_log_inside_a_resigned_manifest_is_still_caught(made: tuple[Path, Path, Path],
                                                                          tmp_path: Path) -> None:
    """Even if a forger could re-sign the manifest, the audit log's own signed heads name the rewrite."""
    out, pub, _ = made
    bad = rewrite(out, tmp_path / "bad.tar.gz", lambda m: m.__setitem__(
        "audit.jsonl", b"\n".join(m["audit.jsonl"].split(b"\n")[:-3]) + b"\n"))
    problems = bundle.verify(bad, pub).problems
    assert any(p.startswith("audit.jsonl: ") for p in problems), problems


def test_not_a_bundle_is_one_clear_line(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    (tmp_path / "x.tar.gz").write_bytes(b"not a tarball")
    result = cli("bundle", "verify", str(tmp_path / "x.tar.gz"))
    assert result.code == 2 and "not a readable .tar.gz bundle" in result.err and "Traceback" not in result.err
    assert cli("bundle", "verify").code == 2
