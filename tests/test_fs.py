"""Atomic writes: a file appears whole or not at all, with the mode the user's umask gives."""
from __future__ import annotations

import os

import pytest

from use_repro.fs import atomic_path, current_umask, write_text_atomic


@pytest.fixture
def umask():
    """Set the process umask for one test, restoring it after."""
    saved = []

    def _set(mask):
        saved.append(os.umask(mask))

    yield _set
    if saved:
        os.umask(saved[0])


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002, 0o077])
def test_outputs_follow_the_umask(tmp_path, umask, mask):
    umask(mask)
    assert current_umask() == mask
    write_text_atomic(tmp_path / "a.txt", "x")
    with atomic_path(tmp_path / "b.bin") as tmp:
        tmp.write_bytes(b"y")
    for name in ("a.txt", "b.bin"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "c.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]
