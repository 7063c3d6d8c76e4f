"""Retained evidence: files an exit exports before removing anything, with a SHA-256 manifest.

Layout under the run folder: ``evidence/<vendor>/<name>`` and ``evidence/manifest.json``.
Each file is written atomically; the manifest is rewritten atomically after each file,
so it never names a file that is not whole.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from offboard.connectors import Artifact
from offboard.plan import now_iso
from offboard.rundir import atomic_write_bytes, atomic_write_text

_MANIFEST_LOCK = threading.Lock()  # vendors export in threads; the manifest is read, changed, rewritten


class EvidenceStore:
    def __init__(self, run_path: Path) -> None:
        self.root = run_path / "evidence"
        self.manifest_path = self.root / "manifest.json"

    def manifest(self) -> dict[str, Any]:
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"algorithm": "sha256", "files": {}}
        return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else {
            "algorithm": "sha256", "files": {}}

    def write(self, vendor: str, action_id: str, artifacts: tuple[Artifact, ...]) -> list[dict[str, Any]]:
        with _MANIFEST_LOCK:
            return self._write(vendor, action_id, artifacts)

    def _write(self, vendor: str, action_id: str, artifacts: tuple[Artifact, ...]) -> list[dict[str, Any]]:
        manifest = self.manifest()
        written = []
        for art in artifacts:
            rel = _safe_relpath(vendor, art.name)
            atomic_write_bytes(self.root / rel, art.content)
            entry = {"path": rel, "sha256": hashlib.sha256(art.content).hexdigest(), "bytes": len(art.content),
                     "action_id": action_id, "written_at": now_iso()}
            entry["requests"] = [r.as_dict() for r in art.requests]  # what produced the file
            if art.draft_for:
                entry["draft_for"] = art.draft_for  # a draft a person sends: see ``drafts_to_send``
            manifest["files"][rel] = entry
            atomic_write_text(self.manifest_path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            written.append(entry)
        return written

    def drafts_to_send(self, states: Mapping[str, str]) -> list[Path]:
        """Drafts kept as evidence whose sending no person has confirmed yet."""
        return [self.root / rel for rel, entry in sorted(self.manifest()["files"].items())
                if isinstance(entry, dict) and isinstance(item := entry.get("draft_for"), str)
                and states.get(item) != "manual.confirmed"]

    def verify(self) -> list[str]:
        """Files whose content no longer matches the manifest (or that are missing)."""
        bad = []
        for rel, entry in self.manifest()["files"].items():
            path = self.root / rel
            if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
                bad.append(rel)
        return bad


def _safe_relpath(vendor: str, name: str) -> str:
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".", "..", "/")]
    if not parts:
        raise ValueError(f"artifact name {name!r} is empty")
    return str(PurePosixPath(vendor, *parts))
