"""Bad output paths are bad input (issue 15, friction 5): a directory, a missing parent, a place no
file can be created in -> exit 2, one line naming the path and the fix, nothing left behind, and
for `plan` no vendor call made first."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from offboard.connectors.sandboxing import serve
from offboard_huntress.sandbox import DEMO_KEY, DEMO_SECRET, HuntressSandbox
from tests.conftest import MemoryKeyring, write_config

SCALE = 0.002


def one_line(result: Any) -> str:
    assert result.code == 2, (result.out, result.err)
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.err + result.out, result.err
    assert "internal error" not in lines[0]
    return lines[0]


def listing(*folders: Path) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*"))


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[HuntressSandbox, Path]]:
    sandbox = HuntressSandbox(time_scale=SCALE)
    with serve(sandbox.app) as url:
        monkeypatch.setenv("OFFBOARD_HUNTRESS_API_KEY", DEMO_KEY)
        monkeypatch.setenv("OFFBOARD_HUNTRESS_API_SECRET", DEMO_SECRET)
        yield sandbox, write_config(tmp_path, url, window=60 * SCALE)


@pytest.mark.parametrize("where, words", [
    ("out", ["is a directory", "name the plan file", "exit.plan.json"]),
    ("missing/dir/x.json", ["is not an existing directory", "create it first"]),
    ("a-file/x.json", ["is not an existing directory"]),
])
def test_plan_to_a_bad_output_path_is_refused_before_any_vendor_call(
        cli: Any, tmp_path: Path, served: tuple[HuntressSandbox, Path], where: str, words: list[str]) -> None:
    sandbox, config = served
    (tmp_path / "out").mkdir()
    (tmp_path / "a-file").write_text("x")
    before = listing(tmp_path)
    line = one_line(cli("plan", "-c", str(config), "-o", str(tmp_path / where)))
    assert str(tmp_path / where) in line and all(w in line for w in words), line
    assert sandbox.requests == []  # checked before discovery: a typo costs no rate-limited call
    assert listing(tmp_path) == before  # no stray temp file, no folder made


def test_plan_to_a_place_no_file_can_be_created_in(cli: Any, served: tuple[HuntressSandbox, Path]) -> None:
    sandbox, config = served
    line = one_line(cli("plan", "-c", str(config), "-o", "/proc/exit.plan.json"))
    assert "/proc/exit.plan.json" in line and "choose a path you can write" in line
    assert sandbox.requests == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_plan_into_a_read_only_folder(cli: Any, tmp_path: Path, served: tuple[HuntressSandbox, Path]) -> None:
    _, config = served
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        line = one_line(cli("plan", "-c", str(config), "-o", str(locked / "x.json")))
    finally:
        locked.chmod(0o700)
    assert "Permission denied" in line and "choose a path you can write" in line
    assert list(locked.iterdir()) == []


def test_plan_to_a_good_path_still_writes_the_plan(cli: Any, tmp_path: Path,
                                                   served: tuple[HuntressSandbox, Path]) -> None:
    _, config = served
    result = cli("plan", "-c", str(config), "-o", str(tmp_path / "exit.plan.json"))
    assert result.code == 0 and (tmp_path / "exit.plan.json").is_file(), result.err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("key_file, words", [
    ("/proc/k.pem", ["/proc/k.pem", "choose a path you can write"]),
    ("{tmp}/a-file/keys/k.pem", ["{tmp}/a-file is not an existing directory (it is a file)"]),
    ("{tmp}", ["is a directory", "name the private key file"]),
])
def test_keys_init_to_a_bad_key_file_makes_no_key(cli: Any, tmp_path: Path, memory_keyring: MemoryKeyring,
                                                  monkeypatch: pytest.MonkeyPatch, key_file: str,
                                                  words: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("x")
    line = one_line(cli("keys", "init", "--key-file", key_file.format(tmp=tmp_path)))
    assert all(w.format(tmp=tmp_path) in line for w in words), line
    assert listing(tmp_path) == [tmp_path / "a-file"] and memory_keyring.store == {}


def test_keys_init_with_a_bad_public_key_path_leaves_no_private_key(cli: Any, tmp_path: Path,
                                                                    memory_keyring: MemoryKeyring) -> None:
    line = one_line(cli("keys", "init", "--key-file", str(tmp_path / "k.pem"), "-o", str(tmp_path)))
    assert "is a directory" in line and "msp.pub" in line
    assert listing(tmp_path) == []  # the old code wrote k.pem, then failed on the public key
    line = one_line(cli("keys", "init", "-o", "/proc/msp.pub"))
    assert "/proc/msp.pub" in line and memory_keyring.store == {}
