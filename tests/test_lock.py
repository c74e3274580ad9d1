"""use_repro.lock.folder_lock: exclusive between processes and threads, re-entrant in a thread."""
from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from use_repro.lock import LOCK_NAME, LockTimeout, folder_lock


def test_reentrant_in_one_thread_and_exclusive_for_another(tmp_path):
    order = []
    with folder_lock(tmp_path / "out", "first") as path:
        assert path.name == LOCK_NAME and path.exists()
        with folder_lock(tmp_path / "out", "again"):  # the same thread: no deadlock
            order.append("inner")

        def other():
            with folder_lock(tmp_path / "out", "other"):
                order.append("other")

        t = threading.Thread(target=other)
        t.start()
        time.sleep(0.3)
        order.append("release")
    t.join(10)
    assert order == ["inner", "release", "other"]


def test_another_process_is_named_and_waited_for(tmp_path, caplog):
    code = ("import sys, time; sys.path[:0] = [sys.argv[1]]; from use_repro.lock import folder_lock\n"
            "with folder_lock(sys.argv[2], 'holder'):\n    print('held', flush=True); time.sleep(float(sys.argv[3]))\n")
    import use_repro

    src = str(Path(use_repro.__file__).parents[1])
    p = subprocess.Popen([sys.executable, "-c", code, src, str(tmp_path), "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        with caplog.at_level(logging.INFO), pytest.raises(LockTimeout, match="stayed locked by pid"):
            with folder_lock(tmp_path, "me", timeout=0.5, poll=0.1):
                pass
        assert f"is being written by pid {p.pid} (holder); waiting" in caplog.text
    finally:
        p.kill()
        p.wait()
    with folder_lock(tmp_path, "me", timeout=5):  # the kernel released the killed holder's lock
        pass
