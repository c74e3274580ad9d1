"""Reverberation: RIR convolution, the challenge's early-RIR cut, and the direct-path peak.

- The reverberant speech is ``(s * h)[:T]`` (full convolution cut to the speech length).
- The challenge's early RIR (``rir_utils.estimate_early_rir``, ported from sms_wsj): the RIR
  starts at the first sample whose magnitude exceeds 0.1 of the maximum, searched up to the
  peak; everything from ``start + int(0.05 fs)`` on is zeroed.
- The paper's direct-path shift: ``n0 = argmax |h|``.
"""
from __future__ import annotations

import numpy as np
import scipy.fft

START_LEVEL = 0.1
EARLY_SECONDS = 0.05


def direct_path_index(h: np.ndarray) -> int:
    """n0 = argmax |h[n]| (first occurrence)."""
    return int(np.argmax(np.abs(h)))


def rir_start(h: np.ndarray, level: float = START_LEVEL) -> int:
    """First index up to the peak where |h| exceeds `level` times its maximum."""
    a = np.abs(h)
    peak = int(np.argmax(a))
    return int(np.argmax(a[:peak + 1] > level * a[peak]))


def early_rir(h: np.ndarray, fs: int, seconds: float = EARLY_SECONDS) -> np.ndarray:
    """The challenge's early RIR: `h` zeroed from ``rir_start(h) + int(seconds * fs)`` on."""
    out = np.array(h, dtype=np.float64, copy=True)
    out[rir_start(h) + int(seconds * fs):] = 0.0
    return out


def convolve(s: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``(s * h)[:len(s)]`` for [T] speech and [L] RIR."""
    return convolve_many(s, [h])[0]


def convolve_many(s: np.ndarray, rirs: list[np.ndarray]) -> list[np.ndarray]:
    """``[(s * h)[:len(s)] for h in rirs]``, sharing one FFT of `s`. Each [T]."""
    n = s.shape[-1]
    if not rirs:
        return []
    ends = [_support_end(h) for h in rirs]  # each RIR's last nonzero tap + 1, found once
    nfft = scipy.fft.next_fast_len(n + max(max(ends), 1) - 1, real=True)
    S = scipy.fft.rfft(s, nfft)
    out = []
    for h, end in zip(rirs, ends):
        if end == 0:
            out.append(np.zeros(n))
            continue
        out.append(scipy.fft.irfft(S * scipy.fft.rfft(h[:end], nfft), nfft)[:n])
    return out


def _support_end(h: np.ndarray) -> int:
    """1 + the index of the last nonzero tap of `h` (0 when all are zero), without listing every
    nonzero index (an RIR is nonzero almost everywhere)."""
    if h.shape[-1] == 0:
        return 0
    nonzero = h[::-1] != 0
    k = int(np.argmax(nonzero))  # the first True from the end
    return h.shape[-1] - k if nonzero[k] else 0
