"""Shards of a data stage: which rows shard k of K holds (issue #22).

A stage given `--shard k/K` does only the rows of shard k; the DAG runs the K shards as separate
jobs and a gather job (:mod:`use_repro.gather`, ``use-repro gather``) merges their outputs into
exactly the files the unsharded job writes, byte for byte (tests/test_sharding.py), so nothing
downstream, and no settings digest, knows whether a stage was sharded.

Shard k of n rows is rows [k*n//K, (k+1)*n//K) of the stage's own row order (a split's
params.tsv order, whose index names each row's audio folder; the speech list's order; the
sorted uids of enhancement and evaluation): fixed by the settings, so the same settings give
the same shards, and contiguous, so concatenating shards 0..K-1 is the unsharded order.

This module is what the stages import (it depends on nothing of theirs); the gathers, which
read the stages' files with the stages' own readers and writers, live in use_repro.gather.
"""
from __future__ import annotations

import argparse
import logging
import os
import pickle
import re
from typing import Sequence, TypeVar

log = logging.getLogger("use_repro.shards")
T = TypeVar("T")

# What a shard writes besides its part of the stage's list (simulate render): the counts the
# gather needs to apply simulation.max_reject_fraction to the whole split, not to one shard.
SIM_COUNTS = "counts.json"


def parse_shard(text: str) -> tuple[int, int]:
    """`k/K` or `k-of-K` (0 <= k < K) -> (k, K); argparse type of every stage's --shard."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:/|-of-)\s*(\d+)\s*", text)
    if not m or not int(m.group(1)) < int(m.group(2)):
        raise argparse.ArgumentTypeError(f"{text!r}: expected k/K with 0 <= k < K (e.g. 0/4)")
    return int(m.group(1)), int(m.group(2))


def shard_range(n: int, shard: tuple[int, int] | None) -> range:
    """The indices of shard (k, K) of n rows: [k*n//K, (k+1)*n//K); all of them for None."""
    if shard is None:
        return range(n)
    k, count = shard
    return range(k * n // count, (k + 1) * n // count)


def select(items: Sequence[T], shard: tuple[int, int] | None) -> list[T]:
    """The items of one shard, in their order."""
    r = shard_range(len(items), shard)
    return list(items[r.start:r.stop])


def shard_name(k: int, count: int) -> str:
    """The wildcard value (and file/folder name) of shard k of K in the DAG: `k-of-K`."""
    return f"{k}-of-{count}"


# --- evaluate ---------------------------------------------------------------------------------

def write_eval_shard(path: str | os.PathLike, rows: list[dict], backends: dict) -> None:
    """A shard's rows and backends, exactly (pickle: the JSON's averages are means of the
    unrounded values, which the CSV's 6 significant digits do not keep)."""
    from use_repro.fs import atomic_path

    described = {g: dict(columns=list(b.columns), name=b.name, version=b.version, paper=b.paper,
                         available=b.available, na_reason=b.na_reason) for g, b in backends.items()}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        pickle.dump({"rows": rows, "backends": described}, f, protocol=4)
