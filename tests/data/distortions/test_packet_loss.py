import numpy as np
import pytest

from use_repro.audio.io import SUPPORTED_RATES
from use_repro.data.distortions.packet_loss import apply_packet_loss, packet_bounds, sample_packet_loss


@pytest.mark.parametrize("fs", SUPPORTED_RATES)
def test_zeros_exactly_the_listed_packets(fs):
    rng = np.random.default_rng(fs)
    n = int(2.05 * fs)
    x = 0.5 + rng.random(n)  # never zero
    idx = sample_packet_loss(rng, n, fs, 20, (0.05, 0.25), 10)
    assert idx and idx == sorted(set(idx))
    y = apply_packet_loss(x, fs, idx, 20)
    expected = np.zeros(n, dtype=bool)
    for i in idx:
        a, b = packet_bounds(i, fs, 20)
        expected[a:b] = True
    assert np.array_equal(y == 0, expected)
    assert np.array_equal(y[~expected], x[~expected])
    assert packet_bounds(1, fs, 20)[0] == 20 * fs // 1000


def test_loss_rate_and_bursts():
    rng = np.random.default_rng(0)
    fs, n = 16000, 16000 * 4  # 200 packets
    rates = []
    for _ in range(300):
        idx = sample_packet_loss(rng, n, fs, 20, (0.05, 0.25), 10)
        rates.append(len([i for i in idx if i < 200]) / 200)
        runs = np.split(np.array(idx), np.where(np.diff(idx) != 1)[0] + 1) if idx else []
        assert all(len(r) >= 1 for r in runs)
    assert 0.02 <= min(rates) and max(rates) <= 0.26
    assert 0.10 < np.mean(rates) < 0.17
