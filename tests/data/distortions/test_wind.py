import numpy as np
import pytest

from use_repro.data.distortions.noise import active_power
from use_repro.data.distortions.wind import WindParams, mix_wind, sidechain_gain


def test_compressor_gain_follows_the_sidechain():
    fs = 16000
    quiet = np.full(fs, 1e-4)
    assert np.all(sidechain_gain(quiet, fs, 0.1, 10, 20, 100) == 1.0)
    loud = np.full(fs, 0.9)
    g = sidechain_gain(loud, fs, 0.1, 10, 20, 100)
    assert np.all(g <= 1.0) and g[-1] < 0.3
    # a stronger ratio ducks more
    assert sidechain_gain(loud, fs, 0.1, 20, 20, 100)[-1] < sidechain_gain(loud, fs, 0.1, 2, 20, 100)[-1]


@pytest.mark.parametrize("as_written", [False, True])
def test_wind_mix_and_clipping(as_written):
    fs = 16000
    rng = np.random.default_rng(0)
    speech = rng.standard_normal(2 * fs) * 0.1
    wind = np.cumsum(rng.standard_normal(3 * fs)) / 100
    p = WindParams(0.2, 5.0, 20.0, 50.0, 1.0, clipping=False, clipping_threshold=0.9)
    mix, noise, pre = mix_wind(speech, wind, fs, 5.0, p, np.random.default_rng(1), clip_as_written=as_written)
    assert mix.shape == speech.shape == noise.shape
    assert np.isclose(pre, 0.9 / max(np.abs(speech).max(), np.abs(noise).max()))
    assert abs(10 * np.log10(active_power(speech) / active_power(noise)) - 5.0) < 0.1
    # The challenge clips every wind row (bool("False") is True); as_written honours the flag.
    at_extremes = int((mix == mix.max()).sum() + (mix == mix.min()).sum())
    assert (at_extremes > 2) == (not as_written)
