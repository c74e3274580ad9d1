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
