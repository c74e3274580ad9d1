"""Sampling-rate conversion with soxr (high quality, no torchaudio)."""
from __future__ import annotations

import numpy as np
import soxr


def resample(x: np.ndarray, fs_in: int, fs_out: int, quality: str = "VHQ") -> np.ndarray:
    """Resample `x` ([T] or [T, C]) from `fs_in` to `fs_out` Hz; float32 out.

    `quality` is a soxr quality string (`VHQ`, `HQ`, `MQ`, `LQ`, `QQ`).
    """
    if fs_in == fs_out:
        return np.asarray(x, dtype=np.float32)
    y = soxr.resample(np.asarray(x, dtype=np.float32), int(fs_in), int(fs_out), quality=quality)
    return y.astype(np.float32, copy=False)


def resample_fixed_length(x: np.ndarray, fs_in: int, fs_out: int, quality: str = "HQ") -> np.ndarray:
    """Resample a mono float64 signal as ``librosa.resample(res_type="soxr_hq")`` does; float64 out.

    soxr's own output length is often one sample shorter than ``ceil(N * fs_out / fs_in)``;
    librosa (``fix=True``, its default) zero-pads or cuts to that length. The challenge's
    ``read_audio`` resamples every source this way, so a source resampled any other way moves the
    row's random noise offset by a sample and changes the whole rendered mixture.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"resample_fixed_length: expected a mono [T] signal, got shape {x.shape}")
    if int(fs_in) == int(fs_out):
        return x
    # The same float expression as librosa's, so boundary cases round the same way.
    n_out = int(np.ceil(x.shape[0] * (float(fs_out) / int(fs_in))))
    y = soxr.resample(x, int(fs_in), int(fs_out), quality=quality)
    if y.shape[0] >= n_out:
        return np.ascontiguousarray(y[:n_out])
    return np.concatenate([y, np.zeros(n_out - y.shape[0], dtype=y.dtype)])
