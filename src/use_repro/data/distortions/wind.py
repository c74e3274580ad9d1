"""Wind noise mixed the challenge's way (the wind *generator* lives in data/corpus/wind.py).

The challenge (``simulate_data_from_param.py: wind_noise``) does, in this order:

1. fit the wind noise to the speech length (random offset) and scale it to the row's SNR on
   active frames, exactly like additive noise;
2. scale speech and noise together by ``0.9 / max(peak(speech), peak(noise))``;
3. run ffmpeg ``[1:a]asplit=2[sc][mix];[0:a][sc]sidechaincompress=threshold=..:ratio=..:
   level_sc=<sc_gain>:release=..:attack=..[compr];[compr][mix]amix``: the speech is ducked
   by a compressor keyed on the wind (a microphone's automatic gain reacting to gusts), then
   averaged with the wind (``amix`` scales each of its two inputs by 1/2);
4. undo the scaling of step 2, and clip the mixture to ``[t * min, t * max]`` with ``t`` the
   row's ``clipping_threshold``.

Step 3 is reimplemented here sample for sample from ffmpeg's ``sidechaincompress`` (downward
mode, RMS detection, knee 2.82843, makeup 1, mix 1, level_in 1, the defaults); the 16-bit WAV
round trips the challenge makes through temporary files are skipped.

Two quirks of the challenge's renderer, reproduced by default (render.RenderSettings.wind_quirks):
the flag ``clipping=False`` is parsed with ``bool("False")``, which is True, so every wind row
is clipped (``clip_as_written=False`` here); and on rows without reverberation the mixture's
speech is the clean target's own array, which step 2 scales in place, so the clean target
keeps the factor ``0.9 / max(...)`` (`mix_wind` returns it; render.py applies it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from use_repro.data.distortions.noise import fit_noise, scale_to_snr

KNEE = 2.82843


@dataclass(frozen=True)
class WindParams:
    threshold: float
    ratio: float
    attack: float  # ms
    release: float  # ms
    sc_gain: float
    clipping: bool
    clipping_threshold: float


def sidechain_gain(sidechain: np.ndarray, fs: int, threshold: float, ratio: float, attack_ms: float,
                   release_ms: float, level_sc: float = 1.0, knee: float = KNEE) -> np.ndarray:
    """Per-sample gain [T] of ffmpeg's sidechaincompress keyed on `sidechain` [T]."""
    thres = math.log(threshold)
    lin_knee_start = threshold / math.sqrt(knee)
    lin_knee_stop = threshold * math.sqrt(knee)
    adj_knee_start = lin_knee_start * lin_knee_start
    knee_start = math.log(lin_knee_start)
    knee_stop = math.log(lin_knee_stop)
    compressed_knee_stop = (knee_stop - thres) / ratio + thres
    attack_coeff = min(1.0, 1.0 / (attack_ms * fs / 4000.0))
    release_coeff = min(1.0, 1.0 / (release_ms * fs / 4000.0))
    delta = 1.0 / ratio

    # RMS detection squares the (scaled) side-chain sample before the envelope follower.
    detect = ((np.asarray(sidechain, dtype=np.float64) * level_sc) ** 2).tolist()
    out = [1.0] * len(detect)
    slope = 0.0
    log, exp = math.log, math.exp
    # The loop is sequential (the follower's coefficient depends on its state), so it stays in
    # Python; what does not depend on the sample is taken out of it without changing one
    # operation on a sample: the knee's Hermite coefficients (_hermite computes them from
    # constants alone), the knee test, and the gain above the threshold, which the knee
    # overwrites. `slope > 0.0 and slope > adj_knee_start` is `slope > adj_knee_start`, as
    # adj_knee_start = (threshold / sqrt(knee))**2 > 0.
    soft = knee > 1.0
    width = knee_stop - knee_start
    c0, c1, c2, c3 = _hermite_coefficients(knee_start, compressed_knee_stop, 1.0, delta, width)
    for i, a in enumerate(detect):
        slope += (a - slope) * (attack_coeff if a > slope else release_coeff)
        if slope > adj_knee_start:
            s = 0.5 * log(slope)
            if soft and s < knee_stop:
                t = (s - knee_start) / width
                t2 = t * t
                g = c3 * (t2 * t) + c2 * t2 + c1 * t + c0
            else:
                g = (s - thres) / ratio + thres
            out[i] = exp(g - s)
    return np.asarray(out)


def _hermite_coefficients(p0, p1, m0, m1, width):
    """(ct0, ct1, ct2, ct3) of _hermite for a fixed interval, computed as _hermite computes them."""
    m0 *= width
    m1 *= width
    return p0, m0, -3 * p0 - 2 * m0 + 3 * p1 - m1, 2 * p0 + m0 - 2 * p1 + m1


def _hermite(x, x0, x1, p0, p1, m0, m1):
    """ffmpeg's hermite_interpolation (libavfilter/hermite.h)."""
    width = x1 - x0
    t = (x - x0) / width
    m0 *= width
    m1 *= width
    t2 = t * t
    t3 = t2 * t
    ct0 = p0
    ct1 = m0
    ct2 = -3 * p0 - 2 * m0 + 3 * p1 - m1
    ct3 = 2 * p0 + m0 - 2 * p1 + m1
    return ct3 * t3 + ct2 * t2 + ct1 * t + ct0


def mix_wind(speech: np.ndarray, wind: np.ndarray, fs: int, snr_db: float, params: WindParams,
             rng: np.random.Generator, clip_as_written: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
    """(noisy [T], scaled wind [T], pre-scale): the challenge's non-linear wind mixing."""
    noise = scale_to_snr(speech, fit_noise(wind, speech.shape[-1], rng), snr_db)
    peak = max(float(np.max(np.abs(speech))), float(np.max(np.abs(noise))))
    pre = 0.9 / peak if peak > 0 else 1.0
    s, n = speech * pre, noise * pre
    gain = sidechain_gain(n, fs, params.threshold, params.ratio, params.attack, params.release,
                          level_sc=params.sc_gain)
    mix = 0.5 * (s * gain + n) / pre
    if params.clipping or not clip_as_written:
        t = params.clipping_threshold
        mix = np.maximum(t * mix.min(), mix)
        mix = np.minimum(t * mix.max(), mix)
    return mix, noise, pre
