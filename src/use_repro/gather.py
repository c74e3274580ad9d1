"""The gather of a sharded data stage: its shards' outputs merged into the files the unsharded
job writes, byte for byte (issue #22; which rows a shard holds: use_repro.shards).

    use-repro gather simulate --shards S/shards/0-of-3 S/shards/1-of-3 ... --out S  [--max-reject-fraction F]
    use-repro gather vqscore  --shards V/shards/0-of-3.tsv ...             --out V/vqscore.tsv
    use-repro gather enhance  --shards E/shards/test/0-of-3/enhanced.scp ... --out E/test
    use-repro gather evaluate --shards X/eval/shards/test_early/0-of-3.pkl ... --out X/eval/test_early.csv

At paper scale one job per split (simulation), per training list (VQScore) or per system
(enhancement, metrics) gets one node's worth of cores for work that is embarrassingly
parallel, and a job that dies late starts again from zero. A stage given `--shard k/K` does
only the rows of shard k; the DAG runs the K shards as separate jobs and one gather job merges
their outputs into exactly the files the unsharded job writes, byte for byte (tests/test_sharding.py),
so nothing downstream, and no settings digest, knows whether a stage was sharded.

Shard k of n rows is rows [k*n//K, (k+1)*n//K) of the stage's own row order (a split's
params.tsv order, whose index names each row's audio folder; the speech list's order; the
sorted uids of enhancement and evaluation): fixed by the settings, so the same settings give
the same shards, and contiguous, so concatenating shards 0..K-1 is the unsharded order.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import sys
from pathlib import Path
from typing import Sequence

from use_repro.shards import SIM_COUNTS, parse_shard, shard_name, shard_range, select  # noqa: F401

log = logging.getLogger("use_repro.gather")


# --- simulate render --------------------------------------------------------------------------

def gather_simulate(shard_dirs: Sequence[str | os.PathLike], out: str | os.PathLike,
                    max_reject_fraction: float, list_name: str = "meta.tsv") -> int:
    """meta.tsv and rejects.tsv of a split from its shards' (render --shard writes both, and
    SIM_COUNTS, into its shard folder); the exit status and summary the unsharded render gives,
    from the whole split's counts. `list_name`: meta.<target>.tsv for a --targets-only render
    (its rejects and counts are named after it: simulate.list_names)."""
    from use_repro.batch import Failures
    from use_repro.data.manifest import read_meta, write_meta
    from use_repro.data.simulate import list_names, render_status, render_summary

    names = list_names(list_name)

    out = Path(out)
    rows: list[dict] = []
    columns: list[str] = []
    failures = Failures("simulate render")
    total = rejected = 0
    for d in map(Path, shard_dirs):
        counts = json.loads((d / names["counts"]).read_text())
        total, rejected = total + counts["total"], rejected + counts["rejected"]
        with open(d / names["meta"], encoding="utf-8") as f:
            header = f.readline().rstrip("\n").split("\t")
        # each shard's header is the columns of its own rows in first-seen order; their union in
        # shard order is that of all rows, the unsharded header
        columns += [c for c in header if c not in columns]
        rows += read_meta(d / names["meta"])
        with open(d / names["rejects"], encoding="utf-8") as f:
            next(f, None)
            failures.items += [tuple(line.rstrip("\n").split("\t", 1)) for line in f if line.strip()]
    failures.write(out / names["rejects"])  # first, as render: the culprits survive a failed gather
    write_meta(out / names["meta"], rows, extra_columns=columns)
    status = render_status(total, rejected, max_reject_fraction)
    if failures:
        print(render_summary(failures.items, total, rejected, max_reject_fraction, out / names["rejects"], status),
              file=sys.stderr)
    log.info("gather simulate: %d rows from %d shards -> %s", len(rows), len(shard_dirs), out / names["meta"])
    return status


# --- vqscore score ----------------------------------------------------------------------------

def gather_lines(parts: Sequence[str | os.PathLike], out: str | os.PathLike) -> int:
    """A headed TSV/CSV from its shards': the first shard's header once, then every shard's rows
    in shard order (vqscore.tsv: rows in list order, formatted by the scorer)."""
    from use_repro.fs import atomic_path

    header = None
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        for p in parts:
            with open(p, encoding="utf-8", newline="") as g:
                first = g.readline()
                if header is None:
                    header = first
                    f.write(first)
                elif first != header:
                    raise ValueError(f"{p}: header {first!r} differs from the first shard's {header!r}")
                for line in g:
                    f.write(line)
    log.info("gather: %d shards -> %s", len(parts), out)
    return 0


# --- enhance ----------------------------------------------------------------------------------

def gather_enhanced(shard_dirs: Sequence[str | os.PathLike], out: str | os.PathLike) -> int:
    """An enhanced folder from its shards' folders: every output hard-linked (copied where links
    are impossible) to the path the unsharded run writes, and enhanced.tsv, enhanced.scp,
    enhance_failures.tsv and enhance_skipped.tsv written by enhance's own writer from the
    shards' records, so every byte is the unsharded run's. An output the previous gather put
    here that no shard holds now is removed, as enhance removes what its run no longer makes."""
    from use_repro.batch import Failures
    from use_repro.enhance import read_records, write_lists
    from use_repro.fs import atomic_path
    from use_repro.lock import folder_lock

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, "enhance"):
        old = read_records(out)
        records: dict[str, dict[str, str]] = {}
        failures = Failures("enhance")
        skipped: list[tuple[str, str]] = []
        for d in map(Path, shard_dirs):
            for uid, rec in read_records(d).items():
                if uid in records:
                    raise ValueError(f"{d}: uid {uid} is in two shards")
                src = Path(rec["path"])
                dst = out / src.name
                with atomic_path(dst) as tmp:
                    tmp.unlink()
                    try:
                        os.link(src, tmp)
                    except OSError:
                        import shutil

                        shutil.copy2(src, tmp)
                records[uid] = dict(rec, path=os.path.realpath(dst))
            for name, sink in (("enhance_failures.tsv", failures.items), ("enhance_skipped.tsv", skipped)):
                if (d / name).exists():
                    lines = (d / name).read_text(encoding="utf-8").splitlines()[1:]
                    # a folder's skipped files are found by every shard: listed once
                    sink += [t for t in (tuple(x.split("\t", 1)) for x in lines if x) if t not in sink]
        for uid, rec in old.items():
            if uid not in records and Path(rec["path"]).parent == out.resolve():
                Path(rec["path"]).unlink(missing_ok=True)
        write_lists(out, records, failures, skipped)
    log.info("gather enhance: %d outputs from %d shards -> %s", len(records), len(shard_dirs), out)
    return 1 if failures.items else 0


# --- evaluate ---------------------------------------------------------------------------------

def _available(threads: int) -> None:  # stands for a loaded backend's `make` in a gather
    raise RuntimeError("a gathered backend describes a shard's, it scores nothing")


def gather_evaluate(parts: Sequence[str | os.PathLike], out: str | os.PathLike) -> int:
    """The CSV and JSON of an evaluation from its shards' rows, by evaluate's own writer. A
    backend is n/a in the merged JSON when it was in any shard (as one process's failed load
    makes it n/a for the whole unsharded run). Exit status 1 when a shard held an unusable
    input (the shard itself already failed then)."""
    from use_repro.metrics import registry
    from use_repro.metrics.evaluate import write_outputs

    rows: list[dict] = []
    merged: dict[str, dict] = {}
    for p in parts:
        with open(p, "rb") as f:
            part = pickle.load(f)
        rows += part["rows"]
        for g, d in part["backends"].items():
            if g not in merged or (merged[g]["available"] and not d["available"]):
                merged[g] = d
    backends = {g: registry.Backend(g, tuple(d["columns"]), d["name"], d["version"], d["paper"],
                                    _available if d["available"] else None, d["na_reason"])
                for g, d in merged.items()}
    write_outputs(rows, backends, out)
    bad = [r["bad_input"] for r in rows if r.get("bad_input")]
    log.info("gather evaluate: %d rows from %d shards -> %s", len(rows), len(parts), out)
    return 1 if bad else 0


# --- CLI --------------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="stage", required=True, metavar="{simulate,vqscore,enhance,evaluate}")
    q = sub.add_parser("simulate", help="a split's meta.tsv and rejects.tsv from its render shards' folders")
    q.add_argument("--shards", nargs="+", required=True, help="the shard folders, in shard order")
    q.add_argument("--out", required=True, help="the split's folder (meta.tsv, rejects.tsv)")
    q.add_argument("--config", default=None, help="profile (its simulation.max_reject_fraction)")
    q.add_argument("--max-reject-fraction", type=float, default=None,
                   help="fail when more of the split's rows were rejected (default: the profile's)")
    q.add_argument("--list-name", default="meta.tsv", help="the shards' list (meta.<target>.tsv for a target's render)")
    for stage, what in (("vqscore", "vqscore.tsv"), ("evaluate", "the evaluation CSV (its JSON goes beside it)")):
        q = sub.add_parser(stage, help=f"{what} from its shards'")
        q.add_argument("--shards", nargs="+", required=True, help="the shard files, in shard order")
        q.add_argument("--out", required=True, help=what)
    q = sub.add_parser("enhance", help="an enhanced folder from its shards' folders")
    q.add_argument("--shards", nargs="+", required=True, help="the shards' enhanced.scp (or folders), in shard order")
    q.add_argument("--out", required=True, help="the enhanced folder the unsharded run writes")


def run(args: argparse.Namespace) -> int:
    if args.stage == "simulate":
        limit = args.max_reject_fraction
        if limit is None:
            from use_repro.data.params import SimConfig
            from use_repro.data.simulate import simulation_settings

            # the render's settings (no split's own entry)
            limit = SimConfig.from_config(simulation_settings(args.config, "").section()).max_reject_fraction
        return gather_simulate(args.shards, args.out, limit, args.list_name)
    if args.stage == "vqscore":
        return gather_lines(args.shards, args.out)
    if args.stage == "enhance":
        dirs = [p if Path(p).is_dir() else str(Path(p).parent) for p in args.shards]
        return gather_enhanced(dirs, args.out)
    return gather_evaluate(args.shards, args.out)
