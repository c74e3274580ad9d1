"""The sampling-frequency-independent STFT: sizes, exact inversion, compression, bands."""
from __future__ import annotations

import math

import pytest
import torch

from use_repro.audio.stft import (RATES, STFTError, band_bins, compress, decompress, mag_pha_istft,
                                  mag_pha_stft, mag_pha_to_com, num_bins, num_frames, stft,
                                  stft_config)
from tests.conftest import tone

EXPECTED = {8000: (320, 40), 16000: (640, 80), 22050: (882, 110), 24000: (960, 120),
            32000: (1280, 160), 44100: (1764, 220), 48000: (1920, 240)}


@pytest.mark.parametrize("fs", RATES)
def test_config_same_durations_integer_bins(fs):
    n_fft, hop, win = stft_config(fs)
    assert (n_fft, hop) == EXPECTED[fs] and win == n_fft
    assert n_fft / fs == pytest.approx(0.040)           # 40 ms window at every rate
    assert hop / fs == pytest.approx(0.005, rel=0.003)  # 5 ms hop (4.99 ms at 22.05/44.1 kHz)
    assert num_bins(fs) == n_fft // 2 + 1
    assert fs / n_fft == pytest.approx(25.0)            # every bin is 25 Hz wide


def test_bad_rate_is_an_error():
    with pytest.raises(STFTError, match="11111 Hz"):
        stft_config(11111)


@pytest.mark.parametrize("fs", RATES)
def test_round_trip_below_1e5(fs):
    x = torch.stack([torch.from_numpy(tone(fs, 0.3, freq=220.0 * (i + 1), seed=i)) for i in range(2)])
    x = x + 0.3 * torch.randn_like(x)                   # broadband content up to Nyquist
    length = x.shape[-1] - 7                            # not a multiple of the hop
    x = x[:, :length]
    mag_c, pha, com = mag_pha_stft(x, fs)
    assert mag_c.shape == (2, num_bins(fs), num_frames(length, fs)) == pha.shape
    assert com.shape == mag_c.shape + (2,)
    y = mag_pha_istft(mag_c, pha, fs, length)
    assert y.shape == x.shape
    assert (y - x).abs().max().item() < 1e-5


def test_compression_and_com():
    x = torch.randn(1, 4000)
    mag_c, pha, com = mag_pha_stft(x, 16000)
    spec = stft(x, 16000)
    torch.testing.assert_close(mag_c, torch.log1p(spec.abs()))
    torch.testing.assert_close(com, mag_pha_to_com(mag_c, pha), atol=1e-5, rtol=1e-5)
    m = torch.rand(10) * 50
    torch.testing.assert_close(decompress(compress(m)), m)
    assert decompress(torch.tensor([-1.0])).item() == 0.0       # clamped, never negative


def test_gradient_finite_at_silence():
    x = torch.zeros(1, 1600, requires_grad=True)     # every bin exactly 0
    _, _, com = mag_pha_stft(x, 8000)
    com.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_short_signal():
    x = torch.randn(1, 100)                           # shorter than half a 640-point window
    mag_c, pha, _ = mag_pha_stft(x, 16000)
    assert mag_c.shape[-1] == num_frames(100, 16000) == 2
    assert mag_pha_istft(mag_c, pha, 16000, 100).shape == (1, 100)


@pytest.mark.parametrize("fs,n", [(8000, 1), (16000, 2), (22050, 3), (24000, 3), (32000, 4),
                                  (44100, 6), (48000, 6)])
def test_bands(fs, n):
    bands = band_bins(fs)
    assert len(bands) == n == math.ceil(fs / 2 / 4000)
    assert bands[0][0] == 0 and bands[-1][1] == num_bins(fs)
    assert all(a[1] == b[0] for a, b in zip(bands, bands[1:]))
    assert all(hi - lo == 160 for lo, hi in bands[:-1])   # 4 kHz of 25 Hz bins
    if fs == 22050:
        assert bands == [(0, 160), (160, 320), (320, 442)]


def test_window_first_made_under_inference_mode_still_trains():
    # enhancement (inference mode) may be the first to ask for a rate's window; a training step
    # in the same process must still be able to back-propagate through that cached window
    from use_repro.audio import stft as S

    S._window_cpu.cache_clear()
    x = torch.randn(1, 1600)
    with torch.inference_mode():
        mag_pha_stft(x, 16000)
    w = torch.randn(1, 1600, requires_grad=True)
    mag_c, _, _ = mag_pha_stft(w, 16000)
    mag_c.sum().backward()
    assert w.grad is not None and torch.isfinite(w.grad).all()
