"""Additive noise at a target SNR measured on active frames, as the challenge mixes it.

The challenge (``simulate_data_from_param.py: mix_noise``) crops or wrap-pads the noise to the
speech length with an offset drawn from the row's RNG, measures the power of speech and noise
on their *active* samples with ESPnet's ``detect_non_silence`` (1024-sample frames, hop 512,
a frame is active when its power exceeds 1 % of the mean frame power), and scales the noise so
that ``10 log10(P_speech / P_noise) = snr``. The speech here is the reverberant speech.
The frame sizes are in samples, not milliseconds, at every rate, as in the challenge.
"""
from __future__ import annotations

import numpy as np

FRAME_LENGTH = 1024
FRAME_SHIFT = 512
ACTIVE_THRESHOLD = 0.01


def active_mask(x: np.ndarray, threshold: float = ACTIVE_THRESHOLD) -> np.ndarray:
    """Boolean [T] mask of active samples, equal to ESPnet's ``detect_non_silence(x)``.

    Frame i spans samples [512 i, 512 i + 1024) of the zero-padded signal and marks samples
    [512 i, 512 (i + 1)); the tail after the last frame repeats the last decision.
    Signals shorter than one frame are all active.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    if n < FRAME_LENGTH:
        return np.ones(n, dtype=bool)
    pad = (-(n - FRAME_LENGTH) % FRAME_SHIFT) % FRAME_LENGTH
    xp = np.concatenate([x, np.zeros(pad)]) if pad else x
    # A 1024-sample frame is two 512-sample halves; summing each half with numpy's pairwise
    # sum and adding the two is exactly how numpy sums the 1024 samples, so the frame powers
    # (and hence every active/inactive decision) match ESPnet's bit for bit.
    halves = (xp * xp).reshape(-1, FRAME_SHIFT).sum(axis=1)
    power = (halves[:-1] + halves[1:]) / FRAME_LENGTH
    mean_power = power.mean()
    if mean_power == 0:
        return np.ones(n, dtype=bool)
    frames = power / mean_power > threshold
    mask = np.repeat(frames, FRAME_SHIFT)
    if mask.shape[0] < n:
        mask = np.concatenate([mask, np.full(n - mask.shape[0], mask[-1])])
    return mask[:n]


def active_power(x: np.ndarray) -> float:
    """Mean power of `x` ([T]) over its active samples."""
    x = np.asarray(x, dtype=np.float64)
    return float((x[active_mask(x)] ** 2).mean())


def snr_active(speech: np.ndarray, noise: np.ndarray) -> float:
    """SNR in dB between two [T] signals, each measured on its own active samples."""
    return 10.0 * np.log10(active_power(speech) / max(active_power(noise), 1e-10))


def fit_noise(noise: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """Crop (random offset) or wrap-pad (random offset) `noise` [N] to `length` samples."""
    n = noise.shape[-1]
    if n < length:
        offset = int(rng.integers(0, length - n))
        return np.pad(noise, (offset, length - n - offset), mode="wrap")
    if n > length:
        offset = int(rng.integers(0, n - length))
        return noise[offset:offset + length]
    return noise


def scale_to_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`noise` [T] scaled so that its active power is `snr_db` below the speech's."""
    p_speech = active_power(speech)
    p_noise = active_power(noise)
    gain = 10 ** (-snr_db / 20) * np.sqrt(p_speech) / np.sqrt(max(p_noise, 1e-10))
    return gain * noise


def mix_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, scaled noise), both [T]: `noise` fitted to the speech length and added at `snr_db`."""
    noise = scale_to_snr(speech, fit_noise(noise, speech.shape[-1], rng), snr_db)
    return speech + noise, noise
