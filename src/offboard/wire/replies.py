"""Vendor replies into typed models: a reply that does not fit is one line naming the call.

A vendor reply is hostile input. Before a reply is parsed it must be of a believable size (read
streamed, never past the limit: see ``http.VendorHttp``) and of a believable nesting; a reply past
either is the vendor answering nonsense, refused in one line (``VendorReplyRefused``, exit 1).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from offboard.config import VendorSettings
from offboard.errors import VendorReplyError, VendorReplyRefused

M = TypeVar("M", bound=BaseModel)
MIB = 1024 * 1024
# Real replies nest a handful of levels (a list of objects holding a list of objects); 64 is far
# above that and far below the depth where Python's parser, pydantic or json.dumps of the evidence
# would run out of stack (about 1,000).
MAX_DEPTH = 64


@dataclass(frozen=True)
class ReplyLimits:
    """What offboard reads of one vendor's replies; ``where`` names the setting, for the message."""

    max_bytes: int = 16 * MIB
    max_download_bytes: int = 256 * MIB
    max_pages: int = 10_000
    max_depth: int = MAX_DEPTH
    where: str = "the vendor's config section"

    @classmethod
    def of(cls, settings: VendorSettings, section: str) -> ReplyLimits:
        """The limits a vendor's (or the PSA's) config section sets; ``section`` is its name."""
        return cls(max_bytes=int(settings.max_reply_mib * MIB), max_download_bytes=int(settings.max_download_mib * MIB),
                   max_pages=settings.max_pages, where=f"[{section}]")


def size_words(n: int) -> str:
    return f"{n / MIB:g} MiB" if n >= MIB else f"{n:,} bytes"


def too_large(limits: ReplyLimits, limit: int, declared: int | None, setting: str) -> str:
    seen = f"it declares {declared:,} bytes" if declared is not None else "offboard stopped reading it there"
    return (f"the vendor's reply is larger than {size_words(limit)} ({seen}); real replies are far smaller, so the "
            f"vendor is answering nonsense: try again later or ask the vendor. Only if it is genuine, raise "
            f"{setting} in {limits.where}")


# Everything but quotes and brackets goes; braces count as brackets.
_SKELETON = bytes.maketrans(b"{}", b"[]")
_NOT_SKELETON = bytes(b for b in range(256) if b not in b'"[]{}')
_STRING = re.compile(rb'"[^"]*"')
_STEP = tuple(1 if b == ord("[") else -1 if b == ord("]") else 0 for b in range(256))


def nesting_depth(raw: bytes, limit: int = MAX_DEPTH) -> int:
    """How deep a JSON text nests, found without parsing it (the parser recurses, and a deep enough
    text exhausts the stack): its brackets outside strings. Exact up to ``limit``; past it, exact
    too but slower (only a reply about to be refused pays for that). Every step is a C loop: a page
    of 500 agents costs about half of what parsing it does."""
    # Escapes first (outside strings there are none), so every quote left opens or closes a string;
    # then only quotes and brackets. Two adjacent quotes close one string and open the next (or are
    # an empty string): dropping them keeps every other quote's parity, and leaves only strings that
    # hold a bracket for the regular expression (rare, so it has little to do).
    skeleton = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(_SKELETON, _NOT_SKELETON)
    skeleton = skeleton.replace(b'""', b"")
    if b'"' in skeleton:
        skeleton = _STRING.sub(b"", skeleton)
    # Balanced brackets nested d deep are gone after exactly d passes of dropping every "[]".
    rest = skeleton
    for depth in range(limit + 1):
        if not rest:
            return depth
        shorter = rest.replace(b"[]", b"")
        if len(shorter) == len(rest):  # unbalanced: not JSON; json.loads will say so
            break
        rest = shorter
    return max(accumulate(map(_STEP.__getitem__, skeleton)), default=0)


def read_json(raw: bytes, vendor: str, call: str, limits: ReplyLimits, content_type: str = "?") -> Any:
    """A reply's JSON, once its nesting is believable; one line naming the call otherwise."""
    depth = nesting_depth(raw, limits.max_depth)
    if depth > limits.max_depth:
        raise VendorReplyRefused(vendor, call, _too_deep(depth, limits))
    try:
        data = json.loads(raw)
    except RecursionError:  # the count above missed it (e.g. a text that is not JSON): the same answer
        raise VendorReplyRefused(vendor, call, _too_deep(None, limits)) from None
    except ValueError:
        raise VendorReplyError(
            vendor, call, f"reply is not JSON (content-type {content_type}, "
            f"{len(raw)} bytes); the vendor may be down or a proxy answered"
        ) from None
    if _may_hold_surrogate(raw) and _lone_surrogate(data):
        raise VendorReplyRefused(vendor, call, "the vendor's reply holds text that is not Unicode (a lone UTF-16 "
                                 "surrogate, e.g. \\ud800), which no plan, log or evidence file can hold: the "
                                 "vendor is answering nonsense; try again later or ask the vendor")
    return data


# A lone surrogate in decoded JSON comes from an escape (\ud800) or from its UTF-8-like bytes (json.loads
# decodes bytes with surrogatepass); a pair (an emoji's escapes) decodes to one character and is fine.
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def _may_hold_surrogate(raw: bytes) -> bool:
    # The expression walks every byte of a 500-agent page (2 ms, more than the page's parse); a
    # literal is found at memory speed, and where none is the expression cannot match.
    return (b"\\ud" in raw or b"\\uD" in raw or b"\xed" in raw) and _SURROGATE.search(raw) is not None


def _lone_surrogate(data: Any) -> bool:
    try:
        json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    return False


def _too_deep(depth: int | None, limits: ReplyLimits) -> str:
    levels = f"{depth:,} levels" if depth is not None else "deeper than Python can parse"
    return (f"the vendor's reply nests {levels} deep (real replies nest a few; offboard reads at most "
            f"{limits.max_depth}): the vendor is answering nonsense; try again later or ask the vendor")


def parse_reply(vendor: str, model: type[M], data: Any, call: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(object)"
        raise VendorReplyError(vendor, call, f"unexpected reply: {model.__name__}.{where}: {err['msg']}") from None
