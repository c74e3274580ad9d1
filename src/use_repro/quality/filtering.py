"""Score every training speech file with VQScore and filter the training list by threshold.

Files:
- `vqscore.tsv`: tab separated, header ``uid source score duration`` (duration in seconds,
  kept so the data-size table needs no second pass over the audio).
- `filtered/speech_train.<name>.scp`: the lines of the original list whose utterance passes
  threshold `<name>`, in the original order.
- `datasize.csv`: one row per threshold: ``threshold`` (its name), ``mode`` (score or keep),
  ``value`` (the score cut: the threshold itself, or the lowest score a kept fraction let in),
  ``keep`` (the fraction asked), ``utterances, hours, hours_fraction`` and, per source,
  ``<source>_utterances, <source>_hours``.

A threshold is either an absolute score (the paper's 0.50, 0.65, 0.72 for the released
estimator: utterances scoring below it are dropped) or a kept fraction (keep the best-scoring
utterances whose hours, or count, come nearest that fraction), which lets an
estimator trained here mirror the paper's cuts (2518 -> 2506 -> 629 hours: 100 %, 99.5 %, 25 %).
"""
from __future__ import annotations

import csv
import logging
import math
import re
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from use_repro.audio.io import AudioError, read_audio
from use_repro.batch import Failures
from use_repro.data.manifest import ScpEntry, write_scp
from use_repro.fs import atomic_path
from use_repro.progress import progress
from use_repro.quality.vqscore import VQScoreModel, magnitude, model_from_state, to_16k

log = logging.getLogger(__name__)

SCORE_COLUMNS = ("uid", "source", "score", "duration")


@dataclass(frozen=True)
class ScoreRow:
    uid: str
    source: str
    score: float
    duration: float  # seconds


# ---------------------------------------------------------------------------------------------
# Which source an utterance comes from
# ---------------------------------------------------------------------------------------------

def read_info_sources(path: str | Path) -> dict[str, str]:
    """uid -> source from the corpus's `speech_info.tsv` (columns include uid and source)."""
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if reader.fieldnames is None or not {"uid", "source"} <= set(reader.fieldnames):
            raise ValueError(f"{path.name} line 1: expected columns uid and source, got {reader.fieldnames}")
        return {row["uid"]: row["source"] for row in reader}


def source_resolver(pattern: str = "", field: str = "info",
                    info: dict[str, str] | None = None) -> Callable[[ScpEntry], str]:
    """A function entry -> source name.

    field `info`: the source the corpus recorded for the uid (`info`, from speech_info.tsv).
    field `uid` / `path`: `pattern` (a regex) is searched in the entry's uid or path; the source
    is the named group `source` if there is one, else group 1, else the whole match, lower-cased.
    An entry that cannot be resolved is an error naming it.
    """
    if field == "info":
        if info is None:
            raise ValueError("source field 'info' needs the corpus's speech_info.tsv (--info)")

        def from_info(entry: ScpEntry) -> str:
            try:
                return info[entry.uid]
            except KeyError:
                raise ValueError(f"{entry.uid}: not in speech_info.tsv, so its source is unknown") from None

        return from_info
    if field not in ("uid", "path"):
        raise ValueError(f"source field must be 'info', 'uid' or 'path', not {field!r}")
    rx = re.compile(pattern)

    def source_of(entry: ScpEntry) -> str:
        text = getattr(entry, field)
        m = rx.search(text)
        if not m:
            raise ValueError(f"{entry.uid}: source pattern {pattern!r} does not match its {field} {text!r} "
                             "(config keys vqscore.source_pattern, vqscore.source_field)")
        if "source" in rx.groupindex:
            name = m.group("source")
        else:
            name = m.group(1) if rx.groups else m.group(0)
        return name.lower()

    return source_of


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------

def prefetch(fn: Callable, items: Sequence, workers: int) -> Iterator[tuple[object, object]]:
    """Yield (item, fn(item) or the exception it raised), in order, with at most 2 x workers
    calls in flight on threads, so memory stays bounded however long the list is."""
    with ThreadPoolExecutor(max(1, workers)) as pool:
        pending: deque = deque()
        it = iter(items)
        for item in it:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) >= 2 * max(1, workers):
                break
        while pending:
            item, fut = pending.popleft()
            try:
                result = fut.result()
            except Exception as e:  # noqa: BLE001 - handed back to the caller as data
                result = e
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(fn, nxt)))
            yield item, result


def load_16k(entry: ScpEntry) -> tuple[np.ndarray, float]:
    """(16 kHz samples [T], duration in seconds at the native rate) of an scp entry."""
    x, fs = read_audio(entry.path)
    return to_16k(x, fs), len(x) / fs


def _score_one(model: VQScoreModel, entry: ScpEntry, device) -> tuple[float, float] | Exception:
    try:
        wav, seconds = load_16k(entry)
    except (AudioError, ValueError, RuntimeError) as e:
        return e
    with torch.no_grad():
        score = model.score_magnitude(magnitude(torch.from_numpy(wav).to(device)))
    return float(score[0]), seconds


_WORKER: dict = {}


def _worker_init(args: dict, state: dict) -> None:
    # One intra-op thread per process: processes scale over cores, where OpenMP threads
    # contending for the same cores spin and slow everything down.
    torch.set_num_threads(1)
    _WORKER["model"] = model_from_state(args, state)


def _worker_score(chunk: list[ScpEntry]) -> list:
    return [_score_one(_WORKER["model"], e, "cpu") for e in chunk]


def _chunks(items: Sequence, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield list(items[i:i + size])


def score_entries(model: VQScoreModel, entries: Sequence[ScpEntry], source_of: Callable[[ScpEntry], str],
                  workers: int = 1, device: str | torch.device = "cpu",
                  failures: Failures | None = None, chunk: int = 16) -> list[ScoreRow]:
    """VQScore of every entry, in list order. On CPU with `workers` > 1 the list is scored by
    that many processes (one thread each); otherwise here, on `device`. A file that cannot be
    read is recorded in `failures` and skipped."""
    import dataclasses
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    failures = failures if failures is not None else Failures("vqscore score")
    sources = [source_of(e) for e in entries]  # fail early on an unknown source
    model = model.to(device).eval()
    if workers > 1 and str(device) == "cpu" and len(entries) > chunk:
        state = {k: v.cpu() for k, v in model.state_dict().items()}
        pool = ProcessPoolExecutor(workers, mp.get_context("spawn"), initializer=_worker_init,
                                   initargs=(dataclasses.asdict(model.args), state))
        with pool:
            results = (r for part in pool.map(_worker_score, _chunks(entries, chunk)) for r in part)
            results = list(progress(results, desc="vqscore", total=len(entries)))
    else:
        results = [_score_one(model, e, device) for e in progress(entries, desc="vqscore", total=len(entries))]
    rows = []
    for entry, source, result in zip(entries, sources, results):
        if isinstance(result, Exception):
            failures.add(entry.uid, result)
            continue
        rows.append(ScoreRow(entry.uid, source, result[0], result[1]))
    return rows


def write_scores(path: str | Path, rows: Iterable[ScoreRow]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(SCORE_COLUMNS)
        for r in rows:
            w.writerow([r.uid, r.source, f"{r.score:.6f}", f"{r.duration:.3f}"])


def read_scores(path: str | Path) -> list[ScoreRow]:
    """Read `vqscore.tsv`; errors name the file and line."""
    path = Path(path)
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if header is None or list(header[:3]) != list(SCORE_COLUMNS[:3]):
            raise ValueError(f"{path.name} line 1: expected header {' '.join(SCORE_COLUMNS)}, got {header}")
        for lineno, fields in enumerate(reader, 2):
            if not fields:
                continue
            try:
                duration = float(fields[3]) if len(fields) > 3 else math.nan
                rows.append(ScoreRow(fields[0], fields[1], float(fields[2]), duration))
            except (IndexError, ValueError):
                raise ValueError(f"{path.name} line {lineno}: expected 'uid source score duration', "
                                 f"got {fields}") from None
    return rows


# ---------------------------------------------------------------------------------------------
# Thresholds
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Threshold:
    """One cut: `score` (drop utterances scoring below it) and/or `keep` (fraction to keep).
    Which one applies is the sweep's mode."""

    name: str
    score: float | None = None
    keep: float | None = None


def resolve_mode(mode: str, origin: str) -> str:
    """`auto` -> `score` for the released estimator (its scale is the paper's), `keep` for
    one trained here (its scores live on their own scale, so the paper's cuts are mirrored
    as fractions)."""
    if mode == "auto":
        return "score" if origin == "released" else "keep"
    if mode not in ("score", "keep"):
        raise ValueError(f"threshold mode must be auto, score or keep, not {mode!r}")
    return mode


def select(rows: Sequence[ScoreRow], threshold: Threshold, mode: str, keep_unit: str = "hours") -> tuple[set[str], float]:
    """The uids that pass and the score of the cut (the lowest score kept; -inf if none).

    mode `score`: keep score >= threshold.score.
    mode `keep`, unit `utterances`: keep exactly round(keep x N) best-scoring utterances.
    mode `keep`, unit `hours`: keep the best-scoring utterances whose total duration is
    nearest keep x the total (within half an utterance of it). Ties in score are broken by
    uid, so the cut is deterministic.
    """
    if mode == "score":
        if threshold.score is None:
            raise ValueError(f"threshold {threshold.name}: mode 'score' needs a score")
        kept = [r for r in rows if r.score >= threshold.score]
    elif mode == "keep":
        if threshold.keep is None or not 0.0 <= threshold.keep <= 1.0:
            raise ValueError(f"threshold {threshold.name}: mode 'keep' needs keep in [0, 1], got {threshold.keep}")
        ranked = sorted(rows, key=lambda r: (-r.score, r.uid))
        if keep_unit == "utterances":
            kept = ranked[: int(round(threshold.keep * len(ranked)))]
        elif keep_unit == "hours":
            durations = np.array([r.duration for r in ranked], dtype=np.float64)
            if not np.isfinite(durations).all():
                raise ValueError("keep_unit 'hours' needs the duration column of vqscore.tsv")
            target = threshold.keep * durations.sum()
            cum = np.concatenate([[0.0], np.cumsum(durations)])
            # the prefix whose total is nearest the target (the longer one on a tie)
            gap = np.abs(cum - target)
            n = int(np.flatnonzero(gap <= gap.min() + 1e-9 * max(1.0, target))[-1])
            kept = ranked[:n]
        else:
            raise ValueError(f"keep_unit must be 'hours' or 'utterances', not {keep_unit!r}")
    else:
        raise ValueError(f"mode must be 'score' or 'keep', not {mode!r}")
    cut = min((r.score for r in kept), default=-math.inf)
    return {r.uid for r in kept}, cut


def datasize_row(rows: Sequence[ScoreRow], kept: set[str], threshold: Threshold, mode: str, cut: float,
                 sources: Sequence[str]) -> dict:
    total_hours = sum(r.duration for r in rows) / 3600
    row = {"threshold": threshold.name, "mode": mode,
           "value": round(threshold.score if mode == "score" else cut, 6),
           "keep": "" if mode == "score" else threshold.keep}
    sel = [r for r in rows if r.uid in kept]
    hours = sum(r.duration for r in sel) / 3600
    row.update(utterances=len(sel), hours=round(hours, 6),
               hours_fraction=round(hours / total_hours, 6) if total_hours > 0 else 0.0)
    for s in sources:
        mine = [r for r in sel if r.source == s]
        row[f"{s}_utterances"] = len(mine)
        row[f"{s}_hours"] = round(sum(r.duration for r in mine) / 3600, 6)
    return row


def filter_sweep(rows: Sequence[ScoreRow], entries: Sequence[ScpEntry], thresholds: Sequence[Threshold],
                 mode: str, out_dir: str | Path, keep_unit: str = "hours",
                 lists: Sequence[str] | None = None, datasize: bool = True) -> list[dict]:
    """Write `filtered/speech_train.<name>.scp` per threshold and `datasize.csv` under
    `out_dir`; returns the data-size rows. Every entry must have a score.

    `lists`: the thresholds whose lists are written (None: every one); `datasize`: whether
    datasize.csv is. The DAG writes each list in its own job and the table in another, so an
    edit of one threshold rewrites only that threshold's list (and the table); each threshold's
    cut depends only on the scores and that threshold, so the files equal one job's."""
    out_dir = Path(out_dir)
    scored = {r.uid for r in rows}
    unscored = [e.uid for e in entries if e.uid not in scored]
    if unscored:
        raise ValueError(f"{len(unscored)} speech entries have no VQScore (first: {unscored[0]}); "
                         "score the same list you filter")
    in_list = {e.uid for e in entries}
    rows = [r for r in rows if r.uid in in_list]
    sources = sorted({r.source for r in rows})
    names = [th.name for th in thresholds]
    unknown = [n for n in (lists or ()) if n not in names]
    if unknown:
        raise ValueError(f"no threshold named {', '.join(unknown)}; the profile's thresholds: {', '.join(names)}")
    table = []
    for th in thresholds:
        if not datasize and lists is not None and th.name not in lists:
            continue
        kept, cut = select(rows, th, mode, keep_unit)
        if lists is None or th.name in lists:
            write_scp(out_dir / "filtered" / f"speech_train.{th.name}.scp", [e for e in entries if e.uid in kept])
        table.append(datasize_row(rows, kept, th, mode, cut, sources))
        log.info("threshold %s (%s): cut %.4f, kept %d utterances, %.3f h (%.1f %% of the hours)",
                 th.name, mode, table[-1]["value"], table[-1]["utterances"], table[-1]["hours"],
                 100 * table[-1]["hours_fraction"])
    if datasize:
        write_datasize(out_dir / "datasize.csv", table)
    return table


def write_datasize(path: str | Path, table: Sequence[dict]) -> None:
    columns = list(dict.fromkeys(k for row in table for k in row))
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        w.writerows(table)


# ---------------------------------------------------------------------------------------------
# Agreement with the corpus's ground truth
# ---------------------------------------------------------------------------------------------

def roc_auc(clean_scores: Sequence[float], dirty_scores: Sequence[float]) -> float:
    """Probability that a clean utterance outscores a dirty one (ties count one half): the
    area under the ROC curve of `score` as a detector of clean speech (Mann-Whitney U)."""
    a = np.asarray(clean_scores, dtype=np.float64)
    b = np.asarray(dirty_scores, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise ValueError(f"ROC AUC needs both classes (clean: {a.size}, dirty: {b.size})")
    both = np.concatenate([a, b])
    order = both.argsort(kind="mergesort")
    ranks = np.empty_like(both)
    ranks[order] = np.arange(1, both.size + 1)
    # average ranks of ties
    _, inverse, counts = np.unique(both, return_inverse=True, return_counts=True)
    sums = np.zeros(counts.size)
    np.add.at(sums, inverse, ranks)
    ranks = (sums / counts)[inverse]
    u = ranks[: a.size].sum() - a.size * (a.size + 1) / 2
    return float(u / (a.size * b.size))


def read_truth(path: str | Path) -> dict[str, tuple[int, str]]:
    """The corpus's `crowd_dirty.tsv` (header ``uid dirty kind``): uid -> (dirty 0/1, kind)."""
    path = Path(path)
    out = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        need = {"uid", "dirty"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise ValueError(f"{path.name} line 1: expected columns uid, dirty, kind; got {reader.fieldnames}")
        for lineno, row in enumerate(reader, 2):
            try:
                out[row["uid"]] = (int(row["dirty"]), row.get("kind") or "")
            except (TypeError, ValueError):
                raise ValueError(f"{path.name} line {lineno}: dirty must be 0 or 1, got {row.get('dirty')!r}") from None
    return out


def auc_report(rows: Sequence[ScoreRow], truth: dict[str, tuple[int, str]],
               sources: Sequence[str] | None = None) -> dict:
    """AUC of clean vs dirty among the scored utterances of `sources` that the ground truth
    lists (default: the sources holding a dirty utterance, i.e. the crowd-sourced one),
    overall and per kind of degradation (each kind against all clean ones)."""
    listed = [(r, *truth[r.uid]) for r in rows if r.uid in truth]
    if sources is None:
        sources = sorted({r.source for r, d, _ in listed if d == 1})
    listed = [(r.score, d, k) for r, d, k in listed if r.source in set(sources)]
    clean = [s for s, d, _ in listed if d == 0]
    dirty = [s for s, d, _ in listed if d == 1]
    report = {"auc": roc_auc(clean, dirty), "sources": list(sources), "clean": len(clean), "dirty": len(dirty),
              "clean_median": float(np.median(clean)), "dirty_median": float(np.median(dirty)), "by_kind": {}}
    for kind in sorted({k for _, d, k in listed if d == 1}):
        ks = [s for s, d, k in listed if d == 1 and k == kind]
        report["by_kind"][kind] = {"auc": roc_auc(clean, ks), "n": len(ks), "median": float(np.median(ks))}
    return report
