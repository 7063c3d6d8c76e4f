"""Records spooled during discovery come back as they were read, in order, past the in-memory size too."""

from __future__ import annotations

from offboard.wire.spool import RecordSpool


def test_records_come_back_whole_and_in_order_from_memory_and_from_disk() -> None:
    records = [{"id": n, "hostname": f"host-{n}\u2028\n\"q\"", "tags": ["é", None, 1.5], "nested": {"a": [n]}}
               for n in range(20_000)]  # ~1.5 MiB of compact JSON: past the 1 MiB kept in memory
    spool = RecordSpool()
    seen = [r["id"] for r in spool.extend(records)]
    assert seen == list(range(20_000)) and spool.count == 20_000
    assert spool._file._rolled  # type: ignore[attr-defined]  # the disk path is the one under test
    assert spool.records() == records
    small = RecordSpool()
    small.add({"only": "one"})
    assert small.records() == [{"only": "one"}] and not small._file._rolled  # type: ignore[attr-defined]
