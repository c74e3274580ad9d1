"""Training data as torch Datasets: batch size 1, variable length, resumable order.

The paper trains with batch size 1 so every utterance keeps its own length and sampling rate
(8-48 kHz in one run). An item is a dict::

    {"id": str, "fs": int, "noisy": Tensor [T], "clean": Tensor [T]}

scaled together so that the noisy signal has unit RMS (the SEMamba/USEMamba input
normalisation; `enhance` applies the same scaling and undoes it on the output).

Order and crops are functions of (seed, draw number) only: `DrawSampler` yields `Draw(index,
seed)` for draws start, start+1, ... of this rank, and a dataset crops with `Draw.seed`. So a
resumed run that restarts the sampler at its checkpoint's step sees exactly the data an
uninterrupted run would have seen, whatever the number of loader workers.

Bad rows never stop a run. Before step 0 `checked_rows` decodes every file of every row (a
cache in the run folder keeps reruns fast) and drops, naming them in `skipped_rows.tsv` and the
log, rows whose audio is missing, empty, not audio, truncated, non-finite, multi-channel, at a
rate the model cannot use, shorter than one STFT window, or unlike its pair. A row that still
fails when drawn (its file changed since) is replaced by another row chosen from the draw's seed,
and appended to `skipped_rows.tsv`: the substitute is the same in a resumed run, which therefore
never dies where the interrupted one did.

Targets (columns of a rendered `meta.tsv`, see `use_repro.data.simulate`):
`early` -> `clean_path` (the challenge's early-reflected target), `shifted` ->
`clean_shifted_path`, `anechoic` -> `clean_anechoic_path`, `early<W>ms` -> `clean_early<W>ms_path`.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from use_repro.audio.io import SUPPORTED_RATES, AudioError, read_audio
from use_repro.data.manifest import read_meta, read_scp
from use_repro.seeding import derive_seed, rng_for

log = logging.getLogger(__name__)

_TARGET_RE = re.compile(r"^(early|shifted|anechoic|early\d+(\.\d+)?ms)$")


def target_column(target: str) -> str:
    """The meta.tsv column holding a training target's path (ValueError for an unknown target)."""
    from use_repro.data import targets

    if not _TARGET_RE.match(target):
        raise ValueError(f"unknown target {target!r}; expected early, shifted, anechoic or early<W>ms")
    return targets.target_column(target)


def speech_uids(speech_list: str | os.PathLike) -> set[str]:
    """The uids of a (VQScore-filtered) speech scp."""
    return {e.uid for e in read_scp(speech_list)}


def load_rows(meta_path: str | os.PathLike, target: str, speech_list: str | os.PathLike | None = None,
              limit: int | None = None, rejected: list[tuple[str, str]] | None = None) -> list[dict]:
    """Rows of `meta_path` usable for `target`: {"id", "fs", "noisy", "clean"} with resolved paths.

    Rows whose `speech_uid` is not in `speech_list` are skipped; so are rows without the target
    (`none`). With `limit`, the first `limit` rows in id order (a stable validation subset).
    With `rejected`, a malformed line (wrong field count, a rate that is not a number) is
    appended to it as ("<meta> line N", reason) instead of failing the whole file.
    """
    from use_repro.data.manifest import resolve_listed

    meta_path = Path(meta_path)
    col = target_column(target)
    rows = read_meta(meta_path, rejected=rejected)
    if rows and col not in rows[0]:
        raise ValueError(f"{meta_path}: no column {col} for target {target!r}; "
                         f"columns: {', '.join(rows[0])}")
    keep = speech_uids(speech_list) if speech_list else None
    out, skipped = [], 0
    for r in rows:
        if keep is not None and r["speech_uid"] not in keep:
            skipped += 1
            continue
        if r.get(col, "none") in ("", "none") or r.get("noisy_path", "none") in ("", "none"):
            skipped += 1
            continue
        try:
            fs = int(float(r["fs"]))
        except ValueError:
            if rejected is None:
                raise ValueError(f"{meta_path.name}: row {r['id']}: fs {r['fs']!r} is not a number") from None
            rejected.append((r["id"], f"{meta_path.name}: fs {r['fs']!r} is not a number"))
            continue
        out.append({"id": r["id"], "fs": fs,
                    "noisy": resolve_listed(r["noisy_path"], meta_path),
                    "clean": resolve_listed(r[col], meta_path)})
    if keep is not None:
        log.info("%s: %d rows kept, %d skipped by the speech list %s", meta_path, len(out), skipped, speech_list)
    if not out:
        raise ValueError(f"{meta_path}: no usable rows for target {target!r}"
                         + (f" with speech list {speech_list}" if speech_list else ""))
    if limit is not None:
        out = sorted(out, key=lambda r: r["id"])[:limit]
    return out


SKIP_RECORD = "skipped_rows.tsv"    # in the run folder: id, when, reason
CHECK_CACHE = "audio_check.json"    # in the run folder: verdicts of full reads (see audiocheck)
SKIP_COLUMNS = ("id", "when", "reason")
BEFORE_START = "before step 0"


def row_problem(row: dict, cache) -> str | None:
    """Why `row` ({"id", "fs", "noisy", "clean"}) cannot be trained on, or None."""
    from use_repro.audio.stft import STFTError, stft_config

    try:
        noisy, clean = cache.check(row["noisy"]), cache.check(row["clean"])
    except AudioError as e:
        return str(e)
    for name, path, f in (("noisy", row["noisy"], noisy), ("target", row["clean"], clean)):
        if f.channels != 1:
            return f"{name} {path}: {f.channels} channels (training pairs are mono)"
    if (noisy.fs, noisy.frames) != (clean.fs, clean.frames):
        return (f"noisy {row['noisy']} ({noisy.fs} Hz, {noisy.frames} samples) and target {row['clean']} "
                f"({clean.fs} Hz, {clean.frames} samples) differ")
    if noisy.fs != row["fs"]:
        return f"noisy {row['noisy']}: file is {noisy.fs} Hz but meta.tsv says {row['fs']} Hz"
    lo, hi = min(SUPPORTED_RATES), max(SUPPORTED_RATES)
    if not lo <= noisy.fs <= hi:
        return f"noisy {row['noisy']}: {noisy.fs} Hz is outside the {lo}-{hi} Hz the model is trained for"
    try:
        n_fft = stft_config(noisy.fs)[0]
    except STFTError as e:
        return f"noisy {row['noisy']}: {e}"
    if noisy.frames < n_fft:  # the model's STFT needs one whole window
        return f"noisy {row['noisy']}: {noisy.frames} samples, shorter than one STFT window ({n_fft} at {noisy.fs} Hz)"
    return None


def _read_skip_record(path: Path) -> list[tuple[str, str, str]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) == len(SKIP_COLUMNS):
            out.append(tuple(parts))
    return out


def checked_rows(rows: list[dict], run_dir: str | os.PathLike | None, source: str | os.PathLike = "meta.tsv",
                 record: str = SKIP_RECORD, rejected: list[tuple[str, str]] = ()) -> list[dict]:
    """The rows whose audio can be trained on (see `row_problem`); the others, and the
    (id, reason) pairs `load_rows` already `rejected` (malformed lines), are logged and written
    to `run_dir/record` (kept there: the records of rows that failed when drawn in earlier
    attempts). ValueError when no row is left."""
    from use_repro.data.audiocheck import AudioCheckCache
    from use_repro.fs import atomic_path

    run_dir = Path(run_dir) if run_dir else None
    cache = AudioCheckCache(run_dir / CHECK_CACHE if run_dir else None)
    good, bad = [], [(i, BEFORE_START, why.replace("\t", " ").replace("\n", " ")) for i, why in rejected]
    try:
        for r in rows:
            why = row_problem(r, cache)
            if why is None:
                good.append(r)
            else:
                bad.append((r["id"], BEFORE_START, why.replace("\t", " ").replace("\n", " ")))
    finally:
        cache.save()
    if run_dir is not None:
        earlier = [x for x in _read_skip_record(run_dir / record) if x[1] != BEFORE_START]
        with atomic_path(run_dir / record) as tmp:
            tmp.write_text("\t".join(SKIP_COLUMNS) + "\n" + "".join("\t".join(x) + "\n" for x in bad + earlier),
                           encoding="utf-8")
    if bad:
        head = "; ".join(f"{i}: {why}" for i, _, why in bad[:5])
        log.warning("%s: %d of %d row(s) skipped before step 0 (listed in %s): %s%s", source, len(bad),
                    len(rows) + len(rejected),
                    run_dir / record if run_dir else "the log", head, f" (+{len(bad) - 5} more)" if len(bad) > 5 else "")
    if not good:
        raise ValueError(f"{source}: no row can be trained on; {len(bad)} rejected, first: {bad[0][0]}: {bad[0][2]}"
                         if bad else f"{source}: no rows")
    return good


@dataclass(frozen=True)
class Draw:
    """One item request: which row, and the seed of its random crop."""
    index: int
    seed: int


class DrawSampler(Sampler):
    """Endless, resumable order: epoch e is a permutation seeded by (seed, e).

    Global draw g = k * world + rank for this rank's k-th item, so ranks share out each epoch.
    """

    def __init__(self, n: int, seed: int, start: int = 0, rank: int = 0, world: int = 1,
                 shuffle: bool = True):
        if n <= 0:
            raise ValueError("DrawSampler: empty dataset")
        self.n, self.seed, self.start, self.rank, self.world, self.shuffle = n, seed, start, rank, world, shuffle
        self._perm_epoch, self._perm = -1, None

    def draw(self, k: int) -> Draw:
        g = k * self.world + self.rank
        epoch, pos = divmod(g, self.n)
        if epoch != self._perm_epoch:
            self._perm_epoch = epoch
            self._perm = (rng_for(self.seed, "epoch", epoch).permutation(self.n) if self.shuffle
                          else np.arange(self.n))
        return Draw(int(self._perm[pos]), derive_seed(self.seed, "draw", g))

    def __iter__(self) -> Iterator[Draw]:
        k = self.start
        while True:
            yield self.draw(k)
            k += 1


def unit_rms_gain(x: np.ndarray, eps: float = 1e-8) -> float:
    """The gain that brings `x` to unit RMS (the model's input scaling)."""
    return float(1.0 / np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2) + eps))


def normalize_pair(noisy: np.ndarray, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale both so the noisy signal has unit RMS."""
    g = unit_rms_gain(noisy)
    return (noisy * g).astype(np.float32), (clean * g).astype(np.float32)


def crop(n: int, seg: int | None, seed: int) -> tuple[int, int]:
    """[start, stop) of a random segment of `seg` samples (the whole signal when shorter)."""
    if seg is None or n <= seg:
        return 0, n
    start = int(np.random.default_rng(seed).integers(0, n - seg + 1))
    return start, start + seg


def substitute_order(draw: Draw, n: int, substitutes: int) -> list[int]:
    """`draw.index`, then up to `substitutes` other indices in an order fixed by the draw's seed
    (the same in every process and every resumed run)."""
    order = [draw.index]
    if n > 1:
        others = rng_for(draw.seed, "substitute").permutation(n)
        order += [int(i) for i in others if i != draw.index][:substitutes]
    return order


def append_skip(record: Path | None, item_id: str, when: str, reason: str) -> None:
    """Log a training item skipped mid-run and append it to `record` (a skipped_rows.tsv)."""
    reason = reason.replace("\t", " ").replace("\n", " ")
    log.warning("training item %s skipped (%s): %s", item_id, when, reason)
    if record is None:
        return
    # one short O_APPEND write per line: loader workers in other processes may append too
    line = f"{item_id}\t{when}\t{reason}\n".encode()
    new = not record.exists()
    fd = os.open(record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, ("\t".join(SKIP_COLUMNS) + "\n").encode() + line if new else line)
    finally:
        os.close(fd)


class MetaDataset(Dataset):
    """Rendered noisy/target pairs from a meta.tsv. Index with a `Draw` (or an int: no crop).

    A row that fails when read is replaced by another, chosen from the draw's seed (so a resumed
    run sees the same substitute), and appended to `skip_record` when given.
    """

    substitutes = 8  # rows tried in place of a failing one before the draw is given up

    def __init__(self, rows: list[dict], segment_seconds: float | None = None, normalize: bool = True,
                 skip_record: str | os.PathLike | None = None, segment_max_rate: int | None = None):
        self.rows = rows
        self.segment_seconds = segment_seconds if segment_seconds and segment_seconds > 0 else None
        self.segment_max_rate = segment_max_rate or None
        self.normalize = normalize
        self.skip_record = Path(skip_record) if skip_record else None

    def __len__(self) -> int:
        return len(self.rows)

    def read_pair(self, index: int) -> tuple[np.ndarray, np.ndarray, int]:
        row = self.rows[index]
        noisy, fs = read_audio(row["noisy"])
        clean, fs_c = read_audio(row["clean"])
        if fs != fs_c or abs(len(noisy) - len(clean)) > 0:
            raise ValueError(f"row {row['id']}: noisy {row['noisy']} ({fs} Hz, {len(noisy)} samples) and "
                             f"target {row['clean']} ({fs_c} Hz, {len(clean)} samples) differ")
        return noisy, clean, fs

    def __getitem__(self, key: Draw | int) -> dict:
        draw = key if isinstance(key, Draw) else Draw(int(key), 0)
        order = substitute_order(draw, len(self.rows), self.substitutes)
        errors = []
        for index in order:
            try:
                noisy, clean, fs = self.read_pair(index)
            except (AudioError, ValueError, OSError) as e:
                errors.append(str(e))
                append_skip(self.skip_record, self.rows[index]["id"], f"read at draw seed {draw.seed}", str(e))
                continue
            crop_seed = draw.seed if isinstance(key, Draw) else None
            return make_item(self.rows[index]["id"], fs, noisy, clean, self.segment_seconds, crop_seed,
                             self.normalize, self.segment_max_rate)
        raise ValueError(f"row {self.rows[draw.index]['id']} and {len(order) - 1} substitute(s) failed: "
                         + "; ".join(errors))


class SimulatedDataset(Dataset):
    """On-the-fly simulation: every draw samples a new row for speech item `Draw.index` with the
    sampler of `use-repro simulate params` (seeded by `Draw.seed`) and renders it in memory.

    `speech`: `params.SpeechItem`s; `noise`, `rir`, `wind`: `ScpEntry` lists (reused freely);
    `sim`: `params.SimConfig`. The target must be one the simulation renders (for `early<W>ms`,
    W must be in `simulation.early_windows_ms`).
    """

    attempts = 5  # a draw whose row cannot be rendered (no noise at that rate, ...) is redrawn
    # a speech item none of whose attempts renders is replaced, as MetaDataset replaces a row

    def __init__(self, speech: list, noise: list, rir: list, wind: list, sim, target: str,
                 segment_seconds: float | None = None, normalize: bool = True,
                 skip_record: str | os.PathLike | None = None, segment_max_rate: int | None = None):
        from use_repro.data.render import RenderSettings, Sources
        from use_repro.data.targets import target_names

        names = target_names(sim.early_windows_ms)
        if target not in names:
            raise ValueError(f"target {target!r} is not rendered by this simulation config (targets: {', '.join(names)})")
        if not speech or not noise:
            raise ValueError("on-the-fly simulation needs speech and noise manifests")
        self.speech, self.noise, self.rir, self.wind, self.sim = list(speech), list(noise), list(rir), list(wind), sim
        self.target = target
        self.segment_seconds = segment_seconds if segment_seconds and segment_seconds > 0 else None
        self.segment_max_rate = segment_max_rate or None
        self.normalize = normalize
        self.skip_record = Path(skip_record) if skip_record else None
        self.settings = RenderSettings.from_sim(sim)
        self.sources = Sources({e.uid: e.path for e in speech}, {e.uid: e.path for e in [*noise, *wind]},
                               {e.uid: e.path for e in rir})

    def __len__(self) -> int:
        return len(self.speech)

    def __getitem__(self, key: Draw | int) -> dict:
        from use_repro.data.params import sample_row
        from use_repro.data.render import render_row

        draw = key if isinstance(key, Draw) else Draw(int(key), derive_seed("otf", int(key)))
        failed = []
        for k, index in enumerate(substitute_order(draw, len(self.speech), MetaDataset.substitutes)):
            item = self.speech[index]
            base = draw.seed if k == 0 else derive_seed(draw.seed, "substitute", k)
            errors = []
            for attempt in range(self.attempts):
                seed = base if attempt == 0 else derive_seed(base, "retry", attempt)
                row_id = f"otf_{seed}"
                try:
                    row = sample_row(rng_for(seed, "simulate.otf"), item, self.noise, self.rir or None,
                                     self.wind or None, self.sim, row_id=row_id)
                    out = render_row(row, self.sources, self.settings)
                except (ValueError, OSError) as e:  # RowError and AudioError are ValueErrors
                    errors.append(str(e))
                    continue
                return make_item(row_id, item.fs, out["noisy"].astype(np.float32),
                                 out[self.target].astype(np.float32), self.segment_seconds, seed, self.normalize,
                                 self.segment_max_rate)
            # e.g. a damaged speech file: every row of it fails, so another speech item stands in
            reason = f"no renderable row in {self.attempts} draws: {'; '.join(errors)}"
            append_skip(self.skip_record, item.uid, f"rendered at draw seed {draw.seed}", reason)
            failed.append(f"speech {item.uid}: {reason}")
        raise ValueError(" | ".join(failed))


def segment_samples(segment_seconds: float, fs: int, max_rate: int | None = None) -> int:
    """Samples in a training crop: `segment_seconds` of audio, or with `max_rate` at most
    `segment_seconds * max_rate` samples, so a crop above that rate is shorter in time.

    Why: the model's time-frequency grid has as many bins as the rate allows (the STFT's window
    is fixed in milliseconds), so a step's compute grows with seconds x rate; capping the samples
    makes a step cost about the same at every rate above `max_rate`."""
    rate = min(fs, max_rate) if max_rate else fs
    return int(round(segment_seconds * rate))


def make_item(uid: str, fs: int, noisy: np.ndarray, clean: np.ndarray, segment_seconds: float | None,
              crop_seed: int | None, normalize: bool = True, segment_max_rate: int | None = None) -> dict:
    """Crop (when `crop_seed` is given and the pair is longer than the cap; see `segment_samples`)
    and normalise a pair."""
    seg = (segment_samples(segment_seconds, fs, segment_max_rate)
           if segment_seconds and crop_seed is not None else None)
    a, b = crop(len(noisy), seg, crop_seed or 0)
    noisy, clean = noisy[a:b], clean[a:b]
    if normalize:
        noisy, clean = normalize_pair(noisy, clean)
    return {"id": uid, "fs": int(fs), "noisy": torch.from_numpy(np.ascontiguousarray(noisy)),
            "clean": torch.from_numpy(np.ascontiguousarray(clean))}


def loader(dataset: Dataset, sampler: Sampler, num_workers: int = 0) -> Iterator[dict]:
    """Items in the sampler's order, prefetched by `num_workers` processes (0: in this process)."""
    from torch.utils.data import DataLoader

    return iter(DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=num_workers,
                           persistent_workers=False, prefetch_factor=2 if num_workers else None))


def batches_from(dataset: Dataset, seed: int, rank: int = 0, world: int = 1,
                 num_workers: int = 0) -> Callable[[int], Iterator[dict]]:
    """`start -> iterator` over this rank's items from draw `start` on (what `Trainer` wants)."""
    def make(start: int) -> Iterator[dict]:
        return loader(dataset, DrawSampler(len(dataset), seed, start, rank, world), num_workers)
    return make
