"""Bandwidth limitation with the challenge's four resampling methods."""
import importlib.util

import numpy as np
import pytest
import scipy.signal

from use_repro.audio.io import SUPPORTED_RATES
from use_repro.data.distortions.bandwidth import CHALLENGE_METHODS, limit_bandwidth, resample

PAIRS = [(fs, fn) for fs in SUPPORTED_RATES for fn in SUPPORTED_RATES if fn < fs]


def energy_above(y, fs, f_cut, guard_bins=4):
    f, p = scipy.signal.welch(y, fs, nperseg=2048)
    df = f[1] - f[0]
    return 10 * np.log10(p[f > f_cut + guard_bins * df].sum() / p.sum() + 1e-30)


@pytest.mark.parametrize("fs,fs_new", PAIRS)
@pytest.mark.parametrize("method", CHALLENGE_METHODS)
def test_energy_above_new_nyquist(fs, fs_new, method):
    x = np.random.default_rng(fs + fs_new).standard_normal(int(1.5 * fs))
    y = limit_bandwidth(x, fs, fs_new, method)
    assert y.shape == x.shape
    # Welch with a Hann window; `guard_bins` skips the window's own leakage across the edge.
    # polyphase is scipy.signal.resample_poly's default design (Kaiser beta 5), whose -6 dB
    # point sits *at* the new Nyquist: faithful to the challenge, it is checked past its
    # transition band (1.2x the new Nyquist) instead.
    edge = fs_new / 2 * (1.2 if method == "polyphase" else 1.0)
    assert energy_above(y, fs, edge) < -50


def test_same_rate_and_none_are_identity():
    x = np.random.default_rng(0).standard_normal(1000)
    assert limit_bandwidth(x, 16000, 16000, "kaiser_best") is x


@pytest.mark.skipif(importlib.util.find_spec("resampy") is None, reason="resampy not installed")
@pytest.mark.parametrize("fs_in,fs_out", [(48000, 8000), (8000, 48000), (44100, 32000), (22050, 16000)])
@pytest.mark.parametrize("name", ["kaiser_best", "kaiser_fast"])
def test_kaiser_matches_resampy(fs_in, fs_out, name):
    import resampy

    x = np.random.default_rng(1).standard_normal(fs_in)
    ref = resampy.resample(x, fs_in, fs_out, filter=name)
    ours = resample(x, fs_in, fs_out, name)[:ref.shape[0]]
    assert np.max(np.abs(ours - ref)) < 1e-9
