"""Fixtures of the VQScore tests: speech-like audio the tests make themselves."""
from __future__ import annotations

import numpy as np


def babble_voice(seconds: float, fs: int = 16000, seed: int = 0) -> np.ndarray:
    """Speech-like audio [T] float32: voiced syllables (a gliding pitch 90-220 Hz with harmonics
    shaped by two moving formants) separated by short pauses, plus a breath of noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fs)
    out = np.zeros(n, dtype=np.float64)
    pos = int(rng.integers(0, fs // 10))
    while pos < n:
        length = int(rng.uniform(0.12, 0.35) * fs)
        seg = min(length, n - pos)
        t = np.arange(seg) / fs
        f0 = rng.uniform(90, 220) * (1 + rng.uniform(-0.15, 0.15) * t / max(t[-1], 1e-3))
        phase = 2 * np.pi * np.cumsum(f0) / fs
        f1, f2 = rng.uniform(300, 900), rng.uniform(900, 2500)
        syl = np.zeros(seg)
        for k in range(1, int(4000 / f0.max())):
            fk = k * f0
            gain = np.exp(-((fk - f1) / 250) ** 2) + 0.6 * np.exp(-((fk - f2) / 350) ** 2) + 0.02
            syl += gain * np.sin(k * phase) / np.sqrt(k)
        env = np.sin(np.pi * np.arange(seg) / seg) ** 0.7
        out[pos:pos + seg] += syl * env * rng.uniform(0.3, 1.0)
        pos += seg + int(rng.uniform(0.03, 0.2) * fs)
    out += 0.002 * rng.standard_normal(n)
    out *= 0.5 / (np.abs(out).max() + 1e-9)
    return out.astype(np.float32)


def add_white_noise(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(x.size)
    noise *= np.sqrt(np.mean(x.astype(np.float64) ** 2) / 10 ** (snr_db / 10) / np.mean(noise ** 2))
    return (x + noise).astype(np.float32)
