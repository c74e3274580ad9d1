"""Additive noise: ESPnet-identical activity detection and the SNR measured on active frames."""
import numpy as np
import pytest
import scipy.signal

from use_repro.audio.io import SUPPORTED_RATES
from use_repro.data.distortions.noise import active_mask, fit_noise, mix_noise, snr_active


def espnet_detect_non_silence(x, threshold=0.01, frame_length=1024, frame_shift=512):
    """Reference: ESPnet's power VAD written out with explicit frames (1-D input)."""
    n = x.shape[-1]
    if n < frame_length:
        return np.ones(n, dtype=bool)
    nadd = (-(n - frame_length) % frame_shift) % frame_length
    xp = np.pad(x, (0, nadd))
    n_frames = (xp.shape[-1] - frame_length) // frame_shift + 1
    frames = np.stack([xp[i * frame_shift:i * frame_shift + frame_length] for i in range(n_frames)])
    frames = frames * scipy.signal.get_window("boxcar", frame_length)
    power = (frames ** 2).mean(axis=-1)
    mean_power = np.mean(power)
    if mean_power == 0:
        return np.ones(n, dtype=bool)
    det = np.repeat(power / mean_power > threshold, frame_shift)
    return np.pad(det, (0, n - det.shape[-1]), mode="edge")


@pytest.mark.parametrize("n", [500, 1024, 1025, 4096, 16000, 44100 + 7])
def test_active_mask_matches_espnet(n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n) * (np.arange(n) % 6000 < 3000)  # bursts and silences
    assert np.array_equal(active_mask(x), espnet_detect_non_silence(x))
    assert np.array_equal(active_mask(np.zeros(n)), np.ones(n, dtype=bool))


def test_silent_gaps_are_inactive():
    x = np.zeros(48000)
    x[10000:20000] = np.random.default_rng(0).standard_normal(10000)
    m = active_mask(x)
    assert m[12000:18000].all() and not m[30000:40000].any()


@pytest.mark.parametrize("fs", SUPPORTED_RATES)
@pytest.mark.parametrize("snr", [-10.0, -5.0, 3.3, 20.0])
def test_snr_on_active_frames(fs, snr):
    rng = np.random.default_rng(fs)
    n = int(1.3 * fs)
    speech = rng.standard_normal(n) * (np.sin(np.arange(n) / fs * 2 * np.pi * 1.5) > 0)
    noise = rng.standard_normal(int(0.7 * fs)) * 0.3
    noisy, scaled = mix_noise(speech, noise, snr, np.random.default_rng(1))
    assert noisy.shape == speech.shape == scaled.shape
    assert abs(snr_active(noisy - scaled, scaled) - snr) < 0.1
    assert np.allclose(noisy - scaled, speech)


def test_fit_noise_crops_and_wraps_with_offset():
    noise = np.arange(10.0)
    long = fit_noise(noise, 25, np.random.default_rng(0))
    assert long.shape == (25,) and set(long) == set(noise)
    short = fit_noise(noise, 4, np.random.default_rng(0))
    assert short.shape == (4,) and np.all(np.diff(short) == 1)
