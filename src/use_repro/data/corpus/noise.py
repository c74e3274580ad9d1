"""Noise bank: categories in the spirit of the challenge's noise corpora, synthesised reproducibly.

Every category has different *types* for training and for test, so the test noise is of a kind
the model never heard (validation uses the training types, other renders):

| category | train / validation types | test types |
|---|---|---|
| stationary | white, pink | brown, blue-ish grey |
| babble | babble of held-out French/Spanish prompts (Debian), else of TTS sentences | babble of a held-out Italian speaker |
| hum_buzz | 50 Hz mains hum | 60 Hz buzz (sawtooth-rich) |
| music | sustained chord progressions | plucked-string melodies (Karplus-Strong) |
| fan_hvac | fan: blade-pass tones over low-passed noise | duct rumble: brown noise with slow surges |
| transient | keyboard-like clicks | door knocks and dish clatter (resonant impacts) |
| real_sfx | - | desktop event sounds and alsa's noise burst (Debian), at their own rates |

Babble talkers are resampled to the clip's rate (the babble keeps its source's band limit).
Real sound effects above 48 kHz are resampled to 48 kHz, stereo mixed to mono.
Each clip is scaled to an RMS of -20 dBFS (peak-limited); the simulation sets SNRs anyway.
"""
from __future__ import annotations

import numpy as np

from use_repro.audio.resample import resample
from use_repro.data.corpus.crowd import coloured, hum

CATEGORY = {
    "white": "stationary", "pink": "stationary", "brown": "stationary", "grey": "stationary",
    "babble": "babble", "babble_heldout": "babble",
    "hum50": "hum_buzz", "buzz60": "hum_buzz",
    "chords": "music", "pluck": "music",
    "fan": "fan_hvac", "duct": "fan_hvac",
    "clicks": "transient", "knocks": "transient",
    "real_sfx": "real_sfx",
}
TRAIN_TYPES = ("white", "pink", "babble", "hum50", "chords", "fan", "clicks")
TEST_TYPES = ("brown", "grey", "babble_heldout", "buzz60", "pluck", "duct", "knocks", "real_sfx")
TARGET_RMS = 0.1


def types_for(split: str) -> tuple[str, ...]:
    return TEST_TYPES if split == "test" else TRAIN_TYPES


def normalise(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, np.float64)
    rms = np.sqrt(np.mean(y**2)) if y.size else 0.0
    if rms > 0:
        y = y * (TARGET_RMS / rms)
    peak = np.max(np.abs(y)) if y.size else 0.0
    if peak > 0.99:
        y = y * (0.99 / peak)
    return y.astype(np.float32)


def synth(kind: str, n: int, fs: int, rng: np.random.Generator,
          talkers: list[tuple[np.ndarray, int]] | None = None) -> np.ndarray:
    """One noise clip of type `kind`, [n] float32 at `fs` (babble needs `talkers`: (samples, rate))."""
    from scipy import signal  # here, not at import: `use-repro corpus --help` stays quick

    t = np.arange(n) / fs
    if kind == "white":
        y = rng.standard_normal(n)
    elif kind == "pink":
        y = coloured(n, rng, -1.0)
    elif kind == "brown":
        y = coloured(n, rng, -2.0)
    elif kind == "grey":  # mild high tilt: between white and blue
        y = coloured(n, rng, 0.5)
    elif kind in ("babble", "babble_heldout"):
        if not talkers:
            raise ValueError(f"noise type {kind}: no talkers to make babble from")
        y = _babble(n, fs, talkers, rng)
    elif kind == "hum50":
        y = hum(n, fs, 50.0 * rng.uniform(0.995, 1.005), rng) + 0.05 * coloured(n, rng, -1.0)
    elif kind == "buzz60":
        f0 = 60.0 * rng.uniform(0.995, 1.005)
        y = signal.sawtooth(2 * np.pi * f0 * t + rng.uniform(0, 2 * np.pi), 0.5 + 0.4 * rng.uniform())
        y = y + 0.3 * np.sign(np.sin(2 * np.pi * 2 * f0 * t)) + 0.05 * rng.standard_normal(n)
    elif kind == "chords":
        y = _chords(n, fs, rng)
    elif kind == "pluck":
        y = _pluck(n, fs, rng)
    elif kind == "fan":
        y = _fan(n, fs, rng)
    elif kind == "duct":
        y = coloured(n, rng, -2.0) * (1 + 0.6 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t)) \
            + 0.3 * coloured(n, rng, -1.0)
    elif kind == "clicks":
        y = _impacts(n, fs, rng, rate=rng.uniform(4, 9), f_lo=2000, f_hi=6000, decay=(0.002, 0.006))
    elif kind == "knocks":
        y = _impacts(n, fs, rng, rate=rng.uniform(0.8, 2.5), f_lo=150, f_hi=2500, decay=(0.03, 0.2))
    else:
        raise ValueError(f"unknown noise type {kind!r}; known: {', '.join(CATEGORY)}")
    return normalise(y)


def _babble(n: int, fs: int, talkers: list[tuple[np.ndarray, int]], rng: np.random.Generator) -> np.ndarray:
    y = np.zeros(n)
    k = int(rng.integers(4, 9))
    for _ in range(k):
        stream = []
        total = 0
        while total < n:  # one talker: consecutive utterances with short gaps
            x, sr = talkers[int(rng.integers(len(talkers)))]
            x = resample(x, sr, fs) if sr != fs else x
            x = x / (np.sqrt(np.mean(x**2)) + 1e-9)
            gap = np.zeros(int(fs * rng.uniform(0.05, 0.4)))
            stream += [gap, x]
            total += len(gap) + len(x)
        s = np.concatenate(stream)
        off = int(rng.integers(0, max(1, len(s) - n + 1)))
        y += s[off:off + n] * rng.uniform(0.5, 1.0)
    return y


def _env(n: int, fs: int, attack: float, decay: float) -> np.ndarray:
    t = np.arange(n) / fs
    return np.minimum(1.0, t / max(attack, 1e-4)) * np.exp(-t / decay)


def _chords(n: int, fs: int, rng: np.random.Generator) -> np.ndarray:
    y = np.zeros(n)
    root = 220.0 * 2 ** (rng.integers(-5, 5) / 12)
    pos = 0
    while pos < n:
        dur = int(fs * rng.uniform(0.6, 1.6))
        m = min(dur, n - pos)
        tt = np.arange(m) / fs
        deg = int(rng.choice([0, 3, 5, 7, 8, 10]))
        chord = [deg, deg + 4 - int(rng.integers(2)), deg + 7]
        seg = np.zeros(m)
        for st in chord:
            f = root * 2 ** (st / 12)
            for h, a in enumerate((1.0, 0.4, 0.2, 0.1), 1):
                if h * f < fs / 2:
                    seg += a * np.sin(2 * np.pi * h * f * tt + rng.uniform(0, 2 * np.pi))
        y[pos:pos + m] += seg * _env(m, fs, 0.02, rng.uniform(0.4, 1.5))
        pos += dur
    return y


def _pluck(n: int, fs: int, rng: np.random.Generator) -> np.ndarray:
    from scipy import signal  # here, not at import: `use-repro corpus --help` stays quick

    y = np.zeros(n)
    scale = [0, 2, 4, 7, 9, 12, 14]
    base = 196.0 * 2 ** (rng.integers(-3, 6) / 12)
    pos = 0
    while pos < n:
        f = base * 2 ** (scale[int(rng.integers(len(scale)))] / 12)
        period = max(2, int(round(fs / f)))
        m = min(int(fs * rng.uniform(0.2, 0.6)), n - pos)
        # Karplus-Strong: a noise burst in a lowpass-averaged delay loop
        buf = rng.uniform(-1, 1, period)
        a = np.zeros(period + 2)
        a[0], a[period], a[period + 1] = 1.0, -0.498, -0.498
        exc = np.zeros(m)
        exc[:period] = buf[: min(period, m)]
        seg = signal.lfilter([1.0], a, exc)
        y[pos:pos + m] += seg
        pos += m
    return y


def _fan(n: int, fs: int, rng: np.random.Generator) -> np.ndarray:
    from scipy import signal  # here, not at import: `use-repro corpus --help` stays quick

    t = np.arange(n) / fs
    sos = signal.butter(2, min(800.0, 0.4 * fs) / (fs / 2), output="sos")
    body = signal.sosfilt(sos, rng.standard_normal(n))
    body /= np.std(body) + 1e-12
    bpf = rng.uniform(80, 240)  # blade-pass frequency
    tones = sum(a * np.sin(2 * np.pi * k * bpf * t + rng.uniform(0, 2 * np.pi))
                for k, a in enumerate((0.5, 0.25, 0.12), 1) if k * bpf < fs / 2)
    am = 1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t)
    return (body + tones) * am + 0.2 * coloured(n, rng, -1.0)


def _impacts(n: int, fs: int, rng: np.random.Generator, rate: float, f_lo: float, f_hi: float,
             decay: tuple[float, float]) -> np.ndarray:
    y = 0.01 * coloured(n, rng, -1.0)
    count = max(1, rng.poisson(rate * n / fs))
    for start in np.sort(rng.integers(0, n, count)):
        m = min(n - start, int(fs * decay[1] * 6))
        tt = np.arange(m) / fs
        f = min(rng.uniform(f_lo, f_hi), 0.45 * fs)
        d = rng.uniform(*decay)
        ev = np.sin(2 * np.pi * f * tt) * np.exp(-tt / d) + 0.3 * rng.standard_normal(m) * np.exp(-tt / (d / 3))
        y[start:start + m] += rng.uniform(0.3, 1.0) * ev
    return y


def real_sfx(x: np.ndarray, fs: int) -> tuple[np.ndarray, int]:
    """A real sound effect made a noise clip: mono, at most 48 kHz, normalised."""
    if fs > 48000:
        x, fs = resample(x, fs, 48000), 48000
    return normalise(x), fs
