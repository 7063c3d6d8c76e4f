"""Records spooled during discovery are exported as they were read, in order, past the in-memory size
too, and in the same layout as a list read afresh."""

from __future__ import annotations

import json

from offboard.wire.spool import RecordSpool, evidence_json


def test_records_come_back_whole_and_in_order_from_memory_and_from_disk() -> None:
    records = [{"id": n, "hostname": f"host-{n}\u2028\n\"q\"", "tags": ["é", None, 1.5], "nested": {"a": [n]}}
               for n in range(20_000)]  # ~1.5 MiB of compact JSON: past the 1 MiB kept in memory
    spool = RecordSpool()
    seen = [r["id"] for r in spool.extend(records)]
    assert seen == list(range(20_000)) and spool.count == 20_000
    assert spool._file._rolled  # type: ignore[attr-defined]  # the disk path is the one under test
    exported = spool.json_array()
    assert json.loads(exported) == records
    assert exported == evidence_json(records)  # the same bytes as the list exported without a spool
    small = RecordSpool()
    small.add({"only": "one"})
    assert small.json_array() == b'[\n{"only":"one"}\n]\n' and not small._file._rolled  # type: ignore[attr-defined]
    assert RecordSpool().json_array() == evidence_json([]) == b"[]\n"


def test_an_evidence_file_keeps_the_vendors_key_order_one_record_a_line() -> None:
    assert evidence_json([{"z": 1, "a": "é"}, {"b": [1]}]) == '[\n{"z":1,"a":"é"},\n{"b":[1]}\n]\n'.encode()
    assert evidence_json({"z": 1, "a": 2}) == b'{\n  "z": 1,\n  "a": 2\n}\n'

