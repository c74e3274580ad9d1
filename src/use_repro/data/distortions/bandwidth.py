"""Bandwidth limitation: resample down to a lower rate and back, as the challenge does.

The challenge calls ``librosa.resample`` twice (``fs -> fs_new -> fs``) with one of four
``res_type`` values drawn per utterance: ``kaiser_best``, ``kaiser_fast``, ``scipy`` and
``polyphase``. Without librosa (and its numba-compiled resampy backend) we reproduce each:

- ``scipy``: ``scipy.signal.resample`` (FFT) to ``ceil(n * fs_new / fs)`` samples, as librosa does.
- ``polyphase``: ``scipy.signal.resample_poly`` with the reduced up/down factors, as librosa does.
- ``kaiser_best`` / ``kaiser_fast``: resampy's band-limited interpolation with its two
  precomputed Kaiser windowed-sinc tables (best: 50 zero crossings, 2**13 entries per crossing,
  rolloff 0.91735, beta 12.9846; fast: 24 crossings, 2**9 entries, rolloff 0.86821, beta
  9.90322), regenerated here from those parameters (beta fitted to the shipped tables; they
  agree to 1e-15), with resampy's linear interpolation between table entries. Because the ratio is rational the interpolation weights depend only on the
  integer offset ``t*down - j*up``, so the whole operation is one FIR filter run through
  ``scipy.signal.upfirdn``; the taps are evaluated exactly as resampy evaluates them
  (including its integer table stride), so the output matches resampy to float rounding.
  Output positions are exact rationals where resampy accumulates ``t / ratio`` in floats.
- ``soxr_*`` (accepted when read from a file): ``soxr.resample`` at that quality.

A method name outside these is an error naming it.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import scipy.signal

# resampy's precomputed filters: (zero crossings, log2 table entries per crossing, rolloff, beta).
KAISER_FILTERS = {
    "kaiser_best": (50, 13, 0.9173473712608761, 12.984585247040016),
    "kaiser_fast": (24, 9, 0.8682120388377784, 9.903224416455274),
}
SOXR_METHODS = {"soxr_vhq": "VHQ", "soxr_hq": "HQ", "soxr_mq": "MQ", "soxr_lq": "LQ", "soxr_qq": "QQ"}
# What the challenge samples from (generate_data_param.py RESAMPLE_METHODS).
CHALLENGE_METHODS = ("kaiser_best", "kaiser_fast", "scipy", "polyphase")
METHODS = CHALLENGE_METHODS + ("fft",) + tuple(SOXR_METHODS)


def limit_bandwidth(x: np.ndarray, fs: int, fs_new: int, method: str) -> np.ndarray:
    """Resample `x` ([T], float) from `fs` to `fs_new` and back with `method`; [T] out.

    ``fs_new == fs`` (the challenge writes ``bandwidth_limitation-none-><fs>`` for 8 kHz
    speech, which has no lower rate) returns `x` unchanged.
    """
    if int(fs_new) == int(fs):
        return x
    if fs_new > fs:
        raise ValueError(f"bandwidth limitation to {fs_new} Hz from {fs} Hz: the new rate must be lower")
    y = resample(x, fs, fs_new, method)
    y = resample(y, fs_new, fs, method)
    return fix_length(y, x.shape[-1])


def resample(x: np.ndarray, fs_in: int, fs_out: int, method: str) -> np.ndarray:
    """``librosa.resample(x, orig_sr=fs_in, target_sr=fs_out, res_type=method)`` for [T] input.

    Output length is ``ceil(T * fs_out / fs_in)`` (librosa's ``fix=True``), no rescaling.
    """
    fs_in, fs_out = int(fs_in), int(fs_out)
    if fs_in == fs_out:
        return x
    n_out = int(math.ceil(x.shape[-1] * fs_out / fs_in))
    if method in ("scipy", "fft"):
        y = scipy.signal.resample(x, n_out, axis=-1)
    elif method == "polyphase":
        g = math.gcd(fs_in, fs_out)
        y = scipy.signal.resample_poly(x, fs_out // g, fs_in // g, axis=-1)
    elif method in KAISER_FILTERS:
        y = _resampy(x, fs_in, fs_out, method)
    elif method in SOXR_METHODS:
        import soxr

        y = soxr.resample(x, fs_in, fs_out, quality=SOXR_METHODS[method])
    else:
        raise ValueError(f"unknown resampling method {method!r}; known: {', '.join(METHODS)}")
    return fix_length(np.asarray(y, dtype=x.dtype), n_out)


def fix_length(y: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad the last axis to `n` samples."""
    if y.shape[-1] >= n:
        return y[..., :n]
    pad = [(0, 0)] * (y.ndim - 1) + [(0, n - y.shape[-1])]
    return np.pad(y, pad)


# ---------------------------------------------------------------------------------------------
# resampy's band-limited interpolation as one polyphase FIR
# ---------------------------------------------------------------------------------------------

@lru_cache(maxsize=4)
def _half_window(name: str) -> np.ndarray:
    """resampy's ``sinc_window``: the right half of a Kaiser-windowed sinc."""
    zeros, bits, rolloff, beta = KAISER_FILTERS[name]
    n = (1 << bits) * zeros
    sinc = rolloff * np.sinc(rolloff * np.linspace(0, zeros, num=n + 1, endpoint=True))
    return np.kaiser(2 * n + 1, beta)[n:] * sinc


@lru_cache(maxsize=64)
def _polyphase_fir(name: str, fs_in: int, fs_out: int) -> tuple[np.ndarray, int, int, int]:
    """The FIR `h` with y[t] = sum_j x[j] h[t*down - j*up + shift] reproducing resampy's weights.

    Returns (h, up, down, shift), `shift` a multiple of `down`.
    """
    g = math.gcd(fs_in, fs_out)
    up, down = fs_out // g, fs_in // g
    ratio = fs_out / fs_in
    scale = min(1.0, ratio)
    table = 1 << KAISER_FILTERS[name][1]
    win = _half_window(name)
    if ratio < 1:
        win = scale * win
    delta = np.zeros_like(win)
    delta[:-1] = np.diff(win)
    nwin = win.shape[0]
    step = int(scale * table)  # resampy truncates the table stride to an integer

    # Output phase p sits at input position p*down/up = n_p + f_p/up.
    p = np.arange(up)
    f = (p * down) % up
    # Left wing: taps x[n - i], i >= 0, evaluated at scale * (frac + i).
    frac = scale * (f / up)
    idx = frac * table
    off_l = idx.astype(np.int64)
    eta_l = idx - off_l
    # Right wing: taps x[n + 1 + k], evaluated at scale * (1 - frac + k).
    idx = (scale - frac) * table
    off_r = idx.astype(np.int64)
    eta_r = idx - off_r
    n_taps = nwin // step + 1

    # d = t*down - j*up for tap (phase p, left i):  f + i*up ;  (right k): f - (k+1)*up.
    d_min = -(n_taps + 1) * up
    d_max = (n_taps + 1) * up
    shift = -(d_min // down) * down  # a multiple of down, >= -d_min
    h = np.zeros(shift + d_max + 1)
    for side, off, eta in (("l", off_l, eta_l), ("r", off_r, eta_r)):
        i = np.arange(n_taps)
        pos = off[:, None] + i[None, :] * step  # [up, n_taps] table positions
        valid = i[None, :] < ((nwin - off) // step)[:, None]  # resampy's loop bound
        pos_c = np.minimum(pos, nwin - 1)
        w = np.where(valid, win[pos_c] + eta[:, None] * delta[pos_c], 0.0)
        d = f[:, None] + i[None, :] * up if side == "l" else f[:, None] - (i[None, :] + 1) * up
        h[d + shift] = w
    return h, up, down, shift


def _resampy(x: np.ndarray, fs_in: int, fs_out: int, name: str) -> np.ndarray:
    h, up, down, shift = _polyphase_fir(name, fs_in, fs_out)
    n_out = x.shape[-1] * up // down  # resampy: int(T * ratio)
    y = scipy.signal.upfirdn(h, x, up=up, down=down, axis=-1)
    start = shift // down
    y = y[..., start:start + n_out]
    return fix_length(y, n_out)
