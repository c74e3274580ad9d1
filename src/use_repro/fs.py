"""Atomic file writes (write to a temp file in the target's folder, then rename) and file digests.

A job killed mid-write leaves either the old file or none, never a truncated one, so an
interrupted run resumes cleanly and Snakemake never sees a half-written output.

The file digest lives here, at the bottom of the import graph, because modules of every layer
need it (weights pins, VQScore and NISQA checkpoints, training identities, enhanced sources):
one helper, so every digest the project records is the same hex sha256 of the same bytes.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it onto `path`.

    `suffix` defaults to the target's suffix so libraries that infer the format from the
    extension (soundfile, matplotlib) write the right one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix,
                               dir=path.parent)
    # mkstemp creates the file 0600 whatever the umask; give it the mode open() would have, so
    # outputs are as readable as the user's other files.
    os.fchmod(fd, 0o666 & ~current_umask())
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def current_umask() -> int:
    """The process umask, read without changing it (os.umask can only set it, and setting it
    even briefly would race with threads creating files)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    old = os.umask(0o022)  # no /proc (not Linux): set and restore
    os.umask(old)
    return old


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def refuse_overwrite(output: str | os.PathLike, inputs: set[Path]) -> None:
    """Raise if `output` resolves to one of the `inputs` (inputs are never overwritten)."""
    out = Path(output).resolve()
    if out in inputs:
        raise FileExistsError(f"{output}: refusing to overwrite an input file")


DIGEST_BLOCK = 1 << 20  # bytes read at a time: a checkpoint of any size hashes in bounded memory


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(DIGEST_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=1 << 16)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def sha256_file_cached(path: str | os.PathLike) -> str:
    """:func:`sha256_file`, computed once per process for a given (real path, size, mtime):
    a folder of sources checked again, or a backend's weights named by several metrics, is
    not read twice. A file rewritten in place within the same mtime tick would be missed, which
    is why only callers that re-check unchanged files use it."""
    st = os.stat(path)
    return _sha256_cached(os.path.realpath(path), st.st_size, st.st_mtime_ns)
