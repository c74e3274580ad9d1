"""Enhance files, folders or scp lists with a trained checkpoint (regression or two-stage GAN).

    use-repro enhance --checkpoint CKPT --in FILE|DIR|SCP [--in ...] --out DIR
                      [--threads N] [--chunk-seconds S] [--overlap-seconds O] [--device auto|cpu|cuda]

- Inputs: an audio file, a folder (searched recursively for .flac/.wav/.ogg/.mp3/.aiff), or an
  URGENT scp list (``uid fs path`` per line, suffix .scp). Outputs keep the input's relative path
  (folders), its file name (files) or ``<uid>.flac`` (scp lists) under `--out`; FLAC and WAV keep
  their format and sample encoding, other formats are written as FLAC. `--out/enhanced.scp` lists
  every finished output as ``uid fs path`` (uid: the scp's uid, else the file's stem, or its
  relative path when stems repeat in a folder) and `--out/enhance_failures.tsv` every failure.
- Any rate 8-48 kHz goes through the same model (sampling-frequency-independent STFT); rates it
  cannot represent directly are resampled to the nearest rate above that it can, and back.
  The output has the input's rate, length and channel count (channels are enhanced one by one).
- Long files are enhanced in chunks of `--chunk-seconds` that overlap by `--overlap-seconds`,
  cross-faded (cos^2/sin^2 ramps summing to one) over each overlap.
- Resumable: an output that already exists is skipped (outputs are written to a temp file and
  renamed, so an existing one is complete). An output path that is one of the inputs is refused.
- A file that cannot be read or enhanced is reported and skipped; the command ends with a summary
  and exit status 1 when anything failed (0 otherwise).

This is also the tool for cleaning TTS training data (paper Section 3.9).
"""
from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import torch

from use_repro.audio.io import AudioError, read_audio, write_audio
from use_repro.audio.resample import resample
from use_repro.batch import Failures
from use_repro.data.manifest import read_scp, write_scp
from use_repro.data.render import resolve_path
from use_repro.fs import refuse_overwrite

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = {".flac", ".wav", ".ogg", ".mp3", ".aiff", ".aif"}
KEEP_FORMAT = {".flac", ".wav"}
MIN_RATE, MAX_RATE = 8000, 48000

# A model callable: normalised waveform [1, T] at `fs` -> enhanced waveform [1, T].
WaveFn = Callable[[torch.Tensor, int], torch.Tensor]


# --- the model as a waveform function --------------------------------------------------------

def load_enhancer(checkpoint: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load the `final.pt` of a `use-repro train` run (a USEMamba or a two-stage model), in eval mode."""
    from use_repro.models.checkpoint import load_model

    model = load_model(checkpoint, map_location=device)
    return model.to(device).eval()


def wave_fn(model: torch.nn.Module) -> WaveFn:
    """The model as `[1, T] -> [1, T]` at any supported rate (both model kinds share the API)."""
    def run(x: torch.Tensor, fs: int) -> torch.Tensor:
        return model.enhance_waveform(x, fs)
    return run


def model_rate(fs: int) -> int:
    """The rate the model runs at for input rate `fs` (fs itself when the SFI STFT supports it)."""
    from use_repro.audio.stft import STFTError, stft_config
    from use_repro.audio.io import SUPPORTED_RATES

    clipped = min(max(int(fs), MIN_RATE), MAX_RATE)
    try:
        stft_config(clipped)
        return clipped
    except STFTError:
        return min(r for r in SUPPORTED_RATES if r >= clipped)


# --- chunked, normalised enhancement of one signal --------------------------------------------

def chunk_spans(n: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    """[start, stop) spans of at most `chunk` samples covering [0, n), consecutive ones
    overlapping by at least `overlap` (the last span is pulled back to end exactly at n)."""
    if chunk <= 0 or n <= chunk:
        return [(0, n)]
    overlap = min(max(0, overlap), chunk // 2)
    step = chunk - overlap
    spans = []
    start = 0
    while start + chunk < n:
        spans.append((start, start + chunk))
        start += step
    spans.append((n - chunk, n))
    return spans


def crossfade_weights(spans: list[tuple[int, int]]) -> list[np.ndarray]:
    """Per-span weights that sum to exactly one at every sample (cos^2 / sin^2 ramps over overlaps)."""
    out = []
    for i, (a, b) in enumerate(spans):
        w = np.ones(b - a, dtype=np.float64)
        if i > 0:  # ramp up over the overlap with the previous span
            L = spans[i - 1][1] - a
            if L > 0:
                w[:L] = np.sin(0.5 * np.pi * (np.arange(L) + 0.5) / L) ** 2
        if i + 1 < len(spans):  # ramp down over the overlap with the next span
            L = b - spans[i + 1][0]
            if L > 0:
                w[-L:] = np.cos(0.5 * np.pi * (np.arange(L) + 0.5) / L) ** 2
        out.append(w)
    return out


def normalized_call(fn: WaveFn, x: np.ndarray, fs: int, device: torch.device) -> np.ndarray:
    """Scale `x` [T] to unit RMS (as in training), run the model, undo the scaling."""
    from use_repro.data.dataset import unit_rms_gain

    g = unit_rms_gain(x)
    t = torch.from_numpy(np.ascontiguousarray(x * g, dtype=np.float32)).to(device)[None]
    with torch.inference_mode():
        y = fn(t, fs)[0].float().cpu().numpy()
    if y.shape[0] != x.shape[0]:
        raise RuntimeError(f"model returned {y.shape[0]} samples for {x.shape[0]}")
    return (y / g).astype(np.float32)


def enhance_signal(fn: WaveFn, x: np.ndarray, fs: int, device: torch.device | str = "cpu",
                   chunk_seconds: float = 30.0, overlap_seconds: float = 1.0) -> np.ndarray:
    """Enhance a mono signal `x` [T] at `fs` Hz -> [T] at `fs` Hz (chunked, cross-faded)."""
    device = torch.device(device)
    run_fs = model_rate(fs)
    y_in = resample(x, fs, run_fs) if run_fs != fs else np.asarray(x, dtype=np.float32)
    n = y_in.shape[0]
    chunk = int(round(chunk_seconds * run_fs)) if chunk_seconds and chunk_seconds > 0 else 0
    spans = chunk_spans(n, chunk, int(round(overlap_seconds * run_fs)))
    out = np.zeros(n, dtype=np.float64)
    for (a, b), w in zip(spans, crossfade_weights(spans)):
        out[a:b] += w * normalized_call(fn, y_in[a:b], run_fs, device)
    out = out.astype(np.float32)
    if run_fs != fs:
        out = resample(out, run_fs, fs)
        out = np.pad(out, (0, max(0, len(x) - len(out))))[: len(x)]
    return out


# --- jobs: which input goes to which output ---------------------------------------------------

@dataclass(frozen=True)
class Job:
    uid: str
    src: Path
    dst: Path


def _output_suffix(src: Path) -> str:
    return src.suffix.lower() if src.suffix.lower() in KEEP_FORMAT else ".flac"


def collect_jobs(inputs: list[str], out_dir: Path) -> list[Job]:
    """Expand files, folders and scp lists into (uid, source, destination) jobs."""
    jobs: list[Job] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = [f for f in sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in AUDIO_SUFFIXES)
                     if out_dir.resolve() not in f.resolve().parents]  # not our own earlier outputs
            # uid = file stem (the simulation's row id), or the relative path where stems repeat
            stems = [f.stem for f in files]
            unique = len(set(stems)) == len(stems)
            for f in files:
                rel = f.relative_to(p)
                uid = f.stem if unique else rel.with_suffix("").as_posix()
                jobs.append(Job(uid, f, (out_dir / rel).with_suffix(_output_suffix(f))))
        elif p.suffix.lower() == ".scp":
            for e in read_scp(p):
                src = Path(resolve_path(e.path, p))  # as written, else relative to the list
                jobs.append(Job(e.uid, src, out_dir / f"{e.uid}{_output_suffix(src)}"))
        else:  # a single file; a missing one becomes a reported failure, not a crash
            jobs.append(Job(p.stem, p, out_dir / f"{p.stem}{_output_suffix(p)}"))
    seen: dict[Path, str] = {}
    for j in jobs:
        if j.dst in seen:
            raise ValueError(f"inputs {seen[j.dst]!r} and {j.uid!r} would both be written to {j.dst}")
        seen[j.dst] = j.uid
    return jobs


def enhance_file(fn: WaveFn, job: Job, device: torch.device, chunk_seconds: float,
                 overlap_seconds: float) -> int:
    """Enhance one file into `job.dst`; returns its sampling rate."""
    x, fs = read_audio(job.src, mono=False, always_2d=True)
    if not MIN_RATE <= fs <= MAX_RATE:
        log.warning("%s: %d Hz is outside 8-48 kHz; enhancing at %d Hz and resampling back",
                    job.src, fs, model_rate(fs))
    y = np.stack([enhance_signal(fn, x[:, c], fs, device, chunk_seconds, overlap_seconds)
                  for c in range(x.shape[1])], axis=1)
    subtype = None
    if job.dst.suffix.lower() == job.src.suffix.lower():
        subtype = sf.info(str(job.src)).subtype
    write_audio(job.dst, y[:, 0] if y.shape[1] == 1 else y, fs, subtype=subtype)
    return fs


def enhance_jobs(fn: WaveFn, jobs: list[Job], out_dir: Path, device: torch.device | str = "cpu",
                 chunk_seconds: float = 30.0, overlap_seconds: float = 1.0) -> int:
    """Run every job (skipping finished ones); returns the exit status (1 if any failed)."""
    from use_repro.progress import progress

    device = torch.device(device)
    inputs = {j.src.resolve() for j in jobs}
    failures = Failures("enhance")
    done: list[tuple[str, int, str]] = []
    skipped = 0
    for job in progress(jobs, desc="enhance", total=len(jobs)):
        try:
            refuse_overwrite(job.dst, inputs)
            if job.dst.exists():
                skipped += 1
                fs = sf.info(str(job.dst)).samplerate
            else:
                fs = enhance_file(fn, job, device, chunk_seconds, overlap_seconds)
            done.append((job.uid, fs, str(job.dst)))
        except (AudioError, FileExistsError, RuntimeError, ValueError, OSError, sf.LibsndfileError) as e:
            failures.add(job.uid, e)
    if skipped:
        log.info("enhance: %d output(s) already existed and were kept", skipped)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_scp(out_dir / "enhanced.scp", done)
    failures.write(out_dir / "enhance_failures.tsv")
    return failures.exit_status(total=len(jobs))


# --- CLI --------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="final.pt of `use-repro train` (regression or gan)")
    parser.add_argument("--in", dest="inputs", required=True, action="append",
                        help="audio file, folder or .scp list (repeatable)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--chunk-seconds", type=float, default=30.0,
                        help="enhance longer files in chunks of this length (0: whole files)")
    parser.add_argument("--overlap-seconds", type=float, default=1.0, help="overlap between chunks")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")


def run(args: argparse.Namespace) -> int:
    from use_repro.train.distributed import pick_device

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    out_dir = Path(args.out)
    model = load_enhancer(args.checkpoint, device)
    jobs = collect_jobs(args.inputs, out_dir)
    log.info("enhance: %d file(s) with %s on %s", len(jobs), args.checkpoint, device)
    return enhance_jobs(wave_fn(model), jobs, out_dir, device, args.chunk_seconds, args.overlap_seconds)
