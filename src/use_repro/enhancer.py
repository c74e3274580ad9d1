"""A trained model as an enhancer of arrays and files: any rate 8-48 kHz, chunked, bounded memory.

This is what `use-repro enhance` runs on every file, and the package's Python API::

    from use_repro import Enhancer

    enh = Enhancer.from_checkpoint("results/mini/early/final.pt")  # or the RE-USE g_<step>.pth
    y = enh.enhance(x, 16000)                  # x: float array [T] or [T, C] -> the same shape
    enh.enhance_file("noisy.wav", "enhanced.wav")

`Enhancer.from_checkpoint(path, device="cpu", chunk_seconds=30.0, overlap_seconds=1.0)` loads a
use-repro checkpoint (the `final.pt` of `use-repro train`, regression or two-stage GAN) or the
authors' released USEMamba (`g_<step>.pth`, `model.safetensors`); a file that is neither raises
`CheckpointError` in one line saying what was expected. `device` is "cpu", "cuda", "cuda:N" or
"auto" (CUDA when available).

How a signal is enhanced (the same for `enhance` and `enhance_file`):

- Any rate 8-48 kHz goes through the same model (sampling-frequency-independent STFT). A rate
  the STFT cannot represent (not a multiple of 25 Hz, or outside 8-48 kHz) is resampled to the
  nearest rate above that it can, enhanced, and resampled back. The output has the input's rate,
  length and channel count; channels are enhanced one by one.
- A signal longer than `chunk_seconds` is enhanced in chunks of that length overlapping by
  `overlap_seconds` (`chunk_spans`); overlapping chunks are cross-faded with cos^2/sin^2 ramps
  that sum to one at every sample (`crossfade_weights`). `chunk_seconds=0` enhances whole signals.
- Each chunk is scaled to unit RMS (as in training), enhanced, and scaled back.

Memory: a file at a rate the model runs at directly (every URGENT rate, and any multiple of
25 Hz in 8-48 kHz) is streamed: read in order one chunk at a time, enhanced, overlap-added, and
written as its samples become final (`enhance_stream`, `use_repro.audio.io.AudioWriter`), so the
memory a file needs is about one chunk's (its input, the model's activations, its output)
whatever the file's length; a progress bar counts the chunks of a long file. (With glibc's
default thresholds the model's 4-32 MB activations came from a heap that fragmented chunk after
chunk, and the peak grew to 1.07-1.45x one chunk's; the first model call fixes them,
`bound_c_heap`, and the peak stays within 1.02x of one chunk's, for 12-20% more CPU time on
long files, measured: see the comment above it.) A file at another rate is resampled as a whole
and held in memory. The file is decoded once in full before anything is written (`check_audio`,
block by block): a truncated or non-finite file fails with its name and leaves no output.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

MIN_RATE, MAX_RATE = 8000, 48000

# A model callable: normalised waveform [1, T] at `fs` -> enhanced waveform [1, T].
WaveFn = Callable[["torch.Tensor", int], "torch.Tensor"]


# --- the model as a waveform function ----------------------------------------------------------

def load_enhancer(checkpoint: str | os.PathLike, device: "str | torch.device" = "cpu") -> "torch.nn.Module":
    """Load a use-repro checkpoint (regression or two-stage) or a RE-USE release file, in eval mode."""
    from use_repro.models.checkpoint import load_model

    model = load_model(checkpoint, map_location=device)
    return model.to(device).eval()


def wave_fn(model: "torch.nn.Module") -> WaveFn:
    """The model as `[1, T] -> [1, T]` at any supported rate (both model kinds share the API)."""
    def run(x: "torch.Tensor", fs: int) -> "torch.Tensor":
        return model.enhance_waveform(x, fs)
    return run


def model_rate(fs: int) -> int:
    """The rate the model runs at for input rate `fs` (fs itself when the SFI STFT supports it)."""
    from use_repro.audio.io import SUPPORTED_RATES
    from use_repro.audio.stft import STFTError, stft_config

    clipped = min(max(int(fs), MIN_RATE), MAX_RATE)
    try:
        stft_config(clipped)
        return clipped
    except STFTError:
        return min(r for r in SUPPORTED_RATES if r >= clipped)


def _device(device: "str | torch.device") -> "torch.device":
    import torch

    if str(device) == "auto":
        from use_repro.train.distributed import pick_device

        return pick_device("auto")
    return torch.device(device)


# --- the C heap between chunks -------------------------------------------------------------------

# glibc's malloc serves a block of at least M_MMAP_THRESHOLD bytes with its own mapping, given back
# when freed, and smaller ones from a heap it keeps for reuse. The threshold starts at 128 kB and,
# by default, rises to the size of each mapped block freed, up to 32 MB: after the first chunk,
# the model's 4-32 MB activations (11 and 22 MB for 30 s at 48 kHz) came from that heap, which
# fragmented from chunk to chunk (their lifetimes interleave), so the peak of a chunk grew with
# the chunks before it: 1.23-1.45x one chunk's at 30 minutes (bench/enhance_memory.py, two runs).
# A fixed threshold keeps every block of 4 MB or more out of the heap, so each chunk's peak is the
# first's. Measured on 5 minutes in 30 s chunks, per-chunk peaks, first -> last: tiny model at
# 48 kHz 1079 -> 1273 MB by default, 1031 -> 1044 fixed (8 MB still crept: 1032 -> 1086); small
# model at 16 kHz 1226 -> 1311 by default, 1189 -> 1215 fixed.
# The cost is a page fault per fresh page of those blocks, now mapped afresh for every chunk (the
# blocks above 32 MB, most of the activations, pay that already), all of it system time: CPU time
# +12-20% on files of several chunks (tiny, 48 kHz: 41.0 -> 46.1 s on 5 minutes; 222.7 -> 259.4 s
# on 30 minutes in bench/enhance_memory.py; small, 16 kHz: 50.8 -> 60.9 s on 5 minutes), ~2% on
# a one-chunk file, whose chunk faults in most of them by default too.
# The trim threshold is fixed with it (a fixed mmap threshold stops glibc adjusting that one too):
# the heap keeps at most 16 MB free at its top for the small blocks, reused chunk after chunk, and
# little for a large block to be carved from (glibc maps a block only where no free space in the
# heap fits it); 16 and 64 MB measured the same peaks and times. malloc_trim(0) after each chunk
# does not lower the peak: the heap grows during a chunk, not between chunks.
MMAP_THRESHOLD = 4 << 20
TRIM_THRESHOLD = 16 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
_heap_bounded: bool | None = None


def bound_c_heap() -> bool:
    """Fix glibc's malloc thresholds for enhancing chunk after chunk (once per process; see
    above): blocks of MMAP_THRESHOLD bytes or more mapped and given back when freed, the heap's
    top trimmed above TRIM_THRESHOLD. True where applied; False where the C library is not glibc
    (nothing is changed). The setting is the process's, as glibc's own adjustment was."""
    global _heap_bounded
    if _heap_bounded is None:
        import ctypes

        try:
            libc = ctypes.CDLL(None)
            if not hasattr(libc, "gnu_get_libc_version"):  # not glibc: other mallocs number mallopt otherwise
                raise OSError("not glibc")
            _heap_bounded = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                                 and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
        except (OSError, AttributeError, TypeError):  # no C library to look in (Windows: TypeError)
            _heap_bounded = False
    return _heap_bounded


# --- chunks and their cross-fades ----------------------------------------------------------------

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


def _taper(spans: list[tuple[int, int]], i: int) -> np.ndarray:
    """Span i's ramps: sin^2 up over its overlap with span i-1, cos^2 down over span i+1's."""
    a, b = spans[i]
    w = np.ones(b - a, dtype=np.float64)
    if i > 0:  # ramp up over the overlap with the previous span
        L = spans[i - 1][1] - a
        if L > 0:
            w[:L] = np.sin(0.5 * np.pi * (np.arange(L) + 0.5) / L) ** 2
    if i + 1 < len(spans):  # ramp down over the overlap with the next span
        L = b - spans[i + 1][0]
        if L > 0:
            w[-L:] = np.cos(0.5 * np.pi * (np.arange(L) + 0.5) / L) ** 2
    return w


def span_weights(spans: list[tuple[int, int]], i: int) -> np.ndarray:
    """The cross-fade weights of span i alone (float64, its length); with every other span's
    they sum to one at every sample.

    Where only neighbours overlap, the ramps sum to one by themselves and are returned as they
    are. The last span, pulled back to end at n, can also reach into the span before its
    neighbour (three spans at once); where that touches span i, its ramps are divided by the sum
    of all ramps there.
    """
    a, b = spans[i]
    w = _taper(spans, i)
    total = np.zeros(b - a, dtype=np.float64)
    for j in range(max(0, i - 3), min(len(spans), i + 4)):  # steps are >= chunk/2: none further
        lo, hi = max(a, spans[j][0]), min(b, spans[j][1])
        if lo < hi:
            total[lo - a:hi - a] += w[lo - a:hi - a] if j == i else _taper(spans, j)[lo - spans[j][0]:hi - spans[j][0]]
    return w if np.abs(total - 1.0).max() <= 1e-9 else w / total


def crossfade_weights(spans: list[tuple[int, int]]) -> list[np.ndarray]:
    """Per-span weights that sum to exactly one at every sample (cos^2 / sin^2 ramps over overlaps)."""
    return [span_weights(spans, i) for i in range(len(spans))]


# --- enhancing a signal --------------------------------------------------------------------------

def normalized_call(fn: WaveFn, x: np.ndarray, fs: int, device: "torch.device") -> np.ndarray:
    """Scale `x` [T] to unit RMS (as in training), run the model, undo the scaling.

    The model runs in inference mode with the fused CPU inference kernels of its Mamba layers
    (:mod:`use_repro.models.mamba_infer`; on other devices, or where they are not built, the
    training forward)."""
    import torch

    from use_repro.data.dataset import unit_rms_gain
    from use_repro.models.mamba_infer import fused_inference

    bound_c_heap()  # the C heap's thresholds, fixed before the first chunk (see above)
    g = unit_rms_gain(x)
    t = torch.from_numpy(np.ascontiguousarray(x * g, dtype=np.float32)).to(device)[None]
    with torch.inference_mode(), fused_inference():
        y = fn(t, fs)[0].float().cpu().numpy()
    if y.shape[0] != x.shape[0]:
        raise RuntimeError(f"model returned {y.shape[0]} samples for {x.shape[0]}")
    return (y / g).astype(np.float32)


def enhance_signal(fn: WaveFn, x: np.ndarray, fs: int, device: "torch.device | str" = "cpu",
                   chunk_seconds: float = 30.0, overlap_seconds: float = 1.0) -> np.ndarray:
    """Enhance a mono signal `x` [T] at `fs` Hz -> [T] at `fs` Hz, the whole signal in memory
    (chunked, cross-faded). `enhance_stream` does the same in bounded memory."""
    from use_repro.audio.resample import resample

    device = _device(device)
    run_fs = model_rate(fs)
    y_in = resample(x, fs, run_fs) if run_fs != fs else np.asarray(x, dtype=np.float32)
    n = y_in.shape[0]
    chunk = int(round(chunk_seconds * run_fs)) if chunk_seconds and chunk_seconds > 0 else 0
    spans = chunk_spans(n, chunk, int(round(overlap_seconds * run_fs)))
    out = np.zeros(n, dtype=np.float64)
    for i, (a, b) in enumerate(spans):
        out[a:b] += span_weights(spans, i) * normalized_call(fn, y_in[a:b], run_fs, device)
    out = out.astype(np.float32)
    if run_fs != fs:
        out = resample(out, run_fs, fs)
        out = np.pad(out, (0, max(0, len(x) - len(out))))[: len(x)]
    return out


def enhance_stream(fn: WaveFn, read: Callable[[int], np.ndarray], n: int, channels: int, fs: int,
                   write: Callable[[np.ndarray], None], device: "torch.device | str" = "cpu",
                   chunk_seconds: float = 30.0, overlap_seconds: float = 1.0,
                   desc: str | None = None) -> None:
    """Enhance a signal of `n` frames and `channels` channels at `fs` Hz, a rate the model runs
    at directly, in bounded memory.

    `read(k)` hands out the next k frames ([k, C] float32, in order); `write` receives the
    enhanced signal ([m, C] float32 blocks, in order, n frames in all) as soon as no later chunk
    overlaps its samples. Held at any time: one chunk of input and at most one of output (float64
    sums). The result equals `enhance_signal` on each channel with the same chunking. With
    `desc`, a progress bar counts the chunks of a signal that has more than one.
    """
    if model_rate(fs) != fs:
        raise ValueError(f"enhance_stream: the model does not run at {fs} Hz (use enhance_signal)")
    device = _device(device)
    chunk = int(round(chunk_seconds * fs)) if chunk_seconds and chunk_seconds > 0 else 0
    spans = chunk_spans(n, chunk, int(round(overlap_seconds * fs)))
    steps = range(len(spans))
    if desc and len(spans) > 1:
        from use_repro.progress import progress

        steps = progress(steps, desc=desc, total=len(spans))
    buf = np.zeros((0, channels), dtype=np.float32)  # input frames [buf_at, pos)
    buf_at = pos = 0
    acc = np.zeros((0, channels), dtype=np.float64)  # output sums of frames [acc_at, ...)
    acc_at = 0
    for i in steps:
        a, b = spans[i]
        if a > pos:
            raise ValueError(f"enhance_stream: spans leave a gap before frame {a}")
        buf, buf_at = buf[a - buf_at:], a
        if b > pos:
            new = np.asarray(read(b - pos), dtype=np.float32).reshape(-1, channels)
            if new.shape[0] != b - pos:
                from use_repro.audio.io import AudioError

                raise AudioError(f"the signal ended after {pos + new.shape[0]} of {n} frames")
            buf = np.concatenate([buf, new]) if buf.shape[0] else new
            pos = b
        x = buf[: b - a]
        if acc.shape[0] < b - acc_at:
            acc = np.concatenate([acc, np.zeros((b - acc_at - acc.shape[0], channels))])
        w = span_weights(spans, i)
        for c in range(channels):
            acc[a - acc_at:b - acc_at, c] += w * normalized_call(fn, x[:, c], fs, device)
        final = spans[i + 1][0] if i + 1 < len(spans) else n  # no later span reaches below this
        if final > acc_at:
            write(acc[: final - acc_at].astype(np.float32))
            acc, acc_at = acc[final - acc_at:], final


# --- the API -------------------------------------------------------------------------------------

class Enhancer:
    """A trained model ready to enhance arrays and files (see the module's docstring).

    `Enhancer(model, ...)` wraps a loaded model (anything with `enhance_waveform(wav [B, T], fs)`);
    `Enhancer.from_checkpoint(path, ...)` loads one. `enhance` and `enhance_file` run the same
    chunked path that `use-repro enhance` runs.
    """

    def __init__(self, model: "torch.nn.Module", device: "str | torch.device" = "cpu",
                 chunk_seconds: float = 30.0, overlap_seconds: float = 1.0, progress: bool = True):
        self.device = _device(device)
        self.model = model.to(self.device).eval()
        self.fn = wave_fn(self.model)
        self.chunk_seconds = float(chunk_seconds)
        self.overlap_seconds = float(overlap_seconds)
        self.progress = progress
        self.checkpoint: Path | None = None

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: "str | torch.device" = "cpu",
                        chunk_seconds: float = 30.0, overlap_seconds: float = 1.0,
                        progress: bool = True) -> "Enhancer":
        """Load a use-repro `final.pt` or a RE-USE release `.pth`/`.safetensors` file.

        Raises FileNotFoundError, or CheckpointError (one line: the file and what was expected).
        """
        device = _device(device)
        enhancer = cls(load_enhancer(path, device), device, chunk_seconds, overlap_seconds, progress)
        enhancer.checkpoint = Path(path)
        return enhancer

    def __repr__(self) -> str:
        what = self.checkpoint or type(self.model).__name__
        return (f"Enhancer({what}, device={self.device}, chunk_seconds={self.chunk_seconds:g}, "
                f"overlap_seconds={self.overlap_seconds:g})")

    def enhance(self, x: np.ndarray, fs: int) -> np.ndarray:
        """Enhance `x` ([T] mono or [T, C], any float dtype) at `fs` Hz; float32 of x's shape."""
        x = np.asarray(x)
        if x.ndim not in (1, 2):
            raise ValueError(f"enhance: expected a [T] or [T, C] array, got shape {x.shape}")
        x2 = x[:, None] if x.ndim == 1 else x
        n, channels = x2.shape
        if model_rate(fs) == fs:
            out = np.empty((n, channels), dtype=np.float32)
            at = {"read": 0, "write": 0}

            def read(k: int) -> np.ndarray:
                block = np.asarray(x2[at["read"]:at["read"] + k], dtype=np.float32)
                at["read"] += block.shape[0]
                return block

            def write(block: np.ndarray) -> None:
                out[at["write"]:at["write"] + block.shape[0]] = block
                at["write"] += block.shape[0]

            enhance_stream(self.fn, read, n, channels, fs, write, self.device, self.chunk_seconds,
                           self.overlap_seconds)
        else:
            out = np.stack([enhance_signal(self.fn, np.asarray(x2[:, c], dtype=np.float32), fs, self.device,
                                           self.chunk_seconds, self.overlap_seconds)
                            for c in range(channels)], axis=1)
        return out[:, 0] if x.ndim == 1 else out

    def enhance_file(self, src: str | os.PathLike, dst: str | os.PathLike, subtype: str | None = None) -> int:
        """Enhance the audio file `src` into `dst` (format from dst's suffix, FLAC for unknown
        ones; `subtype` default: src's when the suffixes match, else the format's default). The
        file is decoded and checked first (AudioError names what is wrong), streamed in bounded
        memory, and written atomically. Returns the sampling rate."""
        import soundfile as sf

        from use_repro.audio.io import AudioError, AudioWriter, read_audio, write_audio
        from use_repro.audio.stft import stft_config
        from use_repro.data.audiocheck import check_audio

        src, dst = Path(src), Path(dst)
        facts = check_audio(src)  # a full decode first: a cut-off WAV reads "fine" but short
        fs, run_fs = facts.fs, model_rate(facts.fs)
        if facts.frames * run_fs < stft_config(run_fs)[0] * fs:  # the model's STFT needs one window
            raise AudioError(f"{src}: {facts.frames} sample(s) at {fs} Hz, shorter than one 40 ms STFT window")
        if not MIN_RATE <= fs <= MAX_RATE:
            log.warning("%s: %d Hz is outside 8-48 kHz; enhancing at %d Hz and resampling back", src, fs, run_fs)
        if subtype is None and dst.suffix.lower() == src.suffix.lower():
            subtype = sf.info(str(src)).subtype
        if run_fs != fs:  # resampled as a whole
            x, _ = read_audio(src, mono=False, always_2d=True)
            y = self.enhance(x, fs)
            write_audio(dst, y[:, 0] if y.shape[1] == 1 else y, fs, subtype=subtype)
            return fs
        with sf.SoundFile(str(src)) as f, AudioWriter(dst, fs, facts.channels, subtype) as w:
            enhance_stream(self.fn, lambda k: f.read(k, dtype="float32", always_2d=True), facts.frames,
                           facts.channels, fs, w.write, self.device, self.chunk_seconds,
                           self.overlap_seconds, desc=src.name if self.progress else None)
        return fs
