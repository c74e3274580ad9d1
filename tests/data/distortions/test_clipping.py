import numpy as np
import pytest

from use_repro.audio.io import SUPPORTED_RATES
from use_repro.data.distortions.clipping import clip_quantiles


@pytest.mark.parametrize("fs", SUPPORTED_RATES)
def test_clipped_values_inside_quantiles(fs):
    rng = np.random.default_rng(fs)
    x = rng.standard_normal(fs) * np.hanning(fs)
    qmin, qmax = rng.uniform(0, 0.1), rng.uniform(0.9, 1.0)
    y = clip_quantiles(x, qmin, qmax)
    lo, hi = np.quantile(x, [qmin, qmax])
    assert y.min() >= lo and y.max() <= hi
    assert np.array_equal(y[(x > lo) & (x < hi)], x[(x > lo) & (x < hi)])
    assert abs(np.mean(x < lo) - qmin) < 2 / fs + 1e-3 and abs(np.mean(x > hi) - (1 - qmax)) < 2 / fs + 1e-3
