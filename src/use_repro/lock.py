"""One writer at a time: an exclusive lock on a folder that several processes may write into.

    with folder_lock(out_dir, "enhance"):
        ...  # read the folder's lists, write outputs, merge the lists

The lock is ``fcntl.flock`` on a hidden file in the folder (``.use-repro.lock``). The kernel
releases it when the holder exits, however it exits (a killed process never leaves a stale
lock), so the file itself is never removed: removing it would let two processes lock two
different files of the same name. A process that finds the folder locked says who holds it (the
holder writes its pid and what it does into the file) and waits. ``flock`` works between the
processes of one machine; on network file systems it depends on the server (NFSv4 maps it to
byte-range locks, older setups may not lock at all).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import threading
import time
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

LOCK_NAME = ".use-repro.lock"


class LockTimeout(TimeoutError):
    """The folder stayed locked by another process for longer than the caller would wait."""


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError):
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 512).decode("utf-8", "replace").strip()
        if text:
            return text
    return "another process"


# lock files this process holds, by real path -> (holding thread, depth): a thread that holds a
# folder's lock may take it again (a CLI holds it around a library call that takes it too);
# another thread opens its own descriptor, and flock makes it wait like another process.
_held: dict[str, tuple[int, int]] = {}
_held_guard = threading.Lock()


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "use-repro", timeout: float | None = None,
                poll: float = 0.5) -> Iterator[Path]:
    """Hold an exclusive lock on `folder` (created if missing) for the `with` block.

    When another process holds it, log once who does and wait: for ever (`timeout` None), or
    raise LockTimeout after `timeout` seconds. Re-entrant within a thread. Yields the lock
    file's path.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    key, me = os.path.realpath(path), threading.get_ident()
    with _held_guard:
        owner, depth = _held.get(key, (None, 0))
        if owner == me:
            _held[key] = (me, depth + 1)
    if owner == me:
        try:
            yield path
        finally:
            with _held_guard:
                _held[key] = (me, _held[key][1] - 1)
        return
    with _acquire(folder, path, what, timeout, poll):
        with _held_guard:
            _held[key] = (me, 1)
        try:
            yield path
        finally:
            with _held_guard:
                _held.pop(key, None)


@contextlib.contextmanager
def _acquire(folder: Path, path: Path, what: str, timeout: float | None, poll: float) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            log.warning("%s: %s is being written by %s; waiting for it to finish", what, folder, _holder(fd))
            start = time.monotonic()
            if timeout is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except OSError as e2:
                        if e2.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                            raise
                    if time.monotonic() - start > timeout:
                        raise LockTimeout(f"{what}: {folder} stayed locked by {_holder(fd)} for "
                                          f"{timeout:g} s") from None
                    time.sleep(poll)
            log.info("%s: %s is free now (waited %.1f s)", what, folder, time.monotonic() - start)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"pid {os.getpid()} ({what})\n".encode())
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
