"""The deliberately imperfect "crowd-sourced" speech source.

A share of the training pool is moved to source `crowd`; a share of those utterances
(`corpus.crowd.dirty_share`) is degraded the way crowd-sourced recordings are: low-level
stationary background noise, mains hum, electrical microphone hiss, or a low-bitrate codec.
This is what the paper's quality filtering removes, and `crowd_dirty.tsv` is its ground truth:
one row per speech uid of the corpus, ``uid dirty kind snr_dB hum_hz bitrate_kbps clean_path``,
where `clean_path` is the undegraded render kept beside the corpus so the degradation can be
measured (`residual = dirty - clean`).

Additive kinds are scaled to an exact SNR over the whole utterance (speech power over added
power), so the side file's `snr_dB` is what a measurement of the residual gives back.
"""
from __future__ import annotations

import io

import numpy as np
import soundfile as sf

KINDS = ("noise", "hum", "hiss", "codec")
CROWD_COLUMNS = ("uid", "dirty", "kind", "snr_dB", "hum_hz", "bitrate_kbps", "clean_path")


def _scale_to_snr(x: np.ndarray, d: np.ndarray, snr_db: float) -> np.ndarray:
    px = float(np.mean(x.astype(np.float64) ** 2))
    pd = float(np.mean(d.astype(np.float64) ** 2))
    if pd <= 0 or px <= 0:
        return np.zeros_like(x)
    return (d * np.sqrt(px / (pd * 10 ** (snr_db / 10)))).astype(np.float32)


def coloured(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Unit-variance noise [n] whose power spectrum goes as f**exponent (0 white, -1 pink, -2 brown, +1 blue)."""
    w = rng.standard_normal(n)
    spec = np.fft.rfft(w)
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    spec *= f ** (exponent / 2)
    spec[0] = 0.0
    y = np.fft.irfft(spec, n)
    return (y / (np.std(y) + 1e-12)).astype(np.float32)


def hum(n: int, fs: int, f0: float, rng: np.random.Generator) -> np.ndarray:
    """Mains hum [n]: f0 and a few decaying harmonics with random phases (unit variance)."""
    t = np.arange(n) / fs
    y = np.zeros(n)
    for k, a in enumerate((1.0, 0.5, 0.35, 0.2, 0.12), 1):
        if k * f0 < fs / 2:
            y += a * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
    return (y / (np.std(y) + 1e-12)).astype(np.float32)


def hiss(n: int, fs: int, rng: np.random.Generator) -> np.ndarray:
    """Electrical microphone hiss [n]: white noise tilted towards high frequencies (above ~2 kHz)."""
    from scipy import signal  # here, not at import: `use-repro corpus --help` stays quick

    w = rng.standard_normal(n)
    sos = signal.butter(2, min(2000.0, 0.3 * fs) / (fs / 2), btype="highpass", output="sos")
    y = signal.sosfilt(sos, w) + 0.1 * w
    return (y / (np.std(y) + 1e-12)).astype(np.float32)


def mp3_roundtrip(x: np.ndarray, fs: int, compression: float) -> tuple[np.ndarray, float]:
    """Encode to constant-bitrate MP3 and decode; returns (samples aligned to x, kbit/s)."""
    buf = io.BytesIO()
    sf.write(buf, x, fs, format="MP3", subtype="MPEG_LAYER_III", compression_level=compression,
             bitrate_mode="CONSTANT")
    kbps = len(buf.getvalue()) * 8 / 1000 / (len(x) / fs)
    buf.seek(0)
    y, _ = sf.read(buf, dtype="float32")
    # The encoder adds a delay; find it by cross-correlation and cut y back to x's length.
    lag = _lag(x, y, max_lag=min(len(y) - 1, 4096))
    y = y[lag:lag + len(x)]
    if len(y) < len(x):
        y = np.pad(y, (0, len(x) - len(y)))
    return y.astype(np.float32), kbps


def _lag(x: np.ndarray, y: np.ndarray, max_lag: int) -> int:
    n = min(len(x), len(y) - max_lag)
    if n <= 0:
        return 0
    from scipy import signal  # here, not at import: `use-repro corpus --help` stays quick

    c = signal.correlate(y[: n + max_lag], x[:n], mode="valid")
    return int(np.argmax(c))


def degrade(x: np.ndarray, fs: int, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """Apply one degradation. Returns (clean, dirty, params) with clean and dirty scaled alike so
    neither clips; params has snr_dB / hum_hz / bitrate_kbps (None where not applicable)."""
    x = np.asarray(x, np.float32)
    n = len(x)
    params = {"snr_dB": None, "hum_hz": None, "bitrate_kbps": None}
    if kind == "noise":
        snr = float(rng.uniform(20, 35))
        d = _scale_to_snr(x, coloured(n, rng, float(rng.choice([0.0, -1.0]))), snr)
        params["snr_dB"] = round(snr, 2)
    elif kind == "hum":
        snr = float(rng.uniform(18, 30))
        f0 = float(rng.choice([50.0, 60.0]))
        d = _scale_to_snr(x, hum(n, fs, f0, rng), snr)
        params.update(snr_dB=round(snr, 2), hum_hz=f0)
    elif kind == "hiss":
        snr = float(rng.uniform(22, 38))
        d = _scale_to_snr(x, hiss(n, fs, rng), snr)
        params["snr_dB"] = round(snr, 2)
    elif kind == "codec":
        y, kbps = mp3_roundtrip(x, fs, float(rng.uniform(0.85, 1.0)))
        d = y - x
        params["bitrate_kbps"] = round(kbps, 1)
    else:
        raise ValueError(f"unknown crowd degradation {kind!r}; allowed: {', '.join(KINDS)}")
    dirty = x + d
    peak = float(np.max(np.abs(dirty))) if n else 0.0
    g = 0.95 / peak if peak > 0.95 else 1.0
    if kind in ("noise", "hum", "hiss"):  # re-state the SNR exactly as written (after scaling)
        params["snr_dB"] = round(10 * np.log10(np.mean((g * x.astype(np.float64)) ** 2)
                                               / np.mean((g * d.astype(np.float64)) ** 2)), 2)
    return (g * x).astype(np.float32), (g * dirty).astype(np.float32), params
