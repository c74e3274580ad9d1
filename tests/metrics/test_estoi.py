"""use_repro.metrics.estoi against pystoi (what URGENT 2025 runs) on audio made here: the same
double at every rate the challenge uses, and pystoi's behaviour on short and silent signals."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from use_repro.metrics import estoi as E
from use_repro.metrics import intrusive as m

pystoi = pytest.importorskip("pystoi")

RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)


def speech_like(fs: int, seconds: float, seed: int, silence: tuple[float, float] = (0.3, 0.45)) -> np.ndarray:
    """A voiced, syllable-modulated harmonic signal with a gliding pitch and a stretch of digital
    silence (fractions of the length), peak 0.5. [T] float32."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fs))
    t = np.arange(n) / fs
    f0 = rng.uniform(90, 230) * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.3, 1.2) * t))
    phase = 2 * np.pi * np.cumsum(f0) / fs
    x = sum(np.sin(k * phase) / k for k in range(1, 40) if 240 * k < fs / 2)
    syllables = np.clip(np.sin(2 * np.pi * rng.uniform(3, 5) * t + rng.uniform(0, 6)), 0, None) ** 0.7
    x = x * syllables * (0.4 + 0.6 * np.abs(np.sin(2 * np.pi * 0.4 * t)))
    x[int(silence[0] * n):int(silence[1] * n)] = 0.0
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def degrade(x: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(len(x))
    noise *= np.sqrt(np.mean(x.astype(np.float64) ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    return (x + noise).astype(np.float32)


def reference(x: np.ndarray, y: np.ndarray, fs: int) -> float:
    """The challenge's call, literally."""
    np.random.seed(0)
    return float(pystoi.stoi(x, y, fs, extended=True))


@pytest.mark.parametrize("fs", RATES)
def test_same_value_as_pystoi_at_every_rate(fs):
    diffs = []
    for seed, (seconds, snr) in enumerate([(3.0, 0.0), (4.3, 10.0), (2.05, 25.0)]):
        x = speech_like(fs, seconds, seed)
        y = degrade(x, snr, seed + 100)
        if seed == 1:  # an estimate that drops a stretch the reference has (a silent gap in y)
            y[int(0.6 * len(y)):int(0.7 * len(y))] = 0.0
        want = reference(x, y, fs)
        got = m.estoi_score(x, y, fs)
        assert 0.05 < got < 0.999
        diffs.append(abs(got - want))
    # pystoi's arithmetic on arrays of the same layout: the same double, not just close
    assert max(diffs) <= 1e-12, diffs
    assert max(diffs) == 0.0, diffs


def test_native_10k_and_float64_input():
    x = speech_like(10000, 3.0, 7).astype(np.float64)
    y = degrade(x.astype(np.float32), 5.0, 8).astype(np.float64) * 0.7
    assert E.estoi(x, y, 10000) == reference(x, y, 10000)
    x16 = speech_like(16000, 2.5, 9).astype(np.float64)
    y16 = x16 + 0.01 * np.random.default_rng(3).standard_normal(len(x16))
    assert E.estoi(x16, y16, 16000) == reference(x16, y16, 16000)


def test_resample_filter_is_pystois():
    from pystoi.utils import _resample_window_oct

    for fs in RATES:
        h = _resample_window_oct(10000, fs)
        assert np.array_equal(E._resample_filter(fs), h / np.sum(h))
    from pystoi.utils import thirdoct

    assert np.array_equal(E.third_octave_matrix(), thirdoct(10000, 512, 15, 150)[0])


@pytest.mark.parametrize("fs", (16000, 44100))
def test_digital_silence_scored_as_pystoi(fs):
    """Silent signals are decided by pystoi's eps-scaled noise: ours draws the same numbers."""
    n = int(1.5 * fs)
    zero = np.zeros(n, np.float32)
    x = speech_like(fs, 1.5, 11)
    noise = degrade(zero + 1e-3, 0.0, 12) - np.float32(1e-3)
    for a, b in ((zero, zero), (zero, noise), (x, zero), (zero, x)):
        assert m.estoi_score(a, b, fs) == reference(a, b, fs)


def test_short_signal_warns_and_returns_1e5_as_pystoi():
    fs = 16000
    x = speech_like(fs, 0.3, 13)  # < 30 STFT frames at 10 kHz
    y = degrade(x, 10.0, 14)
    with pytest.warns(RuntimeWarning, match="Not enough STFT frames"):
        want = reference(x, y, fs)
    with pytest.warns(RuntimeWarning, match="Not enough STFT frames"):
        got = m.estoi_score(x, y, fs)
    assert got == want == 1e-5
    # long enough in samples, but mostly silence: < 30 frames left after silent-frame removal
    x = speech_like(fs, 2.0, 15, silence=(0.15, 1.0))
    y = degrade(x, 10.0, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = reference(x, y, fs)
    assert want == 1e-5
    with pytest.warns(RuntimeWarning, match="Not enough STFT frames"):
        assert m.estoi_score(x, y, fs) == want


def test_too_short_for_one_frame_raises():
    # pystoi fails (NumPy AxisError) on <= 256 samples at 10 kHz; ours says why
    x = speech_like(16000, 0.02, 17)
    with pytest.raises(ValueError, match="more than 256 samples"):
        m.estoi_score(x, x, 16000)


def test_lengths_and_global_random_state():
    x = speech_like(16000, 1.0, 18)
    with pytest.raises(ValueError, match="equal length"):
        m.estoi_score(x, x[:-1], 16000)
    np.random.seed(5)
    before = np.random.get_state()[1].copy()
    m.estoi_score(x, degrade(x, 5.0, 19), 16000)
    assert np.array_equal(np.random.get_state()[1], before)  # the challenge's seed is ours alone
