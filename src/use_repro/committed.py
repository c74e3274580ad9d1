"""Committed results on a fresh checkout: one time stamp for every committed file, once.

The repository commits what the report stage reads for the `mini` and `small` profiles (the
per-utterance evaluation CSVs, the learning curves and per-utterance validation scores, the
settings files, the tables and figures), so a fresh clone re-makes the tables, `compare.*` and
any figure in seconds without planning a corpus, simulation, training, enhancement or
evaluation job. Snakemake decides by modification times, and git writes a checkout's files in
path order, so on a clone a committed input (say `results/small/vqscore/datasize.csv`) can be
a few milliseconds newer than the committed output made from it, and a job would be planned for
no reason. The first time the DAG is parsed in a checkout (:func:`settle`), every committed
file of the profile (and the reported numbers the report reads) is given one time stamp, the commit time of HEAD; afterwards modification
times mean what they mean everywhere (a rerun makes newer files, which rerun their readers).

A setting that changes still reruns its jobs on a clone: each job's settings file (named by the
digest of the keys it reads) is an input of the job, and a changed setting writes a new, newer
file. To force a full rerun: `snakemake --forceall tables --config profile=P`, or
`make clean-results PROFILE=P` and `make tables PROFILE=P`.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

MARKER = ".checkout-settled"


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout


def committed_files(root: str | os.PathLike, folders: list[str]) -> list[Path]:
    """Files git tracks under `folders` (relative to the repository `root`) that exist."""
    root = Path(root)
    out = _git(root, "ls-files", "-z", "--", *(str(Path(f).resolve()) for f in folders))
    if not out:
        return []
    return [root / p for p in out.split("\0") if p and (root / p).is_file()]


def settle(root: str | os.PathLike, results: str | os.PathLike, folders: list[str]) -> int:
    """Give every committed file under `folders` the commit time of HEAD, once per checkout
    (a marker in `results` records it). Returns how many files were stamped (0 when already
    settled, outside a git checkout, or with nothing committed)."""
    root, results = Path(root), Path(results)
    marker = results / MARKER
    if marker.exists():
        return 0
    files = committed_files(root, folders)
    when = _git(root, "log", "-1", "--format=%ct")
    if not files or not when or not when.strip():
        return 0
    t = int(when.strip())
    for f in files:
        os.utime(f, (t, t))
    results.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"committed files stamped with HEAD's commit time {t}\n")
    return len(files)
