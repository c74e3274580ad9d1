"""`use-repro evaluate`: the URGENT 2025 metric suite, one CSV row per utterance.

    use-repro evaluate --est DIR|SCP [--ref DIR|SCP] [--meta meta.tsv] [--utt2lang FILE]
                       [--text FILE] --out FILE.csv [--metrics M ...] [--threads N]
                       [--weights-dir DIR]

Inputs are folders of audio files (the id is the file name without extension) or scp lists
(`uid fs path` as the URGENT manifests, or the challenge's two-column `uid path`). Transcripts
come from `--text` or the `text` column of `--meta`; languages from `--utt2lang` (none given:
English). Without `--ref`, the reference-based metrics are n/a. With `--ref`, every id of
`--est` must have a reference when a reference-based metric is asked for: an id the references
lack fails the run before anything is scored, naming the ids (a system scored on fewer
utterances than its list would sit in the tables beside systems scored on all of them).

Output: FILE.csv with `id, fs, seconds`, every metric column of the requested groups, the CAcc
counts (`CAcc_errors`, `CAcc_chars`), `error` (why a value is missing because something failed)
and `na` (why a value is missing by design: language, transcript, backend); and FILE.json
beside it with, per column, the backend (name, version, whether it is the paper's) and the
average over the utterances that have a value. CAcc's average is pooled over characters, as
the challenge computes it.

Failure isolation: an unreadable, empty, NaN-holding or silent estimate gives NaN in every
column of its row and the reason in `error`; a missing, silent or length-/rate-mismatched
reference gives NaN in the reference-based columns only; a metric that raises gives NaN in its
own columns. The run always completes and writes every row; the exit status is 1 when an
input file could not be decoded (missing, not audio, NaN/Inf, cut off: listed at the end), else 0.

Models load once per worker process; `--threads N` runs N workers (0: all cores), each with
single-threaded math libraries, longest utterances first.

Determinism: every value is a function of its utterance's files alone, so the same files give
the same CSV byte for byte whatever the number of workers, the machine's thread settings or
the input order (tests/metrics/test_evaluate.py runs the whole suite twice to check it). What
makes it so: each worker's models run on one intra-op thread (torch, ONNX Runtime,
CTranslate2); SDR runs in float64 on one torch thread and MCD's batched mel-cepstra on one
BLAS thread; ASR decodes at temperature 0 without faster-whisper's sampling fallback; ESTOI
seeds NumPy as the challenge does; the phone recogniser resets its front end per utterance;
rows are written in id order.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from use_repro.errors import UsageError
from use_repro.shards import parse_shard  # light (no torch): the --shard argument type
from use_repro.metrics import registry
from use_repro.metrics.task import NotApplicable, pooled_cacc

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".mp3")
SILENCE_PEAK = 1e-6  # below this peak amplitude a signal counts as silent


@dataclass(frozen=True)
class Item:
    uid: str
    est: str
    ref: str | None
    text: str | None
    lang: str | None


# ---------------------------------------------------------------- inputs
def read_audio_list(path: str | os.PathLike) -> dict[str, str]:
    """uid -> audio path from a folder (file stems) or an scp (`uid fs path` or `uid path`)."""
    path = Path(path)
    if path.is_dir():
        # hidden files aside: a killed writer's temp file (".x.flac.tmp123.flac") is not an utterance
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        out = {}
        for p in files:
            if p.stem in out:
                raise ValueError(f"{path}: two files share the id {p.stem!r}: {out[p.stem]} and {p}")
            out[p.stem] = str(p)
        return out
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such folder or scp file")
    from use_repro.data.manifest import resolve_listed

    out = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) not in (2, 3):
                raise ValueError(f"{path.name} line {lineno}: expected 'uid fs path' or 'uid path', got {line.strip()!r}")
            out[parts[0]] = resolve_listed(parts[-1], path)  # against the list's folder first
    return out


def read_side_file(path: str | os.PathLike | None) -> dict[str, str]:
    if path is None:
        return {}
    from use_repro.data.manifest import read_kv

    return read_kv(path)


def read_meta_text(path: str | os.PathLike | None) -> dict[str, str]:
    if path is None:
        return {}
    from use_repro.data.manifest import read_meta

    return {r["id"]: r["text"] for r in read_meta(path) if r.get("text") not in (None, "", "none")}


class MissingReferencesError(ValueError):
    """Estimates without a reference in a run that has references and asks for reference-based
    metrics. Not a per-row error: the system would be scored on fewer utterances than its list
    and its averages would not be comparable, so the run stops (the CLI: one line, exit 1)."""


MAX_IDS_SHOWN = 10  # a message names this many ids, then counts the rest


def check_references(items: list[Item], groups) -> None:
    """Raise MissingReferencesError naming the ids of `items` whose reference is missing
    (`Item.ref == ""`: --ref was given but lacks the id) when any of `groups` needs one."""
    needing = [g for g in groups if g in registry.NEEDS_REF]
    missing = [it.uid for it in items if it.ref == ""]
    if not needing or not missing:
        return
    shown = ", ".join(missing[:MAX_IDS_SHOWN])
    more = f" (+{len(missing) - MAX_IDS_SHOWN} more)" if len(missing) > MAX_IDS_SHOWN else ""
    raise MissingReferencesError(f"{len(missing)} of {len(items)} estimate(s) have no reference, so "
                                 f"{', '.join(needing)} would be scored on fewer utterances than listed: "
                                 f"{shown}{more}")


def build_items(est, ref=None, meta=None, utt2lang=None, text=None) -> list[Item]:
    ests = read_audio_list(est)
    refs = read_audio_list(ref) if ref else {}
    texts = read_meta_text(meta)
    texts.update(read_side_file(text))
    langs = read_side_file(utt2lang)
    # "" marks an id that --ref lacks (an error), None a run without references (n/a).
    return [Item(uid, p, refs.get(uid, "") if ref else None, texts.get(uid), langs.get(uid))
            for uid, p in sorted(ests.items())]


# ---------------------------------------------------------------- per-utterance work
_SCORERS: dict[str, object] = {}
_BACKENDS: dict[str, registry.Backend] = {}


def init_worker(backends: dict[str, registry.Backend], threads_per_worker: int = 1) -> None:
    """Load every available backend's model once in this process."""
    import torch

    torch.set_num_threads(max(1, threads_per_worker))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _BACKENDS.clear()
    _BACKENDS.update(backends)
    _SCORERS.clear()
    for group, b in backends.items():
        if b.available:
            try:
                _SCORERS[group] = b.make(threads_per_worker)
            except Exception as e:  # a backend that cannot load is n/a for the whole run
                log.error("evaluate: %s backend %s failed to load: %s", group, b.name, e)
                b.make, b.na_reason = None, f"failed to load {b.name}: {e}"


class SilentAudio(ValueError):
    """A decodable file without signal: scored as a failed row, not reported as bad input."""


def _load(path: str | None, what: str) -> tuple[np.ndarray, int]:
    from use_repro.audio.io import read_audio
    from use_repro.data.audiocheck import check_audio

    if not path:
        raise FileNotFoundError(f"no {what} with this id")
    check_audio(path)  # a full decode: a cut-off WAV would otherwise be scored as a short file
    x, fs = read_audio(path)
    if float(np.max(np.abs(x))) < SILENCE_PEAK:
        raise SilentAudio(f"{path}: {what} is silent (peak below {SILENCE_PEAK:g})")
    return x, fs


def score_item(item: Item) -> dict:
    """All metric columns of one utterance; never raises."""
    row: dict = {"id": item.uid}
    errors, nas = [], []
    for b in _BACKENDS.values():
        for c in b.columns:
            row[c] = float("nan")
    try:
        est, fs = _load(item.est, "estimate")
    except Exception as e:
        row["error"] = f"estimate: {e}"
        row["na"] = ""
        # a file that cannot be decoded (missing, not audio, NaN/Inf, cut off) is bad input; a
        # silent one is a (failed) system output, scored as such
        if not isinstance(e, SilentAudio):
            row["bad_input"] = f"{item.est or item.uid}: {e}"
        return row
    row["fs"], row["seconds"] = fs, round(len(est) / fs, 4)
    ref, ref_problem = None, None
    try:
        ref, rfs = _load(item.ref, "reference")
        if rfs != fs:
            ref, ref_problem = None, f"reference is {rfs} Hz, estimate {fs} Hz"
        elif len(ref) != len(est):
            ref, ref_problem = None, f"length mismatch: estimate {len(est)} samples, reference {len(ref)}"
    except Exception as e:
        ref_problem = f"reference: {e}"
        if item.ref and not isinstance(e, SilentAudio):
            row["bad_input"] = f"{item.ref}: {e}"
    if ref_problem and item.ref is not None:
        errors.append(ref_problem)
    elif ref_problem:
        nas.append("reference-based metrics: no reference given")
    for group, b in _BACKENDS.items():
        if group not in _SCORERS:
            if b.na_reason and b.na_reason.startswith("failed to load"):
                errors.append(f"{group}: {b.na_reason}")
            continue
        if group in registry.NEEDS_REF and ref is None:
            continue
        scorer = _SCORERS[group]
        try:
            if group in registry.NEEDS_REF:
                out = scorer(ref, est, fs, item.lang) if group == "LPS" else scorer(ref, est, fs)
            elif group == "CAcc":
                out = scorer(est, fs, item.text, item.lang)
            else:
                out = scorer(est, fs)
            for c, v in out.items():
                row[c] = float(v) if v is not None else float("nan")
                if not math.isfinite(row[c]):
                    errors.append(f"{c}: not a finite number")
        except NotApplicable as e:
            nas.append(f"{group}: {e}")
        except Exception as e:
            errors.append(f"{group}: {type(e).__name__}: {e}".replace("\n", " "))
    row["error"] = "; ".join(errors)
    row["na"] = "; ".join(nas)
    return row


# ---------------------------------------------------------------- the run
def evaluate(items: list[Item], groups, weights_dir, threads: int = 1) -> tuple[list[dict], dict[str, registry.Backend]]:
    """Score `items` with `threads` worker processes; rows in the order of `items`."""
    backends = registry.resolve_all(groups, weights_dir)
    for g, b in backends.items():
        if b.available:
            log.info("evaluate: %-10s %s (%s)%s", g, b.name, b.version, "" if b.paper else " [not the paper's backend]")
        else:
            log.warning("evaluate: %-10s n/a: %s", g, b.na_reason)
    order = sorted(range(len(items)), key=lambda i: -_size(items[i].est))
    rows: list[dict | None] = [None] * len(items)
    from use_repro.progress import progress

    if threads <= 1 or len(items) <= 1:
        init_worker(backends, 1)
        for i in progress(order, desc="evaluate", total=len(items)):
            rows[i] = score_item(items[i])
        backends = dict(_BACKENDS)
    else:
        import multiprocessing as mp

        ctx = mp.get_context("fork" if hasattr(os, "fork") else "spawn")
        with ctx.Pool(threads, initializer=init_worker, initargs=(backends, 1)) as pool:
            results = pool.imap_unordered(_score_indexed, [(i, items[i]) for i in order], chunksize=1)
            for i, row in progress(results, desc="evaluate", total=len(items)):
                rows[i] = row
    return [r for r in rows if r is not None], backends


def _score_indexed(arg):
    i, item = arg
    return i, score_item(item)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def columns_of(backends: dict[str, registry.Backend]) -> list[str]:
    cols = []
    for m in registry.RANKED_METRICS + registry.EXTRA_METRICS + ("CAcc_errors", "CAcc_chars"):
        if any(m in b.columns for b in backends.values()):
            cols.append(m)
    return cols


def summarize(rows: list[dict], backends: dict[str, registry.Backend]) -> dict:
    """Backends per column and averages (CAcc pooled), for the JSON beside the CSV."""
    import pandas as pd

    df = pd.DataFrame(rows)
    info = {"n_utterances": len(rows), "n_failed": int((df.get("error", pd.Series(dtype=str)).fillna("") != "").sum()),
            "backends": {}, "averages": {}, "counts": {}}
    for g, b in backends.items():
        for c in b.columns:
            if c in ("CAcc_errors", "CAcc_chars"):
                continue
            info["backends"][c] = b.describe()
            vals = pd.to_numeric(df[c], errors="coerce") if c in df else pd.Series(dtype=float)
            n = int(vals.notna().sum())
            errs = df["error"].fillna("").astype(str) if "error" in df else pd.Series(dtype=str)
            first = next((e for e in errs if f"{g}:" in e), "")
            if b.available and n == 0 and first:
                # A backend that scored nothing and failed (at load in a worker process, or on
                # every file) is n/a in the JSON, never labelled as the paper's backend.
                info["backends"][c] = {"backend": "n/a", "paper_backend": False,
                                       "reason": f"{b.name} failed on every utterance (first: {first[:300]})"}
            info["counts"][c] = n
            if c == "CAcc" and "CAcc_errors" in df:
                avg = pooled_cacc(df["CAcc_errors"], df["CAcc_chars"])
            else:
                avg = float(vals.mean()) if n else float("nan")
            info["averages"][c] = None if not math.isfinite(avg) else avg
    info["higher_is_better"] = {c: registry.HIGHER_IS_BETTER.get(c, True) for c in info["backends"]}
    return info


def write_outputs(rows: list[dict], backends, out: str | os.PathLike) -> dict:
    import pandas as pd

    from use_repro.fs import atomic_path, write_text_atomic

    cols = ["id", "fs", "seconds"] + columns_of(backends) + ["error", "na"]
    df = pd.DataFrame(rows).reindex(columns=cols)
    with atomic_path(out) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    info = summarize(rows, backends)
    write_text_atomic(Path(out).with_suffix(".json"), json.dumps(info, indent=2) + "\n")
    return info


# ---------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--est", required=True, help="enhanced audio: folder or scp")
    p.add_argument("--ref", help="reference audio: folder or scp (ids as --est)")
    p.add_argument("--meta", help="meta.tsv whose `text` column gives transcripts")
    p.add_argument("--utt2lang", help="`uid lang` lines (default: every utterance English)")
    p.add_argument("--text", help="`uid transcript` lines (overrides --meta)")
    p.add_argument("--out", required=True, help="CSV to write; the JSON goes beside it")
    p.add_argument("--metrics", nargs="+", default=None, metavar="M",
                   help=f"metric groups (default: the profile's evaluate.metrics, else all): {' '.join(registry.GROUPS)}")
    p.add_argument("--threads", type=int, default=1, help="worker processes (0: all cores)")
    p.add_argument("--weights-dir", default=None,
                   help="folder with paper-faithful weights (default: the profile's weights_dir, or ./weights)")
    p.add_argument("--config", help="profile name or YAML, for weights_dir and evaluate.* defaults")
    p.add_argument("--shard", type=parse_shard, default=None, metavar="k/K",
                   help="score only ids [k*n/K, (k+1)*n/K) of the sorted ids and write them, unrounded, to "
                        "--out as a shard file (pickle) that `use-repro gather evaluate` joins into the CSV "
                        "and JSON the unsharded run writes")



def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    weights_dir, metrics = args.weights_dir, args.metrics
    if args.config:
        from use_repro.stage_settings import EvaluateSettings, load

        # the profile's metric list only where the command is given none
        settings = load(EvaluateSettings, args.config, profile_metrics=metrics is None)
        weights_dir = weights_dir or settings.weights_dir
        metrics = metrics or settings.metrics
    weights_dir = weights_dir or "weights"
    args.metrics = metrics = metrics or list(registry.GROUPS)
    unknown = [m for m in args.metrics if m not in registry.GROUPS]
    if unknown:
        raise UsageError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(registry.GROUPS)}")
    items = build_items(args.est, args.ref, args.meta, args.utt2lang, args.text)
    if not items:
        raise UsageError(f"no audio found in {args.est}")
    try:
        check_references(items, args.metrics)
    except MissingReferencesError as e:  # before any scoring: nothing is written
        print(f"use-repro evaluate: --ref {args.ref}: {e}", file=sys.stderr)
        return 1
    if args.shard is not None:
        from use_repro.shards import select

        items = select(items, args.shard)  # build_items sorts by id
    threads = args.threads or os.cpu_count() or 1
    t0 = time.time()
    rows, backends = evaluate(items, args.metrics, weights_dir, threads)
    if args.shard is not None:
        from use_repro.shards import write_eval_shard

        write_eval_shard(args.out, rows, backends)  # the gather writes the CSV and JSON
        info = {"n_failed": sum(bool(r.get("error")) for r in rows), "averages": {}}
    else:
        info = write_outputs(rows, backends, args.out)
    audio_s = sum(r.get("seconds", 0) or 0 for r in rows)
    log.info("evaluate: %d utterances (%.1f s of audio) in %.1f s on %d worker(s); %d with errors -> %s",
             len(rows), audio_s, time.time() - t0, threads, info["n_failed"], args.out)
    for c, v in info["averages"].items():
        log.info("  %-11s %s", c, "n/a" if v is None else f"{v:.4f}")
    bad = [r["bad_input"] for r in rows if r.get("bad_input")]
    if bad:
        # everything else is scored and written; the exit status says some input was unusable
        print(f"use-repro evaluate: {len(bad)} of {len(rows)} input file(s) could not be used "
              f"(their rows in {args.out} hold the reason):", file=sys.stderr)
        for b in bad:
            print(f"  {b}", file=sys.stderr)
        return 1
    return 0
