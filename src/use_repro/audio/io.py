"""Reading and writing audio: soundfile, FLAC by default, atomic writes, checked input.

Arrays are float32, shape [T] (mono) or [T, C] as soundfile returns them; every read is
checked so a bad file fails with its path and what is wrong with it.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from use_repro.fs import atomic_path

# Rates the URGENT 2025 challenge supports (and the embedded corpus spans).
SUPPORTED_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)


class AudioError(ValueError):
    """A file that is missing, empty, not audio, or holds non-finite samples."""


def read_audio(path: str | os.PathLike, mono: bool = True, always_2d: bool = False,
               start: int = 0, stop: int | None = None) -> tuple[np.ndarray, int]:
    """Read `path` → (samples float32 [T] (mono) or [T, C], sampling rate).

    Raises AudioError naming the file when it is missing, empty, unreadable, or contains
    NaN/inf. Multi-channel input is averaged to mono when `mono`.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file")
    try:
        x, fs = sf.read(str(path), dtype="float32", always_2d=True, start=start, stop=stop)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"{path}: not a sound file ({e})") from None
    if x.shape[0] == 0:
        raise AudioError(f"{path}: holds no samples")
    if not np.isfinite(x).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")
    if mono:
        x = x.mean(axis=1)
        if always_2d:
            x = x[:, None]
    elif not always_2d and x.shape[1] == 1:
        x = x[:, 0]
    return x, int(fs)


def audio_info(path: str | os.PathLike) -> tuple[int, int]:
    """(sampling rate, number of frames) without reading samples; AudioError on bad files."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(f"{path}: not a sound file ({e})") from None
    return int(info.samplerate), int(info.frames)


def write_audio(path: str | os.PathLike, x: np.ndarray, fs: int, subtype: str | None = None) -> Path:
    """Write `x` ([T] or [T, C]) atomically; format from the suffix (FLAC for .flac).

    FLAC is written as 16-bit PCM like the challenge's data unless `subtype` says otherwise;
    samples are clipped to [-1, 1) first so the integer conversion never wraps. float64 input is
    written from float64 (as the challenge's ``sf.write`` does): rounding it to float32 first
    moves some samples by one 16-bit step.
    """
    path = Path(path)
    x = np.asarray(x)
    x = x if x.dtype == np.float64 else x.astype(np.float32)
    if not np.isfinite(x).all():
        raise AudioError(f"{path}: refusing to write NaN or infinite samples")
    if subtype is None and path.suffix.lower() == ".flac":
        subtype = "PCM_16"
    if subtype and subtype.startswith("PCM"):
        x = np.clip(x, -1.0, 1.0 - 2.0**-15)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), x, int(fs), subtype=subtype, format=_format_of(path))
    return path


class AudioWriter:
    """`write_audio` block by block, for signals too long to hold: the same format, subtype,
    clipping and refusal of non-finite samples, and the same atomic rename at the end.

        with AudioWriter(path, fs, channels) as w:
            for block in blocks:      # [T] or [T, C] arrays, float32 or float64
                w.write(block)

    The file appears at `path` only when the block exits without an error (a failure leaves
    the old file or none); the samples written equal those of `write_audio` on the whole signal.
    """

    def __init__(self, path: str | os.PathLike, fs: int, channels: int, subtype: str | None = None):
        self.path, self.fs, self.channels = Path(path), int(fs), int(channels)
        self.subtype = subtype
        if self.subtype is None and self.path.suffix.lower() == ".flac":
            self.subtype = "PCM_16"
        self.frames = 0
        self._file: sf.SoundFile | None = None
        self._stack: contextlib.ExitStack | None = None

    def __enter__(self) -> "AudioWriter":
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(atomic_path(self.path))
            self._file = stack.enter_context(sf.SoundFile(
                str(tmp), "w", samplerate=self.fs, channels=self.channels, subtype=self.subtype,
                format=_format_of(self.path)))
            self._stack = stack.pop_all()
        return self

    def write(self, x: np.ndarray) -> None:
        x = np.asarray(x)
        x = x if x.dtype == np.float64 else x.astype(np.float32)
        if not np.isfinite(x).all():
            raise AudioError(f"{self.path}: refusing to write NaN or infinite samples")
        if self.subtype and self.subtype.startswith("PCM"):
            x = np.clip(x, -1.0, 1.0 - 2.0**-15)
        self._file.write(x)
        self.frames += x.shape[0]

    def __exit__(self, exc_type, exc, tb) -> bool:
        # the file is closed, then renamed onto `path` (or, after an error, removed)
        return self._stack.__exit__(exc_type, exc, tb)


def _format_of(path: Path) -> str:
    fmt = path.suffix.lower().lstrip(".")
    return {"flac": "FLAC", "wav": "WAV", "ogg": "OGG", "mp3": "MP3"}.get(fmt, "FLAC")
