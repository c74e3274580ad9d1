"""Progress bars on a terminal, periodic log lines otherwise (Snakemake logs stay readable)."""
from __future__ import annotations

import sys
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None) -> Iterator[T]:
    """tqdm bar when stderr is a terminal; otherwise a log-friendly bar that updates rarely."""
    from tqdm.auto import tqdm

    if sys.stderr.isatty():
        return iter(tqdm(iterable, desc=desc, total=total, dynamic_ncols=True))
    return iter(tqdm(iterable, desc=desc, total=total, mininterval=30, maxinterval=120, ascii=True))
