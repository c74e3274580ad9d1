"""Enhance files, folders or scp lists with a trained checkpoint (regression or two-stage GAN).

    use-repro enhance --checkpoint CKPT --in FILE|DIR|SCP [--in ...] --out DIR
                      [--threads N] [--chunk-seconds S] [--overlap-seconds O] [--device auto|cpu|cuda]

- Inputs: an audio file, a folder (searched recursively; every file libsndfile reads, whatever
  its suffix or case: FLAC, WAV, Ogg/Opus, MP3, AIFF, CAF, ...), or an URGENT scp list (``uid fs
  path`` per line, suffix .scp). A folder's other files are named in `enhance_skipped.tsv` and the
  log; an audio container libsndfile cannot decode (.m4a, .aac, ...) is a failure with a hint.
- Uids are valid URGENT uids and unique (case-insensitively) whatever the file names: the scp's
  uid, else the file's stem, else (stems repeat) its relative path joined by "-", else that plus
  its extension (`a.wav` beside `a.flac`), spaces and separators becoming "_". Every output is
  `--out/<uid><ext>`; FLAC and WAV keep their format and sample encoding, others become FLAC.
- `--out/enhanced.tsv` maps each uid to its output, its original source file and the sha256 of
  the checkpoint that made it; `--out/enhanced.scp` lists every output as ``uid fs path``. Both
  are merged with what --out already holds, so runs over several inputs add up.
- Any rate 8-48 kHz goes through the same model (sampling-frequency-independent STFT); rates it
  cannot represent directly are resampled to the nearest rate above that it can, and back.
  The output has the input's rate, length and channel count (channels are enhanced one by one).
- Long files are enhanced in chunks of `--chunk-seconds` that overlap by `--overlap-seconds`,
  cross-faded (cos^2/sin^2 ramps summing to one) over each overlap.
- Resumable: an output is kept only when the same checkpoint made it from the same, unchanged
  source; an output another checkpoint made is replaced (or removed, if its source is not in
  this run). Each finished file is journalled as it completes and the lists are written even
  when the run fails, so nothing done is lost.
- Inputs are never overwritten: an --out that is, or lies inside, an input folder is refused
  (exit 2) before anything runs, and an output path that is one of the inputs is a failure.
- A file that cannot be read or enhanced is reported (`enhance_failures.tsv`) and skipped; the
  command ends with a summary and exit status 1 when anything failed (0 otherwise).

This is also the tool for cleaning TTS training data (paper Section 3.9).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import torch

from use_repro.audio.io import AudioError, read_audio, write_audio
from use_repro.audio.resample import resample
from use_repro.audio.stft import stft_config
from use_repro.batch import Failures
from use_repro.data.audiocheck import check_audio
from use_repro.data.manifest import write_scp
from use_repro.data.render import resolve_path
from use_repro.fs import atomic_path, refuse_overwrite

log = logging.getLogger(__name__)

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

# Suffixes that name audio formats libsndfile reads (its own list plus common aliases). A file with
# one of them becomes a job (a damaged one is a reported failure); a file with another suffix is
# still probed, so any file libsndfile can read is enhanced whatever its name.
SNDFILE_SUFFIXES = {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc",
                    ".au", ".snd", ".caf", ".w64", ".rf64", ".sd2", ".voc", ".paf", ".iff", ".svx",
                    ".nist", ".sph", ".wve", ".mat", ".mat4", ".mat5", ".pvf", ".xi", ".htk", ".sf",
                    ".ircam", ".avr", ".sds", ".mpc"}
# Audio containers libsndfile cannot decode: named as failures (the user asked for them to be
# enhanced and they were not), with a conversion hint.
FOREIGN_AUDIO = {".m4a", ".aac", ".mp4", ".wma", ".amr", ".ape", ".alac", ".webm", ".mka", ".3gp", ".wv"}

MANIFEST = "enhanced.tsv"          # uid -> output, source, checkpoint digest (the mapping file)
JOURNAL = "enhance_journal.tsv"    # appended per finished file; folded into the lists at the end
MANIFEST_COLUMNS = ("uid", "fs", "path", "source", "source_size", "source_mtime_ns", "checkpoint")
_UNSAFE = re.compile(r"[\s/\\:*?\"<>|\x00-\x1f]+")


class EnhanceSetupError(ValueError):
    """Arguments that cannot work (e.g. --out equal to or inside an input folder)."""


@dataclass(frozen=True)
class Job:
    uid: str
    src: Path
    dst: Path


@dataclass(frozen=True)
class Candidate:
    """An input file before its uid is fixed: uid candidates from most to least preferred."""
    src: Path
    names: tuple[str, ...]
    fixed: bool = False  # an scp uid: used as given (made unique only if two lists repeat it)


def safe_uid(name: str) -> str:
    """`name` as a valid URGENT uid and file name: no whitespace, separators or control
    characters (each run of them becomes "_"), no leading dot (a hidden file)."""
    uid = _UNSAFE.sub("_", name).lstrip(".")
    return uid or "utt"


def checkpoint_digest(path: str | os.PathLike) -> str:
    """sha256 of a checkpoint file, or of every file of a checkpoint folder (names and bytes,
    in sorted order): what `enhanced.tsv` records as the maker of each output."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(q for q in path.rglob("*") if q.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _output_suffix(src: Path) -> str:
    return src.suffix.lower() if src.suffix.lower() in KEEP_FORMAT else ".flac"


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_layout(inputs: list[str], out_dir: Path) -> None:
    """Refuse an --out that is an input folder or lies inside one (outputs would mix with, and
    could replace, the inputs), or that is an input file."""
    out = out_dir.resolve()
    for item in inputs:
        p = Path(item).resolve()
        if p.is_dir() and _inside(out, p):
            what = "is" if out == p else "lies inside"
            raise EnhanceSetupError(f"--out {out_dir} {what} the input folder {item}; choose an output "
                                    f"folder outside it (inputs are never overwritten)")
        if p.is_file() and out == p:
            raise EnhanceSetupError(f"--out {out_dir} is the input file {item}")


def scan_folder(folder: Path, out_dir: Path, skipped: list[tuple[str, str]]) -> list[Path]:
    """Files of `folder` (recursively) that libsndfile reads or that carry an audio suffix;
    everything else is appended to `skipped` as (path, reason): other files, and hidden files
    and folders (named once, not their contents; a killed writer's temp files are hidden)."""
    out = out_dir.resolve()
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        skipped += [(str(here / d), "hidden folder") for d in sorted(dirnames) if d.startswith(".")]
        # never our own outputs (--out inside --in is refused before this; a guard all the same)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not _inside((here / d).resolve(), out))
        for name in sorted(filenames):
            q = here / name
            if name.startswith("."):
                skipped.append((str(q), "hidden file"))
            elif q.is_file():
                found.append(q)
    files = []
    for q in sorted(found):
        suffix = q.suffix.lower()
        if suffix in SNDFILE_SUFFIXES or suffix in FOREIGN_AUDIO:
            files.append(q)
            continue
        try:
            sf.info(str(q))
        except (sf.LibsndfileError, RuntimeError, TypeError) as e:
            skipped.append((str(q), f"not a format libsndfile reads ({str(e).strip() or type(e).__name__})"))
            continue
        files.append(q)
    return files


def _candidates_of_folder(folder: Path, files: list[Path]) -> list[Candidate]:
    out = []
    for f in files:
        rel = f.relative_to(folder)
        joined = "-".join(rel.with_suffix("").parts)
        # stem; the relative path (stems repeat in subfolders); plus the extension (a.wav, a.flac)
        out.append(Candidate(f, (safe_uid(f.stem), safe_uid(joined), safe_uid(f"{joined}_{f.suffix.lstrip('.')}"))))
    return out


def assign_uids(cands: list[Candidate], previous: dict[str, str]) -> list[str]:
    """One uid per candidate, unique case-insensitively (outputs are `<uid><ext>` files, and
    file systems may fold case) and valid for the scp format.

    `previous` (uid -> resolved source) is what this --out already holds: a source enhanced
    before keeps its uid, and a uid taken by another source is not reused. Otherwise each file
    takes the first of its names that no other file of this run shares at that level (so `a.wav`
    and `a.flac` become `a_wav` and `a_flac`, not `a` and `a_flac`), with `_2`, `_3`... last.
    """
    by_source = {src: uid for uid, src in previous.items()}
    taken = {uid.lower(): src for uid, src in previous.items()}
    result: list[str | None] = [None] * len(cands)
    for i, c in enumerate(cands):
        key = str(c.src.resolve())
        if key in by_source and taken.get(by_source[key].lower()) == key:
            result[i] = by_source[key]
    levels = max((len(c.names) for c in cands), default=0)
    for level in range(levels):
        pending = [i for i, c in enumerate(cands) if result[i] is None]
        counts: dict[str, int] = {}
        for i in pending:
            name = cands[i].names[min(level, len(cands[i].names) - 1)]
            counts[name.lower()] = counts.get(name.lower(), 0) + 1
        for i in pending:
            c = cands[i]
            name = c.names[min(level, len(c.names) - 1)]
            if (counts[name.lower()] == 1 or c.fixed) and name.lower() not in taken:
                result[i] = name
                taken[name.lower()] = str(c.src.resolve())
    for i, c in enumerate(cands):
        if result[i] is None:
            base, n = c.names[-1], 2
            while f"{base}_{n}".lower() in taken:
                n += 1
            result[i] = f"{base}_{n}"
            taken[result[i].lower()] = str(c.src.resolve())
    return [r for r in result if r is not None]


def collect_jobs(inputs: list[str], out_dir: Path, previous: dict[str, str] | None = None,
                 skipped: list[tuple[str, str]] | None = None,
                 bad_lines: list[tuple[str, str]] | None = None) -> list[Job]:
    """Expand files, folders and scp lists into (uid, source, destination) jobs.

    Every output is `<out_dir>/<uid><ext>` (flat: a uid is unique in --out). Files of a folder
    that are not audio go to `skipped` (path, reason); malformed scp lines to `bad_lines`
    ("<list> line N", reason), else the first one raises ManifestError.
    """
    from use_repro.data.manifest import ManifestError, read_scp

    skipped = skipped if skipped is not None else []
    cands: list[Candidate] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            cands += _candidates_of_folder(p, scan_folder(p, out_dir, skipped))
        elif p.suffix.lower() == ".scp":
            rejected: list[tuple[str, str]] = []
            entries = read_scp(p, rejected=rejected)
            if bad_lines is not None:
                bad_lines += rejected
            elif rejected:
                raise ManifestError(f"{rejected[0][0]}: {rejected[0][1]}")
            for e in entries:
                src = Path(resolve_path(e.path, p))  # as written, else relative to the list
                cands.append(Candidate(src, (safe_uid(e.uid),), fixed=True))
        else:  # a single file; a missing one becomes a reported failure, not a crash
            cands.append(Candidate(p, (safe_uid(p.stem), safe_uid(f"{p.stem}_{p.suffix.lstrip('.')}"))))
    uids = assign_uids(cands, previous or {})
    return [Job(uid, c.src, out_dir / f"{uid}{_output_suffix(c.src)}") for uid, c in zip(uids, cands)]


def enhance_file(fn: WaveFn, job: Job, device: torch.device, chunk_seconds: float,
                 overlap_seconds: float) -> int:
    """Enhance one file into `job.dst`; returns its sampling rate."""
    if job.src.suffix.lower() in FOREIGN_AUDIO and job.src.exists():
        raise AudioError(f"{job.src}: {job.src.suffix} is not a format libsndfile reads; convert it "
                         f"first (e.g. ffmpeg -i '{job.src.name}' '{job.src.stem}.flac')")
    check_audio(job.src)  # a full decode first: a cut-off WAV reads "fine" but short
    x, fs = read_audio(job.src, mono=False, always_2d=True)
    n_fft = stft_config(model_rate(fs))[0]
    if x.shape[0] * model_rate(fs) < n_fft * fs:  # the model's STFT needs one whole window
        raise AudioError(f"{job.src}: {x.shape[0]} sample(s) at {fs} Hz, shorter than one 40 ms STFT window")
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


# --- the output folder's records --------------------------------------------------------------

def _source_stat(src: Path) -> tuple[str, str]:
    st = src.stat()
    return str(st.st_size), str(st.st_mtime_ns)


def read_records(out_dir: Path) -> dict[str, dict[str, str]]:
    """uid -> record of `enhanced.tsv`, updated by the journal a killed run left behind (a torn
    last journal line is ignored: its output is recomputed)."""
    records: dict[str, dict[str, str]] = {}
    for name in (MANIFEST, JOURNAL):
        path = out_dir / name
        if not path.exists():
            continue
        lines = path.read_text(encoding="utf-8").split("\n")
        if name == MANIFEST and tuple(lines[0].split("\t")) != MANIFEST_COLUMNS:
            # another layout (an older version): nothing in it can be trusted, so all is redone
            log.warning("%s: unexpected header %r; its outputs will be made again", path, lines[0])
            continue
        header = list(MANIFEST_COLUMNS)
        for line in lines[1 if name == MANIFEST else 0:]:
            fields = line.split("\t")
            if len(fields) != len(header):
                continue
            rec = dict(zip(header, fields))
            records[rec["uid"]] = rec
    return records


def _write_tsv(path: Path, columns: tuple[str, ...], rows: list[tuple]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("\t".join(columns) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows),
                       encoding="utf-8")


def _scp_path(out_dir: Path, dst: str) -> str:
    # absolute as before; relative to enhanced.scp (uids hold no whitespace) when --out has some
    return dst if not any(c.isspace() for c in dst) else os.path.relpath(dst, out_dir)


def write_lists(out_dir: Path, records: dict[str, dict[str, str]], failures: Failures,
                skipped: list[tuple[str, str]]) -> None:
    """enhanced.tsv, enhanced.scp, enhance_failures.tsv, enhance_skipped.tsv, each atomic; the
    journal is removed only once all of them are written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # failures first: if a later list cannot be written, the reasons are already on disk
    failures.write(out_dir / "enhance_failures.tsv")
    _write_tsv(out_dir / "enhance_skipped.tsv", ("path", "reason"), skipped)
    rows = sorted(records.values(), key=lambda r: r["uid"])
    _write_tsv(out_dir / MANIFEST, MANIFEST_COLUMNS, [tuple(r[c] for c in MANIFEST_COLUMNS) for r in rows])
    write_scp(out_dir / "enhanced.scp", [(r["uid"], int(r["fs"]), _scp_path(out_dir, r["path"])) for r in rows])
    with contextlib.suppress(FileNotFoundError):
        (out_dir / JOURNAL).unlink()


def enhance_jobs(fn: WaveFn, jobs: list[Job], out_dir: Path, device: torch.device | str = "cpu",
                 chunk_seconds: float = 30.0, overlap_seconds: float = 1.0, checkpoint: str = "",
                 skipped: list[tuple[str, str]] | None = None,
                 bad_lines: list[tuple[str, str]] = ()) -> int:
    """Run every job; returns the exit status (1 if any failed; files skipped as not audio are
    named in the log and enhance_skipped.tsv but do not fail the run).

    An output is kept only when `enhanced.tsv` says this `checkpoint` (digest) made it from this
    source, unchanged since (size, mtime); otherwise it is made again. Outputs another checkpoint
    made for files not in this run are deleted. The lists are merged with what --out already
    holds and written in a `finally`, and each finished file is journalled as it completes, so
    neither an error nor a kill loses what was done.
    """
    from use_repro.progress import progress

    device = torch.device(device)
    skipped = list(skipped or [])
    inputs = {j.src.resolve() for j in jobs}
    failures = Failures("enhance")
    for where, why in bad_lines:  # malformed scp lines: named failures, the rest still runs
        failures.add(where, why)
    records = read_records(out_dir)
    stale = [u for u, r in records.items() if r.get("checkpoint") != checkpoint]
    mine = {j.uid for j in jobs}
    for uid in stale:  # made by another model: replaced below if in this run, else removed now
        rec = records.pop(uid)
        if uid not in mine and _inside(Path(rec["path"]).resolve(), out_dir.resolve()):
            with contextlib.suppress(FileNotFoundError):
                Path(rec["path"]).unlink()
    if stale:
        log.warning("enhance: %d output(s) in %s were made by another checkpoint; they are replaced "
                    "or removed", len(stale), out_dir)
    for uid in [u for u, r in records.items() if not Path(r["path"]).exists()]:
        del records[uid]  # deleted by hand since: no longer listed
    kept = 0
    out_dir.mkdir(parents=True, exist_ok=True)
    journal = open(out_dir / JOURNAL, "a", encoding="utf-8")
    try:
        for job in progress(jobs, desc="enhance", total=len(jobs)):
            try:
                refuse_overwrite(job.dst, inputs)
                size, mtime = _source_stat(job.src) if job.src.exists() else ("", "")
                rec = records.get(job.uid)
                if (rec is not None and job.dst.exists() and rec["path"] == str(job.dst)
                        and rec["source"] == str(job.src.resolve()) and (rec["source_size"], rec["source_mtime_ns"]) == (size, mtime)):
                    kept += 1
                    continue
                if records.pop(job.uid, None) is not None:
                    # an earlier output of this uid is stale from here on: never left behind
                    # listed-but-wrong, nor unlisted-but-evaluated if this attempt fails
                    job.dst.unlink(missing_ok=True)
                fs = enhance_file(fn, job, device, chunk_seconds, overlap_seconds)
                rec = dict(uid=job.uid, fs=str(fs), path=str(job.dst), source=str(job.src.resolve()),
                           source_size=size, source_mtime_ns=mtime, checkpoint=checkpoint)
                records[job.uid] = rec
                journal.write("\t".join(rec[c] for c in MANIFEST_COLUMNS) + "\n")
                journal.flush()
            except (AudioError, FileExistsError, RuntimeError, ValueError, OSError, sf.LibsndfileError) as e:
                failures.add(job.uid, e)
    finally:
        journal.close()
        write_lists(out_dir, records, failures, skipped)
    if kept:
        log.info("enhance: %d output(s) already existed (same checkpoint, same source) and were kept", kept)
    for path, reason in skipped[:5]:
        log.warning("enhance: skipped %s: %s", path, reason)
    if skipped:
        log.warning("enhance: %d file(s) skipped (listed in %s)", len(skipped), out_dir / "enhance_skipped.tsv")
    return failures.exit_status(total=len(jobs) + len(bad_lines))


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
    from use_repro.data.manifest import ManifestError
    from use_repro.train.distributed import pick_device

    out_dir = Path(args.out)
    skipped: list[tuple[str, str]] = []
    bad_lines: list[tuple[str, str]] = []
    try:  # everything that can be refused is refused before the model loads
        check_layout(args.inputs, out_dir)
        previous = {u: r["source"] for u, r in read_records(out_dir).items()}
        jobs = collect_jobs(args.inputs, out_dir, previous, skipped, bad_lines)
    except (EnhanceSetupError, ManifestError, OSError) as e:
        log.error("enhance: %s", e)
        return 2
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    try:
        model = load_enhancer(args.checkpoint, device)
        digest = checkpoint_digest(args.checkpoint)
    except Exception as e:  # any loader error: a missing, truncated or foreign file
        log.error("enhance: --checkpoint %s cannot be loaded: %s: %s", args.checkpoint, type(e).__name__, e)
        return 2
    log.info("enhance: %d file(s) with %s (sha256 %s) on %s", len(jobs), args.checkpoint, digest[:12], device)
    return enhance_jobs(wave_fn(model), jobs, out_dir, device, args.chunk_seconds, args.overlap_seconds,
                        checkpoint=digest, skipped=skipped, bad_lines=bad_lines)
