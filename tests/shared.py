"""Files the tests may use but the repository cannot ship (the paper's text, licensed weights).

They are looked for in the folder `$USE_REPRO_SHARED` names, else in `shared/` beside the clone;
a test that needs one skips, saying where it looked, when it is in neither.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
ENV = "USE_REPRO_SHARED"


def shared_dirs() -> list[Path]:
    """Where shared files are looked for, in order."""
    env = os.environ.get(ENV)
    return ([Path(env).expanduser()] if env else []) + [REPO_ROOT.parent / "shared"]


def shared_file(rel: str) -> Path | None:
    """`rel` (e.g. "weights/nisqa/nisqa.tar") in the first shared folder that has it, else None."""
    return next((d / rel for d in shared_dirs() if (d / rel).exists()), None)


def require_shared(rel: str, what: str) -> Path:
    """`rel` from a shared folder, or skip the test saying what is missing and where to put it."""
    path = shared_file(rel)
    if path is None:
        pytest.skip(f"{what} is not here: put it at $USE_REPRO_SHARED/{rel} "
                    f"(looked in {', '.join(str(d) for d in shared_dirs())})")
    return path
