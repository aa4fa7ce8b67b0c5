"""atomic_write / atomic_writer: whole files or none, with the usual modes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from newsletter.errors import ConfigError
from newsletter.files import atomic_write, atomic_writer, read_bytes


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_gets_the_mode_open_gives(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.txt", "héllo\n")
        atomic_write(tmp_path / "b.bin", b"\x00\x01")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert _mode(tmp_path / "a.txt") == _mode(tmp_path / "b.bin") == 0o644


def test_a_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "issue.html"
    target.write_text("old")
    target.chmod(0o640)
    atomic_write(target, "new")
    assert target.read_text() == "new" and _mode(target) == 0o640


def test_an_error_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "export.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_writer(target, newline="") as handle:
        handle.write("half a\n")
        raise RuntimeError("disk full")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.csv"]


def test_read_bytes_names_the_file_and_the_hint_when_missing(tmp_path: Path) -> None:
    (tmp_path / "there.txt").write_bytes(b"abc")
    assert read_bytes(tmp_path / "there.txt", ConfigError, missing_hint="make it") == b"abc"
    with pytest.raises(ConfigError, match=r"missing.txt: not found \(make it\)"):
        read_bytes(tmp_path / "missing.txt", ConfigError, missing_hint="make it")
    with pytest.raises(ConfigError, match="cannot read"):
        read_bytes(tmp_path, ConfigError, missing_hint="make it")
