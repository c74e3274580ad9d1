"""Atomic writes: a file appears whole or not at all, with the mode the user's umask gives.
File digests: the hex sha256 every recorded digest is."""
from __future__ import annotations

import hashlib
import os

import pytest

from use_repro.fs import DIGEST_BLOCK, atomic_path, current_umask, sha256_file, sha256_file_cached, write_text_atomic


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


def test_sha256_file_is_hashlibs_hex_digest_across_blocks(tmp_path):
    data = bytes(range(256)) * (DIGEST_BLOCK // 256 * 2 + 3)  # two full blocks and a partial one
    f = tmp_path / "x.bin"
    f.write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    assert sha256_file(f) == sha256_file(str(f)) == sha256_file_cached(f) == want
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def test_sha256_file_cached_sees_a_rewrite_of_another_size(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"one")
    assert sha256_file_cached(f) == hashlib.sha256(b"one").hexdigest()
    f.write_bytes(b"three")
    assert sha256_file_cached(f) == hashlib.sha256(b"three").hexdigest()
