"""Reading an untrusted .tar.gz: every member's SHA-256, and the bytes of the few a caller
parses, with every rule checked from each tar header before its member is read.

Rules: exactly one top folder; every member a plain file under a name with one spelling (no
duplicates, ``.``/``..``, empty parts, absolute paths, backslashes or control characters; no
links, devices, directories, setuid bits or extended attributes other than a long name);
nothing after the archive's end marker. Sizes are bounded per member and in total, and so is
any single read: tarfile reads an extended header whole, so the stream under it refuses a
large one before it is read. A crafted header (a huge declared size) or a compression bomb is
refused without being unpacked; members are hashed as they stream, so memory stays small.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from offboard.errors import BadInput

MiB = 2**20
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Limits:
    member_bytes: int = 512 * MiB  # one member, hashed as it streams (never held whole)
    total_bytes: int = 2048 * MiB  # all members together (also bounds the decompression work)
    members: int = 10_000
    parsed_bytes: tuple[tuple[str, int], ...] = ()  # members kept in memory for the caller, each with its cap
    header_bytes: int = 64 * 1024  # one tar extended header (a long member name); tarfile reads it whole
    trailer_bytes: int = 1 * MiB  # zero padding after the archive's end marker


def human(n: int) -> str:
    return f"{n / MiB:.0f} MiB" if n >= MiB else f"{n} bytes"


class Refused(Exception):
    """The archive breaks a rule; reading stops at once. The message names the member."""


@dataclass(frozen=True)
class Member:
    sha256: str
    size: int
    data: bytes | None  # only for the members kept (``Limits.parsed_bytes``)


@dataclass
class Contents:
    folder: str = ""
    members: dict[str, Member] = field(default_factory=dict)


class _Bounded:
    """The decompressed archive, read forward only, never more than ``header_bytes`` (or a
    chunk) at once and never more than ``limit`` in all: tarfile reads an extended header whole,
    so this is what keeps a crafted header from being read into memory."""

    def __init__(self, raw: gzip.GzipFile, limit: int, single: int) -> None:
        self._raw = raw
        self._limit = limit
        self._single = max(single, CHUNK)
        self._pos = 0
        self.last = b""  # the last block read: where tarfile saw the end marker

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > self._single:
            raise Refused(f"a tar header or member asks to read {size} bytes at once, over the limit of "
                          f"{human(self._single)}: refused without reading it")
        if self._pos + size > self._limit:
            raise Refused(f"the archive unpacks to more than {human(self._limit)}: refused")
        data = self._raw.read(size)
        self._pos += len(data)
        self.last = data
        return data

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0 or offset < self._pos:
            raise Refused("the archive asks to be read backwards; it is not a bundle offboard made")
        while self._pos < offset:
            if not self.read(min(CHUNK, offset - self._pos)):
                raise tarfile.ReadError("unexpected end of data")
        return self._pos


_PLAIN = (tarfile.REGTYPE, tarfile.AREGTYPE)
_KINDS = {tarfile.SYMTYPE: "a symbolic link", tarfile.LNKTYPE: "a hard link", tarfile.DIRTYPE: "a directory",
          tarfile.CHRTYPE: "a character device", tarfile.BLKTYPE: "a block device", tarfile.FIFOTYPE: "a FIFO",
          tarfile.CONTTYPE: "a contiguous file", tarfile.GNUTYPE_SPARSE: "a sparse file"}


def _split_name(name: str) -> tuple[str, str]:
    """``RUN/relative/path`` with one spelling only, or why not."""
    bad = ("\\" in name or name.startswith("/") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name))
    parts = name.split("/")
    if bad or len(parts) < 2 or any(p in ("", ".", "..") for p in parts):
        raise Refused(f"member {name!r} is not a plain path inside the run's folder (absolute, '.', '..', empty "
                      "parts, backslashes or control characters): one file could be read under two names")
    return parts[0], "/".join(parts[1:])


def _take(tar: tarfile.TarFile, info: tarfile.TarInfo, cap: int, keep: bool) -> Member:
    fh = tar.extractfile(info)
    if fh is None:  # only for non-files, which are refused before
        raise Refused(f"member {info.name!r} has no content")
    digest, size, kept = hashlib.sha256(), 0, []
    while chunk := fh.read(CHUNK):
        size += len(chunk)
        if size > cap:  # the header said otherwise: never trust it past the cap
            raise Refused(f"member {info.name!r} is larger than {human(cap)}: refused")
        digest.update(chunk)
        if keep:
            kept.append(chunk)
    if size != info.size:
        raise tarfile.ReadError(f"member {info.name!r} is cut short")
    return Member(digest.hexdigest(), size, b"".join(kept) if keep else None)


def read_members(path: Path, limits: Limits) -> Contents:
    """Every member's SHA-256 (and the bytes of the few parsed), enforcing the rules above as
    each tar header arrives, before its member is read."""
    if not path.exists():
        raise BadInput(f"bundle {path} does not exist")
    if not path.is_file():
        raise BadInput(f"bundle {path} is not a file")
    parsed = dict(limits.parsed_bytes)
    out = Contents()
    total = 0
    stream_limit = limits.total_bytes + limits.members * 3 * tarfile.BLOCKSIZE + limits.trailer_bytes
    try:
        with path.open("rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz:
            bounded = _Bounded(gz, stream_limit, limits.header_bytes)
            tar = tarfile.open(fileobj=bounded, mode="r:")  # type: ignore[call-overload]  # noqa: SIM115
            count = 0
            while (info := tar.next()) is not None:
                if tar.pax_headers:
                    raise Refused("the archive carries global pax headers; offboard never writes them")
                count += 1
                if count > limits.members:
                    raise Refused(f"more than {limits.members} members: refused")
                folder, rel = _split_name(info.name)
                if info.type not in _PLAIN:
                    kind = _KINDS.get(info.type, f"of tar type {info.type!r}")
                    raise Refused(f"member {info.name!r} is {kind}, not a plain file: offboard bundles hold "
                                  "plain files only")
                cap = parsed.get(rel, limits.member_bytes)
                if info.size > cap:
                    raise Refused(f"member {info.name!r} declares {info.size} bytes, over the limit of {human(cap)} "
                                  "for it: refused without reading it")
                total += info.size
                if total > limits.total_bytes:
                    raise Refused(f"the members add up to more than {human(limits.total_bytes)}, the limit for a "
                                  "bundle: refused without reading further")
                if out.folder and folder != out.folder:
                    raise Refused(f"member {info.name!r} is outside the run's folder {out.folder}/: a bundle holds "
                                  "exactly one run")
                out.folder = folder
                if rel in out.members:
                    raise Refused(f"member {info.name!r} appears twice: which copy a reader sees depends on the "
                                  "tool, so neither can be trusted")
                if info.mode & 0o7000:
                    raise Refused(f"member {info.name!r} carries setuid, setgid or sticky bits")
                if set(info.pax_headers) - {"path"}:
                    raise Refused(f"member {info.name!r} carries extended attributes "
                                  f"({', '.join(sorted(info.pax_headers))}) that no manifest covers")
                out.members[rel] = _take(tar, info, cap, keep=rel in parsed)
            _only_padding(bounded, limits.trailer_bytes, at_end=bounded.last)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise BadInput(f"{path} is not a readable .tar.gz bundle, or it is damaged ({exc})") from None
    if not out.members:
        raise BadInput(f"{path} holds no files; it is not an offboard bundle")
    return out


def _only_padding(bounded: _Bounded, cap: int, at_end: bytes) -> None:
    """The archive ends at a zero block (tarfile also stops at a block it cannot parse, where
    other tools skip it and read on), and only zeros follow: every reader sees the same members."""
    if at_end.count(0) != len(at_end):
        raise Refused("the archive has a damaged or unreadable tar header after its last member; other tools would "
                      "read on past it")
    seen = 0
    while chunk := bounded.read(CHUNK):
        seen += len(chunk)
        if chunk.count(0) != len(chunk) or seen > cap:
            raise Refused("data follows the archive's end marker (members a reader could find, that no "
                          "manifest covers)")
