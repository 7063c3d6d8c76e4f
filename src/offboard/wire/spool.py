"""Vendor records read once and needed again later, kept on disk rather than in memory.

Discovery reads every agent of an organization to plan; the evidence export at apply writes the
same records to a file. Held as parsed JSON they cost ~2.4 KiB an agent (23 MiB at 10,000) for
the whole run, `offboard plan` included, which never exports. Spooled as compact JSON lines to
an anonymous temporary file (private to the process, gone when it is closed or the process
ends) they cost nothing until the export reads them back, once.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any


class RecordSpool:
    """Records appended one at a time while they are parsed, read back in order once."""

    def __init__(self) -> None:
        # Below 1 MiB the records stay in memory: a small exit never touches the disk.
        self._file = tempfile.SpooledTemporaryFile(max_size=1 << 20, mode="w+b")  # noqa: SIM115 (lives with the spool)
        self.count = 0

    def add(self, record: Any) -> Any:
        self._file.write(_compact(record))
        self._file.write(b"\n")
        self.count += 1
        return record

    def extend(self, records: Iterable[Any]) -> Iterator[Any]:
        """Spool each record as it passes (the caller parses it meanwhile)."""
        for record in records:
            yield self.add(record)

    def json_array(self) -> bytes:
        """The records as ``evidence_json`` writes them, from the spooled lines as they are: a
        10,000-agent export is not parsed again to be written."""
        self._file.seek(0)
        return _array([line.rstrip(b"\n") for line in self._file])

    def close(self) -> None:
        self._file.close()


def evidence_json(data: Any) -> bytes:
    """What a vendor sent, as an evidence file holds it, its keys in the vendor's order. A list is a
    JSON array of one record a line, each compact: the json module's C encoder writes that, where an
    indented one takes its Python encoder, ten times slower on 10,000 agents. Anything else is
    indented."""
    if isinstance(data, list):
        return _array([_compact(r) for r in data])
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode()


def _compact(record: Any) -> bytes:
    # UTF-8 always holds it: a reply with a lone surrogate, the one string it could not, is refused as
    # it is read (wire.replies.read_json).
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()


def _array(lines: list[bytes]) -> bytes:
    return b"[\n" + b",\n".join(lines) + b"\n]\n" if lines else b"[]\n"
