"""The evidence bundle of a real (sandbox) run: it verifies with only the public key, and a
changed byte in any member, a removed or added member, a swapped signature or another key
each fail verification with a line naming what is wrong."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offboard import engine
from offboard.errors import BadInput
from offboard.plan import canonical_json
from offboard.proof import audit, bundle, signing
from offboard.rundir import RunDir
from offboard_blumira.sandbox import BlumiraSandbox
from tests.conftest import FAST, BlumiraHarness, CliResult, load, past_the_notification


def make_a_bundle(blumira: BlumiraHarness, tmp_path: Path) -> tuple[Path, Path, Path]:
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


@pytest.fixture(scope="module")
def made_once(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """One run and bundle per module (a whole Blumira exit is the slow part); each test gets a copy."""
    where = tmp_path_factory.mktemp("made")
    with pytest.MonkeyPatch.context() as m:
        m.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))  # never the user's budget files
        # nor the machine's exit locks: another checkout's tests (or a mutation run's) exit the same sandbox account
        m.setenv("OFFBOARD_LOCK_DIR", str(tmp_path_factory.mktemp("locks")))
        return make_a_bundle(BlumiraHarness(BlumiraSandbox(time_scale=FAST), where), where)


@pytest.fixture
def made(made_once: tuple[Path, Path, Path], tmp_path: Path) -> tuple[Path, Path, Path]:
    """A signed Blumira run, its bundle, and the MSP's public key: a copy of the module's, in this
    test's folder (config, runs, key, bundle), to change at will."""
    source = made_once[0].parent
    shutil.copytree(source, tmp_path, dirs_exist_ok=True, symlinks=True)
    return tuple(tmp_path / p.relative_to(source) for p in made_once)  # type: ignore[return-value]


@pytest.fixture
def made_fresh(blumira: BlumiraHarness, tmp_path: Path) -> tuple[Path, Path, Path]:
    """As ``made``, with the test's own Blumira sandbox still holding the exit's state."""
    return make_a_bundle(blumira, tmp_path)


def rewrite(src: Path, dst: Path, change: Callable[[dict[str, bytes]], None], folder: str | None = None) -> Path:
    """The bundle at ``src`` with its members changed by ``change`` (and its run folder renamed to ``folder``)."""
    with tarfile.open(src, "r:gz") as tar:
        prefix = folder or tar.getnames()[0].split("/")[0]
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
            "evidence/blumira/findings.json", "evidence/blumira/blumira-exit-request.eml", "msp.pub",
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


def test_a_bundle_without_its_public_key_is_checked_with_the_given_one_or_refused_without(
        made: tuple[Path, Path, Path], tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    out, pub, _ = made
    bad = rewrite(out, tmp_path / "bad.tar.gz", lambda m: m.pop("msp.pub"))
    verified_not(cli, bad, pub, "member msp.pub is listed in BUNDLE.json but missing from the bundle (removed)")
    alone = cli("bundle", "verify", str(bad))
    assert alone.code == 1 and "Traceback" not in alone.err, alone.out + alone.err
    assert "no msp.pub in the bundle and no --public-key given" in alone.err


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
    assert result.code == 1 and "NOT verified" in result.err
    assert (f"the bundle's msp.pub is not the given public key {pub}: it was signed by another key, or its key was "
            "swapped") in result.err


def test_a_signature_padded_with_characters_outside_base64_does_not_verify(
        made: tuple[Path, Path, Path], tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    """A lenient decoder would drop the junk and find the genuine signature: the file is not what was signed."""
    out, pub, _ = made
    bad = rewrite(out, tmp_path / "bad.tar.gz", lambda m: m.__setitem__("BUNDLE.sig", b"*" + m["BUNDLE.sig"]))
    key = signing.fingerprint(signing.load_public(pub))
    verified_not(cli, bad, pub, f"BUNDLE.sig does not verify BUNDLE.json with key {key} (the given {pub}): the "
                                "manifest or the signature was changed, or another key signed it")


def test_an_empty_manifest_the_msp_signed_is_not_a_bundle_manifest(
        made: tuple[Path, Path, Path], tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    out, pub, _ = made
    signer = signing.load_signer(tmp_path / "msp-key.pem")
    assert signer is not None
    bad = rewrite(out, tmp_path / "bad.tar.gz", lambda m: (
        m.__setitem__("BUNDLE.json", b""), m.__setitem__("BUNDLE.sig", base64.b64encode(signer.private.sign(b"")))))
    verified_not(cli, bad, pub, "BUNDLE.json is not a bundle manifest (")


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


@pytest.mark.parametrize("gone", ["BUNDLE.json", "BUNDLE.sig"])
def test_an_archive_without_a_signed_manifest_is_not_a_bundle_one_clear_line(
        made: tuple[Path, Path, Path], tmp_path: Path, cli: Callable[..., CliResult], gone: str) -> None:
    out, pub, _ = made
    bad = rewrite(out, tmp_path / "bad.tar.gz", lambda m: m.pop(gone))
    result = cli("bundle", "verify", str(bad), "--public-key", str(pub))
    assert result.code == 2, result.out + result.err
    assert result.err.strip() == f"error: {bad} has no BUNDLE.json and BUNDLE.sig; it is not an offboard bundle"


# -- crafted bundles (issue 14): what an attacker hands an auditor ------------------------------------------


def genuine(path: Path) -> tuple[str, list[tuple[str, bytes]]]:
    """The run folder's name and every member (relative name, bytes) of a bundle, in order."""
    with tarfile.open(path, "r:gz") as tar:
        infos = tar.getmembers()
        prefix = infos[0].name.split("/")[0]
        return prefix, [(i.name.split("/", 1)[1], tar.extractfile(i).read()) for i in infos]  # type: ignore[union-attr]


def entry(name: str, data: bytes = b"", **attrs: object) -> bytes:
    """One raw tar member: header (pax where needed) and padded data, built byte by byte so a test
    can say anything a header can say (sizes it does not carry, links, devices, odd names)."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    for key, value in attrs.items():
        setattr(info, key, value)
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape") + data + b"\0" * (-len(data) % 512)


END = b"\0" * 1024


def craft(dst: Path, *pieces: bytes) -> Path:
    """A .tar.gz of raw tar bytes, each piece its own gzip member (gzip readers join them)."""
    with dst.open("wb") as fh:
        for piece in pieces:
            fh.write(gzip.compress(piece, mtime=0))
    return dst


def with_extra(out: Path, dst: Path, before: list[bytes] = (), after: list[bytes] = ()) -> Path:  # type: ignore[assignment]
    prefix, members = genuine(out)
    return craft(dst, b"".join([*before, *(entry(f"{prefix}/{n}", d) for n, d in members), *after]) + END)


FORGED = b"# Proof of service stop\n\nEverything was removed. (forged)\n"


def test_a_duplicate_member_with_the_forged_copy_first_is_refused(made: tuple[Path, Path, Path], tmp_path: Path,
                                                                  cli: Callable[..., CliResult]) -> None:
    out, pub, _ = made
    prefix, _members = genuine(out)
    bad = with_extra(out, tmp_path / "dup.tar.gz", before=[entry(f"{prefix}/report.md", FORGED)])
    result = cli("bundle", "verify", str(bad), "--public-key", str(pub))
    assert result.code == 1 and "NOT verified" in result.err
    assert f"member '{prefix}/report.md' appears twice" in result.err and "verified —" not in result.out


@pytest.mark.parametrize("alias, why", [
    ("{run}/./report.md", "is not a plain path inside the run's folder"),
    ("{run}//report.md", "is not a plain path inside the run's folder"),
    ("FORGED-RUN/report.md", "is outside the run's folder"),
    ("{run}/evidence/../report.md", "is not a plain path inside the run's folder"),
    ("/{run}/report.md", "is not a plain path inside the run's folder"),
    ("{run}\\report.md", "is not a plain path inside the run's folder"),
    ("{run}/evidence\\..\\report.md", "is not a plain path inside the run's folder"),
])
def test_a_second_spelling_of_a_member_or_a_second_run_folder_is_refused(
        made: tuple[Path, Path, Path], tmp_path: Path, cli: Callable[..., CliResult], alias: str, why: str) -> None:
    """A forged report.md that a tool might show in place of the signed one: before or after it."""
    out, pub, _ = made
    prefix, _members = genuine(out)
    name = alias.format(run=prefix)
    for where in ("before", "after"):
        bad = with_extra(out, tmp_path / f"alias-{where}.tar.gz", **{where: [entry(name, FORGED)]})
        result = cli("bundle", "verify", str(bad), "--public-key", str(pub))
        assert result.code == 1 and "NOT verified" in result.err, (where, result.err)
        assert why in result.err, (where, result.err)


@pytest.mark.parametrize("attrs, kind", [
    ({"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, "is a symbolic link"),
    ({"type": tarfile.LNKTYPE, "linkname": "{run}/report.md"}, "is a hard link"),
    ({"type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}, "is a character device"),
    ({"type": tarfile.DIRTYPE}, "is a directory"),
    ({"type": tarfile.FIFOTYPE}, "is a FIFO"),
    ({"mode": 0o4755}, "carries setuid, setgid or sticky bits"),
])
def test_links_devices_and_special_bits_are_refused(made: tuple[Path, Path, Path], tmp_path: Path,
                                                    cli: Callable[..., CliResult], attrs: dict[str, object],
                                                    kind: str) -> None:
    out, pub, _ = made
    prefix, _members = genuine(out)
    attrs = {k: v.format(run=prefix) if isinstance(v, str) else v for k, v in attrs.items()}
    bad = with_extra(out, tmp_path / "special.tar.gz", after=[entry(f"{prefix}/evidence/extra", b"", **attrs)])
    result = cli("bundle", "verify", str(bad), "--public-key", str(pub))
    assert result.code == 1 and kind in result.err and "NOT verified" in result.err


def test_members_hidden_after_the_end_marker_are_refused(made: tuple[Path, Path, Path], tmp_path: Path,
                                                         cli: Callable[..., CliResult]) -> None:
    """`tar -i` (read past zero blocks) would extract a forged report.md after the end of the archive."""
    out, pub, _ = made
    prefix, members = genuine(out)
    body = b"".join(entry(f"{prefix}/{n}", d) for n, d in members)
    bad = craft(tmp_path / "hidden.tar.gz", body + END + entry(f"{prefix}/report.md", FORGED) + END)
    result = cli("bundle", "verify", str(bad), "--public-key", str(pub))
    assert result.code == 1 and "data follows the archive's end marker" in result.err


# -- sizes: bounded memory, whatever a header says ------------------------------------------------------------


def test_a_member_declaring_a_huge_size_is_refused_from_its_header(made: tuple[Path, Path, Path], tmp_path: Path,
                                                                   cli: Callable[..., CliResult]) -> None:
    out, pub, _ = made
    prefix, members = genuine(out)
    body = b"".join(entry(f"{prefix}/{n}", d) for n, d in members)
    huge = entry(f"{prefix}/evidence/huge.bin", b"", size=100 * 2**30)  # the data never follows
    result = cli("bundle", "verify", str(craft(tmp_path / "huge.tar.gz", body + huge)), "--public-key", str(pub))
    assert result.code == 1
    assert (f"member '{prefix}/evidence/huge.bin' declares {100 * 2**30} bytes, over the limit of 512 MiB for it: "
            "refused without reading it") in result.err


def zeros_bundle(out: Path, dst: Path, name: str, mib: int) -> Path:
    """The genuine members, then ``name`` holding ``mib`` MiB of zeros: a few hundred kB on disk."""
    prefix, members = genuine(out)
    body = b"".join(entry(f"{prefix}/{n}", d) for n, d in members)
    chunk = gzip.compress(b"\0" * 2**20, mtime=0)
    with dst.open("wb") as fh:
        fh.write(gzip.compress(body + entry(f"{prefix}/{name}", b"", size=mib * 2**20), mtime=0))
        for _ in range(mib):
            fh.write(chunk)
        fh.write(gzip.compress(END, mtime=0))
    return dst


def peak_memory(run: Callable[[], CliResult]) -> tuple[CliResult, int]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = run()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_large_member_is_hashed_as_it_streams_never_held_whole(made: tuple[Path, Path, Path], tmp_path: Path,
                                                                 cli: Callable[..., CliResult]) -> None:
    """48 MiB of zeros (under the limits, so it is read): memory stays a small fraction of it."""
    out, pub, _ = made
    bad = zeros_bundle(out, tmp_path / "big.tar.gz", "evidence/big.bin", 48)
    assert bad.stat().st_size < 2**20
    result, peak = peak_memory(lambda: cli("bundle", "verify", str(bad), "--public-key", str(pub)))
    assert result.code == 1 and "member evidence/big.bin is not listed in BUNDLE.json" in result.err
    assert peak < 12 * 2**20, f"peak {peak / 2**20:.1f} MiB while checking a 48 MiB member"


def test_a_compression_bomb_over_the_limits_is_refused_without_unpacking_it(
        made: tuple[Path, Path, Path], tmp_path: Path, cli: Callable[..., CliResult],
        monkeypatch: pytest.MonkeyPatch) -> None:
    out, pub, _ = made
    monkeypatch.setattr(bundle, "LIMITS", dataclasses.replace(bundle.LIMITS, member_bytes=8 * 2**20,
                                                              total_bytes=16 * 2**20))
    bomb = zeros_bundle(out, tmp_path / "bomb.tar.gz", "evidence/bomb.bin", 64)
    result, peak = peak_memory(lambda: cli("bundle", "verify", str(bomb), "--public-key", str(pub)))
    assert result.code == 1 and "declares 67108864 bytes, over the limit of 8 MiB" in result.err
    assert peak < 4 * 2**20
    # members each under the per-member limit that add up to more than the total are refused as well
    prefix, members = genuine(out)
    body = b"".join(entry(f"{prefix}/{n}", d) for n, d in members)
    many = b"".join(entry(f"{prefix}/evidence/part{i}", b"\0" * (6 * 2**20)) for i in range(3))
    result = cli("bundle", "verify", str(craft(tmp_path / "many.tar.gz", body + many + END)), "--public-key", str(pub))
    assert result.code == 1 and "the members add up to more than 16 MiB" in result.err


def test_a_huge_extended_header_is_refused_before_tarfile_reads_it(made: tuple[Path, Path, Path], tmp_path: Path,
                                                                   cli: Callable[..., CliResult]) -> None:
    """tarfile reads a pax header whole: a 32 MiB one (a 32 MiB member name) must never be read."""
    out, pub, _ = made
    prefix, members = genuine(out)
    body = b"".join(entry(f"{prefix}/{n}", d) for n, d in members)
    bad = craft(tmp_path / "pax.tar.gz", body + entry(f"{prefix}/evidence/" + "a" * (32 * 2**20), b"x") + END)
    result, peak = peak_memory(lambda: cli("bundle", "verify", str(bad), "--public-key", str(pub)))
    assert result.code == 1 and "refused without reading it" in result.err
    assert peak < 8 * 2**20


# -- who signed: without the MSP's public key, a bundle proves consistency only ---------------------------


def resign(members: dict[str, bytes], key: Ed25519PrivateKey) -> None:
    """What a forger does: change what they like, then re-sign every head and the manifest with their own key."""
    fp = signing.fingerprint(key.public_key())
    heads = []
    for line in members["signatures.jsonl"].split(b"\n"):
        if line:
            head = {k: json.loads(line)[k] for k in signing.HEAD_FIELDS} | {"key": fp}
            signature = base64.b64encode(key.sign(canonical_json(head).encode())).decode()
            heads.append(json.dumps({**head, "signature": signature}, sort_keys=True) + "\n")
    members["signatures.jsonl"] = "".join(heads).encode()
    members["msp.pub"] = signing.public_pem(key.public_key())
    manifest = json.loads(members["BUNDLE.json"]) | {"key": fp}
    manifest["members"] = {n: {"sha256": hashlib.sha256(members[n]).hexdigest(), "bytes": len(members[n])}
                           for n in manifest["members"]}
    members["BUNDLE.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    members["BUNDLE.sig"] = base64.b64encode(key.sign(members["BUNDLE.json"])) + b"\n"


def test_without_the_public_key_a_bundle_is_consistent_only_and_shows_the_fingerprint_to_compare(
        made: tuple[Path, Path, Path], tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    out, pub, _ = made
    msp = signing.fingerprint(signing.load_public(pub))
    genuine_check = cli("bundle", "verify", str(out))
    assert genuine_check.code == 3, genuine_check.out + genuine_check.err
    assert "internally consistent only, NOT authenticated" in genuine_check.out and msp in genuine_check.out
    assert "--public-key msp.pub" in genuine_check.out and "verified —" not in genuine_check.out
    forger = signing.generate()
    forged = rewrite(out, tmp_path / "forged.tar.gz", lambda m: (m.__setitem__("report.md", FORGED), resign(m, forger)))
    result = cli("bundle", "verify", str(forged))
    assert result.code == 3 and "NOT authenticated" in result.out
    assert signing.fingerprint(forger.public_key()) in result.out and msp not in result.out
    with_key = cli("bundle", "verify", str(forged), "--public-key", str(pub))
    assert with_key.code == 1 and "msp.pub is not the given public key" in with_key.err


# -- what the MSP's own signature cannot vouch for: each cross-check, on its own ----------------------------
# A manifest signed by the MSP's key (a bug in a bundler, a format from elsewhere, an insider) still
# lists the hashes of what was packed; these checks are what catch a packed record that does not hold
# together. Each case breaks exactly one of them, so each check is what fails it.


def msp_resigned(tmp_path: Path, edit_manifest: Callable[[dict[str, Any]], None] = lambda _: None
                 ) -> Callable[[dict[str, bytes]], None]:
    """Members edited by the caller first; then the manifest lists their true hashes, is edited by
    ``edit_manifest`` and is signed again with the MSP's own key."""
    signer = signing.load_signer(tmp_path / "msp-key.pem")
    assert signer is not None

    def seal(m: dict[str, bytes]) -> None:
        manifest = json.loads(m["BUNDLE.json"])
        manifest["members"] = {n: {"sha256": hashlib.sha256(m[n]).hexdigest(), "bytes": len(m[n])}
                               for n in manifest["members"]}
        edit_manifest(manifest)
        m["BUNDLE.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        m["BUNDLE.sig"] = base64.b64encode(signer.private.sign(m["BUNDLE.json"])) + b"\n"

    return seal


def verified_not(cli: Callable[..., CliResult], bad: Path, pub: Path, expected: str) -> None:
    result = cli("bundle", "verify", str(bad), "--public-key", str(pub))
    assert result.code == 1, result.out + result.err
    assert "NOT verified (1 problem(s))" in result.err, result.err  # this check, and nothing else, fails it
    assert expected in result.err, result.err


def test_an_evidence_file_that_differs_from_the_evidence_manifest_fails_verify(
        made: tuple[Path, Path, Path], tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    out, pub, _ = made
    seal = msp_resigned(tmp_path)
    name = "evidence/blumira/users.json"
    bad = rewrite(out, tmp_path / "bad.tar.gz", lambda m: (m.__setitem__(name, m[name].replace(b"a", b"b", 1)),
                                                         seal(m)))
    verified_not(cli, bad, pub, f"{name} does not match evidence/manifest.json")


def test_a_plan_that_does_not_match_its_own_checksum_fails_verify(
        made: tuple[Path, Path, Path], tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    out, pub, _ = made
    seal = msp_resigned(tmp_path)
    bad = rewrite(out, tmp_path / "bad.tar.gz", lambda m: (
        m.__setitem__("plan.json", m["plan.json"].replace(b'"J. Doe"', b'"Someone Else"', 1)), seal(m)))
    verified_not(cli, bad, pub, "plan.json does not match its own checksum (changed)")


def test_a_plan_for_another_customer_than_the_manifest_names_fails_verify(
        made: tuple[Path, Path, Path], tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    out, pub, _ = made
    bad = rewrite(out, tmp_path / "bad.tar.gz", msp_resigned(tmp_path, _set(("customer",), "Globex")))
    verified_not(cli, bad, pub, "plan.json is for 'Acme Dental', not for 'Globex' as BUNDLE.json says")


@pytest.mark.parametrize("field", ["lines", "last_hash"])
def test_a_manifest_naming_another_audit_head_than_the_logs_fails_verify(
        made: tuple[Path, Path, Path], tmp_path: Path, cli: Callable[..., CliResult], field: str) -> None:
    out, pub, _ = made

    def other_head(manifest: dict[str, Any]) -> None:
        head = manifest["audit"]
        head[field] = head["lines"] - 1 if field == "lines" else "0" * 64

    bad = rewrite(out, tmp_path / "bad.tar.gz", msp_resigned(tmp_path, other_head))
    verified_not(cli, bad, pub, "BUNDLE.json names another audit chain head than audit.jsonl's")


def another_run_id(run_id: str) -> str:
    return run_id[:-1] + ("0" if run_id[-1] != "0" else "1")


def test_a_log_of_another_run_than_the_manifest_names_fails_verify(
        made: tuple[Path, Path, Path], tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    out, pub, run = made
    other = another_run_id(run.name)  # the folder follows the manifest: only the log's run_id differs
    bad = rewrite(out, tmp_path / "bad.tar.gz", msp_resigned(tmp_path, _set(("run_id",), other)), folder=other)
    verified_not(cli, bad, pub, f"audit.jsonl is the log of run '{run.name}', not of {other}")


def test_a_log_whose_first_line_names_another_run_fails_verify_naming_that_run(
        made: tuple[Path, Path, Path], tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    """The log is the run's from its first line: a log spliced from another run's first line and this
    run's others (re-chained, its heads re-signed by the MSP's own key) is not this run's."""
    out, pub, run = made
    other = another_run_id(run.name)
    signer = signing.load_signer(tmp_path / "msp-key.pem")
    assert signer is not None

    def splice(m: dict[str, bytes]) -> None:
        prev, hashes, lines = "0" * 64, [], []
        for n, raw in enumerate(m["audit.jsonl"].splitlines()):
            record = json.loads(raw) | {"prev_hash": prev} | ({"run_id": other} if n == 0 else {})
            line = audit.seal(record)
            prev = json.loads(line)["hash"]
            hashes.append(prev)
            lines.append(line + "\n")
        m["audit.jsonl"] = "".join(lines).encode()
        heads = []
        for raw in m["signatures.jsonl"].splitlines():
            head = {k: json.loads(raw)[k] for k in signing.HEAD_FIELDS}
            head |= {"run_id": other, "last_hash": hashes[head["audit_lines"] - 1]}
            signature = base64.b64encode(signer.private.sign(canonical_json(head).encode())).decode()
            heads.append(json.dumps({**head, "signature": signature}, sort_keys=True) + "\n")
        m["signatures.jsonl"] = "".join(heads).encode()
        msp_resigned(tmp_path, _set(("audit", "last_hash"), hashes[-1]))(m)

    bad = rewrite(out, tmp_path / "bad.tar.gz", splice)
    verified_not(cli, bad, pub, f"audit.jsonl is the log of run '{other}', not of {run.name}")


def test_a_bundle_whose_chain_heads_are_empty_fails_verify_as_never_signed(
        made: tuple[Path, Path, Path], tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    out, pub, _ = made
    seal = msp_resigned(tmp_path)
    bad = rewrite(out, tmp_path / "bad.tar.gz", lambda m: (m.__setitem__("signatures.jsonl", b""), seal(m)))
    verified_not(cli, bad, pub, "audit.jsonl: signatures.jsonl is empty: the run was never signed")


def test_a_run_folder_named_for_another_run_fails_verify(
        made: tuple[Path, Path, Path], tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    out, pub, run = made
    other = another_run_id(run.name)
    bad = rewrite(out, tmp_path / "bad.tar.gz", lambda m: None, folder=other)
    verified_not(cli, bad, pub, f"the bundle's folder {other}/ is not the run {run.name} its BUNDLE.json names")


def test_a_manifest_naming_another_signing_key_fails_verify(
        made: tuple[Path, Path, Path], tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    out, pub, _ = made
    other = signing.fingerprint(signing.generate().public_key())
    bad = rewrite(out, tmp_path / "bad.tar.gz", msp_resigned(tmp_path, _set(("key",), other)))
    verified_not(cli, bad, pub, f"BUNDLE.json names the signing key {other}, not "
                                f"{signing.fingerprint(signing.load_public(pub))}")


# -- malformed manifests: a verdict, never a traceback ------------------------------------------------------


def _set(path: tuple[str, ...], value: object) -> Callable[[dict[str, Any]], None]:
    def change(manifest: dict[str, Any]) -> None:
        target = manifest
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda manifest: manifest.pop(key)


@pytest.mark.parametrize("change, where", [
    (_set(("members",), ["plan.json"]), "members"),
    (_set(("members", "report.md"), "e3b0c442"), "members.report.md"),
    (_set(("members", "report.md", "bytes"), "12"), "members.report.md.bytes"),
    (_set(("audit",), [1, 2]), "audit"),
    (_drop("audit"), "audit"),
    (_drop("customer"), "customer"),
    (_set(("run_id",), 42), "run_id"),
    (_set(("format",), "offboard-bundle/99"), "format"),
    (_set(("extra",), True), "extra"),
])
def test_every_malformed_manifest_field_is_a_verdict(made: tuple[Path, Path, Path], tmp_path: Path,
                                                     cli: Callable[..., CliResult],
                                                     change: Callable[[dict[str, Any]], None], where: str) -> None:
    """Even signed by the MSP's own key (a bug, a format from elsewhere): exit 1 naming the field."""
    out, pub, _ = made
    key = signing.load_signer(tmp_path / "msp-key.pem")
    assert key is not None

    def edit(m: dict[str, bytes]) -> None:
        manifest = json.loads(m["BUNDLE.json"])
        change(manifest)
        m["BUNDLE.json"] = json.dumps(manifest).encode()
        m["BUNDLE.sig"] = base64.b64encode(key.private.sign(m["BUNDLE.json"])) + b"\n"

    result = cli("bundle", "verify", str(rewrite(out, tmp_path / "bad.tar.gz", edit)), "--public-key", str(pub))
    assert result.code == 1 and "internal error" not in result.err, result.err
    assert f"BUNDLE.json is not a bundle manifest ({where}" in result.err and "NOT verified" in result.err


def test_a_bundle_without_its_audit_log_is_refused_however_it_is_signed(made: tuple[Path, Path, Path],
                                                                        tmp_path: Path,
                                                                        cli: Callable[..., CliResult]) -> None:
    out, _, _ = made

    def drop_the_log(m: dict[str, bytes]) -> None:
        for name in ("audit.jsonl", "signatures.jsonl"):
            m.pop(name)
        manifest = json.loads(m["BUNDLE.json"])
        for name in ("audit.jsonl", "signatures.jsonl"):
            manifest["members"].pop(name)
        m["BUNDLE.json"] = json.dumps(manifest).encode()
        m["signatures.jsonl"] = b""  # resign() re-signs what is there: nothing
        resign(m, signing.generate())
        m.pop("signatures.jsonl")

    result = cli("bundle", "verify", str(rewrite(out, tmp_path / "nolog.tar.gz", drop_the_log)))
    assert result.code == 1, result.out
    assert ("BUNDLE.json is not a bundle manifest (members: Value error, lists no audit.jsonl, signatures.jsonl)"
            in result.err)


@pytest.mark.parametrize("raw", [b'{"members": {}, "members": {}}', b"\xff\xfe not UTF-8", b"[]", b"null"])
def test_a_manifest_that_is_not_one_json_object_is_a_verdict(made: tuple[Path, Path, Path], tmp_path: Path,
                                                             cli: Callable[..., CliResult], raw: bytes) -> None:
    out, pub, _ = made
    bad = rewrite(out, tmp_path / "bad.tar.gz", lambda m: m.__setitem__("BUNDLE.json", raw))
    result = cli("bundle", "verify", str(bad), "--public-key", str(pub))
    assert result.code == 1 and "BUNDLE.json is not a bundle manifest" in result.err
    assert "internal error" not in result.err


def test_a_malformed_evidence_manifest_or_key_inside_is_a_verdict(made: tuple[Path, Path, Path], tmp_path: Path,
                                                                  cli: Callable[..., CliResult]) -> None:
    out, _pub, _ = made
    forger = signing.generate()
    bad = rewrite(out, tmp_path / "bad.tar.gz", lambda m: (
        m.__setitem__("evidence/manifest.json", b'{"files": ["users.json"]}'), resign(m, forger)))
    result = cli("bundle", "verify", str(bad))
    assert result.code == 1 and "evidence/manifest.json is not an evidence manifest" in result.err
    no_key = rewrite(out, tmp_path / "nokey.tar.gz", lambda m: m.__setitem__("msp.pub", b"not a key"))
    result = cli("bundle", "verify", str(no_key))
    assert result.code == 1 and "the bundle's msp.pub is not a PEM public key" in result.err


# -- making a bundle: only of a run that verifies, only through a file of its own ---------------------------


def bundle_cli(cli: Callable[..., CliResult], run: Path, out: Path) -> CliResult:
    return cli("bundle", "--run", run.name, "-o", str(out), "-c", str(run.parent.parent / "config.toml"))


def test_bundle_never_writes_through_a_link_planted_at_its_temp_name(made: tuple[Path, Path, Path], tmp_path: Path,
                                                                     cli: Callable[..., CliResult]) -> None:
    _, pub, run = made
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"the MSP's other file\n")
    out = tmp_path / "planted.tar.gz"
    (tmp_path / "planted.tar.gz.part").symlink_to(victim)
    result = bundle_cli(cli, run, out)
    assert result.code == 0, result.err
    assert victim.read_bytes() == b"the MSP's other file\n"
    planted = tmp_path / "planted.tar.gz.part"
    assert planted.is_symlink() and os.readlink(planted) == str(victim)
    assert not out.is_symlink() and stat.S_IMODE(out.stat().st_mode) == 0o600
    assert cli("bundle", "verify", str(out), "--public-key", str(pub)).code == 0


@pytest.mark.parametrize("where, message", [
    ("a-directory", "is a directory; name the bundle file to write"),
    ("a-file/out.tar.gz", "is not an existing directory"),
    ("missing/out.tar.gz", "is not an existing directory"),
])
def test_a_bad_output_path_is_one_line_exit_2_and_leaves_nothing(made: tuple[Path, Path, Path], tmp_path: Path,
                                                                 cli: Callable[..., CliResult], where: str,
                                                                 message: str) -> None:
    _, _, run = made
    (tmp_path / "a-directory").mkdir()
    (tmp_path / "a-file").write_text("x")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = bundle_cli(cli, run, tmp_path / where)
    assert result.code == 2 and message in result.err and len(result.err.strip().splitlines()) == 1, result.err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def _first_head_lines(run: Path) -> int:
    return int(json.loads((run / "signatures.jsonl").read_bytes().split(b"\n")[0])["audit_lines"])


@pytest.mark.parametrize("attack, message", [
    (lambda run: (run / "audit.jsonl").write_bytes(
        (run / "audit.jsonl").read_bytes().replace(b"ACME-PC0", b"ACME-PX0", 1)), "its audit log is broken at line"),
    (lambda run: (run / "signatures.jsonl").write_bytes(b"".join(
        line + b"\n" for line in (run / "signatures.jsonl").read_bytes().split(b"\n")[:-2])),
     "its signatures do not verify with this MSP key"),
    (lambda run: (run / "signatures.jsonl").write_bytes(b""), "its signatures do not verify with this MSP key"),
    (lambda run: (  # cut back to the first signed head, signatures and all
        (run / "audit.jsonl").write_bytes(b"".join(
            line + b"\n" for line in (run / "audit.jsonl").read_bytes().split(b"\n")[:_first_head_lines(run)])),
        (run / "signatures.jsonl").write_bytes((run / "signatures.jsonl").read_bytes().split(b"\n")[0] + b"\n")),
     "and the audit log does not have that line: it was cut back or rewritten"),
])
def test_bundle_refuses_a_run_whose_chain_or_signatures_do_not_verify(
        made_fresh: tuple[Path, Path, Path], blumira: BlumiraHarness, tmp_path: Path, cli: Callable[..., CliResult],
        attack: Callable[[Path], object], message: str) -> None:
    _, _, run = made_fresh
    cfg = load(tmp_path / "config.toml")
    heads = len((run / "signatures.jsonl").read_bytes().split(b"\n"))
    with blumira.sessions(cfg) as s:  # one more signed head, so a cut-back has earlier ones to stop at
        engine.confirm(run.name, "blumira.sensors.remove", "J. Doe", "sensors removed 2026-11-23", cfg, s)
    assert len((run / "signatures.jsonl").read_bytes().split(b"\n")) == heads + 1
    attack(run)
    before = sorted(tmp_path.iterdir())
    result = bundle_cli(cli, run, tmp_path / "exit.tar.gz")
    assert result.code == 1 and f"refusing to bundle run {run.name}" in result.err and message in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1
    assert sorted(tmp_path.iterdir()) == before  # no bundle, no temp file


def test_bundle_refuses_to_pull_a_linked_file_into_the_evidence(made: tuple[Path, Path, Path], tmp_path: Path,
                                                                cli: Callable[..., CliResult]) -> None:
    _, _, run = made
    secret = tmp_path / "elsewhere.txt"
    secret.write_text("not part of the exit")
    (run / "evidence" / "blumira" / "extra.json").symlink_to(secret)
    result = bundle_cli(cli, run, tmp_path / "exit.tar.gz")
    assert result.code == 1 and "extra.json" in result.err and not (tmp_path / "exit.tar.gz").exists()


# -- whatever the bytes: a verdict or one line of bad input, never a traceback -----------------------------

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["format", "run_id", "customer", "created_at", "key", "audit", "members", "lines",
                         "last_hash", "sha256", "bytes", "report.md", "files", "x"]), inner, max_size=6),
    max_leaves=25)


def verdict_or_bad_input(path: Path, pub: Path | None) -> bundle.BundleCheck | None:
    try:
        result = bundle.verify(path, pub)
    except BadInput as exc:
        assert "\n" not in str(exc) and str(exc)
        return None
    assert result.problems or result.manifest is not None
    return result


def data_ranges(tar_bytes: bytes) -> list[range]:
    """Where each member's content lies in an uncompressed archive."""
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        return [range(i.offset_data, i.offset_data + i.size) for i in tar if i.isfile()]


@FUZZ
@given(manifest=json_values, key_inside=st.booleans())
def test_any_signed_manifest_is_a_verdict(made: tuple[Path, Path, Path], tmp_path: Path, manifest: object,
                                          key_inside: bool) -> None:
    out, pub, _ = made
    key = signing.load_signer(tmp_path / "msp-key.pem")
    assert key is not None

    def edit(m: dict[str, bytes]) -> None:
        m["BUNDLE.json"] = json.dumps(manifest).encode()
        m["BUNDLE.sig"] = base64.b64encode(key.private.sign(m["BUNDLE.json"])) + b"\n"

    verdict_or_bad_input(rewrite(out, tmp_path / "fuzz.tar.gz", edit), None if key_inside else pub)


@FUZZ
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=4))
def test_any_damaged_archive_is_a_verdict_or_bad_input(made: tuple[Path, Path, Path], tmp_path: Path,
                                                       flips: list[tuple[float, int]]) -> None:
    out, pub, _ = made
    original = gzip.decompress(out.read_bytes())
    raw = bytearray(original)
    for where, value in flips:
        raw[int(where * len(raw))] = value
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(gzip.compress(bytes(raw), mtime=0))
    result = verdict_or_bad_input(damaged, pub)
    changed = [i for i, (a, b) in enumerate(zip(original, raw, strict=True)) if a != b]
    in_content = [i for i in changed if any(i in r for r in data_ranges(original))]
    if in_content:  # a changed byte of any member's content: never verified
        assert result is None or not result.ok, (in_content, result)


@pytest.mark.parametrize("name", ["audit.jsonl", "signatures.jsonl", "plan.json", "evidence/manifest.json"])
def test_a_member_of_the_record_removed_after_signing_is_a_verdict_naming_it(
        made: tuple[Path, Path, Path], tmp_path: Path, name: str) -> None:
    out, pub, _ = made
    result = bundle.verify(rewrite(out, tmp_path / "bad.tar.gz", lambda m: m.pop(name)), pub)
    assert f"member {name} is listed in BUNDLE.json but missing from the bundle (removed)" in result.problems
    if name == "signatures.jsonl":  # the log's heads are then unsigned, and said so
        assert "audit.jsonl: signatures.jsonl is empty: the run was never signed" in result.problems


def test_a_broken_audit_chain_inside_a_signed_manifest_is_named_by_its_line(
        made: tuple[Path, Path, Path], tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    out, pub, _ = made
    seal = msp_resigned(tmp_path)

    def break_line_3(m: dict[str, bytes]) -> None:
        lines = m["audit.jsonl"].split(b"\n")
        lines[2] = lines[2].replace(b'"seq":3', b'"seq":30', 1)
        m["audit.jsonl"] = b"\n".join(lines)
        seal(m)

    verified_not(cli, rewrite(out, tmp_path / "bad.tar.gz", break_line_3), pub,
                 "audit.jsonl: audit chain broken at line 3: seq is 30, expected 3")


def test_a_plan_member_that_is_no_plan_is_named(made: tuple[Path, Path, Path], tmp_path: Path,
                                                 cli: Callable[..., CliResult]) -> None:
    out, pub, _ = made
    seal = msp_resigned(tmp_path)
    bad = rewrite(out, tmp_path / "bad.tar.gz", lambda m: (m.__setitem__("plan.json", b'{"plan_id": 1}'), seal(m)))
    verified_not(cli, bad, pub, "plan.json is not a plan file")


def test_a_verified_bundle_says_where_the_run_stands_at_its_last_signed_head(made: tuple[Path, Path, Path]) -> None:
    out, pub, _ = made
    result = bundle.verify(out, pub)
    assert result.ok and result.end is not None


# -- what a bundle holds at most (the mutation run of proof/bundle.py found no test for these) -------------

def _create(run: Path, tmp_path: Path, limits: bundle.Limits) -> bundle.Manifest:
    signer = signing.load_signer(tmp_path / "msp-key.pem")
    assert signer is not None
    return bundle.create(RunDir.existing(run.parent, run.name), signer, tmp_path / "again.tar.gz", limits)


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def test_each_file_the_bundle_reads_whole_may_reach_its_cap_and_not_one_byte_past_it(
        made: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, _, run = made
    size = (run / "audit.jsonl").stat().st_size
    caps = dict(bundle.LIMITS.parsed_bytes)
    at_cap = dataclasses.replace(bundle.LIMITS, parsed_bytes=tuple({**caps, bundle.AUDIT: size}.items()))
    assert _create(run, tmp_path, at_cap).audit.lines > 0
    over = dataclasses.replace(bundle.LIMITS, parsed_bytes=tuple({**caps, bundle.AUDIT: size - 1}.items()))
    with pytest.raises(bundle.NotBundled) as refused:
        _create(run, tmp_path, over)
    assert str(refused.value) == f"{run / 'audit.jsonl'} is over {size - 1} bytes, the bundle's limit for it"


def test_each_file_the_bundle_hashes_may_reach_the_member_cap_and_not_one_byte_past_it(
        made: tuple[Path, Path, Path], tmp_path: Path) -> None:
    out, _, run = made
    parsed = dict(bundle.LIMITS.parsed_bytes)
    hashed = {name: len(data) for name, data in _members(out).items() if name not in parsed
              and not name.startswith("proof/")}
    largest = max(hashed, key=lambda name: hashed[name])
    at_cap = dataclasses.replace(bundle.LIMITS, member_bytes=hashed[largest])
    assert _create(run, tmp_path, at_cap).members[largest].bytes == hashed[largest]
    with pytest.raises(bundle.NotBundled) as refused:
        _create(run, tmp_path, dataclasses.replace(at_cap, member_bytes=hashed[largest] - 1))
    assert str(refused.value) == (f"{run / largest} is over {hashed[largest] - 1} bytes, the bundle's limit per "
                                  "member")


def test_a_run_may_fill_the_bundles_limits_exactly_and_not_one_member_or_byte_past_them(
        made: tuple[Path, Path, Path], tmp_path: Path) -> None:
    out, _, run = made
    members = _members(out)
    sources = {name: len(data) for name, data in members.items() if name not in (bundle.MANIFEST, bundle.SIGNATURE)}
    total, count = sum(sources.values()), len(members)  # the manifest and its signature count as members
    exactly = dataclasses.replace(bundle.LIMITS, total_bytes=total, members=count)
    assert len(_create(run, tmp_path, exactly).members) == len(sources)
    for limits in (dataclasses.replace(exactly, members=count - 1),
                   dataclasses.replace(exactly, total_bytes=total - 1)):
        with pytest.raises(bundle.NotBundled) as refused:
            _create(run, tmp_path, limits)
        assert str(refused.value) == (
            f"run {run.name} has {len(sources)} files, {bundle.human(total)} in all: over the bundle's limits "
            f"({limits.members} members, {bundle.human(limits.total_bytes)})")


def test_a_state_file_naming_another_last_line_than_the_logs_is_refused_naming_it(
        made: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, _, run = made
    state = json.loads((run / "state.json").read_bytes())
    forged = "f" * 64
    (run / "state.json").write_text(json.dumps({**state, "audit_last_hash": forged}))
    with pytest.raises(bundle.NotBundled) as refused:
        _create(run, tmp_path, bundle.LIMITS)
    assert str(refused.value) == (
        f"refusing to bundle run {run.name}: state.json records {state['audit_lines']} audit lines ending in "
        f"{forged[:12]}…, and the audit log does not have that line: it was cut back or rewritten (or lost in a "
        "crash before it reached the disk: resume the run first)")


@pytest.mark.parametrize("state", [b"[]", b"{}", b"not json",
                                   b'{"audit_lines": 0, "audit_last_hash": "ffffffffffffffffffffffffffffff"}'])
def test_a_state_file_that_says_nothing_of_the_log_leaves_the_check_to_the_signatures(
        made: tuple[Path, Path, Path], tmp_path: Path, state: bytes) -> None:
    _, _, run = made
    (run / "state.json").write_bytes(state)
    assert _create(run, tmp_path, bundle.LIMITS).run_id == run.name


def test_a_bundle_packs_its_members_owner_only_undated_in_a_gzip_without_a_name_or_date(
        made: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, _, run = made
    _create(run, tmp_path, bundle.LIMITS)
    out = tmp_path / "again.tar.gz"
    raw = out.read_bytes()
    assert raw[3] & 0x08 == 0 and raw[4:8] == bytes(4)  # no FNAME field, MTIME 0 (RFC 1952): packing adds no date
    with tarfile.open(out) as tar:
        assert tar.getmembers() and {(m.mode, m.mtime) for m in tar.getmembers()} == {(0o600, 0)}


def test_a_large_member_over_the_cap_is_refused_however_many_reads_it_takes(
        made: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, _, run = made
    big = run / "documents" / "big.bin"
    big.parent.mkdir(exist_ok=True)
    big.write_bytes(b"x" * (3 * 64 * 1024))  # three reads of the hashing loop
    with pytest.raises(bundle.NotBundled, match=r"big\.bin is over"):
        _create(run, tmp_path, dataclasses.replace(bundle.LIMITS, member_bytes=2 * 64 * 1024 + 1))


def test_the_documents_folder_is_bundled_and_a_run_file_never_written_is_left_out(
        made: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, _, run = made
    (run / "documents").mkdir(exist_ok=True)
    (run / "documents" / "notice.eml").write_bytes(b"Subject: cancel\n")
    (run / "closure-note.md").unlink(missing_ok=True)
    manifest = _create(run, tmp_path, bundle.LIMITS)
    assert "documents/notice.eml" in manifest.members and "closure-note.md" not in manifest.members


def test_a_run_file_that_is_not_a_plain_file_or_a_linked_folder_is_refused_naming_it(
        made: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, _, run = made
    (run / "report.md").unlink()
    (run / "report.md").mkdir()
    with pytest.raises(bundle.NotBundled) as refused:
        _create(run, tmp_path, bundle.LIMITS)
    assert str(refused.value) == (f"{run / 'report.md'} is not a plain file; offboard writes only plain files in a "
                                  "run folder")
    (run / "report.md").rmdir()
    (tmp_path / "elsewhere").mkdir()
    (run / "evidence" / "linked").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(bundle.NotBundled) as refused:
        _create(run, tmp_path, bundle.LIMITS)
    assert str(refused.value) == (f"{run / 'evidence' / 'linked'} is a symbolic link; offboard never writes one in a "
                                  "run folder")


def test_a_run_never_signed_or_whose_plan_is_no_plan_is_refused_in_one_line(
        made: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, _, run = made
    (run / "plan.json").write_text("{}")
    with pytest.raises(bundle.NotBundled) as refused:
        _create(run, tmp_path, bundle.LIMITS)
    assert str(refused.value) == f"refusing to bundle run {run.name}: its plan.json is not a plan file"
    (run / "signatures.jsonl").unlink()
    with pytest.raises(BadInput) as never:
        _create(run, tmp_path, bundle.LIMITS)
    assert str(never.value) == (
        f"run {run.name} was never signed (no signatures.jsonl); it was made before the MSP had a signing key: "
        f"`offboard verify --run {run.name}` signs its chain head (with the key of `offboard keys init`), then "
        "bundle it")


def test_a_state_file_naming_another_first_line_is_refused_too(made: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, _, run = made
    (run / "state.json").write_text(json.dumps({"audit_lines": 1, "audit_last_hash": "f" * 64}))
    with pytest.raises(bundle.NotBundled, match=r"state\.json records 1 audit lines ending in ffffffffffff…"):
        _create(run, tmp_path, bundle.LIMITS)


def test_a_broken_chain_is_refused_telling_to_keep_the_run_folder(made: tuple[Path, Path, Path],
                                                                 tmp_path: Path) -> None:
    _, _, run = made
    log = run / "audit.jsonl"
    log.write_bytes(log.read_bytes().replace(b'"seq":1,', b'"seq":9,', 1))
    with pytest.raises(bundle.NotBundled) as refused:
        _create(run, tmp_path, bundle.LIMITS)
    assert str(refused.value).startswith(f"refusing to bundle run {run.name}: its audit log is broken at line 1 (")
    assert str(refused.value).endswith("); keep the run folder as evidence of what happened to it")


def test_the_evidence_manifest_is_held_to_its_own_cap_not_the_members(made: tuple[Path, Path, Path],
                                                                      tmp_path: Path) -> None:
    _, _, run = made
    size = (run / bundle.EVIDENCE_MANIFEST).stat().st_size
    caps = {**dict(bundle.LIMITS.parsed_bytes), bundle.EVIDENCE_MANIFEST: size - 1}
    with pytest.raises(bundle.NotBundled, match=r"manifest\.json is over"):
        _create(run, tmp_path, dataclasses.replace(bundle.LIMITS, parsed_bytes=tuple(caps.items())))
